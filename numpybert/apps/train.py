"""Training BERT with NumPy: `value_and_grad`, `AdamW`, `save_pretrained`.

The math is numpybert/reference_backward.py (the textbook's backward pass); this file checks the
inputs and labels, runs the textbook's forward with a record, picks the head and the loss the
objective names (transformers' semantics, dropout off), and names each gradient as the checkpoint
file names its tensor. `AdamW` is `torch.optim.AdamW`'s update, in place on the model, so both
engines compute with the new weights at once (the fast engine's fused Q|K|V tensor is what the
checkpoint names view, numpybert/engine/model.py `prepare_params`).

    loss, grads = numpybert.value_and_grad(model, "classification", **batch, labels=labels)
    optimizer = numpybert.AdamW(model, lr=2e-5)
    optimizer.step(grads)
    numpybert.save_pretrained(model, "fine-tuned/")   # transformers' from_pretrained loads it
"""

import math
import os
import shutil

import numpy as np

from .. import reference as R
from .. import reference_backward as RB
from ..engine.blocks import blocks, for_each_block, thread_count
from ..engine.model import erf
from ..engine.threads import choose_once
from ..errors import InputTypeError, InputValueError, MissingWeightsError, OutputError
from ..loading import family
from ..loading.checkpoint import TIED
from ..text.inputs import check_inputs

OBJECTIVES = {  # objective -> (the heads it needs, transformers' class, its label arguments)
    "classification": (("pooler", "classifier"), "BertForSequenceClassification", ("labels",)),
    "pretraining": (("pooler", "cls"), "BertForPreTraining", ("labels", "next_sentence_label")),
}


def flatten(tree, prefix=""):
    """The inverse of `numpybert.loading.checkpoint.nest`: nested dicts/lists -> {"a.0.b": array}."""
    items = tree.items() if isinstance(tree, dict) else enumerate(tree)
    flat = {}
    for key, value in items:
        name = f"{prefix}{key}"
        flat.update(flatten(value, name + ".") if isinstance(value, (dict, list)) else {name: value})
    return flat


def file_names(model) -> dict:
    """{numpybert's parameter name: the name the checkpoint file gives it} (`model.manifest.renamed`)."""
    return {new: old for old, new in model.manifest.renamed if not new.endswith("(tied)")}


def trainable(model) -> list:
    """numpybert's names of the parameters a step updates: all but the MLM decoder, tied to other tensors."""
    return [name for name in model.flat_params if name not in TIED]


def _labels(name, value, shape, num_classes, floats=False):
    """A label array of the given shape: ints in [0, num_classes) or -100 (ignored); floats for a regression."""
    if value is None:
        raise InputValueError(f"{name} is required for this objective")
    y = np.asarray(value)
    if y.shape != shape:
        raise InputValueError(f"{name} has shape {y.shape}, expected {shape}")
    if floats:
        if not np.issubdtype(y.dtype, np.number) or not np.isfinite(y).all():
            raise InputValueError(f"{name}: a regression (num_labels=1) needs finite numbers")
        return y
    if not np.issubdtype(y.dtype, np.integer):
        raise InputTypeError(f"{name} must be integers (class ids, -100 to ignore), got {y.dtype}")
    bad = np.argwhere(((y < 0) | (y >= num_classes)) & (y != -100))
    if len(bad):
        where = tuple(int(i) for i in bad[0])
        raise InputValueError(f"{name}{list(where)} = {y[where]}: expected 0..{num_classes - 1} or -100 (ignored)")
    if (y == -100).all():
        raise InputValueError(f"{name}: every entry is -100 (ignored); the loss would be 0/0")
    return y.astype(np.int64)


def objectives_of(member) -> tuple:
    """The objectives value_and_grad computes for a family member (family.py `trains`, `nsp`)."""
    return () if not member.trains else ("classification", "pretraining") if member.nsp else ("classification",)


WHY_NOT = {"pretraining": "it is BERT's MLM + next-sentence prediction, and {name} has no next-sentence head",
           None: "the backward companion follows BERT's, RoBERTa's, ELECTRA's and DistilBERT's differences "
                 "(positions from the ids, the embeddings projection, the first-token classifiers), not {name}'s"}


