"""The engine: BERT's forward pass made fast and lean; numpybert/reference.py is the textbook.

The same math as the reference (HuggingFace `BertModel`, eager attention, at inference),
checked against the same golden files, computed so that it costs less:

- on token *rows* [R, H], not padded [B, T, H] tensors (numpybert/engine/layout.py): with
  skip_padding=True only real tokens are computed and each sequence attends over its own
  tokens; by default all B·T positions, with HF's additive mask, so padded positions get
  HF's values too;
- streaming: one layer at a time in place, with workspaces reused by every layer (two [R, H]
  and one [R, max(3H, I)]); no layer's hidden state or attention probabilities is kept unless
  the caller asked for it (output_hidden_states / output_attentions / record);
- Linear weights kept in the checkpoint's [out, in] layout (nothing copied at load but Q|K|V,
  stacked into one [3H, H] matrix by `prepare_params`); few rows are multiplied as (W·xᵀ)ᵀ;
- results written in place (`out=`); P·V lands directly in the rows' [R, N, D] layout, so
  merging the heads costs nothing;
- element-wise work (GELU, LayerNorm, each block of heads' softmax) in blocks of about
  `BLOCK_BYTES`, so its passes hit the CPU cache; LayerNorm in float64 blocks (more accurate
  than torch's float32 one) after the post-LN sum in HF's order and dtype (`_layer_norm_rows`);
- threads (`numpybert.set_threads`, numpybert/engine/blocks.py): each takes a share of the
  sequences through all the layers, BLAS on one thread each.

Dimension legend (as in google-research/bert `modeling.py`):
    B  batch size               T  sequence length (tokens)
    H  hidden size              N  attention heads
    D  head size = H / N        I  intermediate (feed-forward) size
    L  number of layers         V  vocabulary size
    R  token rows computed (B·T, or the real tokens only under skip_padding)

Parameters keep the checkpoint's names and torch's shapes, so any leaf can be diffed
against the file. Functions take activations first, weights next, config last (as picoGPT).
Every function keeps the dtype it is given (constants are Python floats, which do not promote).

`trace` (numpybert/engine/trace.py) records intermediates under stable names
(`encoder.layer.0.attention.self.probs`) for the parity audit, from the very computation
users run: recording only copies.
"""

import math
import threading

import numpy as np

from .blocks import BLOCK_BYTES, blocks, elementwise, for_each_block, matmul, thread_count
from .layout import make_layout
from ..reference import classifier_head, nsp_head  # noqa: F401  (heads: see "task heads")
from ..reference import relative_position_bias, relative_position_bucket
from .trace import NO_TRACE, Trace  # noqa: F401  (Trace: re-exported for the audit)
from ..loading.family import position_ids as position_ids_of


# ----------------------------------------------------------------------------- building blocks

# Up to this many rows, x·Wᵀ is computed as (W·xᵀ)ᵀ: OpenBLAS multiplies a weight by a few columns
# faster than a few rows by a transposed weight. Whole MiniLM forwards, 2 threads, back to back
# (scripts/tune_few_rows.py, 2026-11-30): 8 rows 7.3 -> 5.6 ms, 16 rows 9.1 -> 7.3, 48 rows
# 16.5 -> 15.0; 64 rows equal; 128 rows 31.8 -> 34.1 (slower). The transpose back rides in the bias pass.
FEW_ROWS = 48


def linear(x, weight, bias, out=None):
    """y = x·Wᵀ + b with torch's layout: weight is [out, in], bias is [out] (None: the caller adds
    it, see `add_layer_norm`); `out` receives y."""
    rows = x.reshape(-1, x.shape[-1])  # [..., in] -> [rows, in]: one GEMM, not one per sequence
    y = np.empty((len(rows), len(weight)), x.dtype) if out is None else out.reshape(len(rows), -1)  # [rows, out]
    if len(rows) <= FEW_ROWS and weight.flags.c_contiguous:  # OpenBLAS is faster at W·xᵀ for few rows
        yT = matmul(weight, rows.T, out=scratch(y.shape[::-1], y.dtype, "linear"))  # [out, in] @ [in, rows] -> [out, rows]
        if bias is None:
            np.copyto(y, yT.T)  # [out, rows] -> [rows, out]
        else:
            np.add(yT.T, bias, out=y)  # [out, rows] -> [rows, out], the bias added in the same pass
    else:
        y = matmul(rows, weight.T, out=y)  # [rows, in] @ [in, out] -> [rows, out]
        if bias is not None:
            y += bias
    return y.reshape(*x.shape[:-1], weight.shape[0])  # [rows, out] -> [..., out]


