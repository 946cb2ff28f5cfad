"""Texts -> sentence vectors in batches: the model's forward, then pooling and Normalize.

Batching: texts are taken in windows of WINDOW, each window is sorted by token count (longest
first) and cut into batches by a *token budget*: batch_size × max_seq_length real tokens (so
batch_size texts of the longest allowed length, as many shorter ones as make the same number of
tokens), and at most max_batch_tokens token positions (a memory cap); a batch holds texts of
similar length; results come back in input order. The engine skips padding, so a forward costs
what its real tokens cost: the budget makes every forward about as big as sentence-transformers'
batch of batch_size full-length texts (memory bounded alike) while short texts no longer pay a
forward's fixed costs per 32 texts (`encode` of 1,000 mixed-length MiniLM texts: see
docs/performance.md). The answers are sentence-transformers' (per text, up to float rounding:
different GEMM shapes, ~1e-7).
Each batch runs with skip_padding=True: only real tokens are computed, each text attending over
its own tokens (the same values as HF's padded batch at real tokens). A text's embedding
depends only on its window, batch_size and max_batch_tokens, so a corpus cut into whole windows
(numpybert embed, numpybert.Embedder) gives exactly the same numbers as one `encode` call.
`in_windows` is the one loop over windows; `embed_texts` is the core of encode, Embedder and
numpybert embed. Texts over the limit with long="chunk": numpybert/apps/long.py's windows.
"""

import numpy as np

from .long import content_ids, weighted_mean, window_rows
from .pooling import l2_normalize, pool
from .st_config import EncodeSettings

WINDOW = 4096  # texts sorted together by length: bounds memory; padding ~3% over the real tokens
# Token positions (batch rows × the batch's longest text) per forward: bounds a batch's memory
# whatever batch_size is. The engine's workspaces take 4·(4H + max(3H, I)) bytes per token:
# 16384 tokens are ~200 MB for MiniLM (H 384), ~400 MB for bert-base (H 768). The default
# batch_size 32 reaches it only at 512 tokens.
MAX_BATCH_TOKENS = 16384


def forward_batch(model, batch: dict, settings: EncodeSettings, prompt_length: int = 0):
    """A tokenized batch -> (sentence embeddings [B, len(pooling)·H], last_hidden_state [B, T, H]),
    in the model's dtype. The model's own Normalize module runs here (when it has one), as in
    sentence-transformers; `prompt_length` > 0 with include_prompt=False leaves the prompt's
    first tokens ([CLS] and the prompt) out of the pooling, as sentence-transformers' Pooling."""
    out = model(**batch, skip_padding=True)  # real tokens only: pooling never reads padded positions
    pooled = out.pooler_output if "pooler" in settings.pooling else None  # refuses when absent
    mask = batch["attention_mask"]
    if prompt_length and not settings.include_prompt:
        mask = mask.copy()
        mask[:, :prompt_length] = 0  # right padding: the prompt is the first tokens of every row
    vectors = [pool(out.last_hidden_state, mask, mode, pooled) for mode in settings.pooling]
    x = vectors[0] if len(vectors) == 1 else np.concatenate(vectors, axis=-1)
    return (l2_normalize(x) if settings.normalize else x), out.last_hidden_state


def embed_batch(model, batch: dict, settings: EncodeSettings):
    """A tokenized batch -> sentence embeddings [B, len(pooling)·H] in the model's dtype."""
    return forward_batch(model, batch, settings)[0]


