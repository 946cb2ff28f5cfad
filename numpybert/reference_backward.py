"""The textbook's backward pass: BERT's gradients in plain NumPy, one function per forward function.

Read it beside numpybert/reference.py, bottom to top: the loss first, then the heads, the pooler,
the encoder layers from the last to the first, and the embeddings. Each `f_backward` takes `dy`,
the gradient of the loss with respect to `f`'s output, and `f`'s inputs (or what the forward
recorded), and returns the gradient of its input and of its weights, the weights' gradients
shaped like the weights (`{"weight": dW, "bias": db}`, nested as the parameters are). It is
chain rule and nothing else: no dropout (as at inference), no fused kernels, no buffers.

The forward is the textbook's own `reference.bert`, run once with a `record` that keeps what the
backward needs (`Recorded`: per layer Q, K, V, the attention probabilities and the sub-layer
outputs). A sum fed to a LayerNorm is not recorded: its backward recomputes it (one product).

Dimension legend (as numpybert/reference.py):
    B  batch size               T  sequence length (tokens)
    H  hidden size              N  attention heads
    D  head size = H / N        I  intermediate (feed-forward) size
    L  number of layers         V  vocabulary size           C  classes (num_labels)
"""

import math

import numpy as np

from . import reference as R


class Recorded(dict):
    """A `record` for `reference.bert` that keeps what the backward needs and drops the raw and
    masked scores ([B, N, T, T] each, twice per layer: the probabilities are enough)."""
    DROP = ("attention.self.scores", "attention.self.masked_scores")

    def update(self, tensors):
        super().update({name: x for name, x in tensors.items() if not name.endswith(self.DROP)})


def sum_rows(x):
    """[..., H] -> [H]: a weight used at every position gets the sum of their gradients."""
    return x.reshape(-1, x.shape[-1]).sum(axis=0)  # [..., H] -> [rows, H] -> [H]


# ----------------------------------------------------------------------------- losses

def cross_entropy(logits, labels, ignore_index=-100, count=None):
    """torch's CrossEntropyLoss: the mean over the labelled rows of -log softmax(logits)[label]
    (label -100: ignored). Returns (loss, dlogits): softmax minus the one-hot label, / rows.
    `count`: the rows the mean is over, when these logits are a shard of a batch (default: their own)."""
    z = logits.reshape(-1, logits.shape[-1])  # [..., C] -> [rows, C]
    y = labels.reshape(-1)  # [...] -> [rows]
    rows = np.flatnonzero(y != ignore_index)  # [kept]
    count = len(rows) if count is None else count
    log_p = z - z.max(axis=-1, keepdims=True)
    log_p = log_p - np.log(np.exp(log_p).sum(axis=-1, keepdims=True))  # log softmax, [rows, C]
    loss = -log_p[rows, y[rows]].sum() / count
    dz = np.zeros_like(z)
    dz[rows] = np.exp(log_p[rows])  # softmax of the kept rows
    dz[rows, y[rows]] -= 1.0
    return loss, (dz / count).reshape(logits.shape)  # [rows, C] -> [..., C]


def mse(predictions, targets, count=None):
    """torch's MSELoss (a one-label classifier is a regression): mean of squared errors, and its gradient
    (`count`: as cross_entropy's)."""
    error = predictions - targets
    count = error.size if count is None else count
    return np.square(error).sum() / count, 2.0 * error / count


# ----------------------------------------------------------------------------- building blocks

def linear_backward(dy, x, weight):
    """y = x·Wᵀ + b  =>  dx = dy·W, dW = dyᵀ·x and db = Σ dy, summed over every row."""
    dy_rows = dy.reshape(-1, dy.shape[-1])  # [..., out] -> [rows, out]
    x_rows = x.reshape(-1, x.shape[-1])  # [..., in] -> [rows, in]
    dx = (dy_rows @ weight).reshape(x.shape)  # [rows, out] @ [out, in] -> [..., in]
    dw = dy_rows.T @ x_rows  # [out, rows] @ [rows, in] -> [out, in]
    return dx, {"weight": dw, "bias": dy_rows.sum(axis=0)}  # [rows, out] -> [out]


