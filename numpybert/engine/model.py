"""BERT's forward pass as plain NumPy functions, in the order of the paper.

Read it top to bottom: the building blocks (linear, layer_norm, erf/gelu, softmax), then
embeddings -> self-attention -> feed-forward -> encoder layer -> encoder -> pooler -> bert.
The semantics are HuggingFace `BertModel` (eager attention) at inference.

Dimension legend (as in google-research/bert `modeling.py`):
    B  batch size               T  sequence length (tokens)
    H  hidden size              N  attention heads
    D  head size = H / N        I  intermediate (feed-forward) size
    L  number of layers         V  vocabulary size

Parameters keep the checkpoint's names and torch's layout, so any leaf can be diffed
against the file: `params["encoder"]["layer"][3]["attention"]["self"]["query"]["weight"]`
is the tensor `encoder.layer.3.attention.self.query.weight`, a Linear weight of shape
[out, in]. Functions take activations first, weights next, config last (as picoGPT).

Every function keeps the dtype it is given: float32 in, float32 out. (NumPy 2 promotes
float32 to float64 when a NumPy float64 scalar joins an operation, so constants here
are Python floats, which do not promote.)

How it is fast and still this one readable model (numbers in docs/performance.md):
- matrix products go to BLAS as whole 2-D GEMMs, Q, K and V as ONE GEMM (`fuse_qkv`);
- results are written in place (`out=`) instead of into fresh temporaries, and P·V lands
  directly in the [B, T, N, D] layout, so merging the heads costs nothing;
- element-wise work (GELU, LayerNorm, the softmax of each block of heads) runs on blocks
  of about `BLOCK_BYTES`, so its many passes hit the CPU cache instead of memory, and the
  blocks may be shared between threads (`numpybert.set_threads`; the machinery is numpybert/blocks.py).

`trace` records intermediates under stable names (`encoder.layer.0.attention.self.probs`)
for the parity audit; the default `NO_TRACE` does nothing.
"""

import math

import numpy as np

from .blocks import BLOCK_BYTES, batch_shares, blocks, elementwise, for_each_block, matmul, thread_count


# ----------------------------------------------------------------------------- tracing

class Trace:
    """Records intermediates in forward order: `trace("probs", x)` under the current scope."""
    records = True  # attention then works on whole tensors, so that whole tensors are recorded

    def __init__(self, store=None, prefix=""):
        self.store = {} if store is None else store
        self.prefix = prefix

    def __call__(self, name, x):
        self.store[self.prefix + name] = np.array(x, copy=True)  # later in-place ops must not change it

    def scope(self, name):
        return Trace(self.store, f"{self.prefix}{name}.")


class _NoTrace:
    """The default: records nothing, costs one no-op call per recorded tensor."""
    records = False

    def __call__(self, name, x):
        pass

    def scope(self, name):
        return self


NO_TRACE = _NoTrace()


# ----------------------------------------------------------------------------- building blocks

def linear(x, weight, bias, out=None):
    """y = x·Wᵀ + b with torch's layout: weight is [out, in], bias is [out] (None: the caller adds
    it, see `add_layer_norm`); `out` receives y."""
    rows = x.reshape(-1, x.shape[-1])  # [..., in] -> [rows, in]: one GEMM, not one per sequence
    y = np.empty((len(rows), len(weight)), x.dtype) if out is None else out.reshape(len(rows), -1)  # [rows, out]
    y = matmul(rows, weight.T, out=y)  # [rows, in] @ [in, out] -> [rows, out]
    if bias is not None:
        y += bias
    return y.reshape(*x.shape[:-1], weight.shape[0])  # [rows, out] -> [..., out]


def layer_norm(x, weight, bias, eps, out=None, add=()):
    """Normalise each vector over its last axis (biased variance, as torch), then scale and shift.
    `add`: arrays summed into x first ([..., H] like x, or [H]), in the same float64 block.
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
    HF rounds the sum twice in float32 (`dense(x)`, then `+ residual`); here the three are summed
    in float64 inside LayerNorm's blocks, so the result is rounded once (and two passes over
    memory are saved). `out` may be h."""
    return layer_norm(h, **LayerNorm, eps=eps, out=out, add=(dense_bias, residual))


def _layer_norm_rows(x, add, weight, bias, eps, out):
    """In float64 whatever x is, rounded once at the end: float32 LayerNorm otherwise rounds four
    times (centre, divide, scale, shift), which made numpybert's hidden states less accurate than
    torch's (`numpybert audit --live --oracle`)."""
    x = x.astype(np.float64)
    for a in add:
        x += a
    x -= x.mean(axis=-1, keepdims=True)  # [rows, H] - [rows, 1]
    x /= np.sqrt(np.square(x).mean(axis=-1, keepdims=True) + eps)
    x *= weight
    x += bias
    out[...] = x


