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

`trace` records intermediates under stable names (`encoder.layer.0.attention.self.probs`)
for the parity audit; the default `NO_TRACE` does nothing.
"""

import math

import numpy as np


# ----------------------------------------------------------------------------- tracing

class Trace:
    """Records intermediates in forward order: `trace("probs", x)` under the current scope."""

    def __init__(self, store=None, prefix=""):
        self.store = {} if store is None else store
        self.prefix = prefix

    def __call__(self, name, x):
        self.store[self.prefix + name] = np.array(x, copy=True)  # later in-place ops must not change it

    def scope(self, name):
        return Trace(self.store, f"{self.prefix}{name}.")


class _NoTrace:
    """The default: records nothing, costs one no-op call per recorded tensor."""

    def __call__(self, name, x):
        pass

    def scope(self, name):
        return self


NO_TRACE = _NoTrace()


# ----------------------------------------------------------------------------- building blocks

def linear(x, weight, bias):
    """y = x·Wᵀ + b with torch's layout: weight is [out, in], bias is [out]."""
    return x @ weight.T + bias  # [..., in] @ [in, out] -> [..., out]


def layer_norm(x, weight, bias, eps):
    """Normalise each vector over its last axis (biased variance, as torch), then scale and shift."""
    mean = x.mean(axis=-1, keepdims=True)  # [..., H] -> [..., 1]
    centered = x - mean
    var = (centered * centered).mean(axis=-1, keepdims=True)  # [..., H] -> [..., 1]
    return centered / np.sqrt(var + eps) * weight + bias


# erf(x) for float32: the rational approximation used by XLA and Eigen, erf(x) = x·P(x²)/Q(x²)
# on [-4, 4] (beyond it erf is ±1 to float32 precision). Max abs error 4.2e-7 (tests/test_math.py).
_ERF32_P = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
            -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02)
_ERF32_Q = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
            -1.42647390514189e-02)


def _polyval(coefficients, x):
    """Horner's rule, highest power first; Python-float coefficients keep x's dtype."""
    y = np.full_like(x, coefficients[0])
    for c in coefficients[1:]:
        y *= x
        y += c
    return y


def _erf_float32(x):
    x = np.clip(x, -4.0, 4.0)
    x2 = x * x
    return x * _polyval(_ERF32_P, x2) / _polyval(_ERF32_Q, x2)


def _erf_float64(x):
    """erf(a) = 2/√π · e^(−a²) · Σₙ 2ⁿ a^(2n+1) / (1·3·5···(2n+1)): every term is positive, so
    nothing cancels and the sum is accurate to a few ulp. |x| ≥ 6 gives ±1 (erfc(6) ≈ 2e-17)."""
    a = np.minimum(np.abs(x), 6.0)
    a2 = a * a
    term = a.copy()
    total = a.copy()
    n = 0
    while True:  # ~100 terms at a = 6; stops when every term is below 1e-17 of its sum
        n += 1
        term *= a2 * (2.0 / (2 * n + 1))
        total += term
        if np.all(term <= 1e-17 * total):
            break
    return np.copysign(np.minimum(2.0 / math.sqrt(math.pi) * np.exp(-a2) * total, 1.0), x)


def erf(x):
    """The error function for float32 or float64 arrays (NumPy has none)."""
    x = np.asarray(x)
    if x.dtype == np.float64:
        return _erf_float64(x)
    if x.dtype == np.float32:
        return _erf_float32(x)
    raise TypeError(f"erf: expected a float32 or float64 array, got {x.dtype}")


def gelu(x):
    """Exact GELU, BERT's `hidden_act="gelu"`: x·Φ(x) = 0.5·x·(1 + erf(x/√2))."""
    return 0.5 * x * (1.0 + erf(x * (1.0 / math.sqrt(2.0))))


def gelu_tanh(x):
    """The tanh approximation (`gelu_new`, `gelu_pytorch_tanh`, TF Hub's BERT): ~5e-4 from exact."""
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))


def relu(x):
    return np.maximum(x, 0)


ACTIVATIONS = {"gelu": gelu, "gelu_new": gelu_tanh, "gelu_pytorch_tanh": gelu_tanh, "relu": relu}


