"""What a handler asks the batcher for: one typed call per operation.

A call is a frozen (hashable) dataclass: the batcher groups queued inputs by equal calls and runs
each group with `call.run(model, items)` on its compute thread, one result per item, in order.
Items are the inputs themselves (texts, id rows, (text, pair) tuples); everything else a request
chose (normalize, prompt_name, raw scores, the query) is a field of its call.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class EmbedTexts:
    """Texts -> sentence vectors [D] (`model.encode`)."""
    normalize: bool | None = None
    prompt_name: str | None = None

    def run(self, sm, texts):
        return list(sm.embed_texts(texts, self.normalize, self.prompt_name))


@dataclasses.dataclass(frozen=True)
class EmbedIds:
    """Token-id rows (special tokens included) -> sentence vectors [D] (`numpybert.apps.encode_ids`)."""
    normalize: bool | None = None

    def run(self, sm, rows):
        return list(sm.embed_ids(rows, self.normalize))


@dataclasses.dataclass(frozen=True)
class TokenEmbeddings:
    """Texts -> one [tokens, H] array each (TEI's /embed_all)."""

    def run(self, sm, texts):
        return sm.token_embeddings(texts)


@dataclasses.dataclass(frozen=True)
class Classify:
    """Texts or (text, pair) tuples -> [{label, score}] best first (TEI's /predict): probabilities, or
    the logits with function_to_apply "none" (TEI's raw_scores), as `model.classify`. Single texts
    and pairs run in separate calls."""
    function_to_apply: str | None = None

    def run(self, sm, items):
        function = self.function_to_apply
        out = [None] * len(items)
        singles = [i for i, t in enumerate(items) if isinstance(t, str)]
        pairs = [i for i, t in enumerate(items) if not isinstance(t, str)]
        if singles:
            for i, r in zip(singles, sm.classify([items[i] for i in singles], None, function)):
                out[i] = r
        if pairs:
            for i, r in zip(pairs, sm.classify([items[i][0] for i in pairs], [items[i][1] for i in pairs],
                                               function)):
                out[i] = r
        return out


@dataclasses.dataclass(frozen=True)
class Rerank:
    """Texts -> the score of (query, text) (TEI's /rerank)."""
    query: str
    raw_scores: bool = False

    def run(self, sm, texts):
        return [float(s) for s in sm.rerank_scores(self.query, texts, self.raw_scores)]