def layer_norm(x, weight, bias, eps, out=None, add=()):
    """Normalise each vector over its last axis (biased variance, as torch), then scale and shift.
    `add`: arrays summed into x first, in order ([..., H] like x, or [H]), in the same blocks.
    Row blocks at a time, so the passes stay in cache; `out` may be x."""
    x = np.asarray(x)
    out = np.empty_like(x) if out is None else out
    rows, out_rows = x.reshape(-1, x.shape[-1]), out.reshape(-1, x.shape[-1])  # [..., H] -> [rows, H]
    add = [a if a.ndim == 1 else a.reshape(rows.shape) for a in add]  # [..., H] -> [rows, H]; [H] stays
    step = max(1, BLOCK_BYTES // (rows.shape[1] * rows.itemsize))
    for_each_block(lambda s: _layer_norm_rows(rows[s], [a if a.ndim == 1 else a[s] for a in add],
                                              weight, bias, eps, out_rows[s]),
                   [(s,) for s in blocks(len(rows), step)], x.nbytes)
    return out


def add_layer_norm(h, dense_bias, residual, LayerNorm, eps, out=None):
    """Post-LN: LayerNorm(h + b + residual), where h is a dense layer's x·Wᵀ without its bias b.
    The sum is HF's, (h + b) + residual rounded to the dtype each time, done inside LayerNorm's
    cache-sized blocks (two passes over memory saved). `out` may be h."""
    return layer_norm(h, **LayerNorm, eps=eps, out=out, add=(dense_bias, residual))


def _layer_norm_rows(x, add, weight, bias, eps, out):
    """One block of rows. The sum first, in HF's order and dtype ((dense output + its bias) +
    residual, rounded as torch rounds it: two passes over the dtype instead of over float64);
    then in float64 whatever x is, rounded once at the end: float32 LayerNorm otherwise rounds
    four times (centre, divide, scale, shift), which made numpybert's hidden states less accurate
    than torch's (`numpybert audit --live --oracle`). The moments are `row_dots`: one BLAS dot
    per row, so a row's numbers never depend on its neighbours in the block. Normalising in
    float32 from the centring on was 1.6x faster but doubled the distance from the float64
    result at MiniLM's fifth layer on 8 × 256 inputs (1.4e-5, torch 7.5e-6): docs/performance.md."""
    H = x.shape[-1]
    y = scratch(x.shape, np.float64, "layer_norm")
    if add:
        np.add(x, add[0], out=out)
        for a in add[1:]:
            out += a
        x = out
    np.copyto(y, x)  # [rows, H] in float64
    mean = row_dots(y, _ones(H, np.float64))  # [rows, H] -> [rows, 1]
    mean /= H
    y -= mean
    var = row_dots(y, y)  # sum of squares: [rows, H] -> [rows, 1]
    var /= H
    var += eps
    y /= np.sqrt(var, out=var)
    y *= weight
    np.add(y, bias, out=out, casting="same_kind")  # the one rounding to out's dtype


def row_dots(a, b):
    """The dot product of each row (last axis) of a with b's (b may be one row [n]): [..., n] -> [..., 1].
    One BLAS dot per row (np.vecdot, NumPy ≥ 2), ~2× faster than `sum` or `einsum` here, and
    unlike a matrix-vector product (`a @ ones`) a row's result depends on that row alone, never on
    where it sits in the block (tests/engine/test_math.py)."""
    if hasattr(np, "vecdot"):
        return np.vecdot(a, b)[..., None]
    return np.einsum("...j,...j->...", a, b)[..., None]  # NumPy 1 has no vecdot


_ONES = {}


def _ones(n, dtype):
    """A read-only vector of n ones (row sums as dot products with it)."""
    key = (n, np.dtype(dtype))
    if key not in _ONES:
        _ONES[key] = np.ones(n, dtype)
        _ONES[key].flags.writeable = False
    return _ONES[key]


# float32 erf and GELU share one approximation: the normal CDF as a logistic,
#     Φ(x) = 1 / (1 + exp(x·k(x²))),   k(s) = -ln(Φ/(1-Φ))/x, smooth and even,
# with k a degree-6 polynomial on x² ∈ [0, 30] (beyond, Φ is 0 or 1 in float32, and k keeps falling) fitted by
# scripts/fit_gelu.py: GELU error 6.8e-8 in exact arithmetic. Unlike 1 + erf(x/√2), which rounds
# near 1, the logistic keeps its accuracy where Φ → 1, and it costs ~17 passes, not ~30.
# erf(u) = 2Φ(u√2) - 1 = tanh(-y/2) with y = x·k(x²), x = u√2; max abs error 2e-7 (tests/engine/test_math.py).
_GELU32_K = (-3.618784290172468e-09, 2.672962725281572e-07, -7.946266351579506e-06, 1.1055616099221148e-04,
             6.590868691289205e-05, -7.266782186354083e-02, -1.5957689852555348)


def _polyval(coefficients, x):
    """Horner's rule, highest power first; Python-float coefficients keep x's dtype."""
    y = x * coefficients[0]
    for c in coefficients[1:-1]:
        y += c
        y *= x
    y += coefficients[-1]
    return y


def _logit_of_phi(x):
    """y = x·k(x²), so that Φ(x) = 1 / (1 + exp(y)) (float32). Beyond the fit (x² > 30) k keeps
    falling (checked to 1e12 by tests/engine/test_math.py), so Φ only saturates further: no clip
    pass needed (3–6% of GELU's time). Huge |x| overflow k to -inf, giving Φ = 0 or 1 as wanted."""
    with np.errstate(over="ignore"):
        t = np.square(x)
        y = _polyval(_GELU32_K, t)
        y *= x
    return y


def _erf_float32(x, out):
    with np.errstate(over="ignore"):  # |x| > 2.4e38: x·√2 = ±inf, and the result is ±1 as wanted
        y = _logit_of_phi(x * math.sqrt(2.0))
    y *= -0.5
    return np.tanh(y, out=out)


def _erf_float64(x, out):
    """erf(a) = 2/√π · e^(−a²) · Σₙ 2ⁿ a^(2n+1) / (1·3·5···(2n+1)): every term is positive, so
    nothing cancels and the sum is accurate to a few ulp. |x| ≥ 6 gives ±1 (erfc(6) ≈ 2e-17)."""
    a = np.minimum(np.abs(x), 6.0)  # NaN stays NaN
    a2 = a * a
    term = a.copy()
    total = a.copy()
    n = 0
    while np.any(term > 1e-17 * total):  # ~100 terms at a = 6 (NaN compares False: no endless loop)
        n += 1
        term *= a2 * (2.0 / (2 * n + 1))
        total += term
    total *= np.exp(-a2)
    total *= 2.0 / math.sqrt(math.pi)
    np.minimum(total, 1.0, out=total)
    total[a == 6.0] = 1.0  # the sum's rounding (~1e-15) would leave erf(6) = 1 - 1e-15
    return np.copysign(total, x, out=out)


def erf(x, out=None):
    """The error function for float32 or float64 arrays (NumPy has none)."""
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"erf: expected a float32 or float64 array, got {x.dtype}")
    return elementwise(_erf_float32 if x.dtype == np.float32 else _erf_float64, x, out)


