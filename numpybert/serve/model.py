"""The model side of the server: counting tokens, and the computations the batcher runs.

Only numpybert's public API is used here (`model.encode`, `model(..., skip_padding=True)`,
`model.tokenizer`, `model.config`, `model.classify`), so the server keeps working while the
package's insides move. Everything in this module runs on the batcher's one compute thread,
except `count` / `tokens`, which use the server's own copy of the tokenizer (thread-safe: its
padding and truncation are switched off once, never changed per call).
"""

import dataclasses

import numpy as np
from tokenizers import Tokenizer

from ..errors import InputValueError

PROBE = "numpybert serve: which pooling does this model use?"
POOL_ATOL = 1e-5  # float32 pooling of the same token vectors in another order: measured <= 6e-8 on MiniLM


@dataclasses.dataclass(frozen=True)
class Pooling:
    """How `model.encode` turns token vectors into a sentence vector, found by `probe_pooling`."""
    mode: str  # "mean" | "cls" | "max" | "mean_sqrt_len" | "pooler"
    normalize: bool


def pool(hidden, mask, mode, pooled=None):
    """[B, T, H] token vectors and the 0/1 mask [B, T] -> [B, H] sentence vectors."""
    if mode == "cls":
        return hidden[:, 0]
    if mode == "pooler":
        return pooled
    m = mask.astype(hidden.dtype)[:, :, None]  # [B, T] -> [B, T, 1]
    if mode == "max":
        return np.where(m > 0, hidden, -np.inf).max(axis=1)  # [B, T, H] -> [B, H]
    count = np.maximum(m.sum(axis=1), 1e-9)  # [B, 1]
    summed = (hidden * m).sum(axis=1)  # [B, T, H] -> [B, H]
    return summed / (count if mode == "mean" else np.sqrt(count))


def unit(x):
    """Rows scaled to length 1 (x / max(|x|, 1e-12), as torch's normalize)."""
    return x / np.maximum(np.sqrt((x * x).sum(axis=-1, keepdims=True)), np.float32(1e-12))


def shorten(x, dimensions):
    """OpenAI's shortened embeddings: keep the first `dimensions` values, then renormalise."""
    return x if dimensions is None else unit(x[:, :dimensions])


