#!/usr/bin/env python
"""fp32 error against a float64 oracle, per hidden state: numpybert fp32 vs torch eager fp32.

The oracle is numpybert in float64 (which matches torch float64 to ~1e-13). For every hidden
state (embedding output, then each layer) and the pooled output it prints the max abs error of
numpybert fp32 and of torch fp32 over real (unpadded) tokens.

    .venv/bin/python scripts/accuracy.py --model weights/all-MiniLM-L6-v2
    .venv/bin/python scripts/accuracy.py --model /tmp/random-bert-base --batch 2 --tokens 128
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import numpybert  # noqa: E402


def inputs(model_dir, batch, tokens):
    """Real sentences when the directory has a tokenizer (padded batch), else random ids."""
    if os.path.exists(os.path.join(model_dir, "tokenizer.json")) or os.path.exists(os.path.join(model_dir, "vocab.txt")):
        with open(os.path.join(os.path.dirname(__file__), "..", "tests", "data", "sentences.json"), encoding="utf-8") as f:
            data = json.load(f)
        texts = data["sentences"][:batch]
        return {k: np.asarray(v) for k, v in numpybert.load(model_dir).tokenize(texts).items()}
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, 20000, (batch, tokens))
    ids[:, 0] = 101
    return {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}


def torch_hidden(model_dir, batch):
    import torch
    import transformers
    torch.set_num_threads(2)
    model = transformers.BertModel.from_pretrained(model_dir, attn_implementation="eager").eval()
    with torch.inference_mode():
        out = model(**{k: torch.from_numpy(v) for k, v in batch.items()}, output_hidden_states=True)
    return [h.numpy() for h in out.hidden_states], out.pooler_output.numpy()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="weights/all-MiniLM-L6-v2")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--tokens", type=int, default=128, help="tokens per sequence (random ids only)")
    args = p.parse_args()
    batch = inputs(args.model, args.batch, args.tokens)
    real = batch["attention_mask"].astype(bool)
    oracle = numpybert.load(args.model, dtype="float64")(**batch, output_hidden_states=True)
    ours = numpybert.load(args.model)(**batch, output_hidden_states=True)
    theirs, theirs_pooled = torch_hidden(args.model, batch)
    print(f"{args.model}: {real.shape[0]} × {real.shape[1]} tokens ({real.sum()} real); max abs error vs float64\n")
    print("| hidden state | numpybert fp32 | torch fp32 | numpybert ≤ torch |\n|---|---|---|---|")
    worse = 0
    names = ["embeddings"] + [f"layer {i}" for i in range(len(oracle.hidden_states) - 1)] + ["pooler_output"]
    pairs = list(zip(oracle.hidden_states, ours.hidden_states, theirs)) + [(oracle.pooler_output, ours.pooler_output, theirs_pooled)]
    for name, (o, a, b) in zip(names, pairs):
        sel = real if o.ndim == 3 else slice(None)
        ea, eb = np.abs(a[sel] - o[sel]).max(), np.abs(b[sel] - o[sel]).max()
        worse += ea > eb
        print(f"| {name} | {ea:.2e} | {eb:.2e} | {'yes' if ea <= eb else 'NO'} |")
    print(f"\n{len(names) - worse} of {len(names)} outputs at or below torch's error")


if __name__ == "__main__":
    main()
