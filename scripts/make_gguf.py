#!/usr/bin/env python
"""GGUF files made by llama.cpp's own converter, for the tests and docs/gguf.md (issue 26).

    .venv/bin/python scripts/make_gguf.py [--out weights/gguf] [--check]

The converter (`convert_hf_to_gguf.py`, `conversion/`, `gguf-py/`) is inside the `llama-cpp-python==0.3.36`
sdist on PyPI: downloaded once with pip (`pip download --no-binary :all: --no-deps`, sha256 pinned),
unpacked into weights/llamacpp/ (never into git), run with the test extra's torch and transformers, all
conversions in one process (torch is imported once). Into --out (default weights/gguf/, outside git):
  all-MiniLM-L6-v2.{f32,f16,q8_0}.gguf       from weights/all-MiniLM-L6-v2 (`numpybert fetch`): 91/46/25 MB
  tiny-bert-wp/, tiny-distilbert-wp/         tiny random family checkpoints (BertModel with CLS pooling,
                                             DistilBertModel with mean pooling; H=32, 2 layers), seeded NumPy
                                             weights, all-MiniLM-L6-v2's WordPiece tokenizer (the converter
                                             only accepts tokenizers it recognises), sentence-transformers files
  tiny-bert-wp.{f32,f16,q8_0}.gguf, tiny-distilbert-wp.{f32,f16,q8_0}.gguf   their conversions (~4/2/1 MB)
  tiny-roberta-bpe.{f32,q8_0}.gguf           tests/checkpoints/st-tiny-roberta (byte-level BPE, mean pooling)
  tiny-roberta-cls/, tiny-roberta-cls.{f32,q8_0}.gguf   a RobertaForSequenceClassification made from it
                                             (3 labels, seeded head): the converter's cls / cls.output
  tiny-distilbert-cls/, tiny-distilbert-cls.f32.gguf     the same head on tiny-distilbert-wp
                                             (DistilBertForSequenceClassification: pre_classifier, classifier)
Idempotent: what is already there is kept. The converter is deterministic: tests/gguf/llamacpp_golden.json
records each file's sha256 (scripts/export_llamacpp_golden.py), and --check compares them.
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SDIST = "llama-cpp-python==0.3.36"
SDIST_FILE = "llama_cpp_python-0.3.36.tar.gz"
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
CACHE = REPO / "weights" / "llamacpp"  # the sdist and what is unpacked from it (outside git)
CONVERTER_PARTS = ("vendor/llama.cpp/convert_hf_to_gguf.py", "vendor/llama.cpp/conversion/", "vendor/llama.cpp/gguf-py/")
SOURCES = {"all-MiniLM-L6-v2": REPO / "weights" / "all-MiniLM-L6-v2", "tiny-bert-wp": None,
           "tiny-distilbert-wp": None}  # None: made here (make_tiny), next to the GGUF files
OUTTYPES = ("f32", "f16", "q8_0")
# RoBERTa-style files (byte-level BPE, tokenizer.ggml.model "gpt2"): the committed tiny sentence-transformers
# RoBERTa (scripts/make_family_st.py) and a sequence classifier made here from it (make_classifier).
# Their BPE was trained here, so the converter's pre-tokenizer check (a hash of a test text's ids) cannot
# recognise it: these conversions are told "roberta-bpe", what the converter answers for a real RoBERTa
# (stsb-roberta-base); the rest of the conversion is the converter's own.
ROBERTA_SOURCES = {"tiny-roberta-bpe": REPO / "tests" / "checkpoints" / "st-tiny-roberta", "tiny-roberta-cls": None}
ROBERTA_OUTTYPES = ("f32", "q8_0")
ROBERTA_PRE = "roberta-bpe"
LABELS = ("negative", "neutral", "positive")


def sdist(cache: Path) -> Path:
    """The sdist in `cache`, downloaded with pip when absent."""
    path = cache / SDIST_FILE
    if not path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
                        "--no-binary", ":all:", "--no-deps", SDIST, "-d", str(cache)], check=True)
    if SDIST_SHA256 and hashlib.sha256(path.read_bytes()).hexdigest() != SDIST_SHA256:
        sys.exit(f"make_gguf: {path} is not the sdist this script was written for (sha256 differs)")
    return path


def converter(cache: Path) -> Path:
    """convert_hf_to_gguf.py unpacked (with conversion/ and gguf-py/) from the sdist, once."""
    root = cache / "llama_cpp_python-0.3.36" / "vendor" / "llama.cpp"
    script = root / "convert_hf_to_gguf.py"
    if not script.is_file():
        with tarfile.open(sdist(cache)) as tar:
            members = [m for m in tar.getmembers()
                       if any(m.name.split("/", 1)[-1].startswith(p) for p in CONVERTER_PARTS)]
            tar.extractall(cache, members=members, filter="data")
    return script


TINY = {  # name: (model_type, architecture, sentence-transformers pooling)
    "tiny-bert-wp": ("bert", "BertModel", "cls"),
    "tiny-distilbert-wp": ("distilbert", "DistilBertModel", "mean"),
}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
H, L, N, I, V, P = 32, 2, 4, 37, 30522, 64  # hidden, layers, heads, intermediate, vocab (MiniLM's), positions


def tiny_tensors(model_type: str, seed: int = 0) -> dict:
    """Seeded random weights in the checkpoint's own names (numpy only: the same bytes on every machine)."""
    rng = np.random.default_rng(seed)
    normal = lambda *shape, scale=0.2: (rng.standard_normal(shape) * scale).astype(np.float32)  # noqa: E731
    ln = lambda: (1 + normal(H, scale=0.1), normal(H, scale=0.1))  # noqa: E731  (non-trivial LayerNorms)
    t = {"embeddings.word_embeddings.weight": normal(V, H), "embeddings.position_embeddings.weight": normal(P, H)}
    if model_type == "bert":
        t["embeddings.token_type_embeddings.weight"] = normal(2, H)
    t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"] = ln()
    for i in range(L):
        names = ({"q": "attention.q_lin", "k": "attention.k_lin", "v": "attention.v_lin", "o": "attention.out_lin",
                  "ln1": "sa_layer_norm", "up": "ffn.lin1", "down": "ffn.lin2", "ln2": "output_layer_norm"}
                 if model_type == "distilbert" else
                 {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
                  "o": "attention.output.dense", "ln1": "attention.output.LayerNorm", "up": "intermediate.dense",
                  "down": "output.dense", "ln2": "output.LayerNorm"})
        p = f"transformer.layer.{i}." if model_type == "distilbert" else f"encoder.layer.{i}."
        for key, shape in (("q", (H, H)), ("k", (H, H)), ("v", (H, H)), ("o", (H, H)), ("up", (I, H)), ("down", (H, I))):
            t[p + names[key] + ".weight"], t[p + names[key] + ".bias"] = normal(*shape), normal(shape[0], scale=0.1)
        for key in ("ln1", "ln2"):
            t[p + names[key] + ".weight"], t[p + names[key] + ".bias"] = ln()
    return t