# float32 erf and GELU share one approximation: the normal CDF as a logistic,
#     Φ(x) = 1 / (1 + exp(x·k(x²))),   k(s) = -ln(Φ/(1-Φ))/x, smooth and even,
# with k a degree-6 polynomial on x² ∈ [0, 30] (beyond, Φ is 0 or 1 in float32) fitted by
# scripts/fit_gelu.py: GELU error 6.8e-8 in exact arithmetic. Unlike 1 + erf(x/√2), which rounds
# near 1, the logistic keeps its accuracy where Φ → 1, and it costs ~17 passes, not ~30.
# erf(u) = 2Φ(u√2) - 1 = tanh(-y/2) with y = x·k(x²), x = u√2; max abs error 2e-7 (tests/test_math.py).
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
    """y = x·k(x²), so that Φ(x) = 1 / (1 + exp(y)) (float32)."""
    t = np.square(x)
    np.clip(t, 0.0, 30.0, out=t)
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


ACTIVATIONS = {"gelu": gelu, "gelu_new": gelu_tanh, "gelu_pytorch_tanh": gelu_tanh, "relu": relu}


def softmax(x, out=None):
    """Stable softmax over the last axis. A row masked with finfo.min everywhere stays finite
    (all scores equal, so the result is uniform), exactly as torch's eager attention. `out` may be x."""
    e = np.subtract(x, x.max(axis=-1, keepdims=True), out=out)
    np.exp(e, out=e)
    e /= e.sum(axis=-1, keepdims=True)
    return e


# ----------------------------------------------------------------------------- the model

def embeddings(input_ids, token_type_ids, position_ids,
               word_embeddings, position_embeddings, token_type_embeddings, LayerNorm,
               eps, trace=NO_TRACE, inputs_embeds=None):
    """Token + segment + position embeddings, summed in HF's order, then LayerNorm.
    `inputs_embeds` [B, T, H], when given, is used (and written to) instead of word_embeddings[input_ids]."""
    x = word_embeddings["weight"][input_ids] if inputs_embeds is None else inputs_embeds  # [B, T] -> [B, T, H]
    x += token_type_embeddings["weight"][token_type_ids]
    x += position_embeddings["weight"][position_ids]
    trace("sum", x)
    x = layer_norm(x, **LayerNorm, eps=eps, out=x)
    trace("output", x)
    return x


def attention_mask_bias(attention_mask, dtype, mask_value="finfo-min"):
    """Turn a 0/1 padding mask into the additive bias added to the attention scores.

    HF (transformers ≥ 4.21) adds finfo(dtype).min where the mask is 0; google-research/bert,
    old transformers and ONNX Runtime add -10000; "-inf" makes a fully masked row NaN.
    """
    value = {"finfo-min": np.finfo(dtype).min, "-10000": -10000.0, "-inf": -np.inf}[mask_value]
    bias = np.where(attention_mask == 0, value, 0.0).astype(dtype)  # [B, T]
    return bias[:, None, None, :]  # [B, T] -> [B, 1, 1, T]: broadcast over heads and queries


def split_heads(x, n_head):
    B, T, H = x.shape
    return x.reshape(B, T, n_head, H // n_head).transpose(0, 2, 1, 3)  # [B, T, H] -> [B, N, T, D]


def merge_heads(x):
    B, N, T, D = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, T, N * D)  # [B, N, T, D] -> [B, T, H]


def fuse_qkv(flat_params):
    """Once, at load time: lay every layer's query, key and value weights out as consecutive rows
    of one [3H, H] matrix (biases: one [3H] vector), so self-attention makes one GEMM, not three.
    The checkpoint-named tensors become views of it: same names, same values, same [out, in].
    Updates the dict in place and returns it (already fused tensors are left alone)."""
    for name in list(flat_params):
        if not name.endswith("attention.self.query.weight"):
            continue
        prefix = name[: -len("query.weight")]
        for kind in ("weight", "bias"):
            names = [f"{prefix}{part}.{kind}" for part in ("query", "key", "value")]
            if all(n in flat_params for n in names) and _fused(*(flat_params[n] for n in names)) is None:
                whole = np.concatenate([flat_params[n] for n in names])  # 3 × [H, ...] -> [3H, ...]
                flat_params.update(zip(names, np.split(whole, 3)))
    return flat_params


