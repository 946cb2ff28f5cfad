"""`numpybert audit`: which operation first diverges between numpybert and PyTorch, and by how much.

    numpybert audit --golden tests/golden/all-MiniLM-L6-v2/one_sentence.float32.safetensors
    numpybert audit --golden FILE --engine reference   # the textbook (numpybert/reference.py) instead
    numpybert audit --live --oracle                 # against transformers in this process (golden extra)
    numpybert audit --live --gelu tanh              # a convention switch: fails, names the first divergence
    numpybert audit --compare-conventions           # what each switch does to the outputs
    numpybert audit --live --json > report.json
    numpybert audit --onnx model.int8.onnx          # a deployed ONNX graph vs numpybert's reference (onnx extra)
    numpybert audit --tokenizer other/tokenizer.json  # another deployment's tokenizer vs the model's
    numpybert audit --keras PRESET_DIR --model DIR  # a keras-hub BERT preset vs the checkpoint it came from
    numpybert audit --gguf model.q8_0.gguf --model DIR  # a llama.cpp GGUF vs its original checkpoint (gguf extra)

Exit status: 0 every tensor within tolerance, 1 some tensor is not, 2 bad usage (or no torch
for --live), 3 a missing file or model.
"""

import json
import os
import sys

from .. import audit, cli
from ..api import ENGINES, GELU_CONVENTIONS, MASK_VALUES
from ..errors import InputValueError
from ..audit.golden import read_golden

DEFAULT_TEXTS = ("Hello, how are you today?",
                 "The quick brown fox jumps over the lazy dog by the river bank.")


def register(subparsers):
    p = subparsers.add_parser("audit", help="compare numpybert with PyTorch tensor by tensor; "
                                            "name the first diverging operation",
                              description="Compare every recorded intermediate of numpybert with PyTorch's "
                                          "(a golden file, or transformers run live), in forward order, and "
                                          "name the first operation that diverges. Exit 1 when any tensor fails.")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--golden", metavar="FILE", help="compare with a golden file (its inputs and dtype)")
    source.add_argument("--live", action="store_true",
                        help="compare with transformers' BertModel run now (needs the golden extra: "
                             "the golden extra)")
    source.add_argument("--compare-conventions", action="store_true",
                        help="show what each convention switch does to the outputs of the same input")
    source.add_argument("--onnx", metavar="FILE",
                        help="audit an ONNX graph (run in ONNX Runtime; the onnx extra) against numpybert's "
                             "reference model on --model: per-tensor errors at real tokens, the float64 error "
                             "budget, sentence-embedding cosine and nearest-neighbour agreement")
    source.add_argument("--gguf", metavar="FILE",
                        help="audit a llama.cpp GGUF file against the checkpoint it was converted from (--model), "
                             "both through numpybert: per-tensor errors at real tokens, the float64 error budget, "
                             "embedding cosine, and the GGUF's tokenizer vs the original's (the gguf extra)")
    source.add_argument("--tokenizer", metavar="DIR_OR_JSON",
                        help="compare another deployment's tokenizer (a directory or a tokenizer.json) with "
                             "--model's on built-in tricky texts; report the first text whose ids differ")
    source.add_argument("--keras", metavar="PRESET_DIR",
                        help="audit a keras-hub BertBackbone preset against the checkpoint --model it was converted "
                             "from: both through numpybert, every weight and tensor, the float64 oracle, the first "
                             "divergence and why (the keras extra: h5py)")
    p.add_argument("--text", action="append", metavar="TEXT",
                   help=f"input text, repeatable (live / conventions; default: {len(DEFAULT_TEXTS)} fixed "
                        "sentences; models without a tokenizer get fixed random ids)")
    p.add_argument("--dtype", choices=("float32", "float64"), help="live only: precision of both runs (default float32)")
    p.add_argument("--engine", choices=tuple(ENGINES), default="fast",
                   help="the numpybert engine to audit: fast (numpybert/engine/, default) or reference "
                        "(numpybert/reference.py, the textbook)")
    p.add_argument("--oracle", action="store_true",
                   help="also run numpybert/reference.py in float64 and report how far numpybert fp32 and torch "
                        "fp32 are from it")
    p.add_argument("--mask-value", choices=MASK_VALUES, help="run numpybert with this additive mask value (write --mask-value=-inf: argparse takes a bare "
                        "-inf for an option)")
    p.add_argument("--gelu", choices=tuple(GELU_CONVENTIONS), help="run numpybert with this GELU form")
    p.add_argument("--eps", type=float, metavar="FLOAT", help="run numpybert with this LayerNorm epsilon")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    cli.add_model_argument(p)
    p.set_defaults(run=run)