def _gelu_block(x, out):
    if x.dtype == np.float32:  # x·Φ(x) = x / (1 + exp(y)), see _GELU32_K
        e = _logit_of_phi(x)
        with np.errstate(over="ignore"):  # x < -9: exp(y) = inf, x / inf = -0 as wanted
            np.exp(e, out=e)
        e += 1.0
        np.divide(x, e, out=out)
        return
    u = x * (1.0 / math.sqrt(2.0))
    _erf_float64(u, out=u)
    u += 1.0
    np.multiply(u, x, out=out)
    out *= 0.5


def gelu(x, out=None):
    """Exact GELU, BERT's `hidden_act="gelu"`: x·Φ(x) = 0.5·x·(1 + erf(x/√2)). `out` may be x.
    (float32 evaluates Φ as a logistic, see _GELU32_K; float64 the erf form with the series.)"""
    return elementwise(_gelu_block, x, out)


def _gelu_tanh_block(x, out):
    u = np.square(x)
    u *= x
    u *= 0.044715
    u += x
    u *= math.sqrt(2.0 / math.pi)
    np.tanh(u, out=u)
    u += 1.0
    np.multiply(u, x, out=out)
    out *= 0.5


def gelu_tanh(x, out=None):
    """The tanh approximation (`gelu_new`, `gelu_pytorch_tanh`, TF Hub's BERT): ~5e-4 from exact.
    0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). `out` may be x."""
    return elementwise(_gelu_tanh_block, x, out)