def _fused(a, b, c):
    """The [3·n, ...] array whose consecutive thirds are a, b and c, if there is one; else None."""
    whole = a.base
    if whole is None or b.base is not whole or c.base is not whole or whole.shape[0] != 3 * len(a):
        return None
    starts = [t.__array_interface__["data"][0] for t in (whole, a, b, c)]
    if not whole.flags.c_contiguous or starts[1:] != [starts[0] + i * a.nbytes for i in range(3)]:
        return None
    return whole


def qkv_weights(query, key, value):
    """The three projections as one linear layer: weight [3H, H], bias [3H]. Free after `fuse_qkv`;
    concatenated on the spot for parameters laid out otherwise."""
    pick = lambda kind: _fused(query[kind], key[kind], value[kind])  # noqa: E731
    return [pick(kind) if pick(kind) is not None else np.concatenate([query[kind], key[kind], value[kind]])
            for kind in ("weight", "bias")]


def attention_blocks(B, n_head, T, itemsize, whole=False):
    """(batch, heads) index blocks whose [T, T] scores fit in cache: several whole sequences per
    block when they fit (short texts), else some heads of one sequence; one block for everything
    when `whole` (a trace records whole tensors)."""
    if whole:
        return [(slice(None), slice(None))]
    fit = 4 * BLOCK_BYTES // (T * T * itemsize)  # [T, T] score matrices per block
    if fit >= n_head:
        seqs = min(fit // n_head, -(-B // thread_count()))  # at least one block per thread
        return [(slice(b, b + seqs), slice(None)) for b in range(0, B, seqs)]
    heads = max(1, fit)
    return [(slice(b, b + 1), slice(h, h + heads)) for b in range(B) for h in range(0, n_head, heads)]


def attend(q, k, v, mask_bias, probs, context, trace=NO_TRACE):
    """softmax(Q·Kᵀ/√D + mask)·V for one block of heads, written into `probs` and `context`."""
    scores = np.matmul(q, k.swapaxes(-1, -2), out=probs)  # [.., T, D] @ [.., D, T] -> [.., T, T]
    scores *= q.shape[-1] ** -0.5
    trace("scores", scores)
    scores += mask_bias  # padded keys get finfo.min: they receive no attention
    trace("masked_scores", scores)
    probs = softmax(scores, out=scores)  # each query's weights over the keys sum to 1
    trace("probs", probs)
    np.matmul(probs, v, out=context)  # [.., T, T] @ [.., T, D] -> [.., T, D]


def self_attention(x, mask_bias, query, key, value, n_head, trace=NO_TRACE, probs=None):
    """Multi-head scaled dot-product self-attention; returns the merged context and the probs
    (written into `probs` [B, N, T, T] when given)."""
    B, T, H = x.shape
    qkv = linear(x, *qkv_weights(query, key, value))  # [B, T, H] -> [B, T, 3H]
    q, k, v = qkv.reshape(B, T, 3, n_head, H // n_head).transpose(2, 0, 3, 1, 4)  # [B, T, 3H] -> 3 × [B, N, T, D]
    trace("query", q), trace("key", k), trace("value", v)
    probs = np.empty((B, n_head, T, T), x.dtype) if probs is None else probs  # [B, N, T, T]
    context = np.empty((B, T, n_head, H // n_head), x.dtype)  # [B, T, N, D]: heads merged in memory
    heads = context.transpose(0, 2, 1, 3)  # [B, T, N, D] -> [B, N, T, D], a view: P·V is written in place
    for_each_block(lambda i: attend(q[i], k[i], v[i], mask_bias[i[0]], probs[i], heads[i], trace),
                   [(i,) for i in attention_blocks(B, n_head, T, x.itemsize, whole=trace.records)],
                   probs.nbytes, blas=True)
    context = context.reshape(B, T, H)  # [B, T, N, D] -> [B, T, H]
    trace("context", context)
    return context, probs


def attention_block(x, mask_bias, self, output, n_head, eps, trace=NO_TRACE, probs=None):
    """`BertAttention`: self-attention, output projection, then post-LN with the residual.
    (`self` is the checkpoint's name for the sub-module `attention.self`.)"""
    context, probs = self_attention(x, mask_bias, **self, n_head=n_head, trace=trace.scope("self"), probs=probs)
    h = linear(context, output["dense"]["weight"], None)  # [B, T, H] -> [B, T, H]; bias added with the residual
    h = add_layer_norm(h, output["dense"]["bias"], x, output["LayerNorm"], eps, out=h)  # LN(h + b + x)
    trace("output", h)
    return h, probs


def feed_forward(x, intermediate, output, act, eps, trace=NO_TRACE, out=None):
    """Position-wise FFN: H -> I -> activation -> H, then post-LN with the residual (into `out`)."""
    h = linear(x, **intermediate["dense"])  # [B, T, H] -> [B, T, I]
    trace("intermediate.pre_act", h)
    h = ACTIVATIONS[act](h, out=h)
    trace("intermediate.output", h)
    y = linear(h, output["dense"]["weight"], None, out=out)  # [B, T, I] -> [B, T, H]; bias added with the residual
    y = add_layer_norm(y, output["dense"]["bias"], x, output["LayerNorm"], eps, out=y)  # LN(y + b + x)
    trace("output", y)
    return y


def encoder_layer(x, mask_bias, attention, intermediate, output, n_head, act, eps, trace=NO_TRACE,
                  out=None, probs=None):
    """One post-LN transformer block: x = LN(x + Attn(x)); x = LN(x + FFN(x)).
    `out` [B, T, H] and `probs` [B, N, T, T], when given, receive the results."""
    x, probs = attention_block(x, mask_bias, **attention, n_head=n_head, eps=eps, trace=trace.scope("attention"),
                               probs=probs)
    x = feed_forward(x, intermediate, output, act=act, eps=eps, trace=trace, out=out)
    return x, probs


def encoder(x, mask_bias, layer, n_head, act, eps, trace=NO_TRACE):
    """The stack of L layers. Returns the L+1 hidden states (embedding output first) and L attentions."""
    B, T, H = x.shape
    hidden_states, attentions = [x], []
    shares = batch_shares(B, T, whole=trace.records)
    for i, block in enumerate(layer):
        out, probs = np.empty_like(x), np.empty((B, n_head, T, T), x.dtype)  # [B, T, H], [B, N, T, T]
        run = lambda s: encoder_layer(hidden_states[-1][s], mask_bias[s], **block, n_head=n_head, act=act,  # noqa: E731,B023
                                      eps=eps, trace=trace.scope(f"layer.{i}"), out=out[s], probs=probs[s])
        for_each_block(run, [(s,) for s in shares], out.nbytes, blas=True)
        hidden_states.append(out)
        attentions.append(probs)
    return hidden_states, attentions


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


def bert(input_ids, token_type_ids, position_ids, attention_mask, params, config,
         mask_value="finfo-min", trace=NO_TRACE, inputs_embeds=None):
    """The whole BertModel: returns (hidden_states [L+1 × [B, T, H]], attentions [L × [B, N, T, T]],
    pooled_output [B, H] or None when the checkpoint has no pooler). `inputs_embeds` [B, T, H] replaces
    the word-embedding lookup (input_ids is then None)."""
    x = embeddings(input_ids, token_type_ids, position_ids, **params["embeddings"],
                   eps=config.layer_norm_eps, trace=trace.scope("embeddings"),
                   inputs_embeds=inputs_embeds)  # [B, T] -> [B, T, H]
    mask_bias = attention_mask_bias(attention_mask, x.dtype, mask_value)  # [B, T] -> [B, 1, 1, T]
    hidden_states, attentions = encoder(x, mask_bias, **params["encoder"], n_head=config.num_attention_heads,
                                        act=config.hidden_act, eps=config.layer_norm_eps,
                                        trace=trace.scope("encoder"))
    pooled = pooler(hidden_states[-1], **params["pooler"], trace=trace) if "pooler" in params else None
    return hidden_states, attentions, pooled


# ----------------------------------------------------------------------------- task heads

def mlm_head(last_hidden_state, transform, decoder, bias, act, eps):
    """Masked-LM head (`cls.predictions`): dense -> activation -> LayerNorm -> decoder, whose
    weight is tied to the word embeddings, plus a per-token bias. Returns logits [B, T, V]."""
    h = ACTIVATIONS[act](linear(last_hidden_state, **transform["dense"]))  # [B, T, H] -> [B, T, H]
    h = layer_norm(h, **transform["LayerNorm"], eps=eps)
    return linear(h, decoder["weight"], bias)  # [B, T, H] -> [B, T, V]


def nsp_head(pooled_output, seq_relationship):
    """Next-sentence prediction (`cls.seq_relationship`) on the pooled output: logits [B, 2],
    label 0 = "B follows A". This is the task the pooler was trained for."""
    return linear(pooled_output, **seq_relationship)  # [B, H] -> [B, 2]


def classifier_head(pooled_output, classifier):
    """BertForSequenceClassification's head on the pooled output: logits [B, num_labels]."""
    return linear(pooled_output, **classifier)  # [B, H] -> [B, num_labels]