def make_tiny(name: str, dest: Path, tokenizer_dir: Path):
    """A tiny sentence-transformers checkpoint of the family member `name` in `dest` (once)."""
    if (dest / "model.safetensors").is_file():
        return
    from safetensors.numpy import save_file
    model_type, arch, pooling = TINY[name]
    dest.mkdir(parents=True, exist_ok=True)
    sizes = (dict(dim=H, n_layers=L, n_heads=N, hidden_dim=I, activation="gelu", sinusoidal_pos_embds=False)
             if model_type == "distilbert" else
             dict(hidden_size=H, num_hidden_layers=L, num_attention_heads=N, intermediate_size=I, hidden_act="gelu",
                  type_vocab_size=2, layer_norm_eps=1e-12))
    config = dict(architectures=[arch], model_type=model_type, vocab_size=V, max_position_embeddings=P,
                  pad_token_id=0, **sizes)
    (dest / "config.json").write_text(json.dumps(config, indent=1) + "\n")
    save_file(tiny_tensors(model_type), str(dest / "model.safetensors"), metadata={"format": "pt"})
    for file in TOKENIZER_FILES:
        shutil.copyfile(tokenizer_dir / file, dest / file)
    (dest / "1_Pooling").mkdir(exist_ok=True)
    (dest / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": H,
                                                                "pooling_mode": pooling}) + "\n")
    (dest / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]) + "\n")
    (dest / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": P, "do_lower_case": False}) + "\n")


CLASSIFIERS = {  # name: (base checkpoint, its name prefix in the task class, transformers' task class, head names)
    "tiny-roberta-cls": ("tiny-roberta-bpe", "roberta.", "RobertaForSequenceClassification",
                         ("classifier.dense", "classifier.out_proj")),
    "tiny-distilbert-cls": ("tiny-distilbert-wp", "distilbert.", "DistilBertForSequenceClassification",
                            ("pre_classifier", "classifier")),
}


def make_classifier(name: str, dest: Path, base: Path):
    """A tiny sequence classifier in `dest` (once): `base`'s weights under the task class's prefix, its
    tokenizer, and a seeded head (dense H x H, then 3 labels x H) under transformers' names (CLASSIFIERS)."""
    if (dest / "model.safetensors").is_file():
        return
    from safetensors.numpy import load_file, save_file
    _, prefix, arch, (dense, out) = CLASSIFIERS[name]
    rng = np.random.default_rng(1)
    tensors = {prefix + k: v for k, v in load_file(str(base / "model.safetensors")).items()}
    for head, shape in ((dense, (H, H)), (out, (len(LABELS), H))):
        tensors[f"{head}.weight"] = (rng.standard_normal(shape) * 0.5).astype(np.float32)
        tensors[f"{head}.bias"] = (rng.standard_normal(shape[0]) * 0.1).astype(np.float32)
    dest.mkdir(parents=True, exist_ok=True)
    config = json.loads((base / "config.json").read_text())
    config.update(architectures=[arch], id2label=dict(enumerate(LABELS)),
                  label2id={label: i for i, label in enumerate(LABELS)})
    (dest / "config.json").write_text(json.dumps(config, indent=1) + "\n")
    save_file(tensors, str(dest / "model.safetensors"), metadata={"format": "pt"})
    for file in base.iterdir():
        if file.name.startswith(("tokenizer", "vocab", "special_tokens")):
            shutil.copyfile(file, dest / file.name)


# Runs the converter's main() once per job in one process: torch and transformers are imported once.
# A job's 4th item, when set, is the pre-tokenizer name its conversion is told (ROBERTA_PRE).
CHILD = r"""
import json, sys
from pathlib import Path
script, jobs = Path(sys.argv[1]), json.loads(sys.argv[2])
sys.path.insert(0, str(script.parent))
import convert_hf_to_gguf as converter
from conversion import base
detect = base.TextModel.get_vocab_base_pre
for source, outtype, out, pre in jobs:
    base.TextModel.get_vocab_base_pre = detect if pre is None else (lambda self, tokenizer, pre=pre: pre)
    sys.argv = [str(script), source, "--outtype", outtype, "--outfile", out]
    converter.main()
"""


def convert(script: Path, jobs: list):
    """Run the converter on [(source dir, outtype, out file, pre-tokenizer or None)], writing each to a .tmp
    then renaming it."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONWARNINGS="ignore")
    result = subprocess.run([sys.executable, "-c", CHILD, str(script),
                             json.dumps([(str(s), t, str(o) + ".tmp", pre) for s, t, o, pre in jobs])],
                            env=env, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"make_gguf: llama.cpp's converter failed:\n{result.stderr[-3000:]}")
    for _, _, out, _ in jobs:
        Path(str(out) + ".tmp").rename(out)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "weights" / "gguf")
    parser.add_argument("--check", action="store_true", help="compare the files' sha256 with the committed goldens'")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    minilm = SOURCES["all-MiniLM-L6-v2"]
    if not (minilm / "tokenizer.json").is_file():
        sys.exit(f"make_gguf: {minilm} is missing: run `numpybert fetch` first")
    jobs = []
    for name, source in SOURCES.items():
        if source is None:
            source = args.out / name
            make_tiny(name, source, minilm)
        jobs += [(source, t, args.out / f"{name}.{t}.gguf", None) for t in OUTTYPES
                 if not (args.out / f"{name}.{t}.gguf").is_file()]
    for name, source in ROBERTA_SOURCES.items():
        if source is None:
            source = args.out / name
            make_classifier(name, source, ROBERTA_SOURCES[CLASSIFIERS[name][0]])
        jobs += [(source, t, args.out / f"{name}.{t}.gguf", ROBERTA_PRE) for t in ROBERTA_OUTTYPES
                 if not (args.out / f"{name}.{t}.gguf").is_file()]
    make_classifier("tiny-distilbert-cls", args.out / "tiny-distilbert-cls", args.out / "tiny-distilbert-wp")
    if not (args.out / "tiny-distilbert-cls.f32.gguf").is_file():
        jobs.append((args.out / "tiny-distilbert-cls", "f32", args.out / "tiny-distilbert-cls.f32.gguf", None))
    if jobs:
        convert(converter(CACHE), jobs)
    if args.check:
        golden_path = REPO / "tests" / "gguf" / "llamacpp_golden.json"
        if not golden_path.is_file():
            sys.exit(f"make_gguf: no {golden_path.relative_to(REPO)} yet (scripts/export_llamacpp_golden.py writes it)")
        golden = json.loads(golden_path.read_text())
        bad = [f for f, entry in golden["files"].items() if sha256(args.out / f) != entry["sha256"]]
        if bad:
            sys.exit(f"make_gguf: {', '.join(bad)} differ from the files the llama.cpp goldens were made from")
    print(f"make_gguf: {len(SOURCES) * len(OUTTYPES) + len(ROBERTA_SOURCES) * len(ROBERTA_OUTTYPES) + 1} GGUF files "
          f"in {args.out}")


if __name__ == "__main__":
    main()
