"""`numpybert explain TEXT [--pair TEXT] [--plot FILE.png] [--html FILE.html]`: why pooled_output is
not last_hidden_state[:, 0], shown on one input with numbers computed from the loaded weights, two
steps checked independently from the checkpoint file, and the pooler's code.

The numbers come from `numpybert.teach.explain.explain`; this module only prints them.
"""

import sys
import textwrap

import numpy as np

from .. import cli
from ..errors import InputValueError, MissingWeightsError
from ..teach.explain import (SATURATION, TRANSFORMERS_POOLER, clipped, clipped_tokens, explain,
                             reference_pooler_source)

SHOWN_DIMS = 6  # how many leading dimensions the trace prints
WIDTH = 100  # prose is wrapped to this many columns


def register(subparsers):
    p = subparsers.add_parser("explain", help="trace one input from h_[CLS] to pooled_output, checked from the file",
                              description="Trace one input from h_[CLS] to pooled_output = tanh(W·h + b), recompute "
                                          "two steps from the checkpoint file with plain NumPy, and say what each "
                                          "output is for.")
    p.add_argument("text", metavar="TEXT", nargs="?", help="the sentence (segment A); not with --train")
    p.add_argument("--pair", metavar="TEXT", help="a second sentence (segment B), as for next-sentence prediction")
    p.add_argument("--plot", metavar="FILE.png", help="also plot h_[CLS], z and pooled_output (needs matplotlib)")
    p.add_argument("--html", metavar="FILE.html", help="also write a self-contained page: data flow, numbers, "
                                                       "plots, attention maps (never overwrites a file)")
    p.add_argument("--train", action="store_true", help="instead: fine-tune a classifier on numpybert's small labelled "
                                                       "set and show how the pooler, [CLS] row and mean pooling move")
    p.add_argument("--steps", type=int, default=20, help="AdamW steps of --train (default 20)")
    cli.add_model_argument(p)
    p.set_defaults(run=run)


def run(args):
    if args.train or args.text is None:
        return run_train(args)
    if args.html:
        from ..teach.report import check_html_path
        check_html_path(args.html)  # before any work
    model = cli.load_model(args)  # checks --plot first
    note = cli.truncation_note(model, args.text, args.pair)
    if note:
        print(note, file=sys.stderr)
    e = explain(model, args.text, args.pair)
    print("\n".join(report(e, model)))
    if args.plot:
        if e.lesson is None:
            raise MissingWeightsError(f"--plot needs pooled_output: {e.pooler_refusal}")
        from ..teach.plots import plot_explain
        plot_explain(e, args.plot)
        print(f"\nplot written to {args.plot}")
    if args.html:
        from ..teach.report import write_html
        size = write_html(e, model, args.html)
        print(f"\npage written to {args.html} ({size / 1024:.0f} KiB)")


def run_train(args):
    """`explain --train`: the training lesson (numpybert/teach/train.py), printed."""
    if not args.train:
        raise InputValueError("explain needs TEXT (or --train for the training lesson)")
    if args.text is not None or args.pair or args.plot or args.html:
        raise InputValueError("--train takes no TEXT, --pair, --plot or --html")
    if not 1 <= args.steps <= 1000:
        raise InputValueError(f"--steps {args.steps}: expected 1..1000")
    from ..teach.train import report as train_report, train_lesson
    model = cli.load_model(args)
    print("\n".join(train_report(train_lesson(model.model_dir, steps=args.steps))))


def report(e, model) -> list:
    """The whole trace as lines of text: a header, then numbered sections."""
    sections = [_cls_section(e)]
    if e.lesson is None:
        sections.append(_absent_pooler_section(e))
    else:
        sections += [_pooler_section(e), _lesson_section(e)]
    sections += [_checks_section(e), _code_section(), _api_section(e), _uses_section(e)]
    if e.keras_preset is not None:
        sections.append(_keras_section(e))
    lines = _header(e, model)
    for number, (title, *body) in enumerate(sections, start=1):
        lines += ["", f"{number}. {title}", *body]
    return lines


def _vec(x, n=SHOWN_DIMS) -> str:
    return "[" + " ".join(f"{v:+.4f}" for v in x[:n]) + (" ...]" if len(x) > n else "]")


