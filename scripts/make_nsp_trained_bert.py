#!/usr/bin/env python
"""Write tests/checkpoints/tiny-nsp-trained: a tiny BERT whose pooler WAS trained, for next-sentence
prediction, so `numpybert explain` and docs/pooled-vs-cls.md can contrast it with all-MiniLM-L6-v2's
pooler (which never was).

The task is NSP-like on a toy language, built the way BERT built its negatives: sentence A comes
from a "document" about one of three topics (animals, food, weather); B follows A (label 0, as in
BERT) when it continues that document (same topic), and is a random sentence from other documents
(label 1, topics music and travel) otherwise. As with real NSP, the model can solve it from B's
topic alone (ALBERT's paper: NSP is mostly topic prediction). A first attempt whose negatives
shared A's topic pool (a purely relational task) did not leave chance level in 1000 steps, so it
was dropped. The whole model trains from scratch (encoder, pooler, NSP head) with the NSP loss
only, for a few hundred Adam steps; the masked-LM head is saved untrained.

Needs the golden extra (torch, transformers). The output is a BertForPreTraining checkpoint
(keys prefixed with `bert.`), a vocab.txt and a tokenizer_config.json, ~100 KB; it is committed.
Rerunning it rewrites the directory (bit-for-bit identity across torch versions is not promised).

Usage:
  .venv/bin/python scripts/make_nsp_trained_bert.py --out tests/checkpoints/tiny-nsp-trained
"""
import argparse
import json
import random
import shutil
from pathlib import Path

import torch
from transformers import BertConfig, BertForPreTraining

TOPICS = {
    "animals": ["cat", "dog", "horse", "cow", "sheep", "bird", "fish", "mouse", "fox", "goat"],
    "food": ["bread", "cheese", "apple", "soup", "rice", "cake", "milk", "egg", "pear", "tea"],
    "weather": ["rain", "snow", "wind", "sun", "storm", "cloud", "fog", "ice", "heat", "frost"],
    "music": ["song", "guitar", "piano", "drum", "band", "choir", "violin", "tune", "flute", "singer"],
    "travel": ["train", "bus", "ship", "plane", "road", "ticket", "station", "port", "car", "map"],
}
GLUE = ["the", "a", "is", "was", "and", "with", "near", "likes", "sees", "has", "."]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CONFIG = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
              max_position_embeddings=64, type_vocab_size=2, hidden_act="gelu", initializer_range=0.02,
              layer_norm_eps=1e-12, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
STEPS, BATCH, LR = 400, 64, 2e-3


def sentence(rng, topic) -> str:
    """A toy sentence: glue words and three words of one topic, e.g. "the cat sees a dog and fox ."."""
    w = rng.sample(TOPICS[topic], 3)
    return f"the {w[0]} {rng.choice(GLUE[2:4] + GLUE[7:10])} a {w[1]} and {w[2]} ."


DOCUMENTS = ["animals", "food", "weather"]  # topics of A (and of a B that follows it)
ELSEWHERE = ["music", "travel"]  # topics of the random sentences used as negatives


def example(rng):
    """(A, B, label): label 0 = B follows A (same document), 1 = B is a random sentence from elsewhere."""
    topic = rng.choice(DOCUMENTS)
    label = rng.randrange(2)
    other = topic if label == 0 else rng.choice(ELSEWHERE)
    return sentence(rng, topic), sentence(rng, other), label


def encode(vocab, a, b, length):
    """[CLS] A [SEP] B [SEP], padded on the right: ids, token types, mask."""
    ids = [vocab["[CLS]"]] + [vocab[w] for w in a.split()] + [vocab["[SEP]"]]
    types = [0] * len(ids)
    ids += [vocab[w] for w in b.split()] + [vocab["[SEP]"]]
    types += [1] * (len(ids) - len(types))
    mask = [1] * len(ids)
    pad = length - len(ids)
    return ids + [0] * pad, types + [0] * pad, mask + [0] * pad


def batch(rng, vocab, n, length=24):
    rows = [example(rng) for _ in range(n)]
    enc = [encode(vocab, a, b, length) for a, b, _ in rows]
    ids, types, mask = (torch.tensor([e[i] for e in enc]) for i in range(3))
    return ids, types, mask, torch.tensor([label for *_, label in rows])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    words = SPECIALS + GLUE + [w for t in sorted(TOPICS) for w in TOPICS[t]]
    vocab = {w: i for i, w in enumerate(words)}
    config = BertConfig(vocab_size=len(words), **CONFIG)
    model = BertForPreTraining(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    for step in range(STEPS + 1):
        ids, types, mask, labels = batch(rng, vocab, BATCH)
        logits = model(input_ids=ids, token_type_ids=types, attention_mask=mask).seq_relationship_logits
        loss = torch.nn.functional.cross_entropy(logits, labels)
        if step % 100 == 0:
            accuracy = (logits.argmax(-1) == labels).float().mean().item()
            print(f"step {step:4d}  NSP loss {loss.item():.4f}  batch accuracy {accuracy:.3f}")
        if step == STEPS:
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    model.save_pretrained(out)  # model.safetensors with `bert.` prefixes + config.json
    (out / "vocab.txt").write_text("\n".join(words) + "\n")
    (out / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}) + "\n")
    for extra in out.iterdir():
        if extra.name not in {"config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"}:
            extra.unlink()  # e.g. generation_config.json: not part of a BERT checkpoint
    print(f"wrote {out}: {sum(f.stat().st_size for f in out.iterdir())} bytes")


if __name__ == "__main__":
    main()