def layer_norm_backward(dy, x, weight, eps):
    """y = x̂·w + b with x̂ = (x - mean)/std. x̂'s gradient loses its mean and its projection on x̂
    (shifting or scaling x does not change x̂), then is divided by std."""
    mean = x.mean(axis=-1, keepdims=True)  # [..., H] -> [..., 1]
    inv_std = 1.0 / np.sqrt(np.square(x - mean).mean(axis=-1, keepdims=True) + eps)  # [..., H] -> [..., 1]
    x_hat = (x - mean) * inv_std
    dx_hat = dy * weight
    dx = inv_std * (dx_hat - dx_hat.mean(axis=-1, keepdims=True)
                    - x_hat * (dx_hat * x_hat).mean(axis=-1, keepdims=True))
    return dx, {"weight": sum_rows(dy * x_hat), "bias": sum_rows(dy)}  # [..., H] -> [H]


def gelu_backward(dy, x, y):
    """GELU(x) = x·Φ(x)  =>  GELU'(x) = Φ(x) + x·φ(x), φ the standard normal density. Φ(x) is the
    forward's output over its input, y / x (no second erf), and 1/2 at x = 0."""
    cdf = np.divide(y, x, out=np.full_like(x, 0.5), where=x != 0)
    pdf = np.exp(-0.5 * x * x) * (1.0 / math.sqrt(2.0 * math.pi))
    return dy * (cdf + x * pdf)


def gelu_tanh_backward(dy, x, y):
    """The tanh approximation 0.5·x·(1 + tanh(u)), u = c·(x + 0.044715·x³): the product rule."""
    c = math.sqrt(2.0 / math.pi)
    t = np.tanh(c * (x + 0.044715 * x**3))
    return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * c * (1.0 + 3 * 0.044715 * x * x))


ACTIVATION_BACKWARDS = {"gelu": gelu_backward, "gelu_new": gelu_tanh_backward, "gelu_pytorch_tanh": gelu_tanh_backward,
                        "relu": lambda dy, x, y: dy * (x > 0), "tanh": lambda dy, x, y: dy * (1.0 - y * y)}


def softmax_backward(dp, p):
    """p = softmax(s)  =>  ds = p·(dp - Σ_j dp_j·p_j), row by row (the Jacobian diag(p) - p·pᵀ)."""
    return p * (dp - (dp * p).sum(axis=-1, keepdims=True))


# ----------------------------------------------------------------------------- the model

def embeddings_backward(dy, input_ids, token_type_ids, position_ids, x_sum, word_embeddings, position_embeddings,
                        LayerNorm, eps, token_type_embeddings=None, pad_token_id=None, position_padding_idx=None):
    """Through the LayerNorm to the sum, then each table row gets the gradients of every position that
    looked it up: a scatter-add (np.add.at adds a row used twice twice; `g[ids] += dx` would not).
    The pad token's row learns nothing from lookups (torch's nn.Embedding(padding_idx=pad_token_id)), nor
    does RoBERTa's padding position (`position_padding_idx`: its position table has a padding_idx too)."""
    dx, grads = layer_norm_backward(dy, x_sum, LayerNorm["weight"], eps)  # [B, T, H]
    g = {"LayerNorm": grads}
    everywhere = np.ones(input_ids.shape, dtype=bool)  # [B, T]
    for name, ids, table, used in (("word_embeddings", input_ids, word_embeddings, input_ids != pad_token_id),
                                   ("token_type_embeddings", token_type_ids, token_type_embeddings, everywhere),
                                   ("position_embeddings", position_ids, position_embeddings,
                                    position_ids != position_padding_idx)):
        if table is not None:
            g[name] = {"weight": np.zeros_like(table["weight"])}  # [rows of the table, H]
            np.add.at(g[name]["weight"], ids[used], dx[used])  # [B, T] -> [K] ids, [K, H] -> the table's rows
    return g


def attention_backward(dcontext, q, k, v, probs):
    """context = softmax(Q·Kᵀ/√D + mask)·V. The mask is a constant: padded keys have probability 0,
    so their scores get no gradient. (Transposes are made contiguous, as in the forward.)"""
    dprobs = dcontext @ np.ascontiguousarray(v.swapaxes(-1, -2))  # [B, N, T, D] @ [B, N, D, T] -> [B, N, T, T]
    dv = np.ascontiguousarray(probs.swapaxes(-1, -2)) @ dcontext  # [B, N, T, T] @ [B, N, T, D] -> [B, N, T, D]
    dscores = softmax_backward(dprobs, probs) * q.shape[-1] ** -0.5  # through the softmax and the 1/√D
    dq = dscores @ k  # [B, N, T, T] @ [B, N, T, D] -> [B, N, T, D]
    dk = np.ascontiguousarray(dscores.swapaxes(-1, -2)) @ q  # [B, N, T, T] @ [B, N, T, D] -> [B, N, T, D]
    return dq, dk, dv