def run(args):
    check_args(args)
    if args.compare_conventions:
        return run_conventions(args)
    if args.onnx:
        return run_onnx(args)
    if args.gguf:
        return run_gguf(args)
    if args.tokenizer:
        return run_tokenizer(args)
    if args.keras:
        return run_keras(args)
    report = golden_audit(args) if args.golden else live_audit(args)
    return emit(args, lambda: audit.report_json(report), lambda: audit.render_table(report), report.passed)


def emit(args, as_json, as_text, passed: bool = True) -> int:
    """Print a report (strict JSON, no NaN, with --json; else the readable text); the exit status."""
    if args.json:
        json.dump(as_json(), sys.stdout, indent=1, allow_nan=False)
        print()
    else:
        print(as_text())
    return 0 if passed else 1


def check_args(args) -> None:
    """Refuse combinations that would silently mean something else."""
    if not (args.golden or args.live or args.compare_conventions or args.onnx or args.tokenizer or args.keras
            or args.gguf):
        raise InputValueError("choose what to compare with: --golden FILE, --live, --compare-conventions, "
                              "--onnx FILE, --gguf FILE, --tokenizer PATH or --keras PRESET_DIR")
    if args.keras and (args.mask_value or args.gelu or args.eps is not None or args.dtype or args.oracle):
        raise InputValueError("--keras takes the preset and the checkpoint as they are (it always reports the float64 "
                              "oracle): drop --mask-value/--gelu/--eps/--dtype/--oracle")
    if args.gguf and (args.mask_value or args.gelu or args.eps is not None or args.dtype or args.oracle
                      or args.engine != "fast"):
        raise InputValueError("--gguf takes both models as they are (it always reports the float64 error budget); "
                              "drop --mask-value/--gelu/--eps/--dtype/--oracle/--engine")
    if (args.onnx or args.tokenizer) and (args.mask_value or args.gelu or args.eps is not None or args.dtype
                                          or args.oracle):
        raise InputValueError("--onnx and --tokenizer take the model as it is (--onnx always reports the float64 "
                              "error budget); drop --mask-value/--gelu/--eps/--dtype/--oracle")
    if args.tokenizer and args.text:
        raise InputValueError("--tokenizer uses its built-in tricky texts; --text does not apply")
    if args.golden and (args.text or args.dtype):
        raise InputValueError("--golden uses the golden file's inputs and dtype; --text and --dtype do not apply")
    if args.oracle and (args.compare_conventions or args.dtype == "float64"):
        raise InputValueError("--oracle compares a float32 audit with float64; it does not apply here")
    if args.compare_conventions and (args.mask_value or args.gelu or args.eps is not None or args.dtype):
        raise InputValueError("--compare-conventions tries every switch itself; drop --mask-value/--gelu/--eps/--dtype")


def with_switches(model, args):
    """The model under the conventions asked for on the command line (the reference is unchanged)."""
    return model.with_conventions(mask_value=args.mask_value, gelu=args.gelu, eps=args.eps)


def golden_audit(args) -> audit.AuditReport:
    golden = read_golden(args.golden)
    audit.check_golden_model(args.model, golden)
    model = with_switches(cli.load_model(args, dtype=golden.metadata.get("dtype", "float32"), engine=args.engine), args)
    oracle = load_oracle(args)
    return audit.audit(model, golden, oracle)


