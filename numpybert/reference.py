"""The textbook: BERT's forward pass in plain NumPy, in the order of the paper.

Read it top to bottom: the building blocks (linear, layer_norm, erf and the activations,
softmax), then embeddings -> self-attention -> encoder layer -> encoder -> pooler -> bert,
then the three task heads. The semantics are HuggingFace's `BertModel` with eager attention,
at inference (dropout is the identity). Every function is a plain expression over arrays:
no buffers, no blocks, no threads. This file is also the float64 oracle of the parity audit;
the fast engine (numpybert/engine/) must give the same numbers (tests/engine/test_reference.py).

Dimension legend (as in google-research/bert `modeling.py`):
    B  batch size               T  sequence length (tokens)
    H  hidden size              N  attention heads
    D  head size = H / N        I  intermediate (feed-forward) size
    L  number of layers         V  vocabulary size

Parameters are nested dicts under the checkpoint's own names, in torch's layout:
`params["encoder"]["layer"][3]["attention"]["self"]["query"]["weight"]` is the tensor
`encoder.layer.3.attention.self.query.weight`, a Linear weight of shape [out, in]
(`numpybert.loading.checkpoint.nest` builds the tree). Functions take activations first,
weights next, config last (as picoGPT), and receive a module's weights by their names
(`**params["embeddings"]`).

float32 in, float32 out: every constant is a Python float, which does not promote a
float32 array to float64 under NumPy 2's rules (a NumPy float64 scalar would).

Recording for the audit: pass `record={}` and each intermediate is stored in it under the
audit's name (`encoder.layer.0.attention.self.probs`); `at` is the name of the module that
is running (`encoder.layer.0.`), as in the checkpoint.
"""

import math

import numpy as np


def rec(record, tensors, at=""):
    """Store each of `tensors` ({name: array}) as record[at + name]; nothing when record is None."""
    if record is not None:
        record.update({at + name: x for name, x in tensors.items()})


# ----------------------------------------------------------------------------- building blocks

def linear(x, weight, bias):
    """y = x·Wᵀ + b in torch's layout: weight is [out, in], bias is [out]. The rows of every
    sequence go through one 2-D product (NumPy runs [B, T, in] @ [in, out] as B small ones, ~4x slower)."""
    y = x.reshape(-1, x.shape[-1]) @ weight.T + bias  # [..., in] -> [rows, in] @ [in, out] -> [rows, out]
    return y.reshape(*x.shape[:-1], len(weight))  # [rows, out] -> [..., out]


def layer_norm(x, weight, bias, eps):
    """Normalise each vector over its last axis (biased variance, as torch), then scale and shift."""
    mean = x.mean(axis=-1, keepdims=True)  # [..., H] -> [..., 1]
    var = np.square(x - mean).mean(axis=-1, keepdims=True)  # [..., H] -> [..., 1]
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def erf(x):
    """The error function, element by element (NumPy has none): `math.erf` (within 1 ulp of the
    exact value in float64), rounded once to x's dtype. It makes one Python float per element
    (~0.1 µs each): plain and exact, not fast; the fast engine has its own vectorised erf."""
    x = np.asarray(x)
    return np.asarray(np.frompyfunc(math.erf, 1, 1)(x), dtype=x.dtype)


def gelu(x):
    """Exact GELU, BERT's `hidden_act="gelu"`: x·Φ(x) = 0.5·x·(1 + erf(x/√2))."""
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def gelu_tanh(x):
    """GELU's tanh approximation (`gelu_new`, `gelu_pytorch_tanh`; TF Hub's BERT): ~5e-4 from exact."""
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def relu(x):
    """max(x, 0), `hidden_act="relu"`."""
    return np.maximum(x, 0.0)


ACTIVATIONS = {"gelu": gelu, "gelu_new": gelu_tanh, "gelu_pytorch_tanh": gelu_tanh, "relu": relu, "tanh": np.tanh}