def merge_heads(x):
    """[B, N, T, D] -> [B, T, H]: the inverse of `reference.split_heads` (so its backward, and vice versa)."""
    B, N, T, D = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, T, N * D)  # [B, N, T, D] -> [B, T, H]


def self_attention_backward(dcontext, x, record, at, query, key, value, n_head):
    """Split the context's gradient into heads, back through the attention, merge each of dQ, dK, dV
    and back through its projection: x fed all three, so its gradient is their sum."""
    q, k, v, probs = (record[at + name] for name in ("query", "key", "value", "probs"))
    dheads = np.ascontiguousarray(R.split_heads(dcontext, n_head))  # [B, T, H] -> [B, N, T, D]
    dq, dk, dv = attention_backward(dheads, q, k, v, probs)  # 3 × [B, N, T, D]
    dx, grads = np.zeros_like(x), {}
    for name, d, weights in (("query", dq, query), ("key", dk, key), ("value", dv, value)):
        dx_part, grads[name] = linear_backward(merge_heads(d), x, weights["weight"])  # [B, N, T, D] -> [B, T, H]
        dx += dx_part
    return dx, grads


def encoder_layer_backward(dy, x, record, at, attention, intermediate, output, n_head, act, eps):
    """One post-LN block backwards: output LayerNorm, FFN (narrow, activation, widen), the residual,
    attention LayerNorm, attention output, self-attention, the residual. Returns (dx, grads)."""
    context, x1, h, a = (record[at + name] for name in ("attention.self.context", "attention.output",
                                                        "intermediate.pre_act", "intermediate.output"))
    g = {"attention": {"output": {}}, "intermediate": {}, "output": {}}
    ffn_sum = R.linear(a, **output["dense"]) + x1  # recomputed: the output LayerNorm's input
    dffn, g["output"]["LayerNorm"] = layer_norm_backward(dy, ffn_sum, output["LayerNorm"]["weight"], eps)
    da, g["output"]["dense"] = linear_backward(dffn, a, output["dense"]["weight"])  # [B, T, H] -> [B, T, I]
    dh = ACTIVATION_BACKWARDS[act](da, h, a)
    dx1, g["intermediate"]["dense"] = linear_backward(dh, x1, intermediate["dense"]["weight"])  # [B, T, I] -> [B, T, H]
    dx1 = dx1 + dffn  # the FFN's residual
    attention_sum = R.linear(context, **attention["output"]["dense"]) + x  # recomputed: the attention LayerNorm's input
    datt, g["attention"]["output"]["LayerNorm"] = layer_norm_backward(dx1, attention_sum,
                                                                      attention["output"]["LayerNorm"]["weight"], eps)
    dcontext, g["attention"]["output"]["dense"] = linear_backward(datt, context, attention["output"]["dense"]["weight"])
    dx, g["attention"]["self"] = self_attention_backward(dcontext, x, record, at + "attention.self.",
                                                         **attention["self"], n_head=n_head)
    return dx + datt, g  # + the attention's residual


def encoder_backward(dy, hidden_states, layer, n_head, act, eps, record):
    """The layers from the last to the first; layer i's input is hidden_states[i]."""
    grads = [None] * len(layer)
    for i in reversed(range(len(layer))):
        dy, grads[i] = encoder_layer_backward(dy, hidden_states[i], record, f"encoder.layer.{i}.", **layer[i],
                                              n_head=n_head, act=act, eps=eps)
    return dy, {"layer": grads}


def pooler_backward(dpooled, last_hidden_state, pooled, dense):
    """pooled = tanh(W·h_[CLS] + b): tanh' = 1 - tanh², then the dense layer. The gradient enters the
    encoder at the [CLS] row only; every other row gets it through attention, layers below."""
    dpre_tanh = dpooled * (1.0 - pooled * pooled)  # [B, H]
    dcls, grads = linear_backward(dpre_tanh, last_hidden_state[:, 0], dense["weight"])  # [B, T, H] -> [B, H]
    dh = np.zeros_like(last_hidden_state)  # [B, T, H]
    dh[:, 0] = dcls  # [B, H] -> row 0 of [B, T, H]
    return dh, {"dense": grads}


