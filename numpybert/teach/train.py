"""The training lesson (`numpybert explain --train`, docs/training.md): how the pooler is trained.

Fine-tune a two-label classifier (BertForSequenceClassification: pooler -> classifier) on the small
labelled set numpybert ships (numpybert/teach/sentiment.py) for a few dozen AdamW steps, in float64,
with `numpybert.value_and_grad` (the textbook's backward pass), and measure:
- before: how well each sentence vector (pooled_output, the [CLS] row, the mean over real tokens)
  separates the two labels, and how alike the pooled vectors of unrelated sentences are;
- where the gradient enters: the loss reaches the encoder through the pooler, at the [CLS] row only;
- after: how far each vector moved, and how far each part of the weights moved;
- the check: the first step's gradients against torch autograd, when the golden extra is installed.
Every number is computed here; this module only uses numpybert's public API and the textbook.
"""

import dataclasses
import os
import tempfile

import numpy as np

from .. import reference_backward as RB
from .sentiment import SENTENCES

KINDS = ("pooled_output", "[CLS] row", "mean pooling")


@dataclasses.dataclass
class Lesson:
    steps: int
    lr: float
    n_sentences: int
    losses: list  # the loss before each step, then after the last
    accuracy: tuple  # training accuracy (before, after)
    separation: dict  # kind -> (before, after): mean cosine to same-label sentences minus to other-label ones
    alike: dict  # kind -> (before, after): mean cosine between all pairs of different sentences
    saturated: float  # fraction of pooled_output entries with |p| > 0.9 before training
    moved: dict  # kind -> mean over sentences of |after - before| / |before|
    weights_moved: dict  # part -> |W_after - W_before| / |W_before|
    entry: dict  # where the first step's gradient enters: norms along the path
    check: str  # the first step against torch autograd, or why it was not run


def sentence_vectors(model, batch) -> dict:
    """The three sentence vectors of every sentence, [S, H] each."""
    out = model(**batch)
    mask = batch["attention_mask"][:, :, None]  # [S, T] -> [S, T, 1]
    mean = (out.last_hidden_state * mask).sum(axis=1) / mask.sum(axis=1)  # [S, T, H] -> [S, H]
    return dict(zip(KINDS, (out.pooler_output, out.last_hidden_state[:, 0], mean)))


def _cosines(x):
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    return unit @ unit.T  # [S, H] @ [H, S] -> [S, S]


def separation(x, labels) -> float:
    """Mean cosine between sentences of the same label minus between sentences of different labels."""
    c, same, off = _cosines(x), labels[:, None] == labels[None], ~np.eye(len(labels), dtype=bool)
    return float(c[same & off].mean() - c[~same].mean())


def alike(x) -> float:
    """Mean cosine between two different sentences: near 1, every sentence gets nearly the same vector."""
    return float(_cosines(x)[~np.eye(len(x), dtype=bool)].mean())


def gradient_entry(model, batch, labels) -> dict:
    """Norms along the path the first step's gradient takes into the encoder (the textbook's backward):
    dlogits -> dpooled -> through tanh (its derivative 1 - p² shrinks saturated units) -> the last
    hidden state, where only the [CLS] row receives any."""
    out = model(**batch)
    pooled, last = out.pooler_output, out.last_hidden_state
    logits = pooled @ model.params["classifier"]["weight"].T + model.params["classifier"]["bias"]  # [S, 2]
    _, dlogits = RB.cross_entropy(logits, labels)
    dpooled, _ = RB.classifier_head_backward(dlogits, pooled, model.params["classifier"])  # [S, H]
    dlast, _ = RB.pooler_backward(dpooled, last, pooled, **model.params["pooler"])  # [S, T, H]
    return {"dlogits": float(np.linalg.norm(dlogits)), "dpooled": float(np.linalg.norm(dpooled)),
            "tanh_slope": float((1.0 - pooled * pooled).mean()),
            "dpre_tanh": float(np.linalg.norm(dpooled * (1.0 - pooled * pooled))),
            "dcls_row": float(np.linalg.norm(dlast[:, 0])), "dother_rows": float(np.linalg.norm(dlast[:, 1:]))}


def _parts(model) -> dict:
    p = model.flat_params
    layers = model.config.num_hidden_layers
    return {"classifier (new)": ["classifier.weight"], "pooler.dense": ["pooler.dense.weight"],
            f"encoder layer {layers - 1} (last)": [n for n in p if n.startswith(f"encoder.layer.{layers - 1}.")],
            "encoder layer 0 (first)": [n for n in p if n.startswith("encoder.layer.0.")],
            "word embeddings": ["embeddings.word_embeddings.weight"]}


def _check_against_torch(model_dir, batch, labels, loss, grads) -> str:
    try:
        from ..audit import torch_bridge
    except ImportError:
        return "not run: torch is not installed (the golden extra); tests/apps/test_train.py runs it"
    ref = torch_bridge.training_reference(str(model_dir), "classification", "float64", {**batch, "labels": labels})
    theirs = {n.removeprefix("bert."): g for n, g in ref["grads"].items()}
    ours = {n.removeprefix("bert."): g for n, g in grads.items()}
    # K's bias: softmax ignores a constant added to a row of scores, so its gradient is 0 and both hold noise
    rel = [np.abs(ours[n] - theirs[n]).max() / np.abs(theirs[n]).max() for n in theirs if not n.endswith("key.bias")]
    worst = max(rel)
    same = "the same" if sorted(ours) == sorted(theirs) else "NOT the same"
    return (f"torch autograd, step 1: loss {ref['loss']:.10f} (numpybert {float(loss):.10f}); {same} {len(theirs)} "
            f"gradient tensors, worst relative difference {'below 1e-11' if worst < 1e-11 else f'{worst:.1e}'} "
            "(the key biases aside: their gradient is 0, rounding noise on both sides)")