def softmax(x):
    """Over the last axis. Subtracting the row's max changes nothing but keeps exp from overflowing."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# ----------------------------------------------------------------------------- the model

def embeddings(input_ids, token_type_ids, position_ids, word_embeddings, position_embeddings, LayerNorm, eps,
               token_type_embeddings=None, inputs_embeds=None, record=None):
    """Token + segment + position embeddings, summed in HF's order, then LayerNorm.
    `inputs_embeds` [B, T, H], when given, stands in for the word embeddings (as in transformers)."""
    x = word_embeddings["weight"][input_ids] if inputs_embeds is None else inputs_embeds  # [B, T] -> [B, T, H]
    x = x if token_type_embeddings is None else x + token_type_embeddings["weight"][token_type_ids]  # [B, T] -> [B, T, H] (no segments: DistilBERT, MPNet)
    x = x + position_embeddings["weight"][position_ids]  # [B, T] -> [B, T, H]: each token's position
    y = layer_norm(x, **LayerNorm, eps=eps)
    rec(record, {"sum": x, "output": y}, at="embeddings.")
    return y


def attention_mask_bias(attention_mask, dtype, mask_value="finfo-min"):
    """The 0/1 padding mask as an additive bias on the scores: 0 on real tokens, hugely negative on padding.
    HF (transformers >= 4.21) adds finfo(dtype).min; google-research/bert, older transformers and
    ONNX Runtime add -10000; "-inf" makes a fully masked row 0/0 = NaN."""
    value = {"finfo-min": float(np.finfo(dtype).min), "-10000": -10000.0, "-inf": -math.inf}[mask_value]
    bias = np.where(attention_mask == 0, value, 0.0).astype(dtype)  # [B, T]
    return bias[:, None, None, :]  # [B, T] -> [B, 1, 1, T]: the same for every head and every query


def attention(q, k, v, mask_bias, record=None, at=""):
    """Scaled dot-product attention, every head at once: softmax(Q·Kᵀ/√D + mask)·V.
    (Kᵀ is copied to a contiguous array: NumPy's matmul does not hand a transposed stack of
    matrices to BLAS, and is ~100x slower on it. HF multiplies by D^-0.5 rather than dividing by √D.)"""
    k_t = np.ascontiguousarray(k.swapaxes(-1, -2))  # [B, N, T, D] -> [B, N, D, T]
    scores = q @ k_t * q.shape[-1] ** -0.5  # [B, N, T, D] @ [B, N, D, T] -> [B, N, T, T]
    masked_scores = scores + mask_bias  # + [B, 1, 1, T] (MPNet: [B, N, T, T]): padded keys get no attention
    probs = softmax(masked_scores)  # each query's weights over the keys sum to 1
    rec(record, {"scores": scores, "masked_scores": masked_scores, "probs": probs}, at)
    return probs @ v, probs  # [B, N, T, T] @ [B, N, T, D] -> [B, N, T, D]


def split_heads(x, n_head):
    """[B, T, H] -> [B, N, T, D]: each head sees its own D = H / N features of every token."""
    B, T, H = x.shape
    return x.reshape(B, T, n_head, H // n_head).transpose(0, 2, 1, 3)  # [B, T, H] -> [B, N, T, D]


def self_attention(x, mask_bias, query, key, value, n_head, record=None, at=""):
    """Multi-head self-attention: project x to Q, K and V, split them into N heads, attend, merge the heads."""
    q, k, v = (split_heads(linear(x, **w), n_head) for w in (query, key, value))  # 3 × [B, T, H] -> [B, N, T, D]
    rec(record, {"query": q, "key": k, "value": v}, at)
    context, probs = attention(q, k, v, mask_bias, record, at)  # [B, N, T, D], [B, N, T, T]
    context = context.transpose(0, 2, 1, 3).reshape(x.shape)  # [B, N, T, D] -> [B, T, H]: heads merged
    rec(record, {"context": context}, at)
    return context, probs


def encoder_layer(x, mask_bias, attention, intermediate, output, n_head, act, eps, record=None, at="",
                  activations=ACTIVATIONS):
    """One post-LN transformer block (HF's BertLayer): x = LN(x + Attention(x)); x = LN(x + FFN(x)).
    Post-LN: each sub-layer's output is added to its input first, then normalised (pre-LN models,
    like GPT-2, normalise the input instead). Returns the output [B, T, H] and the probs [B, N, T, T]."""
    context, probs = self_attention(x, mask_bias, **attention["self"], n_head=n_head, record=record,
                                    at=at + "attention.self.")
    x = layer_norm(linear(context, **attention["output"]["dense"]) + x, **attention["output"]["LayerNorm"], eps=eps)
    h = linear(x, **intermediate["dense"])  # [B, T, H] -> [B, T, I]: the feed-forward widens,
    a = activations[act](h)
    y = layer_norm(linear(a, **output["dense"]) + x, **output["LayerNorm"], eps=eps)  # [B, T, I] -> [B, T, H]: narrows
    rec(record, {"attention.output": x, "intermediate.pre_act": h, "intermediate.output": a, "output": y}, at)
    return y, probs


def relative_position_bucket(relative_position, num_buckets=32, max_distance=128):
    """MPNet (T5's bidirectional buckets): the bucket of each key-minus-query distance, as transformers'
    `MPNetEncoder.relative_position_bucket`, its float32 logarithm included. Half the buckets for keys
    after the query, half before; distances under 8 get their own, longer ones logarithmically wider ones."""
    n = -relative_position
    half = num_buckets // 2
    exact = half // 2
    log_ratio = np.log(np.maximum(np.abs(n), 1).astype(np.float32) / exact) / math.log(max_distance / exact)
    large = np.minimum(exact + (log_ratio * (half - exact)).astype(np.int64), half - 1)
    return (n < 0) * half + np.where(np.abs(n) < exact, np.abs(n), large)


def relative_position_bias(T, weight):
    """MPNet's one relative position bias, computed once and added to every layer's scores:
    a learned value per head and bucket of the distance j - i from query i to key j."""
    bucket = relative_position_bucket(np.arange(T)[None, :] - np.arange(T)[:, None])  # [T] -> [T, T]
    return weight[bucket].transpose(2, 0, 1)[None]  # [T, T] -> [T, T, N] -> [1, N, T, T]


def encoder(x, mask_bias, layer, n_head, act, eps, relative_attention_bias=None, record=None, activations=ACTIVATIONS):
    """The stack of L layers. Returns the L+1 hidden states (the embedding output first) and L attentions.
    `activations`: the table `act` is looked up in (see `bert`)."""
    if relative_attention_bias is not None:  # MPNet only: relative positions, summed into the mask's bias
        mask_bias = mask_bias + relative_position_bias(x.shape[1], **relative_attention_bias)  # -> [B, N, T, T]
    hidden_states, attentions = [x], []
    for i, weights in enumerate(layer):
        x, probs = encoder_layer(x, mask_bias, **weights, n_head=n_head, act=act, eps=eps, record=record,
                                 at=f"encoder.layer.{i}.", activations=activations)
        hidden_states.append(x)
        attentions.append(probs)
    return hidden_states, attentions


def pooler(last_hidden_state, dense, record=None):
    """BertPooler: pooled_output = tanh(W·h_[CLS] + b).

    Why pooled_output != last_hidden_state[:, 0]: the pooler takes the first token's vector
    ([CLS]; this assumes right padding) and passes it through one more dense layer and tanh.
    That layer was trained for next-sentence prediction in BERT's pre-training (`nsp_head`
    reads its output), so pooled_output is the [CLS] vector re-mapped for that task, not the
    [CLS] row itself, and usually a poorer sentence embedding than the mean of the hidden states.
    """
    cls_vector = last_hidden_state[:, 0]  # [B, T, H] -> [B, H]
    pre_tanh = linear(cls_vector, **dense)  # [B, H] -> [B, H]
    pooled = np.tanh(pre_tanh)
    rec(record, {"cls_vector": cls_vector, "pooler.pre_tanh": pre_tanh, "pooled_output": pooled})
    return pooled


def bert(input_ids, token_type_ids, position_ids, attention_mask, params, config, mask_value="finfo-min",
         record=None, inputs_embeds=None, activations=ACTIVATIONS):
    """The whole BertModel: returns (hidden_states: L+1 × [B, T, H], attentions: L × [B, N, T, T],
    pooled_output [B, H], or None when the checkpoint has no pooler). `input_ids` may be None when
    `inputs_embeds` [B, T, H] is given. `position_ids` [B, T] are inputs, as token_type_ids: 0, 1, ...
    for BERT; RoBERTa and MPNet count from their padding index (`numpybert.loading.family.position_ids`
    makes them). `mask_value`: see `attention_mask_bias`. `activations`: the table config.hidden_act is
    looked up in; training (numpybert/apps/train.py) passes one whose exact GELU takes the fast engine's
    vectorised erf (the same function, not one `math.erf` per element): speed stays out of this file."""
    x = embeddings(input_ids, token_type_ids, position_ids, **params["embeddings"], eps=config.layer_norm_eps,
                   inputs_embeds=inputs_embeds, record=record)  # [B, T] -> [B, T, E]
    if "embeddings_project" in params:  # ELECTRA only: embeddings E wide (embedding_size), projected to H
        x = linear(x, **params["embeddings_project"])  # [B, T, E] -> [B, T, H]
        rec(record, {"embeddings_project.output": x})
    mask_bias = attention_mask_bias(attention_mask, x.dtype, mask_value)  # [B, T] -> [B, 1, 1, T]
    hidden_states, attentions = encoder(x, mask_bias, **params["encoder"], n_head=config.num_attention_heads,
                                        act=config.hidden_act, eps=config.layer_norm_eps, record=record,
                                        activations=activations)
    pooled = pooler(hidden_states[-1], **params["pooler"], record=record) if "pooler" in params else None
    return hidden_states, attentions, pooled


# ----------------------------------------------------------------------------- task heads

def mlm_head(last_hidden_state, transform, decoder, bias, act, eps):
    """Masked-LM head (`cls.predictions`): dense -> activation -> LayerNorm -> decoder, whose weight
    is tied to the word embeddings, plus a bias per vocabulary entry. Returns logits [B, T, V]."""
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


def first_token_classifier(last_hidden_state, dense, out_proj, act):
    """The family's classifiers skip the pooler: the first token's vector (<s> / [CLS]) through
    `dense`, then tanh (RoBERTa, XLM-R), gelu (ELECTRA) or relu (DistilBERT's pre_classifier), then
    `out_proj` (DistilBERT's classifier): logits [B, num_labels]."""
    h = ACTIVATIONS[act](linear(last_hidden_state[:, 0], **dense))  # [B, T, H] -> [B, H]
    return linear(h, **out_proj)  # [B, H] -> [B, num_labels]
