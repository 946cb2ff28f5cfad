#!/usr/bin/env python
"""Is numpybert float32 at least as close to the float64 result as torch float32? Per hidden state.

    .venv/bin/python scripts/accuracy_oracle.py                                   # all-MiniLM-L6-v2
    .venv/bin/python scripts/accuracy_oracle.py --model /tmp/random-bert-base --padded 8x256

The oracle is numpybert in float64. For each input and each of the L+1 hidden states it prints the
distance of numpybert float32 (the fast engine, all positions computed, as `model(...)`) and of
torch eager float32 from it: max abs and mean abs at real tokens, max abs at all positions, and
marks the states where numpybert is further by max or by mean. Inputs: two sentences (random ids
for a model without a tokenizer), then right-padded batches of random ids with random lengths
(--padded B×T ...). Needs the `golden` extra (torch, transformers).
"""
import argparse

import numpy as np


def cases(model, padded):
    from numpybert.bench import random_ids
    from numpybert.errors import WeightsNotFoundError
    rng = np.random.default_rng(0)
    V = model.config.vocab_size
    out = {}
    try:
        out["two sentences"] = model.tokenize(["The quick brown fox jumps over the lazy dog.",
                                               "A second, different sentence for the audit."])
    except WeightsNotFoundError:  # no tokenizer files: random ids
        ids = random_ids(rng, V, (4, 32))
        out["4 × 32 random ids"] = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    for shape in padded:
        B, T = map(int, shape.split("x"))
        ids = random_ids(rng, V, (B, T))
        lengths = rng.integers(20, T, B)
        lengths[0] = T
        mask = (np.arange(T) < lengths[:, None]).astype(np.int64)
        out[f"{B} × {T}, lengths 20..{T} padded"] = {"input_ids": ids * mask, "attention_mask": mask}
    return {name: {k: np.asarray(v) for k, v in inp.items() if k in ("input_ids", "attention_mask")}
            for name, inp in out.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--padded", nargs="*", default=["8x256", "16x512"], help="padded batches, B×T")
    args = parser.parse_args()
    import torch
    import transformers

    import numpybert
    from numpybert.loading.locate import resolve_model
    torch.set_num_threads(2)
    model_dir = args.model or resolve_model()
    m32, m64 = numpybert.load(model_dir), numpybert.load(model_dir, dtype="float64")
    tm = transformers.BertModel.from_pretrained(model_dir, attn_implementation="eager").eval()
    for name, inp in cases(m32, args.padded).items():
        ours = m32(**inp, output_hidden_states=True).hidden_states
        oracle = m64(**inp, output_hidden_states=True).hidden_states
        with torch.inference_mode():
            theirs = tm(**{k: torch.from_numpy(v) for k, v in inp.items()}, output_hidden_states=True).hidden_states
        real = inp["attention_mask"].astype(bool)
        print(f"== {name}: distance from numpybert float64, numpybert fp32 / torch fp32")
        by_max = by_mean = 0
        for i, (a, t, o) in enumerate(zip(ours, theirs, oracle)):
            ea, et = np.abs(a - o), np.abs(t.numpy().astype(np.float64) - o)
            r = (ea[real].max(), et[real].max(), ea[real].mean(), et[real].mean(), ea.max(), et.max())
            by_max += r[0] <= r[1]
            by_mean += r[2] <= r[3]
            flag = "".join(["  <- further by max" if r[0] > r[1] else "", "  <- further by mean" if r[2] > r[3] else ""])
            print(f"  h{i:<2d} max real {r[0]:.2e} / {r[1]:.2e} | mean real {r[2]:.2e} / {r[3]:.2e} "
                  f"| max all {r[4]:.2e} / {r[5]:.2e}{flag}")
        print(f"  numpybert at least as close: {by_max} of {len(ours)} by max, {by_mean} of {len(ours)} by mean")


if __name__ == "__main__":
    main()
