"""The numbers behind `numpybert explain`: why pooled_output is not last_hidden_state[:, 0].

    from numpybert import load
    from numpybert.teach.explain import explain
    e = explain(load("weights/all-MiniLM-L6-v2"), "A man is playing a guitar.")
    e.h_cls, e.pooler.z, e.pooler.pooled, e.pooler.bit_for_bit

`explain(model, text, pair)` runs one input through the model and returns every number the
command prints, each computed here from the model's outputs and the checkpoint's weights,
none typed in. Printing is the command's job (numpybert/commands/explain.py).
"""

import dataclasses

import numpy as np

from ..apps.encode import sentence_transformers_pooling
from ..errors import MissingWeightsError
from ..engine.model import linear, nsp_head, softmax
from ..util import cosine

SATURATION = 0.99  # |tanh(z)| above this: the derivative 1 - tanh² is < 0.02, the unit is "saturated"


@dataclasses.dataclass
class PoolerTrace:
    """BertPooler redone by hand for one input: pooled = tanh(W·h_[CLS] + b)."""
    weight_std: float  # std of pooler.dense.weight
    bias_max_abs: float  # max |pooler.dense.bias|: exactly 0 means the bias never moved from its init
    z: np.ndarray  # [H] W·h_[CLS] + b, before the tanh
    pooled: np.ndarray  # [H] tanh(z), recomputed here
    model_pooled: np.ndarray  # [H] the model's pooler_output[0]
    bit_for_bit: bool  # np.array_equal(pooled, model_pooled)
    max_abs_diff_vs_cls: float  # max |pooler_output - last_hidden_state[:, 0]|
    cosine_vs_cls: float  # cos(pooler_output, last_hidden_state[:, 0])
    saturated: int  # dims with |pooled| > SATURATION
    tfhub_default_is_pooled: bool  # tfhub()["default"] is tfhub()["pooled_output"] (the same array)
    tfhub_last_encoder_is_sequence: bool  # np.array_equal(encoder_outputs[-1], sequence_output)
    tfhub_encoder_outputs: int  # len(tfhub()["encoder_outputs"]) = L
    nsp_is_next: float | None  # P("B follows A") from the checkpoint's NSP head, None when it has none


@dataclasses.dataclass
class Explanation:
    """Everything `numpybert explain` reports for one text (or pair)."""
    text: str
    pair: str | None
    tokens: list  # WordPiece tokens, [CLS] and [SEP] included
    token_type_ids: list  # 0 for [CLS] A [SEP], 1 for B [SEP]
    num_layers: int  # L, from config.json
    num_hidden_states: int  # len(hidden_states) = L + 1 (embedding output first)
    num_attentions: int  # len(attentions) = L
    embedding_output_is_first: bool  # hidden_states[0] is the embedding layer's output (checked)
    last_hidden_is_last_state: bool  # np.array_equal(hidden_states[-1], last_hidden_state)
    h_cls: np.ndarray  # [H] last_hidden_state[0, 0]
    pooler: PoolerTrace | None  # None when the checkpoint has no pooler
    pooler_refusal: str  # the model's refusal message when it has no pooler, else ""
    sentence_pooling: str | None  # sentence-transformers pooling mode(s), e.g. "mean" (modules.json), if any


def explain(model, text: str, pair: str | None = None) -> Explanation:
    """Run one text (or text pair) and compute the pooled-vs-[CLS] trace."""
    batch = model.tokenize([text], None if pair is None else [pair], truncation=True)
    out = model(**batch, output_hidden_states=True, output_attentions=True, record=True)
    h_cls = out.last_hidden_state[0, 0]  # [B, T, H] -> [H]: the [CLS] row
    pooler, refusal = None, ""
    try:
        pooled = out.pooler_output
    except MissingWeightsError as e:
        refusal = str(e)
    else:
        pooler = _pooler_trace(model, out, h_cls, pooled[0])
    return Explanation(
        text=text, pair=pair,
        tokens=model.tokenizer.convert_ids_to_tokens(batch["input_ids"][0]),
        token_type_ids=batch["token_type_ids"][0].tolist(),
        num_layers=model.config.num_hidden_layers,
        num_hidden_states=len(out.hidden_states), num_attentions=len(out.attentions),
        embedding_output_is_first=bool(np.array_equal(out.hidden_states[0], out.trace["embeddings.output"])),
        last_hidden_is_last_state=bool(np.array_equal(out.hidden_states[-1], out.last_hidden_state)),
        h_cls=h_cls, pooler=pooler, pooler_refusal=refusal,
        sentence_pooling="+".join(sentence_transformers_pooling(model.model_dir) or ()) or None,
    )


def _pooler_trace(model, out, h_cls, model_pooled) -> PoolerTrace:
    """Redo the pooler from the checkpoint's weights and compare with the model's output."""
    dense = model.params["pooler"]["dense"]
    z = linear(h_cls[None, :], dense["weight"], dense["bias"])[0]  # [1, H] -> [1, H] -> [H], as BertPooler
    pooled = np.tanh(z)
    tfhub = out.tfhub()
    return PoolerTrace(
        weight_std=float(dense["weight"].std()),
        bias_max_abs=float(np.abs(dense["bias"]).max()),
        z=z, pooled=pooled, model_pooled=model_pooled,
        bit_for_bit=bool(np.array_equal(pooled, model_pooled)),
        max_abs_diff_vs_cls=float(np.abs(model_pooled.astype(np.float64) - h_cls).max()),
        cosine_vs_cls=cosine(model_pooled, h_cls),
        saturated=int((np.abs(model_pooled) > SATURATION).sum()),
        tfhub_default_is_pooled=tfhub["default"] is tfhub["pooled_output"],
        tfhub_last_encoder_is_sequence=bool(np.array_equal(tfhub["encoder_outputs"][-1],
                                                           tfhub["sequence_output"])),
        tfhub_encoder_outputs=len(tfhub["encoder_outputs"]),
        nsp_is_next=_nsp_is_next(model, model_pooled),
    )


def _nsp_is_next(model, pooled) -> float | None:
    """The task the pooler was trained for: P(label 0 = "B follows A") from cls.seq_relationship."""
    head = model.params.get("cls", {}).get("seq_relationship")
    if head is None:
        return None
    logits = nsp_head(pooled[None, :].astype(np.float64), {k: v.astype(np.float64) for k, v in head.items()})
    return float(softmax(logits)[0, 0])