def length_sorted_batches(lengths, batch_size: int, max_batch_tokens: int = MAX_BATCH_TOKENS,
                          token_budget: int | None = None) -> list:
    """Row indices in batches, longest texts first (a stable sort, so ties keep input order):
    at most max_batch_tokens token positions (texts × the first, longest, text's length; a longer
    text alone still gets its own batch), and at most batch_size texts or, given `token_budget`,
    texts whose token counts sum to at most token_budget (at least one text a batch)."""
    lengths = np.asarray(lengths)
    order = np.argsort(-lengths, kind="stable")
    sorted_lengths = np.maximum(lengths[order].astype(np.int64), 1)
    spent = np.cumsum(sorted_lengths)  # tokens of the sorted texts [0, i]
    batches, start = [], 0
    while start < len(order):
        rows = max(1, max_batch_tokens // int(sorted_lengths[start]))
        if token_budget is None:
            rows = min(batch_size, rows)
        else:  # texts while their tokens fit the budget
            before = int(spent[start - 1]) if start else 0
            rows = min(rows, max(1, int(np.searchsorted(spent, before + token_budget, side="right")) - start))
        batches.append(order[start:start + rows])
        start += rows
    return batches


def token_budget(batch_size: int, settings: EncodeSettings) -> int:
    """The real tokens one forward takes: batch_size texts of the longest allowed length."""
    return batch_size * settings.max_seq_length


def tokenize_texts(tokenizer, texts: list, settings: EncodeSettings, pairs: list | None = None) -> dict:
    """Texts (and their pairs) as the model sees them: lowercased when the settings say so, cut at
    max_seq_length (longest_first for pairs), right-padded to the longest. The attention mask's
    row sums are the token counts."""
    if settings.do_lower_case:
        texts = [t.lower() for t in texts]
        pairs = None if pairs is None else [t.lower() for t in pairs]
    return tokenizer(texts, pairs, max_length=settings.max_seq_length, truncation=True)


def run_window(model, texts: list, settings: EncodeSettings, batch_size: int = 32, pairs: list | None = None,
               prompt_length: int = 0, max_batch_tokens: int = MAX_BATCH_TOKENS):
    """Tokenize one window of texts, sort by token count, and yield per batch
    (rows, batch, sentence embeddings [b, D], last_hidden_state [b, T, H]); rows index the window."""
    tokens = tokenize_texts(model.tokenizer, texts, settings, pairs)
    lengths = tokens["attention_mask"].sum(axis=1)
    for rows in length_sorted_batches(lengths, batch_size, max_batch_tokens, token_budget(batch_size, settings)):
        width = int(lengths[rows].max())  # right padding: the columns past the longest row are all padding
        batch = {key: value[rows, :width] for key, value in tokens.items()}
        sentence, hidden = forward_batch(model, batch, settings, prompt_length)
        yield rows, batch, sentence, hidden


def embed_window(model, texts: list, settings: EncodeSettings, batch_size: int = 32, on_batch=None,
                 pairs: list | None = None, prompt_length: int = 0, max_batch_tokens: int = MAX_BATCH_TOKENS):
    """Embed one window of texts: tokenize, sort by token count, run batches, return [n, D] in input order.
    `on_batch(k)` is called after each batch of k texts (progress bars)."""
    result = None
    for rows, _, vectors, _ in run_window(model, texts, settings, batch_size, pairs, prompt_length, max_batch_tokens):
        if result is None:
            result = np.empty((len(texts), vectors.shape[1]), dtype=vectors.dtype)
        result[rows] = vectors
        if on_batch is not None:
            on_batch(len(rows))
    return result


def in_windows(texts: list, window: int, embed_one, pairs: list | None = None) -> list:
    """The one loop over windows: `embed_one(texts, pairs)` on consecutive slices of `window`
    texts (pairs None, or sliced alike); the parts, in input order."""
    return [embed_one(texts[i:i + window], None if pairs is None else pairs[i:i + window])
            for i in range(0, len(texts), window)]


def embed_texts(model, texts: list, settings: EncodeSettings, batch_size: int = 32, window: int = WINDOW,
                on_batch=None, long: str = "truncate", stride: int = 0, max_batch_tokens: int = MAX_BATCH_TOKENS,
                pairs: list | None = None, prompt_length: int = 0) -> np.ndarray:
    """Checked texts (and pairs) -> sentence embeddings [N, D] in input order, window by window:
    `embed_window`, or `embed_long_window` with long="chunk" (`stride`: tokens shared by a long
    text's consecutive windows). The arguments are checked by the callers (encode, Embedder)."""
    if long == "chunk":
        def embed_one(part, _):
            return embed_long_window(model, part, settings, batch_size, stride, on_batch, max_batch_tokens)
    else:
        def embed_one(part, part_pairs):
            return embed_window(model, part, settings, batch_size, on_batch, part_pairs, prompt_length,
                                max_batch_tokens)
    parts = in_windows(texts, window, embed_one, pairs)
    if not parts:
        return np.empty((0, model.config.hidden_size * len(settings.pooling)), dtype=model.dtype)
    return np.concatenate(parts)


# ----------------------------------------------------------------------------- long texts in windows

def embed_long_window(model, texts: list, settings: EncodeSettings, batch_size: int, stride: int, on_batch=None,
                      max_batch_tokens: int = MAX_BATCH_TOKENS) -> np.ndarray:
    """One window of texts with long="chunk" -> [n, D] in input order: texts within the limit as
    `embed_window`, longer ones as the weighted mean of their token windows (`chunked_vectors`)."""
    size = settings.max_seq_length - 2
    ids = content_ids(model.tokenizer, texts, settings)
    short = [i for i, x in enumerate(ids) if len(x) <= size]
    long_rows = [i for i, x in enumerate(ids) if len(x) > size]
    result = np.empty((len(texts), model.config.hidden_size * len(settings.pooling)), dtype=model.dtype)
    if short:
        result[short] = embed_window(model, [texts[i] for i in short], settings, batch_size, on_batch,
                                     max_batch_tokens=max_batch_tokens)
    if long_rows:
        result[long_rows] = chunked_vectors(model, [ids[i] for i in long_rows], settings, batch_size, stride,
                                            max_batch_tokens)
        if on_batch is not None:
            on_batch(len(long_rows))
    return result


def chunked_vectors(model, docs: list, settings: EncodeSettings, batch_size: int, stride: int,
                    max_batch_tokens: int = MAX_BATCH_TOKENS) -> np.ndarray:
    """Token-id lists over the limit -> one vector each [n, D]: the token-count-weighted mean of the
    embeddings of their windows, renormalized when the model normalizes."""
    tok = model.tokenizer
    rows, owner = window_rows(docs, settings.max_seq_length - 2, stride, tok.cls_token_id, tok.sep_token_id)
    lengths = np.array([len(r) for r in rows])
    vectors = np.empty((len(rows), model.config.hidden_size * len(settings.pooling)), dtype=model.dtype)
    for batch_rows in length_sorted_batches(lengths, batch_size, max_batch_tokens, token_budget(batch_size, settings)):
        width = int(lengths[batch_rows].max())
        ids = np.full((len(batch_rows), width), tok.pad_token_id, dtype=np.int64)  # [b, T]
        mask = np.zeros((len(batch_rows), width), dtype=np.int64)  # [b, T]
        for j, r in enumerate(batch_rows):
            ids[j, :lengths[r]], mask[j, :lengths[r]] = rows[r], 1
        batch = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        vectors[batch_rows] = embed_batch(model, batch, settings)  # [b, D]
    result = weighted_mean(vectors, rows, owner, len(docs))
    return l2_normalize(result) if settings.normalize else result

