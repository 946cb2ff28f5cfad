"""numpybert.value_and_grad, AdamW and save_pretrained against torch autograd and torch.optim.AdamW
(through numpybert/audit/torch_bridge.py `training_reference`): every gradient tensor, both objectives,
tiny random checkpoints and real MiniLM (with new heads, `numpybert.add_head`), float64 and float32."""

import numpy as np
import pytest

import numpybert
from numpybert.loading.checkpoint import TIED, canonical_name
from helpers import CHECKPOINTS

from numpybert.audit import torch_bridge  # needs the golden extra (in CI): a failure, not a skip

# float64: the target, 1e-8 of each tensor's largest entry; measured worst 3.5e-15 (tiny) and 6.9e-14
# (MiniLM): the two differ only in summation order. float32: measured worst 1.7e-6 (tiny) / 3.5e-5 (MiniLM);
# bound ~10x the measurement for machine and BLAS drift.
TOL = {"float64": 1e-8, "float32": {"tiny": 2e-5, "minilm": 3e-4}}
TINY = {"classification": CHECKPOINTS / "tiny-classifier", "pretraining": CHECKPOINTS / "tiny-pretraining"}


def batch_for(objective, vocab, B=3, T=9, seed=0, num_labels=3):
    """Right-padded ids with two segments, and labels (MLM: a third of the tokens, the rest -100)."""
    rng = np.random.default_rng(seed)
    lengths = np.linspace(T, max(T // 2, 2), B).astype(int)
    mask = (np.arange(T)[None] < lengths[:, None]).astype(np.int64)  # [B, T]
    batch = {"input_ids": rng.integers(1, vocab, (B, T)) * mask, "attention_mask": mask,
             "token_type_ids": (np.arange(T)[None] >= lengths[:, None] // 2).astype(np.int64) * mask}
    if objective == "classification":
        batch["labels"] = rng.integers(0, num_labels, B)
    else:
        # padded positions are predicted too (transformers allows it): the pad row of the table gets no gradient from
        # lookups (nn.Embedding padding_idx), yet one through the tied decoder
        batch["labels"] = np.where(rng.random((B, T)) < 0.35, rng.integers(0, vocab, (B, T)), -100)
        batch["labels"][0, 1] = 5  # at least one predicted token
        batch["next_sentence_label"] = rng.integers(0, 2, B)
    return batch


def canonical(names, config):
    """checkpoint or torch parameter name -> numpybert's (the tied decoder bias is cls.predictions.bias)."""
    out = {}
    for name, value in names.items():
        c = canonical_name(name, config)
        out[TIED.get(c, c) if c.endswith("decoder.bias") else c] = value
    return out


def compare(model_dir, objective, dtype, batch):
    """(worst relative error over the tensors, its name, numpybert's loss, torch's loss)."""
    model = numpybert.load(model_dir, dtype=dtype)
    loss, grads = numpybert.value_and_grad(model, objective, **batch)
    ref = torch_bridge.training_reference(str(model_dir), objective, dtype, batch)
    ours, theirs = canonical(grads, model.config), canonical(ref["grads"], model.config)
    assert sorted(ours) == sorted(theirs)  # every parameter torch trains, no more
    assert all(g.dtype == np.dtype(dtype) for g in grads.values()) and np.asarray(loss).dtype == np.dtype(dtype)
    # K's bias adds q·b_k to every score of a query's row, which softmax ignores: its gradient is 0 in exact
    # arithmetic and both sides hold rounding noise only. Checked as noise: both below 1e-6 of the largest
    # gradient entry anywhere (measured: 1e-16 float64, 2e-7 float32), instead of relative to itself.
    largest = max(np.abs(g).max() for g in theirs.values())
    zero = [n for n in theirs if n.endswith("attention.self.key.bias")]
    assert all(max(np.abs(ours[n]).max(), np.abs(theirs[n]).max()) <= 1e-6 * largest for n in zero)
    errors = {n: np.abs(ours[n] - theirs[n]).max() / np.abs(theirs[n]).max() for n in theirs if n not in zero}
    worst = max(errors, key=errors.get)
    print(f"{model_dir.name} {objective} {dtype}: loss {loss:.10g} (torch {ref['loss']:.10g}); "
          f"worst gradient {worst} {errors[worst]:.2e}")
    return errors[worst], worst, float(loss), ref["loss"]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("objective", ["classification", "pretraining"])
def test_tiny_gradients_match_torch(objective, dtype):
    model_dir = TINY[objective]
    worst, name, loss, torch_loss = compare(model_dir, objective, dtype, batch_for(objective, 99))
    assert worst <= (TOL[dtype] if dtype == "float64" else TOL[dtype]["tiny"]), name
    assert loss == pytest.approx(torch_loss, rel=1e-12 if dtype == "float64" else 1e-5)


@pytest.fixture(scope="module")
def minilm_heads(minilm_dir, tmp_path_factory):
    """Real MiniLM with new heads: a 2-label classifier, and MLM + NSP."""
    root = tmp_path_factory.mktemp("minilm-heads")
    return {objective: numpybert.add_head(minilm_dir, root / objective, objective, num_labels=2, seed=1)
            for objective in ("classification", "pretraining")}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("objective", ["classification", "pretraining"])
def test_minilm_gradients_match_torch(minilm_heads, objective, dtype):
    model = numpybert.load(minilm_heads[objective])
    batch = {**model.tokenize(["A man is playing a guitar.", "The new movie is awesome, I loved it"],
                              ["Someone plays music.", "Nobody liked the film."])}
    if objective == "classification":
        batch["labels"] = np.array([1, 0])
    else:
        rng = np.random.default_rng(0)
        batch["labels"] = np.where(rng.random(batch["input_ids"].shape) < 0.3, batch["input_ids"], -100)
        batch["labels"][:, 1] = batch["input_ids"][:, 1]
        batch["next_sentence_label"] = np.array([0, 1])
    worst, name, loss, torch_loss = compare(minilm_heads[objective], objective, dtype, batch)
    assert worst <= (TOL[dtype] if dtype == "float64" else TOL[dtype]["minilm"]), name
    assert loss == pytest.approx(torch_loss, rel=1e-12 if dtype == "float64" else 1e-5)


@pytest.mark.parametrize("objective", ["classification", "pretraining"])
def test_adamw_losses_match_torch(objective):
    """Six steps of AdamW (lr 1e-2, so every step moves the loss visibly): the loss before each step
    and after the last equal torch's within 1e-9 relative (float64; measured 2.7e-15 classification, 5.9e-16
    pretraining)."""
    batch = batch_for(objective, 99)
    model = numpybert.load(TINY[objective], dtype="float64")
    optimizer = numpybert.AdamW(model, lr=1e-2, weight_decay=0.1)
    losses = []
    for _ in range(6):
        loss, grads = numpybert.value_and_grad(model, objective, **batch)
        losses.append(float(loss))
        optimizer.step(grads)
    after = float(numpybert.value_and_grad(model, objective, **batch)[0])
    ref = torch_bridge.training_reference(str(TINY[objective]), objective, "float64", batch, steps=6, lr=1e-2,
                                          weight_decay=0.1)
    assert after < losses[0] * 0.9  # it learned: the check below compares moving numbers
    np.testing.assert_allclose(losses + [after], ref["losses"] + [ref["after"]], rtol=1e-9, atol=0)


def test_update_reaches_both_engines_and_transformers(tmp_path):
    """After AdamW steps on a fast-engine model (whose Q, K, V are views of one fused tensor), the fast
    engine, the textbook and transformers (loading the saved checkpoint) all compute with the new weights."""
    batch = batch_for("classification", 99)
    fast = numpybert.load(TINY["classification"], dtype="float64")
    reference = numpybert.load(TINY["classification"], dtype="float64", engine="reference")
    before = fast(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).pooler_output
    optimizers = [numpybert.AdamW(m, lr=1e-2) for m in (fast, reference)]
    for _ in range(3):
        _, grads = numpybert.value_and_grad(fast, "classification", **batch)
        for optimizer in optimizers:
            optimizer.step(grads)
    inputs = (batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    after_fast, after_reference = fast(*inputs).pooler_output, reference(*inputs).pooler_output
    assert np.abs(after_fast - before).max() > 1e-3  # the weights moved
    np.testing.assert_allclose(after_fast, after_reference, rtol=0, atol=1e-13)  # float64 engines: 1e-15 measured
    saved = tmp_path / "fine-tuned"
    numpybert.save_pretrained(fast, saved)
    golden = torch_bridge.live_reference(saved, {k: batch[k] for k in ("input_ids", "attention_mask",
                                                                       "token_type_ids")}, "float64")
    np.testing.assert_allclose(after_fast, golden.outputs["pooler_output"], rtol=0, atol=1e-12)
    logits = fast.engine.classifier_head(after_fast, fast.params["classifier"])
    np.testing.assert_allclose(logits, golden.outputs["logits"], rtol=0, atol=1e-12)
    reloaded = numpybert.load(saved, dtype="float64")
    np.testing.assert_array_equal(reloaded(*inputs).pooler_output, after_fast)


def test_regression_head_is_mse(tmp_path):
    """num_labels=1: transformers' regression (MSE on float labels)."""
    model_dir = numpybert.add_head(CHECKPOINTS / "tiny-bert", tmp_path / "reg", "classification", num_labels=1)
    batch = batch_for("classification", 99)
    batch["labels"] = np.array([0.5, -1.0, 2.0])
    worst, name, loss, torch_loss = compare(model_dir, "classification", "float64", batch)
    assert worst <= TOL["float64"], name
    assert loss == pytest.approx(torch_loss, rel=1e-12)


@pytest.mark.parametrize("change, message", [
    (dict(objective="regression"), "objective='regression'"),
    (dict(labels=np.array([0, 1, 3])), r"labels\[2\] = 3"),
    (dict(labels=np.array([0, 1])), "labels has shape"),
    (dict(labels=np.array([-100, -100, -100])), "every entry is -100"),
    (dict(labels=np.array([0.0, 1.0, 1.0])), "must be integers"),
    (dict(labels=None), "labels is required"),
])
def test_bad_input_is_one_clear_error(change, message):
    model = numpybert.load(TINY["classification"])
    kwargs = {**batch_for("classification", 99), "objective": "classification", **change}
    with pytest.raises(numpybert.NumpybertError, match=message):
        numpybert.value_and_grad(model, **kwargs)


def test_missing_heads_and_read_only_weights(minilm):
    with pytest.raises(numpybert.MissingWeightsError, match="classifier"):
        numpybert.value_and_grad(minilm, "classification", **minilm.tokenize(["hi"]), labels=np.array([0]))
    mapped = numpybert.load(TINY["classification"], mmap=True)
    with pytest.raises(numpybert.InputValueError, match="read-only"):
        numpybert.AdamW(mapped)


@pytest.mark.parametrize("dtype, ulps", [("float64", 24), ("float32", 8)])
def test_training_gelu_is_the_textbook_gelu(dtype, ulps):
    """The training forward's GELU (the fast engine's vectorised erf) against the textbook's (`math.erf` per
    element), from -12 to 12 and down to 1e-300 on both sides: within `ulps` units of max(1, |x|) (measured
    6.0 float64, 1.7 float32; bound 4x for other CPUs' libm), in x's dtype."""
    from numpybert import reference as R
    from numpybert.apps.train import gelu_vectorised_erf
    x = np.concatenate([np.linspace(-12, 12, 20001), np.geomspace(1e-300, 1, 500), -np.geomspace(1e-300, 1, 500),
                        [0.0]]).astype(dtype)
    ours, textbook = gelu_vectorised_erf(x), R.gelu(x)
    assert ours.dtype == np.dtype(dtype)
    error = np.abs(ours.astype(np.float64) - textbook) / (np.finfo(dtype).eps * np.maximum(1.0, np.abs(x)))
    assert error.max() <= ulps


@pytest.fixture
def two_threads():
    """set_threads(2) for one test, one thread again after it."""
    numpybert.set_threads(2)
    yield
    numpybert.set_threads(1)


@pytest.mark.parametrize("objective", ["classification", "pretraining"])
def test_sharded_batch_matches_torch(objective, two_threads, monkeypatch):
    """Under set_threads(2) a batch of 8×64 (512 token rows) runs as two shards of 4 sequences on two threads
    (each loss a mean over the whole batch's labelled rows, the second shard's MLM labels all but one -100):
    their summed gradients equal torch autograd's within 1e-8 (float64; measured as the unsharded ones)."""
    from numpybert.apps import train
    calls = []
    shard = train._shard_value_and_grad
    monkeypatch.setattr(train, "_shard_value_and_grad", lambda *args: calls.append(len(args[2][0])) or shard(*args))
    batch = batch_for(objective, 99, B=8, T=64)
    if objective == "pretraining":
        batch["labels"][4:] = -100
        batch["labels"][6, 3] = 7
    worst, name, loss, torch_loss = compare(TINY[objective], objective, "float64", batch)
    assert calls == [4, 4]
    assert worst <= TOL["float64"], name
    assert loss == pytest.approx(torch_loss, rel=1e-12)


def roberta_batch(B=3, T=9, seed=0, num_labels=3):
    """Right-padded with RoBERTa's pad id 1 (so padding takes position padding_idx), one segment, class labels."""
    rng = np.random.default_rng(seed)
    mask = (np.arange(T)[None] < np.linspace(T, T // 2, B).astype(int)[:, None]).astype(np.int64)  # [B, T]
    ids = np.where(mask == 1, rng.integers(3, 99, (B, T)), 1)
    ids[:, 0] = 0  # <s>
    return {"input_ids": ids, "attention_mask": mask, "labels": rng.integers(0, num_labels, B)}


FAMILY = {"tiny-roberta-classifier": roberta_batch(), "tiny-electra-classifier": batch_for("classification", 99),
          "tiny-distilbert-classifier": {k: v for k, v in batch_for("classification", 99).items() if k != "token_type_ids"}}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("model_dir", sorted(FAMILY))
def test_family_classifier_gradients_match_torch(model_dir, dtype):
    """RobertaForSequenceClassification (positions from the ids: the position table's padding row gets no
    gradient, as the word table's pad row; dense -> tanh -> out_proj on <s>, no pooler),
    ElectraForSequenceClassification (the embeddings projection 16 -> 32; dense -> gelu -> out_proj) and
    DistilBertForSequenceClassification (no token types; pre_classifier -> ReLU -> classifier): measured worst
    float64 2.3e-15, 2.1e-15, 4.7e-15; float32 1.1e-6, 1.7e-6, 2.8e-6 (the tiny bound above)."""
    worst, name, loss, torch_loss = compare(CHECKPOINTS / model_dir, "classification", dtype, FAMILY[model_dir])
    assert worst <= (TOL[dtype] if dtype == "float64" else TOL[dtype]["tiny"]), name
    assert loss == pytest.approx(torch_loss, rel=1e-12 if dtype == "float64" else 1e-5)


@pytest.mark.parametrize("model_dir, objective, message", [
    ("tiny-roberta-mlm", "pretraining", "'roberta' with objective 'pretraining': .*RoBERTa has no next-sentence"),
    ("tiny-electra-classifier", "pretraining", "'electra' with objective 'pretraining': .*ELECTRA has no next"),
    ("tiny-mpnet", "classification", "'mpnet' with objective 'classification': .* not MPNet's"),
])
def test_untrainable_family_members_are_refused_in_one_line(model_dir, objective, message):
    model = numpybert.load(CHECKPOINTS / model_dir)
    with pytest.raises(numpybert.InputValueError, match=message) as error:
        numpybert.value_and_grad(model, objective, **roberta_batch(), next_sentence_label=np.array([0, 1, 0]))
    assert "\n" not in str(error.value)
