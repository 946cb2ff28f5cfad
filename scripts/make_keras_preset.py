"""Make keras-hub BertBackbone presets, and keras-hub's own outputs on them, without TensorFlow.

keras-hub runs here on the torch backend (KERAS_BACKEND=torch, set below before keras is imported),
installed as scripts/test.sh installs it: `pip install --no-deps keras-hub==0.32.0` plus the test
extra's keras, regex, kagglehub, packaging, sentencepiece, rich, absl-py and h5py (no tensorflow-text).

    python scripts/make_keras_preset.py                      # the committed tiny preset and its outputs
    python scripts/make_keras_preset.py --from-hf weights/all-MiniLM-L6-v2 --out /tmp/minilm-keras \\
        --outputs /tmp/minilm-keras.safetensors [--exact-gelu] [--text "A sentence." ...]

A preset is made the way keras-hub users make one from a Hugging Face folder:
`BertBackbone.from_preset(HF_DIR)` (keras-hub's transformers converter), then `save_to_preset(OUT)`, with
the BertTokenizer when the folder has vocab.txt. `--exact-gelu` swaps every TransformerEncoder's
activation for keras' exact GELU (keras-hub's BertBackbone builds them with `gelu_approximate`, and has
no argument for it), computes the outputs that way, and writes `"activation": "gelu"` into config.json's
backbone config so that numpybert reads the preset with the exact GELU (keras-hub itself would refuse
the unknown argument when loading it back). The outputs file (safetensors) holds the inputs
(token_ids, segment_ids, padding_mask) and keras-hub's sequence_output and pooled_output, float32.
"""

import argparse
import json
import os
import sys
from pathlib import Path

os.environ["KERAS_BACKEND"] = "torch"  # before keras is imported: no TensorFlow needed

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TINY_SOURCE = ROOT / "tests" / "checkpoints" / "tiny-bert"  # a random transformers BertModel (hidden_act gelu)
TINY_PRESET = ROOT / "tests" / "checkpoints" / "keras-tiny-bert"
TINY_OUTPUTS = ROOT / "tests" / "golden" / "keras-tiny-bert" / "keras_outputs.safetensors"
TINY_WORDS = ["the", "a", "cat", "dog", "sat", "on", "mat", "and", "ran", "##s", "##ed", "play", "guitar", "man"]
TEXTS = ("A man is playing a guitar.", "The quick brown fox jumps over the lazy dog by the river bank.", "Hello!")


def tiny_vocabulary(size: int) -> list:
    """A vocabulary of `size` entries for the tiny preset's tokenizer: BERT's specials, a few words, fillers."""
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + TINY_WORDS
    return words + [f"w{i}" for i in range(size - len(words))]


def tiny_inputs() -> dict:
    """Two rows, right-padded, the second a pair (segment 1): ids below tiny-bert's vocabulary of 99."""
    ids = np.array([[2, 7, 8, 9, 10, 11, 3, 0, 0, 0], [2, 40, 41, 3, 60, 61, 62, 63, 98, 3]], dtype=np.int32)
    segments = np.array([[0] * 10, [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]], dtype=np.int32)
    return {"token_ids": ids, "segment_ids": segments, "padding_mask": (ids != 0).astype(np.int32)}


def text_inputs(model_dir, texts) -> dict:
    """The texts tokenized by numpybert's tokenizer of the Hugging Face folder (keras-hub's BertTokenizer
    needs tensorflow-text to tokenize), padded to the longest."""
    import numpybert
    batch = numpybert.load(model_dir).tokenize(list(texts), truncation=True)
    return {"token_ids": batch["input_ids"].astype(np.int32), "segment_ids": batch["token_type_ids"].astype(np.int32),
            "padding_mask": batch["attention_mask"].astype(np.int32)}


def make(source, out, outputs, inputs, exact_gelu=False, vocabulary=None) -> dict:
    """Convert `source` (a Hugging Face folder) with keras-hub, save the preset to `out`, keras-hub's outputs on
    `inputs` to `outputs`; returns those outputs."""
    import keras
    import keras_hub
    from safetensors.numpy import save_file
    backbone = keras_hub.models.BertBackbone.from_preset(str(source))
    if exact_gelu:
        for layer in backbone.transformer_layers:
            layer._feedforward_intermediate_dense.activation = keras.activations.gelu  # approximate=False
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    backbone.save_to_preset(str(out))
    if vocabulary is not None or (Path(source) / "vocab.txt").is_file():
        lowercase = json.loads((Path(source) / "tokenizer_config.json").read_text()).get("do_lower_case", True) \
            if (Path(source) / "tokenizer_config.json").is_file() else True
        words = vocabulary or (Path(source) / "vocab.txt").read_text(encoding="utf-8").splitlines()
        keras_hub.models.BertTokenizer(vocabulary=words, lowercase=lowercase).save_to_preset(str(out))
    if exact_gelu:
        config_path = out / "config.json"
        config = json.loads(config_path.read_text())
        config["config"]["activation"] = "gelu"  # numpybert's key: keras-hub's BertBackbone has no such argument
        config_path.write_text(json.dumps(config, indent=4))
    result = backbone({k: v for k, v in inputs.items()})
    arrays = dict(inputs, **{k: np.ascontiguousarray(keras.ops.convert_to_numpy(result[k]), dtype=np.float32)
                             for k in ("sequence_output", "pooled_output")})
    metadata = {"keras_hub_version": keras_hub.__version__, "keras_version": keras.__version__,
                "backend": keras.backend.backend(), "source": os.path.relpath(source, ROOT) if str(source).startswith(
                    str(ROOT)) else str(source), "activation": "gelu" if exact_gelu else "gelu_approximate",
                "command": "python " + " ".join([os.path.relpath(__file__, ROOT)] + sys.argv[1:])}
    meta = json.loads((out / "metadata.json").read_text())
    meta.pop("date_saved", None)  # so that rerunning the script changes no committed byte it need not
    (out / "metadata.json").write_text(json.dumps(meta, indent=4))
    Path(outputs).parent.mkdir(parents=True, exist_ok=True)
    save_file(arrays, str(outputs), metadata=metadata)  # last: scripts/test.sh takes it as "done"
    return arrays


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--from-hf", metavar="DIR", help="a Hugging Face BERT folder (default: the tiny test checkpoint)")
    p.add_argument("--out", metavar="PRESET_DIR")
    p.add_argument("--outputs", metavar="FILE.safetensors")
    p.add_argument("--exact-gelu", action="store_true", help="build the encoder with keras' exact GELU")
    p.add_argument("--text", action="append", help="input texts (with --from-hf; default: three fixed sentences)")
    args = p.parse_args(argv)
    if args.from_hf is None:
        arrays = make(TINY_SOURCE, args.out or TINY_PRESET, args.outputs or TINY_OUTPUTS, tiny_inputs(),
                      args.exact_gelu, vocabulary=tiny_vocabulary(99))
    else:
        if not (args.out and args.outputs):
            p.error("--from-hf needs --out and --outputs")
        arrays = make(args.from_hf, args.out, args.outputs, text_inputs(args.from_hf, args.text or TEXTS),
                      args.exact_gelu)
    print(f"keras-hub outputs: sequence_output {list(arrays['sequence_output'].shape)}, "
          f"pooled_output {list(arrays['pooled_output'].shape)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