def relu(x, out=None):
    return np.maximum(x, 0, out=out)


def tanh(x, out=None):
    return np.tanh(x, out=out)


ACTIVATIONS = {"gelu": gelu, "gelu_new": gelu_tanh, "gelu_pytorch_tanh": gelu_tanh, "relu": relu, "tanh": tanh}


def softmax(x, out=None):
    """Stable softmax over the last axis. A row masked with finfo.min everywhere stays finite
    (all scores equal, so the result is uniform), exactly as torch's eager attention. `out` may be x."""
    e = np.subtract(x, x.max(axis=-1, keepdims=True), out=out)
    np.exp(e, out=e)
    e /= row_dots(e, _ones(e.shape[-1], e.dtype))  # the sums: [..., n] -> [..., 1]
    return e


# ----------------------------------------------------------------------------- weights, once at load

def prepare_params(flat_params):
    """Once, at load time: each layer's query, key and value weights become one [3H, H] matrix
    (biases one [3H] vector), so Q, K and V are one GEMM; the checkpoint names stay, as views of
    its row blocks (same shapes and values, nothing can go stale). Every other weight stays as the
    checkpoint has it, [out, in] (nothing copied: a mapped file stays mapped). Memory-mapped Q, K
    and V stay three tensors too (`load(mmap=True)`): processes that map one file share its pages
    (`numpybert serve --workers N`), a fused copy would be private to each; then they are three
    GEMMs into one buffer. Updates the dict in place and returns it; prepared tensors are left alone."""
    for name in list(flat_params):
        if name.endswith("attention.self.query.weight"):
            prefix = name[: -len("query.weight")]
            for kind in ("weight", "bias"):
                names = [f"{prefix}{part}.{kind}" for part in ("query", "key", "value")]
                if not all(n in flat_params for n in names) or all(_mapped(flat_params[n]) for n in names):
                    continue
                if _fused(*(flat_params[n] for n in names)) is None:
                    whole = np.concatenate([flat_params[n] for n in names])  # 3 × [out, in] -> [3·out, in]; or [3·out]
                    out = len(flat_params[names[0]])
                    flat_params.update((n, whole[i * out:(i + 1) * out]) for i, n in enumerate(names))
    return flat_params


def _mapped(array) -> bool:
    """Whether the array views a memory-mapped file (`load(mmap=True)`)."""
    while isinstance(array, np.ndarray) and not isinstance(array, np.memmap):
        array = array.base
    return isinstance(array, np.memmap)


def _fused(a, b, c):
    """The [3·out, in] matrix (or [3·out] vector) whose consecutive row blocks are a, b and c
    (prepare_params), if there is one; else None."""
    whole = a.base
    if whole is None or b.base is not whole or c.base is not whole or not whole.flags.c_contiguous:
        return None
    if not all(t.flags.c_contiguous for t in (a, b, c)) or whole.shape != (3 * len(a), *a.shape[1:]) or any(t.shape != a.shape for t in (b, c)):
        return None
    start = whole.__array_interface__["data"][0]
    if [t.__array_interface__["data"][0] for t in (a, b, c)] != [start + i * a.nbytes for i in range(3)]:
        return None
    return whole


def qkv_weights(query, key, value):
    """The three projections as one linear layer: weight [3H, H], bias [3H] (after `prepare_params`
    the stored matrices the checkpoint names view); concatenated on the spot for parameters laid out otherwise."""
    weight, bias = _fused(query["weight"], key["weight"], value["weight"]), _fused(query["bias"], key["bias"], value["bias"])
    if weight is None or bias is None:
        return [np.concatenate([query[kind], key[kind], value[kind]]) for kind in ("weight", "bias")]
    return weight, bias