def probe_pooling(model):
    """The pooling `model.encode` applies, read back from the public API: encode one probe text,
    pool its token vectors every way, and keep the way that gives encode's vector. None when no
    single mode does (several concatenated modes): then only text input is accepted."""
    item = model.encode([PROBE], output_value=None)[0]
    tokens, target = item["token_embeddings"][None], item["sentence_embedding"]  # [1, n, H], [D]
    mask = np.ones(tokens.shape[:2], np.int64)
    out = None
    for mode in ("mean", "cls", "max", "mean_sqrt_len", "pooler"):
        if mode == "pooler":
            if not getattr(model, "has_pooler", False):
                continue
            out = out or model(input_ids=item["input_ids"][None], attention_mask=mask)
            vector = out.pooler_output
        else:
            vector = pool(tokens, mask, mode)
        for normalize in (False, True):
            candidate = unit(vector) if normalize else vector
            if candidate.shape[-1] == target.shape[-1] and np.allclose(candidate[0], target, atol=POOL_ATOL):
                return Pooling(mode, normalize)
    return None


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
        self.hidden_size = model.config.hidden_size
        self.counter = Tokenizer.from_str(model.tokenizer.backend.to_str())  # the server's own copy
        self.counter.no_truncation()
        self.counter.no_padding()
        tok = model.tokenizer
        self.cls_id, self.sep_id = tok.cls_token_id, tok.sep_token_id
        self.pooling = probe_pooling(model)
        self.labels = self._labels()

    def _labels(self):
        """The classifier head's labels, or None without one (no /predict, /rerank)."""
        if "classifier.weight" not in self.model.flat_params:
            return None
        n = self.model.flat_params["classifier.weight"].shape[0]  # torch layout [labels, H]
        id2label = getattr(self.model.config, "id2label", None) or {}
        return [id2label.get(i, f"LABEL_{i}") for i in range(n)]

    # -- on the event loop's worker threads: tokenizing only --------------------------------------
    def encodings(self, texts):
        """The tokenizer's encodings of texts ([CLS]/[SEP] included, nothing cut)."""
        return self.counter.encode_batch(texts, add_special_tokens=True)

    def count(self, texts):
        return [len(e.ids) for e in self.encodings(texts)]

    # -- on the compute thread ---------------------------------------------------------------------
    def embed_texts(self, texts, normalize=None, prompt_name=None):
        """[n, D] float32: exactly `model.encode` (length-sorted batches, real tokens only)."""
        return self.model.encode(texts, batch_size=len(texts), normalize=normalize, prompt_name=prompt_name,
                                 max_batch_tokens=self.max_batch_tokens)

    def embed_ids(self, rows, normalize=None):
        """Token-id sequences (taken as the model reads them, [CLS]/[SEP] included) -> [n, D],
        pooled as `model.encode` pools (see probe_pooling); length-sorted, real tokens only."""
        out = np.empty((len(rows), self.dimensions), np.float32)
        order = sorted(range(len(rows)), key=lambda i: -len(rows[i]))
        start = 0
        while start < len(order):
            width = len(rows[order[start]])
            take = order[start:start + max(1, self.max_batch_tokens // max(1, width))]
            ids = np.zeros((len(take), width), np.int64)  # [b, T], right-padded
            mask = np.zeros((len(take), width), np.int64)
            for j, i in enumerate(take):
                ids[j, :len(rows[i])] = rows[i]
                mask[j, :len(rows[i])] = 1
            res = self.model(input_ids=ids, attention_mask=mask, skip_padding=True)
            pooled = res.pooler_output if self.pooling.mode == "pooler" else None
            vectors = pool(res.last_hidden_state, mask, self.pooling.mode, pooled)  # [b, T, H] -> [b, H]
            normalize = self.pooling.normalize if normalize is None else normalize
            out[take] = unit(vectors) if normalize else vectors
            start += len(take)
        return out

    def token_embeddings(self, texts):
        """One [tokens_i, H] array per text (real tokens only), as `model.encode(output_value="token_embeddings")`."""
        return self.model.encode(texts, output_value="token_embeddings", batch_size=len(texts),
                                 max_batch_tokens=self.max_batch_tokens)

    def classify(self, texts, pairs=None):
        """Per text (or pair): [{label, score}] best first, as `model.classify`."""
        return self.model.classify(texts, pairs)

    def logits(self, texts, pairs=None):
        """The classifier head's logits [n, labels] in float64: `classifier(pooled_output)`, from the
        checkpoint's own tensors (BertForSequenceClassification; dropout is identity at inference)."""
        batch = self.model.tokenize(texts, pairs, truncation=True, max_length=self.max_input_length)
        pooled = self.model(**batch).pooler_output.astype(np.float64)  # [n, H]
        w = self.model.flat_params["classifier.weight"].astype(np.float64)  # [labels, H]
        b = self.model.flat_params["classifier.bias"].astype(np.float64)
        return pooled @ w.T + b  # [n, H] @ [H, labels] -> [n, labels]

    def rerank_scores(self, query, texts, raw_scores=False):
        """TEI's /rerank scores of (query, text) pairs: a 1-label cross-encoder's sigmoid(logit)
        (the logit itself with raw_scores); a head with more labels: the last label's softmax
        probability (its logit with raw_scores), the relevant/entailment class by convention."""
        logits = self.logits([query] * len(texts), list(texts))
        if logits.shape[1] == 1:
            return logits[:, 0] if raw_scores else sigmoid(logits[:, 0])
        return logits[:, -1] if raw_scores else softmax(logits)[:, -1]


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))
