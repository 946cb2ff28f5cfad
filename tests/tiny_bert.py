"""Test helpers (not tests): a tiny random BERT checkpoint built inside a test, raw safetensors
bytes to corrupt, and `make_text_model` (a committed tiny checkpoint plus a vocabulary, so it takes text).

The hostile-input tests build every bad file from this valid one, in pytest's tmp_path, so
they depend on nothing but numpy and safetensors' writer (never on another test's files).
Sizes: vocab 99, hidden 32, 2 layers, 4 heads, intermediate 37, 64 positions, 2 types.
"""

import json
import random
import shutil
import struct
from pathlib import Path

import numpy as np
import safetensors.numpy

CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"  # the committed tiny checkpoints

TINY_CONFIG = {
    "model_type": "bert", "architectures": ["BertModel"], "vocab_size": 99, "hidden_size": 32,
    "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 37, "hidden_act": "gelu",
    "layer_norm_eps": 1e-12, "max_position_embeddings": 64, "type_vocab_size": 2, "pad_token_id": 0,
    "position_embedding_type": "absolute",
}


def tiny_tensors(config=TINY_CONFIG, seed=0, pooler=True):
    """HF BertModel key names -> random float32 weights (scale 0.2: outputs vary visibly). The
    names and shapes are written out here, not taken from numpybert.loading.checkpoint.expected_shapes,
    so that a mistake in the loader's table cannot hide in the tests too."""
    rng = np.random.default_rng(seed)
    H, I = config["hidden_size"], config["intermediate_size"]
    shapes = {"embeddings.word_embeddings.weight": (config["vocab_size"], H),
              "embeddings.position_embeddings.weight": (config["max_position_embeddings"], H),
              "embeddings.token_type_embeddings.weight": (config["type_vocab_size"], H),
              "embeddings.LayerNorm.weight": (H,), "embeddings.LayerNorm.bias": (H,)}
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        for name in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            shapes[p + name + ".weight"], shapes[p + name + ".bias"] = (H, H), (H,)
        shapes[p + "intermediate.dense.weight"], shapes[p + "intermediate.dense.bias"] = (I, H), (I,)
        shapes[p + "output.dense.weight"], shapes[p + "output.dense.bias"] = (H, I), (H,)
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes[p + name + ".weight"], shapes[p + name + ".bias"] = (H,), (H,)
    if pooler:
        shapes["pooler.dense.weight"], shapes["pooler.dense.bias"] = (H, H), (H,)
    tensors = {name: (0.2 * rng.standard_normal(shape)).astype(np.float32) for name, shape in shapes.items()}
    for name in tensors:  # LayerNorm scales near 1, as a trained model's
        if name.endswith("LayerNorm.weight"):
            tensors[name] += 1.0
    return tensors


def write_model(folder, tensors=None, config=None, metadata=None):
    """A model directory: config.json + model.safetensors. Returns the folder as a Path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(TINY_CONFIG if config is None else config))
    tensors = tiny_tensors() if tensors is None else tensors
    safetensors.numpy.save_file(tensors, str(folder / "model.safetensors"), metadata=metadata or {"format": "pt"})
    return folder


def split(raw: bytes):
    """safetensors bytes -> (header dict, data section bytes)."""
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def join(header, data: bytes = b"") -> bytes:
    """(header dict or raw header bytes, data) -> safetensors bytes, with a correct header length."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


# ----------------------------------------------------------------------------- a tiny model that takes text

# A WordPiece vocabulary for the tiny checkpoints (vocab_size 99): letters and ##letters spell any
# lowercase word, so no test text becomes [UNK].
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
LETTERS = [chr(c) for c in range(ord("a"), ord("z") + 1)]
WORDS = ("the is of and to in man dog cat paris france capital city music guitar river plays runs book "
         "reads bright dark house").split()
VOCAB = SPECIALS + LETTERS + ["##" + c for c in LETTERS] + list("0123456789") + list(".,!?'-") + WORDS
def make_text_model(dest, checkpoint="tiny-bert", sentence_transformers=None):
    """A committed tiny checkpoint plus a vocab.txt, so it takes text. `sentence_transformers`:
    {"pooling": {...Pooling config.json...}, "normalize": bool, "max_seq_length": int, "modules": [...]}."""
    shutil.copytree(CHECKPOINTS / checkpoint, dest)
    assert len(set(VOCAB)) == len(VOCAB) <= 99, "unique tokens; the tiny checkpoints have vocab_size 99"
    (dest / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    (dest / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    if sentence_transformers is not None:
        _write_st_files(dest, **sentence_transformers)
    return dest


def _write_st_files(dest, pooling=None, normalize=False, max_seq_length=None, modules=None, do_lower_case=False):
    kinds = modules or (["Transformer", "Pooling"] + (["Normalize"] if normalize else []))
    paths = {"Transformer": "", "Pooling": "1_Pooling", "Normalize": "2_Normalize"}
    (dest / "modules.json").write_text(json.dumps([
        {"idx": i, "name": str(i), "path": paths.get(k, f"{i}_{k}"), "type": f"sentence_transformers.models.{k}"}
        for i, k in enumerate(kinds)]))
    (dest / "1_Pooling").mkdir()
    (dest / "1_Pooling" / "config.json").write_text(json.dumps(pooling or {"pooling_mode_mean_tokens": True}))
    config = {"do_lower_case": do_lower_case} | ({"max_seq_length": max_seq_length} if max_seq_length else {})
    (dest / "sentence_bert_config.json").write_text(json.dumps(config))


def random_sentences(n, seed=0):
    """n seeded texts of 0 to 30 words of WORDS (every one spelled by VOCAB, so no [UNK])."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 30))) for _ in range(n)]
