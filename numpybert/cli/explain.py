"""`numpybert explain TEXT [--pair TEXT] [--plot FILE.png]`: why pooled_output is not
last_hidden_state[:, 0], shown on one input with numbers computed from the loaded weights.

The numbers come from `numpybert.teach.explain.explain`; this module only prints them.
"""

import textwrap

import numpy as np

from .. import cli
from ..errors import MissingWeightsError
from ..teach.explain import SATURATION, explain

SHOWN_DIMS = 6  # how many leading dimensions the trace prints
WIDTH = 100  # prose is wrapped to this many columns


def register(subparsers):
    p = subparsers.add_parser("explain", help="trace one input from h_[CLS] to pooled_output, with proofs",
                              description="Trace one input from h_[CLS] to pooled_output = tanh(W·h + b), "
                                          "check it against the model, and say what each output is for.")
    p.add_argument("text", metavar="TEXT", help="the sentence (segment A)")
    p.add_argument("--pair", metavar="TEXT", help="a second sentence (segment B), as for next-sentence prediction")
    p.add_argument("--plot", metavar="FILE.png", help="also plot h_[CLS], z and pooled_output (needs matplotlib)")
    cli.add_model_argument(p)
    p.set_defaults(run=run)


def run(args):
    model = cli.load_model(args)  # checks --plot first
    e = explain(model, args.text, args.pair)
    print("\n".join(report(e, model)))
    if args.plot:
        if e.pooler is None:
            raise MissingWeightsError(f"--plot needs pooled_output: {e.pooler_refusal}")
        from ..teach.plots import plot_explain
        plot_explain(e, args.plot)
        print(f"\nplot written to {args.plot}")


def report(e, model) -> list:
    """The whole trace as lines of text: a header, then numbered sections."""
    if e.pooler is None:
        sections = [_cls_section(e), _absent_pooler_section(e)]
    else:
        sections = [_cls_section(e), *_pooler_sections(e), _provenance_section(e, model)]
    sections += [_counts_section(e), _uses_section(e)]
    lines = _header(e, model)
    for number, (title, *body) in enumerate(sections, start=1):
        lines += ["", f"{number}. {title}", *body]
    return lines


def _vec(x, n=SHOWN_DIMS) -> str:
    return "[" + " ".join(f"{v:+.4f}" for v in x[:n]) + (" ...]" if len(x) > n else "]")


def _para(text) -> list:
    """A paragraph of prose, wrapped and indented under its section title."""
    return textwrap.wrap(text, WIDTH, initial_indent="   ", subsequent_indent="   ",
                         break_on_hyphens=False)


def _header(e, model) -> list:
    c = model.config
    lines = [f"model    {model.model_dir}: {c.num_hidden_layers} layers, H={c.hidden_size}, "
             f"{c.num_attention_heads} heads ({model.dtype.name})",
             f"text     {e.text!r}"]
    if e.pair is not None:
        lines.append(f"pair     {e.pair!r}")
    lines.append(f"tokens   {len(e.tokens)}: {' '.join(e.tokens)}")
    if e.pair is not None:
        n_a = e.token_type_ids.count(0)
        lines.append(f"segments token_type_ids = 0 on the first {n_a} ([CLS] A [SEP]), "
                     f"1 on the last {len(e.tokens) - n_a} (B [SEP])")
    return lines


def _cls_section(e) -> list:
    h = e.h_cls
    return ["h_[CLS] = last_hidden_state[0, 0]: the final layer's vector at the [CLS] position",
            f"   first dims      {_vec(h)}",
            f"   norm            {np.linalg.norm(h.astype(np.float64)):.4f}",
            f"   range           {h.min():+.4f} .. {h.max():+.4f} (largest |value| at dim {np.abs(h).argmax()})"]