def _para(text) -> list:
    """A paragraph of prose, wrapped and indented under its section title."""
    return textwrap.wrap(text, WIDTH, initial_indent="   ", subsequent_indent="   ", break_on_hyphens=False)


def _header(e, model) -> list:
    c = model.config
    lines = [f"model    {model.model_dir}: {c.num_hidden_layers} layers, H={c.hidden_size}, "
             f"{c.num_attention_heads} heads ({model.dtype.name})",
             f"text     {clipped(e.text)}"]
    if e.pair is not None:
        lines.append(f"pair     {clipped(e.pair)}")
    shown, more = clipped_tokens(e.tokens)
    lines.append(f"tokens   {len(e.tokens)}: {' '.join(shown)}" + (f" {more}" if more else ""))
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


def _pooler_section(e) -> list:
    p, H = e.lesson, len(e.h_cls)
    return ["pooled_output = tanh(z), z = W·h_[CLS] + b (pooler.dense.weight [H, H], pooler.dense.bias [H])",
            f"   z               {_vec(p.z)}",
            f"   tanh(z)         {_vec(p.pooled)}",
            f"   vs h_[CLS]      max |pooled_output - h_[CLS]| {np.abs(p.pooled.astype(np.float64) - e.h_cls).max():.4f}, "
            f"cosine {p.cosine_vs_cls:+.4f}: a different vector"]


def _lesson_section(e) -> list:
    p, H = e.lesson, len(e.h_cls)
    init = "absent from config.json" if p.initializer_range is None else f"{p.initializer_range:g}"
    lines = ["what this pooler does to this input",
             f"   z range                          {p.z_min:+.4f} .. {p.z_max:+.4f}",
             f"   max |tanh z - z|                 {p.max_tanh_gap:.2e}",
             f"   norm h_[CLS] -> z -> pooled      {p.norm_cls:.4f} -> {p.norm_z:.4f} -> {p.norm_pooled:.4f}",
             f"   saturated (|tanh z| > {SATURATION})      {p.saturated} of {H} dims",
             f"   mean slope of tanh at z          {p.mean_slope:.4f} (1 = linear)",
             f"   weight std / initializer_range   {p.weight_std:.4f} / {init}",
             f"   top singular value / 2·std·√H    {p.weight_top_singular:.4f} / {p.random_edge:.4f}",
             f"   max |bias|                       {p.bias_max_abs:.4g}"]
    if e.nsp_is_next is not None:
        lines.append(f"   NSP head, P(B follows A)         {e.nsp_is_next:.4f}")
    for sentence in p.conclusion:
        lines += _para("- " + sentence)
    if e.sentence_pooling is not None:
        lines += _para(f"- This is a sentence-transformers model with {e.sentence_pooling} pooling "
                       "(1_Pooling/config.json): its training reads last_hidden_state, never pooler_output.")
    return lines


def _checks_section(e) -> list:
    source = "read from model.weights.h5 with h5py" if e.keras_preset else "read with the safetensors library"
    lines = [f"checked independently (tensors {source}, plain NumPy in float64)"]
    for check in (e.embedding_check, e.pooler_check):
        if check is None:
            continue
        lines += _para(f"{check.step} = {check.expression}; {check.inputs}")
        relation, verdict = ("<=", "agrees") if check.agrees else (">", "DISAGREES")
        lines.append(f"      max |difference| {check.max_abs_diff:.1e} {relation} rounding bound "
                     f"{check.tolerance:.1e}: {verdict}")
    if e.not_checked:
        lines += _para(f"not checked: {e.not_checked}")
    return lines


def _code_section() -> list:
    lines = ["the code"]
    try:
        path, first, source = reference_pooler_source()
        lines.append(f"   numpybert's textbook model, {path}, its function pooler:")  # by name: lines move
        lines += [f"          {line}".rstrip() for line in source]
    except ImportError:
        lines.append("   (numpybert.reference is not part of this installation)")
    t = TRANSFORMERS_POOLER
    lines.append(f"   transformers {t['version']}, {t['path']}:")
    lines += [f"   {t['first_line'] + i:5d}  {line}" for i, line in enumerate(t["lines"])]
    return lines


