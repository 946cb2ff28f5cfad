"""The model side of the server: token counts, and the computations the batcher's calls run.

A thin front: every number comes from numpybert's public API — `model.encode` (texts),
`numpybert.apps.encode_ids` (token ids), `model.encode(output_value="token_embeddings")`,
`model.classify` (every family's classifier head, softmax/sigmoid/logits), `model.tokenizer`
(counts, offsets, decode) — so each family and each format the library loads works behind every
route. Counting runs on worker threads: the library's tokenizer is thread-safe (one configured
copy per setting, never changed), and it cuts a long text before tokenizing it (its char cap), so
a 1.9 MB text costs what its first max_input_length + 1 tokens cost.
"""

import numpy as np

from ..apps import encode_ids
from ..errors import InputValueError


def unit(x):
    """Rows scaled to length 1, as the library's Normalize (OpenAI's shortened embeddings renormalise)."""
    from ..apps.pooling import l2_normalize
    return l2_normalize(x)


def shorten(x, dimensions):
    """OpenAI's shortened embeddings: keep the first `dimensions` values, then renormalise."""
    return x if dimensions is None else unit(x[:, :dimensions])


class ServeModel:
    """A loaded numpybert model with what the routes ask of it."""

    def __init__(self, model, name, max_input_length=None, max_batch_tokens=16384):
        self.model = model
        self.name = name
        self.max_batch_tokens = max_batch_tokens
        limit = model.max_seq_length
        if max_input_length is not None:
            if not 2 <= max_input_length <= model.config.max_length:
                raise InputValueError(f"--max-input-length {max_input_length}: expected 2 to the model's "
                                      f"max_position_embeddings {model.config.max_length}")
            model.max_seq_length = limit = max_input_length
        self.max_input_length = limit
        self.dimensions = model.get_sentence_embedding_dimension()
        self.vocab_size = model.config.vocab_size
        self.tokenizer = model.tokenizer
        frame = [int(i) for i in self.tokenizer("", padding=False)["input_ids"][0]]  # e.g. [CLS] [SEP]
        self.first_id, self.last_id = (frame[0], frame[-1]) if len(frame) >= 2 else (None, None)
        self.labels = self._labels()
        self.settings = model.sentence.settings  # pooling modes and Normalize, as the directory says

    def _labels(self):
        """The classifier head's labels, or None without one (no /predict, /rerank)."""
        from ..apps.heads import available_heads
        if "classifier" not in available_heads(self.model):
            return None
        id2label = getattr(self.model.config, "id2label", None) or {}
        n = len(id2label) or 1
        return [id2label.get(i, f"LABEL_{i}") for i in range(n)]

    # -- on the event loop or its worker threads: tokenizing only ----------------------------------
    def count(self, texts):
        """Tokens per text ([CLS]/[SEP] included), counted up to max_input_length + 1 (more means "over"):
        the tokenizer cuts each text after that many tokens' worth of characters before tokenizing it."""
        limit, top = self.max_input_length, self.model.config.max_length
        batch = self.tokenizer(texts, padding=False, truncation=True, max_length=min(limit + 1, top))
        counts = [len(row) for row in batch["input_ids"]]
        if limit == top:  # max_length cannot go past the position table: ask "over?" of the full rows alone
            for i, n in enumerate(counts):
                if n == limit:
                    try:
                        self.tokenizer([texts[i]], padding=False, truncation=False, max_length=limit)
                    except InputValueError:
                        counts[i] = limit + 1
        return counts

    def left_cut(self, texts):
        """Texts as token ids cut from the start (TEI's truncation_direction left), special tokens kept."""
        batch = self.tokenizer(texts, padding=False, truncation=True, max_length=self.max_input_length,
                               truncation_side="left")
        return [[int(i) for i in row] for row in batch["input_ids"]]

    def tokenize(self, texts, add_special_tokens=True):
        """Per text: (ids, special mask, offsets), from the library's tokenizer."""
        batch = self.tokenizer(texts, padding=False, add_special_tokens=add_special_tokens,
                               return_offsets_mapping=True, return_special_tokens_mask=True)
        return list(zip(batch["input_ids"], batch["special_tokens_mask"], batch["offset_mapping"]))

    def decode(self, rows, skip_special_tokens=True):
        return self.tokenizer.batch_decode(rows, skip_special_tokens=skip_special_tokens)

    # -- on the compute thread ---------------------------------------------------------------------
    def embed_texts(self, texts, normalize=None, prompt_name=None):
        """[n, D] float32: exactly `model.encode` (length-sorted batches, real tokens only)."""
        return self.model.encode(texts, batch_size=len(texts), normalize=normalize, prompt_name=prompt_name,
                                 max_batch_tokens=self.max_batch_tokens)

    def embed_ids(self, rows, normalize=None):
        """Token-id rows (as the model reads them, special tokens included) -> [n, D], pooled as encode."""
        return encode_ids(self.model, rows, normalize=normalize, max_batch_tokens=self.max_batch_tokens)

    def token_embeddings(self, texts):
        """One [tokens_i, H] array per text (real tokens only), as `model.encode(output_value="token_embeddings")`."""
        return self.model.encode(texts, output_value="token_embeddings", batch_size=len(texts),
                                 max_batch_tokens=self.max_batch_tokens)

    def classify(self, texts, pairs=None, function_to_apply=None):
        """Per text (or pair): [{label, score}] best first, as `model.classify`, cut to max_input_length."""
        return self.model.classify(texts, pairs, function_to_apply=function_to_apply,
                                   max_length=self.max_input_length)

    def rerank_scores(self, query, texts, raw_scores=False):
        """TEI's /rerank scores of (query, text) pairs: a 1-label cross-encoder's sigmoid(logit) (the logit
        with raw_scores); a head with more labels: the last label's softmax probability (its logit with
        raw_scores), the relevant/entailment class by convention."""
        function = "none" if raw_scores else "sigmoid" if len(self.labels) == 1 else "softmax"
        rows = self.classify([query] * len(texts), list(texts), function)
        last = self.labels[-1]
        return np.array([next(s["score"] for s in row if s["label"] == last) for row in rows], np.float64)
