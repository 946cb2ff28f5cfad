#!/usr/bin/env python
"""Export BERT checkpoints to ONNX the way deployments do, for `numpybert audit --onnx`.

Four variants of one checkpoint, each what a real "no-PyTorch" package ships:
  <name>.float32.onnx    torch.onnx.export (TorchScript exporter, opset 17) of transformers' BertModel
  <name>.optimized.onnx  the same after ONNX Runtime's transformer optimizer (fused Attention,
                         SkipLayerNormalization, EmbedLayerNormalization, Gelu nodes)
  <name>.int8.onnx       the float32 export after onnxruntime.quantization.quantize_dynamic (int8 weights)
  <name>.float16.onnx    the optimized graph cast to float16 (onnxruntime.transformers' converter;
                         inputs and outputs stay float32)

Usage (needs the golden and onnx extras: torch, transformers, onnx, onnxruntime):
  .venv/bin/python scripts/export_onnx.py tiny                 # tests/onnx/tiny-bert.*.onnx (committed, < 1 MB each)
  .venv/bin/python scripts/export_onnx.py tiny-roberta         # tests/onnx/tiny-roberta.*.onnx (committed)
  .venv/bin/python scripts/export_onnx.py minilm --out DIR     # all-MiniLM-L6-v2 (made in CI, never committed)
  .venv/bin/python scripts/export_onnx.py export MODEL_DIR --out DIR [--name NAME]

Exports are deterministic up to the exporter's versions; the graph's metadata records them.
"""
import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import onnx  # noqa: E402
import onnxruntime  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "checkpoints" / "tiny-bert"
TINY_ROBERTA = REPO / "tests" / "checkpoints" / "tiny-roberta"  # the BERT family's ONNX case (issue 21)
TINY_OUT = REPO / "tests" / "onnx"
MINILM = REPO / "weights" / "all-MiniLM-L6-v2"
OPSET = 17  # what the TorchScript exporter and ORT's BERT fusions handle best
VARIANTS = ("float32", "optimized", "int8", "float16")


class Wrapper(torch.nn.Module):
    """transformers 5 changed BertModel.forward's positional order: pass keywords explicitly."""

    def __init__(self, bert):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids, attention_mask, token_type_ids):
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        return out.last_hidden_state, out.pooler_output


def export_float32(model_dir, path):
    """torch.onnx.export of BertModel (eager attention), dynamic batch and sequence axes. A RoBERTa /
    XLM-R checkpoint (config.json model_type) exports its RobertaModel the same way: its positions
    (from the ids, padding_idx + 1 onwards) are part of the graph."""
    bert = transformers.AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()
    if bert.config.model_type not in ("bert", "roberta", "xlm-roberta") or bert.pooler is None:
        raise SystemExit(f"{model_dir}: export_onnx.py exports BERT and RoBERTa models with a pooler")
    pad = bert.config.pad_token_id or 0
    ids = torch.tensor([[2, 5, 7, 9, 3], [2, 6, 3, pad, pad]], dtype=torch.int64)
    mask = (ids != pad).to(torch.int64)
    axes = {0: "batch", 1: "sequence"}
    with torch.no_grad():
        torch.onnx.export(Wrapper(bert), (ids, mask, torch.zeros_like(ids)), str(path), dynamo=False,
                          opset_version=OPSET, input_names=["input_ids", "attention_mask", "token_type_ids"],
                          output_names=["last_hidden_state", "pooler_output"],
                          dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes,
                                        "last_hidden_state": axes, "pooler_output": {0: "batch"}})
    stamp(path, f"torch {torch.__version__} torch.onnx.export(dynamo=False, opset_version={OPSET}), "
                f"transformers {transformers.__version__}")
    return bert.config


def optimize(src, path, config):
    """ONNX Runtime's transformer optimizer: fuses attention, LayerNorms and GELU."""
    from onnxruntime.transformers.optimizer import optimize_model
    model = optimize_model(str(src), model_type="bert", num_heads=config.num_attention_heads,
                           hidden_size=config.hidden_size, opt_level=0)
    model.save_model_to_file(str(path))
    stamp(path, f"onnxruntime {onnxruntime.__version__} transformers.optimizer.optimize_model(model_type='bert')")
    return model


def quantize(src, path):
    """int8 weights, activations quantized at run time: quantize_dynamic's defaults."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    quantize_dynamic(str(src), str(path), weight_type=QuantType.QInt8)
    stamp(path, f"onnxruntime {onnxruntime.__version__} quantization.quantize_dynamic(weight_type=QInt8)")


def to_float16(src, path):
    """Weights and activations in float16; inputs and outputs stay as they were (keep_io_types)."""
    from onnxruntime.transformers.onnx_model import OnnxModel
    model = OnnxModel(onnx.load(str(src)))
    model.convert_float_to_float16(keep_io_types=True)
    model.save_model_to_file(str(path))
    stamp(path, f"onnxruntime {onnxruntime.__version__} OnnxModel.convert_float_to_float16(keep_io_types=True)")


def stamp(path, how):
    """Record how the file was made in its metadata_props (ONNX's free-form key/value header)."""
    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    props["numpybert.made_by"] = f"scripts/export_onnx.py: {how}"
    del model.metadata_props[:]
    for key, value in sorted(props.items()):
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


def export_all(model_dir, out, name):
    """The four variants of one checkpoint into `out`; returns their paths by variant."""
    torch.manual_seed(0)
    out.mkdir(parents=True, exist_ok=True)
    paths = {v: out / f"{name}.{v}.onnx" for v in VARIANTS}
    config = export_float32(model_dir, paths["float32"])
    optimize(paths["float32"], paths["optimized"], config)
    quantize(paths["float32"], paths["int8"])
    to_float16(paths["optimized"], paths["float16"])
    for variant, path in paths.items():
        onnx.checker.check_model(str(path))
        print(f"{path}  {path.stat().st_size / 1e6:.2f} MB")
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("tiny", help=f"tiny-bert into {TINY_OUT.relative_to(REPO)}/ (committed)")
    sub.add_parser("tiny-roberta", help=f"tiny-roberta into {TINY_OUT.relative_to(REPO)}/ (committed)")
    m = sub.add_parser("minilm", help="all-MiniLM-L6-v2 (never committed)")
    m.add_argument("--out", required=True, type=Path)
    m.add_argument("--model", default=MINILM, type=Path)
    e = sub.add_parser("export", help="any BertModel (or RobertaModel) checkpoint directory with a pooler")
    e.add_argument("model", type=Path)
    e.add_argument("--out", required=True, type=Path)
    e.add_argument("--name")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    transformers.logging.set_verbosity_error()
    if args.what == "tiny":
        export_all(TINY, TINY_OUT, "tiny-bert")
    elif args.what == "tiny-roberta":
        export_all(TINY_ROBERTA, TINY_OUT, "tiny-roberta")
    elif args.what == "minilm":
        export_all(args.model, args.out, "all-MiniLM-L6-v2")
    else:
        export_all(args.model, args.out, args.name or args.model.resolve().name)


if __name__ == "__main__":
    sys.exit(main())