def _absent_pooler_section(e) -> list:
    return ["the pooler is ABSENT from this checkpoint (no pooler.dense.weight, no pooler.dense.bias)",
            "   numpybert will not make up a pooled_output; model(...).pooler_output refuses with:",
            *_para(e.pooler_refusal),
            "   TF Hub's pooled_output and default (out.tfhub()) are refused for the same reason.",
            f"   what {e.model_type} uses instead:", *_para(e.instead_of_pooler)]


def _api_section(e) -> list:
    L = e.num_layers
    return ["facts of the API (true by construction, not evidence)",
            f"   hidden_states: {L + 1} = L + 1: the embedding output, then one per layer",
            f"   attentions:    {L} = L: one softmax per layer (the embeddings have none)",
            f"   TF Hub (out.tfhub()): encoder_outputs = hidden_states[1:] ({L}); encoder_outputs[-1] is "
            "sequence_output = last_hidden_state; default is pooled_output = pooler_output"]


def _keras_section(e) -> list:
    """TF Hub's four keys, computed from the keras-hub preset itself."""
    k, L = e.keras_preset, e.num_layers
    keys = k["tfhub"]
    lines = [f"TF Hub's four keys, from this keras-hub preset ({k['class_name']}, keras-hub "
             f"{k['keras_hub_version'] or '?'}; out.tfhub())"]
    if "pooled_output" in keys:
        lines += [f"   sequence_output  {list(keys['sequence_output'].shape)}  = keras-hub's \"sequence_output\"; "
                  f"[CLS] {_vec(keys['sequence_output'][0, 0])}",
                  f"   pooled_output    {list(keys['pooled_output'].shape)}  = keras-hub's \"pooled_output\" "
                  f"(pooled_dense, tanh) {_vec(keys['pooled_output'][0])}",
                  f"   default          {list(keys['default'].shape)}  = pooled_output, the same array (TF Hub's alias; "
                  "keras-hub has no such key)"]
    else:
        lines += [f"   sequence_output  {list(keys['sequence_output'].shape)}  = keras-hub's \"sequence_output\"",
                  "   pooled_output, default: refused, the preset has no pooled_dense weights"]
    lines.append(f"   encoder_outputs  {L} × {list(keys['encoder_outputs'][0].shape)}  = each transformer_layer_i's "
                 "output (keras-hub's backbone returns only the last: encoder_outputs[-1] is sequence_output)")
    if k["hidden_act"] == "gelu":
        gelu = "This preset says it was built with the exact GELU (config.json's \"activation\": \"gelu\"; " \
               "keras-hub's own BertBackbone always uses the tanh approximation, gelu_approximate)."
    else:
        gelu = (f"This preset runs GELU as {k['hidden_act']}: keras-hub's BertBackbone builds every layer with the "
                "tanh approximation (gelu_approximate). A checkpoint trained with the exact erf GELU and converted "
                "to keras-hub differs from its original by about 1e-3 in sequence_output: "
                "`numpybert audit --keras PRESET --model ORIGINAL` names where (docs/keras-hub.md).")
    lines += _para(gelu)
    return lines


def _uses_section(e) -> list:
    trained = f" (this model was trained for it: {e.sentence_pooling})" if e.sentence_pooling else ""
    return ["what each output is good for",
            *_para("In BERT's pre-training the pooler is trained for next-sentence prediction: the NSP head "
                   "(cls.seq_relationship) reads pooled_output. A fine-tuned BertForSequenceClassification "
                   "reads it too. Whether a given checkpoint's pooler was trained at all is what the bias and "
                   "singular values above tell."),
            "   last_hidden_state (TF Hub sequence_output)     one vector per token: tagging, QA spans, pooling",
            f"   its mean over real tokens (attention_mask)     a sentence embedding{trained}",
            "   last_hidden_state[:, 0], the [CLS] row         the pooler's input; an embedding if trained as one",
            "   pooler_output (TF Hub pooled_output, default)  input of the NSP head or a fine-tuned classifier",
            "   hidden_states (TF Hub encoder_outputs)         per-layer features, e.g. for probing"]