def bert_backward(dlast, dpooled, inputs, hidden_states, pooled, params, config, record, position_padding_idx=None):
    """The whole BertModel backwards: the pooler (when its output got a gradient), the encoder, the
    embeddings. `inputs` = (input_ids, token_type_ids, position_ids) as the forward used them;
    `position_padding_idx`: RoBERTa's (see embeddings_backward)."""
    grads = {}
    if dpooled is not None:
        dh, grads["pooler"] = pooler_backward(dpooled, hidden_states[-1], pooled, **params["pooler"])
        dlast = dh if dlast is None else dlast + dh
    dx, grads["encoder"] = encoder_backward(dlast, hidden_states, **params["encoder"], record=record,
                                            n_head=config.num_attention_heads, act=config.hidden_act,
                                            eps=config.layer_norm_eps)
    if "embeddings_project" in params:  # ELECTRA: back through the projection of the E-wide embeddings to H
        dx, grads["embeddings_project"] = linear_backward(dx, record["embeddings.output"],
                                                          params["embeddings_project"]["weight"])  # [B, T, H] -> [B, T, E]
    grads["embeddings"] = embeddings_backward(dx, *inputs, record["embeddings.sum"], **params["embeddings"],
                                              eps=config.layer_norm_eps, pad_token_id=config.pad_token_id,
                                              position_padding_idx=position_padding_idx)
    return grads


# ----------------------------------------------------------------------------- task heads

def mlm_head_backward(dlogits, last_hidden_state, transform, decoder, bias, act, eps):
    """The masked-LM head backwards (its inner values recomputed). The decoder's weight IS the word
    embedding table: its gradient is returned apart, for the caller to add to the table's (as torch)."""
    h = R.linear(last_hidden_state, **transform["dense"])  # [B, T, H]
    a = R.ACTIVATIONS[act](h)
    z = R.layer_norm(a, **transform["LayerNorm"], eps=eps)
    dz, decoder_grads = linear_backward(dlogits, z, decoder["weight"])  # [B, T, V] -> [B, T, H]
    da, ln_grads = layer_norm_backward(dz, a, transform["LayerNorm"]["weight"], eps)
    dlast, dense_grads = linear_backward(ACTIVATION_BACKWARDS[act](da, h, a), last_hidden_state,
                                         transform["dense"]["weight"])
    grads = {"transform": {"dense": dense_grads, "LayerNorm": ln_grads}, "bias": decoder_grads["bias"]}
    return dlast, grads, decoder_grads["weight"]  # [B, T, H], {...}, [V, H]


def nsp_head_backward(dlogits, pooled_output, seq_relationship):
    """logits = W·pooled + b: one linear layer back to the pooled output."""
    dpooled, grads = linear_backward(dlogits, pooled_output, seq_relationship["weight"])  # [B, 2] -> [B, H]
    return dpooled, {"seq_relationship": grads}


def classifier_head_backward(dlogits, pooled_output, classifier):
    """logits = W·pooled + b (BertForSequenceClassification, dropout off): back to the pooled output."""
    dpooled, grads = linear_backward(dlogits, pooled_output, classifier["weight"])  # [B, C] -> [B, H]
    return dpooled, {"classifier": grads}


def first_token_classifier_backward(dlogits, last_hidden_state, dense, out_proj, act):
    """The family's classifier (RoBERTa's dense -> tanh -> out_proj on the first token) backwards:
    out_proj, the activation, dense, and the gradient enters the encoder at row 0 only."""
    first = last_hidden_state[:, 0]  # [B, T, H] -> [B, H]
    h = R.linear(first, **dense)  # recomputed: [B, H] -> [B, H]
    a = R.ACTIVATIONS[act](h)
    da, out_grads = linear_backward(dlogits, a, out_proj["weight"])  # [B, C] -> [B, H]
    dfirst, dense_grads = linear_backward(ACTIVATION_BACKWARDS[act](da, h, a), first, dense["weight"])
    dlast = np.zeros_like(last_hidden_state)  # [B, T, H]
    dlast[:, 0] = dfirst  # [B, H] -> row 0 of [B, T, H]
    return dlast, {"classifier": {"dense": dense_grads, "out_proj": out_grads}}