def live_audit(args) -> audit.AuditReport:
    audit.require_torch_bridge()  # no torch: fail now, in one line naming the extra, before any work
    dtype = args.dtype or "float32"
    model = cli.load_model(args, dtype=dtype, engine=args.engine)
    inputs = audit_inputs(model, args.text)
    reference = audit.live_reference(args.model, inputs, dtype)
    oracle = load_oracle(args)
    return audit.audit(with_switches(model, args), reference, oracle)


def load_oracle(args):
    """The fp64 oracle, when --oracle: the textbook model (numpybert/reference.py) in float64."""
    return cli.load_model(args, dtype="float64", engine="reference") if args.oracle else None


def run_conventions(args) -> int:
    model = cli.load_model(args, engine=args.engine)
    inputs = audit.with_fully_masked_row(audit_inputs(model, args.text))
    rows = audit.compare_conventions(model, inputs)
    return emit(args, lambda: audit.conventions_json(model, inputs, rows),
                lambda: audit.render_conventions(model, inputs, rows))


def audit_inputs(model, texts) -> dict:
    """Tokenized texts (padded to the longest), or fixed random ids for a model without a tokenizer."""
    if any(os.path.isfile(os.path.join(model.model_dir, f)) for f in ("tokenizer.json", "vocab.txt")):
        return model.tokenize(list(texts or DEFAULT_TEXTS), truncation=True)
    if texts:
        raise InputValueError(f"{model.model_dir} has no tokenizer.json or vocab.txt, so --text cannot be "
                              "tokenized; without --text the audit uses fixed random ids")
    return audit.random_inputs(model.config)


def run_onnx(args) -> int:
    """`--onnx FILE`: the deployed graph against numpybert's reference model (numpybert/audit/onnx.py)."""
    from ..audit import onnx as graph_audit
    graph_audit.runtime()  # no onnx extra: fail now, in one line, before any work
    model = cli.load_model(args)  # tokenizes the texts; the reference models are loaded by the audit
    inputs = audit_inputs(model, args.text)
    if has_tokenizer(model):
        ranking = model.tokenize(list(graph_audit.RANKING_TEXTS), truncation=True)
    else:  # fixed random ids of varied lengths: the ranking then only says whether neighbours move
        ranking = audit.random_inputs(model.config, lengths=graph_audit.RANDOM_LENGTHS, seed=1)
    report = graph_audit.audit_graph(args.onnx, args.model, inputs, ranking)
    return emit(args, lambda: graph_audit.report_graph_json(report), lambda: graph_audit.render_graph_report(report),
                report.passed)


def run_gguf(args) -> int:
    """`--gguf FILE`: the GGUF deployment against --model, both through numpybert (numpybert/audit/gguf.py)."""
    from ..audit import gguf
    from ..loading.locate import resolve_model
    report = gguf.audit_gguf(args.gguf, args.model or resolve_model(cli=True), args.text)
    return emit(args, lambda: gguf.report_json(report), lambda: gguf.render(report), report.passed)


def run_tokenizer(args) -> int:
    """`--tokenizer PATH`: another tokenizer against --model's (numpybert/audit/tokenizer_audit.py)."""
    from ..audit import tokenizer_audit
    report = tokenizer_audit.audit_tokenizer(args.tokenizer, args.model)
    return emit(args, lambda: tokenizer_audit.report_json(report), lambda: tokenizer_audit.render(report),
                report.passed)


def run_keras(args) -> int:
    """`--keras PRESET_DIR`: a keras-hub preset against --model, its original checkpoint (numpybert/audit/keras.py)."""
    from ..audit import keras as preset_audit
    model = cli.load_model(args)  # the checkpoint: its tokenizer makes the inputs
    inputs = audit_inputs(model, args.text)
    texts = list(args.text or DEFAULT_TEXTS) if has_tokenizer(model) else None
    report = preset_audit.audit_preset(args.keras, args.model, inputs, texts, engine=args.engine)
    return emit(args, lambda: preset_audit.report_keras_json(report),
                lambda: preset_audit.render_keras_report(report), report.passed)


def has_tokenizer(model) -> bool:
    return any(os.path.isfile(os.path.join(model.model_dir, f)) for f in ("tokenizer.json", "vocab.txt"))