def softmax(x):
    """Stable softmax over the last axis. A row masked with finfo.min everywhere stays finite
    (all scores equal, so the result is uniform), exactly as torch's eager attention."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# ----------------------------------------------------------------------------- the model

def embeddings(input_ids, token_type_ids, position_ids,
               word_embeddings, position_embeddings, token_type_embeddings, LayerNorm,
               eps, trace=NO_TRACE):
    """Token + segment + position embeddings, summed in HF's order, then LayerNorm."""
    x = word_embeddings["weight"][input_ids]  # [B, T] -> [B, T, H]
    x = x + token_type_embeddings["weight"][token_type_ids]
    x = x + position_embeddings["weight"][position_ids]
    trace("sum", x)
    x = layer_norm(x, **LayerNorm, eps=eps)
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


def self_attention(x, mask_bias, query, key, value, n_head, trace=NO_TRACE):
    """Multi-head scaled dot-product self-attention; returns the merged context and the probs."""
    q = split_heads(linear(x, **query), n_head)  # [B, T, H] -> [B, N, T, D]
    k = split_heads(linear(x, **key), n_head)  # [B, T, H] -> [B, N, T, D]
    v = split_heads(linear(x, **value), n_head)  # [B, T, H] -> [B, N, T, D]
    trace("query", q), trace("key", k), trace("value", v)
    scores = q @ k.transpose(0, 1, 3, 2) * (q.shape[-1] ** -0.5)  # [B, N, T, D] @ [B, N, D, T] -> [B, N, T, T]
    trace("scores", scores)
    scores = scores + mask_bias  # padded keys get finfo.min: they receive no attention
    trace("masked_scores", scores)
    probs = softmax(scores)  # each query's weights over the keys sum to 1
    trace("probs", probs)
    context = merge_heads(probs @ v)  # [B, N, T, T] @ [B, N, T, D] -> [B, N, T, D] -> [B, T, H]
    trace("context", context)
    return context, probs


def attention_block(x, mask_bias, self, output, n_head, eps, trace=NO_TRACE):
    """`BertAttention`: self-attention, output projection, then post-LN with the residual.
    (`self` is the checkpoint's name for the sub-module `attention.self`.)"""
    context, probs = self_attention(x, mask_bias, **self, n_head=n_head, trace=trace.scope("self"))
    x = layer_norm(linear(context, **output["dense"]) + x, **output["LayerNorm"], eps=eps)
    trace("output", x)
    return x, probs


def feed_forward(x, intermediate, output, act, eps, trace=NO_TRACE):
    """Position-wise FFN: H -> I -> activation -> H, then post-LN with the residual."""
    h = linear(x, **intermediate["dense"])  # [B, T, H] -> [B, T, I]
    trace("intermediate.pre_act", h)
    h = ACTIVATIONS[act](h)
    trace("intermediate.output", h)
    x = layer_norm(linear(h, **output["dense"]) + x, **output["LayerNorm"], eps=eps)  # [B, T, I] -> [B, T, H]
    trace("output", x)
    return x


def encoder_layer(x, mask_bias, attention, intermediate, output, n_head, act, eps, trace=NO_TRACE):
    """One post-LN transformer block: x = LN(x + Attn(x)); x = LN(x + FFN(x))."""
    x, probs = attention_block(x, mask_bias, **attention, n_head=n_head, eps=eps, trace=trace.scope("attention"))
    x = feed_forward(x, intermediate, output, act=act, eps=eps, trace=trace)
    return x, probs


def encoder(x, mask_bias, layer, n_head, act, eps, trace=NO_TRACE):
    """The stack of L layers. Returns the L+1 hidden states (embedding output first) and L attentions."""
    hidden_states, attentions = [x], []
    for i, block in enumerate(layer):
        x, probs = encoder_layer(x, mask_bias, **block, n_head=n_head, act=act, eps=eps,
                                 trace=trace.scope(f"layer.{i}"))
        hidden_states.append(x)
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
         mask_value="finfo-min", trace=NO_TRACE):
    """The whole BertModel: returns (hidden_states [L+1 × [B, T, H]], attentions [L × [B, N, T, T]],
    pooled_output [B, H] or None when the checkpoint has no pooler)."""
    x = embeddings(input_ids, token_type_ids, position_ids, **params["embeddings"],
                   eps=config.layer_norm_eps, trace=trace.scope("embeddings"))  # [B, T] -> [B, T, H]
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