# ----------------------------------------------------------------------------- the model, on token rows

def embeddings(input_ids, token_type_ids, position_ids, word_embeddings, position_embeddings,
               LayerNorm, eps, where, token_type_embeddings=None, inputs_embeds=None, trace=NO_TRACE):
    """Token + segment + position embeddings of the computed rows ([R] ids -> [R, E]), summed in
    HF's order, then LayerNorm. `inputs_embeds` [R, E], when given, replaces the token embeddings.
    No token_type_embeddings (DistilBERT): token + position only."""
    table = word_embeddings["weight"]
    x = table[input_ids] if inputs_embeds is None else inputs_embeds.astype(table.dtype, copy=False)  # [R] -> [R, E]
    if token_type_embeddings is not None:
        x += token_type_embeddings["weight"][token_type_ids]
    x += position_embeddings["weight"][position_ids]
    trace.rows("sum", x, where)
    x = layer_norm(x, **LayerNorm, eps=eps, out=x)
    trace.rows("output", x, where)
    return x


def attention_mask_bias(attention_mask, dtype, mask_value="finfo-min"):
    """Turn a 0/1 padding mask into the additive bias added to the attention scores.

    HF (transformers ≥ 4.21) adds finfo(dtype).min where the mask is 0; google-research/bert,
    old transformers and ONNX Runtime add -10000; "-inf" makes a fully masked row NaN.
    """
    value = {"finfo-min": np.finfo(dtype).min, "-10000": -10000.0, "-inf": -np.inf}[mask_value]
    bias = np.where(attention_mask == 0, value, 0.0).astype(dtype)  # [B, T]
    return bias[:, None, None, :]  # [B, T] -> [B, 1, 1, T]: broadcast over heads and queries