def _pooler_sections(e) -> list:
    p, H = e.pooler, len(e.h_cls)
    return [
        ["z = W·h_[CLS] + b: the pooler's dense layer, before its tanh",
         f"   W, b            pooler.dense.weight [{H}, {H}], pooler.dense.bias [{H}]",
         f"   first dims      {_vec(p.z)}",
         f"   range           {p.z.min():+.4f} .. {p.z.max():+.4f}"],
        ["pooled_output = tanh(z)",
         f"   first dims      {_vec(p.pooled)}",
         f"   norm            {np.linalg.norm(p.pooled.astype(np.float64)):.4f}"],
        ["checks",
         f"   tanh(W·h_[CLS] + b) == the model's pooler_output, bit for bit (np.array_equal): {p.bit_for_bit}",
         f"   pooler_output vs last_hidden_state[:, 0]: max |difference| {p.max_abs_diff_vs_cls:.4f}, "
         f"cosine {p.cosine_vs_cls:+.4f}",
         "   -> pooled_output is NOT the [CLS] row: it is that row after one more dense layer and a tanh",
         f"   tanh saturation: {p.saturated} of {H} dims have |pooled_output| > {SATURATION}"],
        ["TF Hub names (out.tfhub())",
         f"   default is pooled_output (the same array object): {p.tfhub_default_is_pooled}",
         f"   encoder_outputs[-1] == sequence_output (= last_hidden_state): {p.tfhub_last_encoder_is_sequence}",
         f"   len(encoder_outputs) = {p.tfhub_encoder_outputs}: one per layer, no embedding output"],
    ]


def _provenance_section(e, model) -> list:
    p, H = e.pooler, len(e.h_cls)
    lines = ["where the pooler came from",
             f"   pooler.dense.* is present in the checkpoint ({', '.join(model.manifest.files)}): "
             f"weight std {p.weight_std:.4f}, max |bias| {p.bias_max_abs:.4g}"]
    if p.bias_max_abs == 0.0:
        lines += _para(f"All {H} bias entries are exactly 0, which is what a freshly initialised layer looks "
                       "like (any training step moves a bias): this pooler was most likely never trained.")
    if e.sentence_pooling is not None:
        lines += _para(f"This is a sentence-transformers model with {e.sentence_pooling} pooling: its training "
                       "never reads pooler_output, so the pooler gets no gradient there.")
    if p.nsp_is_next is not None:
        lines.append(f"   the checkpoint's NSP head (cls.seq_relationship) on this pooled_output: "
                     f"P(B follows A) = {p.nsp_is_next:.4f}")
    return lines


def _absent_pooler_section(e) -> list:
    return ["the pooler is ABSENT from this checkpoint (no pooler.dense.weight, no pooler.dense.bias)",
            "   numpybert will not make up a pooled_output; model(...).pooler_output refuses with:",
            *_para(e.pooler_refusal),
            "   TF Hub's pooled_output and default (out.tfhub()) are refused for the same reason."]


def _counts_section(e) -> list:
    L = e.num_layers
    return ["why HuggingFace returns one more hidden state than attentions",
            f"   hidden_states: {e.num_hidden_states} = L + 1 = {L} + 1; hidden_states[0] is the embedding output: "
            f"{e.embedding_output_is_first}",
            f"                  hidden_states[-1] is last_hidden_state: {e.last_hidden_is_last_state}",
            f"   attentions:    {e.num_attentions} = L, one softmax per layer (the embeddings have none)",
            "   bert-base has L = 12: 13 hidden_states, 12 attentions, 12 TF Hub encoder_outputs"]


def _uses_section(e) -> list:
    trained = f" (this model was trained for it: {e.sentence_pooling})" if e.sentence_pooling else ""
    return ["what pooled_output was trained for, and what each output is good for",
            *_para("BERT's pooler is trained in pre-training for next-sentence prediction: the NSP head "
                   "(cls.seq_relationship) reads pooled_output to say whether segment B follows segment A. "
                   "A fine-tuned BertForSequenceClassification reads it too. It was never trained to be a "
                   "sentence embedding."),
            "   last_hidden_state (TF Hub sequence_output)     one vector per token: tagging, QA spans, pooling",
            f"   its mean over real tokens (attention_mask)     a sentence embedding{trained}",
            "   last_hidden_state[:, 0], the [CLS] row         the pooler's input; an embedding if trained as one",
            "   pooler_output (TF Hub pooled_output, default)  input of the NSP head or a fine-tuned classifier;",
            "                                                  as a raw sentence embedding, usually worse than the mean",
            "   hidden_states (TF Hub encoder_outputs)         per-layer features, e.g. for probing"]