def _check_model(model, objective):
    if objective not in OBJECTIVES:
        raise InputValueError(f"objective={objective!r}: expected one of {tuple(OBJECTIVES)}")
    model_type = model.config.model_type
    member = family.get(model_type)
    if objective not in objectives_of(member):
        why = WHY_NOT["pretraining" if member.trains else None].format(name=member.name)
        raise InputValueError(f"{model.model_dir}: value_and_grad cannot train model_type {model_type!r} with "
                              f"objective {objective!r}: {why}")
    heads, arch, _ = OBJECTIVES[objective]
    heads = heads if member.classifier == "pooled" else ("classifier",)  # RoBERTa: no pooler
    missing = [h for h in heads if h not in model.params]
    if missing:
        raise MissingWeightsError(f"{model.model_dir}: objective {objective!r} ({arch}) needs the "
                                  f"{' and '.join(missing)} weights, which the checkpoint lacks")


def gelu_vectorised_erf(x):
    """`reference.gelu` (exact GELU, 0.5·x·(1 + erf(x/√2))) with the fast engine's vectorised erf
    (numpybert/engine/model.py: float64 within a few ulp of `math.erf`, float32 within 2e-7) in place of
    the textbook's one `math.erf` call per element, which cost 3 s of a MiniLM 16×128 step on its own."""
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


TRAINING_ACTIVATIONS = {**R.ACTIVATIONS, "gelu": gelu_vectorised_erf}  # the training forward's activations


def _forward(model, inputs, mask):
    """The textbook's forward (with the training GELU) and the record the backward reads."""
    ids, types, positions = inputs
    record = RB.Recorded()
    hidden_states, _, pooled = R.bert(ids, types, positions, mask, model.params, model.config, model.mask_value,
                                      record, activations=TRAINING_ACTIVATIONS)
    return hidden_states, pooled, record


def _classification_loss(logits, labels, count):
    """Cross-entropy on class ids; a one-label classifier is a regression (MSE), as transformers' problem_type."""
    if logits.shape[-1] > 1:
        return RB.cross_entropy(logits, labels, count=count)
    loss, dlogits = RB.mse(logits[:, 0], labels.astype(logits.dtype), count=count)
    return loss, dlogits[:, None]  # [B] -> [B, 1]


def _shard_value_and_grad(model, objective, inputs, mask, labels, next_sentence_label, counts):
    """(loss, nested grads) of some rows of the batch; each loss is a mean over `counts`, the batch's
    labelled rows, so the shards' losses and gradients add up to the whole batch's."""
    hidden_states, pooled, record = _forward(model, inputs, mask)
    params, config = model.params, model.config
    if objective == "classification" and family.get(config.model_type).classifier == "first-token":
        act = family.get(config.model_type).classifier_act
        logits = R.first_token_classifier(hidden_states[-1], **params["classifier"], act=act)  # [B, C]
        loss, dlogits = _classification_loss(logits, labels, counts[0])
        dlast, grads = RB.first_token_classifier_backward(dlogits, hidden_states[-1], **params["classifier"], act=act)
        grads.update(RB.bert_backward(dlast, None, inputs, hidden_states, pooled, params, config, record,
                                      position_padding_idx=config.padding_idx))
        return loss, grads
    if objective == "classification":
        logits = R.classifier_head(pooled, params["classifier"])  # [B, C]
        loss, dlogits = _classification_loss(logits, labels, counts[0])
        dpooled, grads = RB.classifier_head_backward(dlogits, pooled, params["classifier"])
        grads.update(RB.bert_backward(None, dpooled, inputs, hidden_states, pooled, params, config, record))
        return loss, grads
    cls, last = params["cls"], hidden_states[-1]
    mlm_logits = R.mlm_head(last, **cls["predictions"], act=config.hidden_act, eps=config.layer_norm_eps)  # [B, T, V]
    nsp_logits = R.nsp_head(pooled, cls["seq_relationship"])  # [B, 2]
    mlm_loss, dmlm = RB.cross_entropy(mlm_logits, labels, count=counts[0])
    nsp_loss, dnsp = RB.cross_entropy(nsp_logits, next_sentence_label, count=counts[1])
    dlast, mlm_grads, ddecoder = RB.mlm_head_backward(dmlm, last, **cls["predictions"], act=config.hidden_act,
                                                      eps=config.layer_norm_eps)
    dpooled, nsp_grads = RB.nsp_head_backward(dnsp, pooled, cls["seq_relationship"])
    grads = RB.bert_backward(dlast, dpooled, inputs, hidden_states, pooled, params, config, record)
    grads["cls"] = {"predictions": mlm_grads, **nsp_grads}
    grads["embeddings"]["word_embeddings"]["weight"] += ddecoder  # the tied decoder: one tensor, one gradient
    return mlm_loss + nsp_loss, grads


MIN_ROWS_PER_SHARD = 256  # token rows; fewer make a one-thread GEMM stream the weights for too little work