def attention_blocks(G, n_head, n, itemsize):
    """(sequences, heads) index blocks whose [n, n] scores fit in cache: several whole sequences
    per block when they fit (short texts), else some heads of one sequence."""
    fit = 4 * BLOCK_BYTES // (n * n * itemsize)  # [n, n] score matrices per block
    if fit >= n_head:
        seqs = min(fit // n_head, -(-G // thread_count()))  # at least one block per thread
        return [(slice(g, g + seqs), slice(None)) for g in range(0, G, seqs)]
    heads = max(1, fit)
    return [(slice(g, g + 1), slice(h, h + heads)) for g in range(G) for h in range(0, n_head, heads)]


_scratch = threading.local()


def scratch(shape, dtype, slot="scores"):
    """A reused per-thread workspace of `shape`, one per `slot` (the scores of one block of heads,
    one block of LayerNorm in float64)."""
    nbytes = math.prod(shape) * np.dtype(dtype).itemsize
    buffers = _scratch.__dict__
    buf = buffers.get(slot)
    if buf is None or buf.nbytes < nbytes:
        buf = buffers[slot] = np.empty(nbytes, np.uint8)
    return buf[:nbytes].view(dtype).reshape(shape)


def attend(q, k, v, bias, context, record, position_bias=None):
    """softmax(Q·Kᵀ/√D + mask)·V for one block of heads [g, h, n, D], written into `context`.
    `record(name, x)` records a [g, h, n, n] intermediate. `position_bias` (MPNet) is added before the mask."""
    scores = np.matmul(q, k.swapaxes(-1, -2), out=scratch((*q.shape[:-1], k.shape[-2]), q.dtype))  # [.., n, D] @ [.., D, n] -> [.., n, n]
    scores *= q.shape[-1] ** -0.5
    record("scores", scores)
    if position_bias is not None:
        scores += position_bias  # MPNet: the relative position bias, [g or 1, h, n, n]
    if bias is not None:
        scores += bias  # padded keys get finfo.min: they receive no attention
    record("masked_scores", scores)
    probs = softmax(scores, out=scores)  # each query's weights over the keys sum to 1
    record("probs", probs)
    np.matmul(probs, v, out=context)  # [.., n, n] @ [.., n, D] -> [.., n, D]


def attend_group(qkv, group, n_head, context, shape, trace):
    """Self-attention of one group of G sequences of n tokens, in blocks of heads that fit in cache."""
    G, n = len(group.batch), group.n
    rows = slice(group.start, group.start + G * n)
    D = qkv.shape[1] // (3 * n_head)
    q, k, v = qkv[rows].reshape(G, n, 3, n_head, D).transpose(2, 0, 3, 1, 4)  # [G·n, 3H] -> 3 × [G, N, n, D]
    heads = context[rows].reshape(G, n, n_head, D).transpose(0, 2, 1, 3)  # [G·n, H] -> [G, N, n, D], a view

    def block(s, h):
        record = lambda name, x: trace.pairs(name, x, group, s, h, shape)  # noqa: E731
        position_bias = group.position_bias
        if position_bias is not None:
            position_bias = position_bias[s if len(position_bias) > 1 else slice(None), h]
        attend(q[s, h], k[s, h], v[s, h], None if group.bias is None else group.bias[s], heads[s, h], record,
               position_bias)

    for_each_block(block, attention_blocks(G, n_head, n, qkv.itemsize), G * n_head * n * n * qkv.itemsize, blas=True)


def self_attention(x, groups, query, key, value, n_head, work, out, where, trace=NO_TRACE):
    """Multi-head scaled dot-product self-attention of the rows x [R, H], each sequence over its
    own keys; the merged context goes into `out` [R, H]."""
    R, H = x.shape
    qkv = work[:R * 3 * H].reshape(R, 3 * H)  # [R, 3H]: Q | K | V side by side
    if _mapped(query["weight"]):  # kept unfused (prepare_params): three GEMMs into the buffer's column blocks
        for i, p in enumerate((query, key, value)):
            linear(x, p["weight"], p["bias"], out=qkv[:, i * H:(i + 1) * H])  # [R, H] -> [R, H]
    else:
        qkv = linear(x, *qkv_weights(query, key, value), out=qkv)  # [R, H] -> [R, 3H]
    heads = qkv.reshape(R, 3, n_head, H // n_head)  # [R, 3H] -> [R, 3, N, D]
    trace.rows("query", heads[:, 0], where, heads=True)
    trace.rows("key", heads[:, 1], where, heads=True)
    trace.rows("value", heads[:, 2], where, heads=True)
    B, T = where[:2]
    for group in groups:
        attend_group(qkv, group, n_head, out, (B, n_head, T, T), trace)
    trace.rows("context", out, where)
    return out


def attention_block(x, groups, self, output, n_head, eps, work, context, out, where, trace=NO_TRACE):
    """`BertAttention`: self-attention, output projection, then post-LN with the residual, into `out`.
    (`self` is the checkpoint's name for the sub-module `attention.self`.)"""
    context = self_attention(x, groups, **self, n_head=n_head, work=work, out=context, where=where,
                             trace=trace.scope("self"))
    h = linear(context, output["dense"]["weight"], None, out=out)  # [R, H] -> [R, H]; bias added with the residual
    h = add_layer_norm(h, output["dense"]["bias"], x, output["LayerNorm"], eps, out=h)  # LN(h + b + x)
    trace.rows("output", h, where)
    return h


def feed_forward(x, intermediate, output, act, eps, work, out, where, trace=NO_TRACE):
    """Position-wise FFN: H -> I -> activation -> H, then post-LN with the residual (into `out`)."""
    R, I = len(x), intermediate["dense"]["weight"].shape[0]
    h = linear(x, **intermediate["dense"], out=work[:R * I].reshape(R, I))  # [R, H] -> [R, I]
    trace.rows("intermediate.pre_act", h, where)
    h = ACTIVATIONS[act](h, out=h)
    trace.rows("intermediate.output", h, where)
    y = linear(h, output["dense"]["weight"], None, out=out)  # [R, I] -> [R, H]; bias added with the residual
    y = add_layer_norm(y, output["dense"]["bias"], x, output["LayerNorm"], eps, out=y)  # LN(y + b + x)
    trace.rows("output", y, where)
    return y


def encoder_layer(x, groups, attention, intermediate, output, n_head, act, eps, work, where, trace=NO_TRACE):
    """One post-LN transformer block on the rows, in place: x = LN(x + Attn(x)); x = LN(x + FFN(x)).
    `work` holds the workspaces: h and context [R, H], and a flat one for Q|K|V or the FFN's [R, I]."""
    h, context, flat = work
    h = attention_block(x, groups, **attention, n_head=n_head, eps=eps, work=flat, context=context, out=h,
                        where=where, trace=trace.scope("attention"))
    return feed_forward(h, intermediate, output, act=act, eps=eps, work=flat, out=x, where=where, trace=trace)


def group_position_bias(group, weight):
    """MPNet's relative position bias for one group, from the textbook's buckets: [1, N, n, n] when
    every sequence's tokens sit at consecutive positions (only distances matter), else [G, N, n, n]."""
    positions = group.positions  # [G, n]
    if (positions - positions[:, :1] == np.arange(group.n)).all():
        return relative_position_bias(group.n, weight)  # [1, N, n, n]
    bucket = relative_position_bucket(positions[:, None, :] - positions[:, :, None])  # [G, n] -> [G, n, n]
    return weight[bucket].transpose(0, 3, 1, 2)  # [G, n, n, N] -> [G, N, n, n]


def encoder(x, layout, layer, n_head, act, eps, relative_attention_bias=None, trace=NO_TRACE):
    """The stack of L layers on the rows x [R, H], in place. Nothing per layer is kept unless the
    trace records it; the workspaces (2 × [R, H] and [R, max(3H, I)]) serve every layer. Each
    thread's share of the sequences runs through all the layers on its own rows.
    `relative_attention_bias` (MPNet): each group's position bias, computed once for all layers."""
    R, H = x.shape
    for group in (g for share in layout.shares for g in share.groups) if relative_attention_bias else ():
        group.position_bias = group_position_bias(group, relative_attention_bias["weight"].astype(x.dtype, copy=False))
    width = max([3 * H] + [block["intermediate"]["dense"]["weight"].shape[0] for block in layer])
    h, context, flat = np.empty_like(x), np.empty_like(x), np.empty(R * width, x.dtype)

    def run(share):
        rows = slice(share.start, share.stop)
        work = (h[rows], context[rows], flat[share.start * width:share.stop * width])
        where = (layout.B, layout.T, layout.batch[rows], layout.positions[rows])
        for i, block in enumerate(layer):
            encoder_layer(x[rows], share.groups, **block, n_head=n_head, act=act, eps=eps, work=work, where=where,
                          trace=trace.scope(f"layer.{i}"))

    for_each_block(run, [(share,) for share in layout.shares], blas=True)  # layout made the shares worth it
    return x


def pooler(last_hidden_state, dense, trace=NO_TRACE):
    """BertPooler: pooled_output = tanh(W · h_[CLS] + b).

    It takes the first position only ([CLS]; this assumes right padding) and passes it
    through a dense layer and tanh. That layer was trained for next-sentence prediction in
    BERT's pre-training, so pooled_output is NOT the [CLS] row of last_hidden_state, and is
    usually a poorer sentence embedding than the mean of the hidden states.
    """
    cls_vector = last_hidden_state[:, 0]  # [B, T, H] -> [B, H]
    trace("cls_vector", cls_vector)
    z = linear(cls_vector, **dense)  # [B, H] -> [B, H]
    trace("pooler.pre_tanh", z)
    pooled = np.tanh(z)
    trace("pooled_output", pooled)
    return pooled


def _recorder(trace, L, output_hidden_states, output_attentions, first="embeddings.output"):
    """What the forward records: everything for an audit trace, else only the outputs asked for
    (the last layer's output is last_hidden_state itself, so it is not copied). `first`: the
    name of hidden_states[0]."""
    if trace is not NO_TRACE:
        return trace
    names = set()
    if output_hidden_states:
        names |= {first} | {f"encoder.layer.{i}.output" for i in range(L - 1)}
    if output_attentions:
        names |= {f"encoder.layer.{i}.attention.self.probs" for i in range(L)}
    return Trace(keep=names.__contains__) if names else NO_TRACE


def bert(input_ids, token_type_ids, position_ids, attention_mask, params, config, mask_value="finfo-min",
         trace=NO_TRACE, inputs_embeds=None, skip_padding=False, output_hidden_states=True,
         output_attentions=True):
    """The whole BertModel on [B, T] inputs: returns (hidden_states, attentions, pooled_output).
    hidden_states: L+1 × [B, T, H] (embedding output first) when output_hidden_states, else only
    [last_hidden_state]; attentions: L × [B, N, T, T], or [] unless output_attentions; pooled_output
    [B, H], or None when the checkpoint has no pooler. `inputs_embeds` [B, T, H] replaces the token
    embeddings. skip_padding=True computes real tokens only (padded positions are 0, see layout.py)."""
    B, T = attention_mask.shape
    dtype = params["embeddings"]["word_embeddings"]["weight"].dtype
    L = len(params["encoder"]["layer"])
    if position_ids is None:  # inputs, as token types (numpybert.loading.family.position_ids)
        position_ids = position_ids_of(input_ids, (B, T), config.padding_idx)  # [B, T]
    bias = None if attention_mask.all() else attention_mask_bias(attention_mask, dtype, mask_value)[:, 0, 0]  # [B, T]
    layout = make_layout(attention_mask, bias, skip_padding, config.hidden_size, config.intermediate_size)
    project = params.get("embeddings_project")  # ELECTRA: embeddings E wide, projected to H
    first = "embeddings_project.output" if project else "embeddings.output"  # hidden_states[0]
    rec = _recorder(trace, L, output_hidden_states, output_attentions, first)
    b, t = layout.batch, layout.positions  # [R] each: the computed rows
    x = embeddings(None if input_ids is None else input_ids[b, t], token_type_ids[b, t], position_ids[b, t],
                   **params["embeddings"],
                   eps=config.layer_norm_eps, where=(B, T, b, t),
                   inputs_embeds=None if inputs_embeds is None else inputs_embeds[b, t],
                   trace=rec.scope("embeddings"))  # [B, T] -> [R, E]
    if project:
        x = linear(x, **project)  # [R, E] -> [R, H]
        rec.rows(first, x, (B, T, b, t))
    x = encoder(x, layout, **params["encoder"], n_head=config.num_attention_heads, act=config.hidden_act,
                eps=config.layer_norm_eps, trace=rec.scope("encoder"))
    last = layout.to_tensor(x)  # [R, H] -> [B, T, H]
    pooled = pooler(last, **params["pooler"], trace=rec) if "pooler" in params else None
    hidden_states = [last]
    if output_hidden_states and L:
        hidden_states = [rec.store[first], *(rec.store[f"encoder.layer.{i}.output"] for i in range(L - 1)), last]
    attentions = [rec.store[f"encoder.layer.{i}.attention.self.probs"] for i in range(L)] if output_attentions else []
    return hidden_states, attentions, pooled


# ----------------------------------------------------------------------------- task heads
# nsp_head and classifier_head are one linear on [B, H] each: the textbook's (numpybert/reference.py)
# serve as they are. mlm_head stays here: it runs on every token [B, T, H] before the [H, V] decoder,
# where the reference's per-element erf GELU (~0.1 µs an element) would cost ~0.3 s per 3M activations.

def mlm_head(last_hidden_state, transform, decoder, bias, act, eps):
    """Masked-LM head (`cls.predictions`): dense -> activation -> LayerNorm -> decoder, whose
    weight is tied to the word embeddings, plus a per-token bias. Returns logits [B, T, V]."""
    h = ACTIVATIONS[act](linear(last_hidden_state, **transform["dense"]))  # [B, T, H] -> [B, T, H]
    h = layer_norm(h, **transform["LayerNorm"], eps=eps)
    return linear(h, decoder["weight"], bias)  # [B, T, H] -> [B, T, V]


def first_token_classifier(last_hidden_state, dense, out_proj, act):
    """The family's classifiers on the first token ([CLS] / <s>), not the pooler: dense, then tanh
    (RoBERTa, XLM-R), gelu (ELECTRA) or relu (DistilBERT), then out_proj: logits [B, num_labels]."""
    h = linear(last_hidden_state[:, 0], **dense)  # [B, T, H] -> [B, H]
    return linear(ACTIVATIONS[act](h, out=h), **out_proj)  # [B, H] -> [B, num_labels]
