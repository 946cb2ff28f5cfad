#!/usr/bin/env python
"""Write a random BertModel checkpoint (config.json + model.safetensors) with NumPy only.

For benchmarks and audits that need a bert-base-sized model without downloading one;
the output is never committed. Keys are HuggingFace BertModel names without a prefix,
pooler included. Weights ~ normal(0, 0.02), LayerNorm weights ~ 1 + normal(0, 0.05),
biases (LayerNorm biases too) ~ normal(0, 0.02), all float32; the same seed gives the
same file.

Usage:
  .venv/bin/python scripts/make_random_bert.py --size base --seed 0 --out /tmp/bert-base-random
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

SIZES = {
    "base": dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, max_position_embeddings=512, type_vocab_size=2),
    "tiny": dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                 intermediate_size=37, max_position_embeddings=64, type_vocab_size=2),
}


def make_config(size):
    """A config.json dict as transformers writes it for BertModel."""
    return {"architectures": ["BertModel"], "model_type": "bert", **SIZES[size],
            "hidden_act": "gelu", "layer_norm_eps": 1e-12, "initializer_range": 0.02,
            "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "pad_token_id": 0,
            "position_embedding_type": "absolute", "dtype": "float32"}


def tensor_shapes(config):
    """Every BertModel parameter name and shape ([out, in] for Linear weights)."""
    h, i = config["hidden_size"], config["intermediate_size"]
    shapes = {"embeddings.word_embeddings.weight": (config["vocab_size"], h),
              "embeddings.position_embeddings.weight": (config["max_position_embeddings"], h),
              "embeddings.token_type_embeddings.weight": (config["type_vocab_size"], h),
              "embeddings.LayerNorm.weight": (h,), "embeddings.LayerNorm.bias": (h,)}
    linears = {"attention.self.query": (h, h), "attention.self.key": (h, h),
               "attention.self.value": (h, h), "attention.output.dense": (h, h),
               "intermediate.dense": (i, h), "output.dense": (h, i)}
    for layer in range(config["num_hidden_layers"]):
        prefix = f"encoder.layer.{layer}."
        for name, shape in linears.items():
            shapes[prefix + name + ".weight"] = shape
            shapes[prefix + name + ".bias"] = shape[:1]
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes[f"{prefix}{norm}.weight"] = (h,)
            shapes[f"{prefix}{norm}.bias"] = (h,)
    shapes["pooler.dense.weight"], shapes["pooler.dense.bias"] = (h, h), (h,)
    return shapes


def random_tensors(config, seed):
    """Draw every tensor, in sorted name order, from one seeded generator."""
    rng = np.random.default_rng(seed)
    tensors = {}
    for name, shape in sorted(tensor_shapes(config).items()):
        values = rng.standard_normal(shape, dtype=np.float32)
        if name.endswith("LayerNorm.weight"):
            values = 1 + np.float32(0.05) * values
        else:
            values *= np.float32(0.02)
        tensors[name] = values
    return tensors


def main(argv=None):
    """Parse arguments and write the checkpoint."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="base")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="directory to create or overwrite")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    config = make_config(args.size)
    tensors = random_tensors(config, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    save_file(tensors, str(args.out / "model.safetensors"), metadata={"format": "pt"})
    count = sum(t.size for t in tensors.values())
    print(f"wrote {args.out} ({args.size}, {count:,} parameters) in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