def _shards(B, T):
    """Slices of the batch, one per numpybert thread (`numpybert.set_threads`) when the batch is large."""
    n = min(thread_count(), B, max(1, B * T // MIN_ROWS_PER_SHARD))
    return blocks(B, -(-B // n))


def value_and_grad(model, objective, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                   labels=None, next_sentence_label=None):
    """(loss, grads) of one batch, as transformers computes them with dropout off (`model.eval()`).

    objective "classification" (BertForSequenceClassification): `labels` [B], class ids and a
    cross-entropy loss; a one-label classifier (num_labels=1) is a regression, float labels and MSE.
    objective "pretraining" (BertForPreTraining): `labels` [B, T] token ids to predict (-100: not
    predicted), `next_sentence_label` [B] (0: B follows A), loss = MLM + NSP cross-entropy.
    grads: {name in the checkpoint file: array in the model's dtype}, every parameter the loss reaches;
    the MLM decoder's gradient is in the word embeddings' (one tensor, as torch ties them).

    With set_threads(n > 1) a large batch is cut into n shards of sequences, each run on its own thread
    with BLAS on one thread (data parallelism: no threaded small GEMMs), their losses and gradients summed."""
    _check_model(model, objective)
    ids, mask, types, positions = check_inputs(model.config, input_ids, attention_mask, token_type_ids, position_ids)
    (B, T), config = ids.shape, model.config
    if objective == "classification":
        head = model.params["classifier"]
        C = len(head["out_proj"]["bias"] if "out_proj" in head else head["bias"])  # RoBERTa's, BERT's
        y, nsp = _labels("labels", labels, (B,), C, floats=C == 1), None
        counts = (B if C == 1 else int((y != -100).sum()),)
    else:
        y = _labels("labels", labels, (B, T), config.vocab_size)
        nsp = _labels("next_sentence_label", next_sentence_label, (B,), 2)
        counts = (int((y != -100).sum()), int((nsp != -100).sum()))
    choose_once(B * T)  # unless set_threads was called, a large batch picks the threads (as a forward does)
    shards = _shards(B, T)
    results = [None] * len(shards)

    def run(i, s):
        results[i] = _shard_value_and_grad(model, objective, (ids[s], types[s], positions[s]), mask[s], y[s],
                                           None if nsp is None else nsp[s], counts)
    for_each_block(run, list(enumerate(shards)), nbytes=1 << 30, blas=True)
    loss, grads = results[0][0], flatten(results[0][1])
    for shard_loss, shard_grads in results[1:]:
        loss = loss + shard_loss
        for name, g in flatten(shard_grads).items():
            grads[name] += g
    names = file_names(model)
    return loss, {names.get(name, name): g for name, g in grads.items()}


class AdamW:
    """torch.optim.AdamW (decoupled weight decay; amsgrad off) updating `model`'s parameters in place.

    step(grads): grads as `value_and_grad` returns them (the checkpoint's names; numpybert's also
    accepted). Every parameter decays, as torch's with `model.parameters()`; one given no gradient
    is left alone, as torch leaves a parameter whose .grad is None. The update, with t the step:
        p <- p·(1 - lr·weight_decay);  m <- β1·m + (1-β1)·g;  v <- β2·v + (1-β2)·g²
        p <- p - lr/(1-β1^t) · m / (√v / √(1-β2^t) + eps)"""

    def __init__(self, model, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        for name, value in (("lr", lr), ("eps", eps), ("weight_decay", weight_decay), ("betas[0]", betas[0]),
                            ("betas[1]", betas[1])):
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise InputValueError(f"AdamW {name}={value!r}: expected a finite number >= 0")
        if not all(b < 1 for b in betas):
            raise InputValueError(f"AdamW betas={betas!r}: each must be < 1")
        self.model, self.lr, self.betas, self.eps, self.weight_decay = model, lr, betas, eps, weight_decay
        self.names = {old: new for new, old in file_names(model).items()}  # the file's names -> numpybert's
        self.state, self.t = {}, 0
        for name in trainable(model):
            if not model.flat_params[name].flags.writeable:
                raise InputValueError(f"{model.model_dir}: parameter {name!r} is read-only (loaded with "
                                      "mmap=True?); load the model without mmap to train it")

    def step(self, grads):
        """One update of every parameter in `grads`, in place (both engines see it at once)."""
        params, (b1, b2) = self.model.flat_params, self.betas
        grads = {self.names.get(name, name): g for name, g in grads.items()}
        unknown = sorted(set(grads) - set(trainable(self.model)))
        if unknown:
            raise InputValueError(f"AdamW.step: {unknown[0]!r} is not a trainable parameter of {self.model.model_dir}")
        self.t += 1
        step_size, bias2_sqrt = self.lr / (1.0 - b1**self.t), math.sqrt(1.0 - b2**self.t)
        for name, g in grads.items():
            p = params[name]
            if g.shape != p.shape:
                raise InputValueError(f"AdamW.step: gradient {name!r} has shape {g.shape}, the parameter {p.shape}")
            if name not in self.state:  # torch's exp_avg and exp_avg_sq, zeros at the first step
                self.state[name] = (np.zeros_like(p), np.zeros_like(p))
            m, v = self.state[name]
            p *= 1.0 - self.lr * self.weight_decay
            m += (g - m) * (1.0 - b1)  # torch's lerp
            v *= b2
            v += (1.0 - b2) * g * g
            p -= step_size * m / (np.sqrt(v) / bias2_sqrt + self.eps)


def save_pretrained(model, save_directory):
    """Write the model's weights as `model.safetensors` under the checkpoint's own names (tied tensors
    once, as transformers saves them) in the model's dtype, and copy the model directory's other
    files (config.json, the tokenizer, sentence-transformers' settings): transformers' and numpybert's
    `from_pretrained` / `load` read the directory back."""
    from safetensors.numpy import save_file
    names = file_names(model)
    tensors = {names.get(name, name): np.ascontiguousarray(model.flat_params[name]) for name in trainable(model)}
    try:
        os.makedirs(save_directory, exist_ok=True)
        if model.model_dir and os.path.realpath(model.model_dir) != os.path.realpath(save_directory):
            shutil.copytree(model.model_dir, save_directory, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("*.safetensors", "model.safetensors.index.json"))
        save_file(tensors, os.path.join(save_directory, "model.safetensors"), metadata={"format": "pt"})
    except OSError as e:
        raise OutputError(f"{save_directory}: cannot save the model there ({e.strerror or e})") from None
    return os.path.join(save_directory, "model.safetensors")


def add_head(model_dir, save_directory, objective, num_labels=2, seed=0):
    """A copy of the checkpoint in `model_dir` with new, randomly initialised heads for `objective`, as
    transformers' `BertFor*.from_pretrained` makes them for a checkpoint without them (weights
    normal(0, initializer_range), biases 0, LayerNorm 1 and 0): a pooler if there is none, then a
    classifier of `num_labels` ("classification") or the MLM transform and NSP layer ("pretraining").
    config.json gets the class in `architectures` (and id2label). Returns save_directory."""
    import json
    from safetensors.numpy import load_file, save_file
    from ..loading.checkpoint import weight_files
    from ..loading.config import read_json_object
    files, _ = weight_files(os.fspath(model_dir))
    tensors = {k: v for f in files for k, v in load_file(f).items()}
    config = read_json_object(os.path.join(model_dir, "config.json"), "config.json")
    H, V, std = config["hidden_size"], config["vocab_size"], config.get("initializer_range", 0.02)
    prefix = "bert." if any(k.startswith("bert.") for k in tensors) else ""
    rng = np.random.default_rng(seed)
    new = {} if any(".pooler." in k or k.startswith("pooler.") for k in tensors) else {
        f"{prefix}pooler.dense.weight": rng.normal(0, std, (H, H)), f"{prefix}pooler.dense.bias": np.zeros(H)}
    if objective == "classification":
        new.update({"classifier.weight": rng.normal(0, std, (num_labels, H)), "classifier.bias": np.zeros(num_labels)})
        config["id2label"] = {str(i): f"LABEL_{i}" for i in range(num_labels)}
        config["label2id"] = {f"LABEL_{i}": i for i in range(num_labels)}
    else:
        new.update({"cls.predictions.transform.dense.weight": rng.normal(0, std, (H, H)),
                    "cls.predictions.transform.dense.bias": np.zeros(H), "cls.predictions.bias": np.zeros(V),
                    "cls.predictions.transform.LayerNorm.weight": np.ones(H),
                    "cls.predictions.transform.LayerNorm.bias": np.zeros(H),
                    "cls.seq_relationship.weight": rng.normal(0, std, (2, H)), "cls.seq_relationship.bias": np.zeros(2)})
    config["architectures"] = [OBJECTIVES[objective][1]]
    dtype = next(v.dtype for v in tensors.values() if v.dtype.kind == "f")
    tensors.update({k: v.astype(dtype) for k, v in new.items()})
    os.makedirs(save_directory, exist_ok=True)
    shutil.copytree(model_dir, save_directory, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("*.safetensors", "model.safetensors.index.json"))
    save_file(tensors, os.path.join(save_directory, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(save_directory, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    return save_directory


__all__ = ["value_and_grad", "AdamW", "save_pretrained", "add_head"]