def _accuracy(model, pooled, labels) -> float:
    logits = pooled @ model.params["classifier"]["weight"].T + model.params["classifier"]["bias"]  # [S, 2]
    return float((logits.argmax(axis=1) == labels).mean())


def train_lesson(model_dir, steps=20, lr=5e-5, seed=0, check=True) -> Lesson:
    """Fine-tune a new 2-label classifier on `model_dir`'s encoder (a copy; nothing is written there)."""
    import numpybert
    with tempfile.TemporaryDirectory() as tmp:
        head_dir = numpybert.add_head(model_dir, os.path.join(tmp, "classifier"), "classification", seed=seed)
        model = numpybert.load(head_dir, dtype="float64")
        texts, labels = [t for t, _ in SENTENCES], np.array([y for _, y in SENTENCES])
        batch = model.tokenize(texts)
        before, weights_before = sentence_vectors(model, batch), {n: w.copy() for n, w in model.flat_params.items()}
        entry, accuracy = gradient_entry(model, batch, labels), [_accuracy(model, before["pooled_output"], labels)]
        optimizer, losses = numpybert.AdamW(model, lr=lr), []
        for step in range(steps):
            loss, grads = numpybert.value_and_grad(model, "classification", **batch, labels=labels)
            if step == 0:
                checked = _check_against_torch(head_dir, batch, labels, loss, grads) if check else "not run"
            losses.append(float(loss))
            optimizer.step(grads)
        losses.append(float(numpybert.value_and_grad(model, "classification", **batch, labels=labels)[0]))
        after = sentence_vectors(model, batch)
        accuracy.append(_accuracy(model, after["pooled_output"], labels))
        norm = np.linalg.norm
        moved = {k: float((norm(after[k] - before[k], axis=1) / norm(before[k], axis=1)).mean()) for k in KINDS}
        weights_moved = {part: norm([norm(model.flat_params[n] - weights_before[n]) for n in names])
                         / norm([norm(weights_before[n]) for n in names]) for part, names in _parts(model).items()}
        return Lesson(steps, lr, len(texts), losses, tuple(accuracy),
                      {k: (separation(before[k], labels), separation(after[k], labels)) for k in KINDS},
                      {k: (alike(before[k]), alike(after[k])) for k in KINDS},
                      float((np.abs(before["pooled_output"]) > 0.9).mean()), moved,
                      {k: float(v) for k, v in weights_moved.items()}, entry, checked)


def report(lesson: Lesson) -> list:
    """The lesson as lines of text."""
    e, lines = lesson.entry, []
    lines += [f"Fine-tuning a new 2-label classifier (pooler -> classifier) on {lesson.n_sentences} labelled sentences: "
              f"{lesson.steps} AdamW steps, lr {lesson.lr:g}, float64, the textbook's backward pass.",
              "", "1. Before training: how well does each sentence vector tell the labels apart?",
              "   (same-label cosine minus other-label cosine; and the mean cosine of two different sentences)"]
    lines += [f"   {k:<14} separation {lesson.separation[k][0]:+.4f}   alike {lesson.alike[k][0]:.4f}" for k in KINDS]
    lines += [f"   Untrained for this task, pooled_output maps unrelated sentences close together (mean cosine "
              f"{lesson.alike['pooled_output'][0]:.3f}, mean pooling {lesson.alike['mean pooling'][0]:.3f}; "
              f"{lesson.saturated:.0%} of its entries beyond ±0.9): the pooler re-maps the [CLS] row for the task "
              "it was trained on (next-sentence prediction), not to summarise a sentence.",
              "", "2. Where the first step's gradient enters (norms over the batch):",
              f"   dloss/dlogits {e['dlogits']:.4f} -> dloss/dpooled {e['dpooled']:.4f} -> x (1 - pooled²), mean "
              f"{e['tanh_slope']:.4f} -> {e['dpre_tanh']:.4f}",
              f"   -> the last hidden state: [CLS] row {e['dcls_row']:.4f}, every other row {e['dother_rows']:.4f}",
              "   The loss touches the encoder at the [CLS] row only; the other tokens learn through attention, "
              "in the layers below.",
              "", f"3. Training: loss {lesson.losses[0]:.4f} -> {lesson.losses[-1]:.4f}, accuracy "
              f"{lesson.accuracy[0]:.0%} -> {lesson.accuracy[1]:.0%}",
              "   how far each sentence vector moved (|after - before| / |before|, mean over sentences):"]
    lines += [f"   {k:<14} moved {lesson.moved[k]:.4f}   separation {lesson.separation[k][0]:+.4f} -> "
              f"{lesson.separation[k][1]:+.4f}" for k in KINDS]
    lines += ["   how far each part of the weights moved (|W_after - W_before| / |W_before|):"]
    lines += [f"   {part:<26} {v:.2e}" for part, v in lesson.weights_moved.items()]
    lines += ["", "4. The check against torch:", f"   {lesson.check}"]
    return lines
