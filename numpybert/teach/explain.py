"""The numbers behind `numpybert explain`: why pooled_output is not last_hidden_state[:, 0].

    import numpybert
    from numpybert.teach.explain import explain
    e = explain(numpybert.load("weights/all-MiniLM-L6-v2"), "A man is playing a guitar.")
    e.pooler_check.max_abs_diff, e.lesson.max_tanh_gap, e.lesson.conclusion

`explain(model, text, pair)` runs one input through the model (the public API: `model(...)` with
`record=True`) and then checks two steps of it *independently* of numpybert's model code: the
tensors are read from the checkpoint file with the `safetensors` library, and the arithmetic is
written out below in plain NumPy, in float64. A check can fail: `max_abs_diff` is compared with a
rounding bound, and a pooler perturbed by 1e-4 fails it (tests/teach/test_explain.py). Things that hold
by construction of numpybert's API (`default` is `pooled_output`, L + 1 hidden states) are
reported as facts of the API, not as evidence. Printing is the command's job (numpybert/cli/explain.py).
"""

import dataclasses
import glob
import inspect
import os

import numpy as np

from ..apps.st_config import sentence_transformers_pooling
from ..errors import MissingWeightsError, NumpybertError, WeightsError
from ..loading import keras
from ..loading.config import read_json_object
from ..loading.family import DEFAULT
from ..util import cosine

SATURATION = 0.99  # |tanh(z)| above this: the slope 1 - tanh² is < 0.02, the unit is "saturated"
NEARLY_LINEAR = 0.01  # max |tanh(z) - z| below this: tanh changes no value by more than 0.01
FLAT = 0.1  # mean slope of tanh at z below this (mean |z| above ~1.8): "near saturation"
TEXT_SHOWN = 300  # characters of TEXT (and PAIR) printed and put on the page: a 20,000-word text stays readable
TOKENS_SHOWN = 64  # tokens listed, and the attention maps' size on the page (past ~60 their labels overlap)
EMBEDDING_ULPS = 64  # the embedding check's tolerance in units of roundoff of its output (measured: 0.45)


@dataclasses.dataclass
class Check:
    """One step redone from the checkpoint file with plain NumPy (float64), against the model's output."""
    step: str  # what was recomputed, e.g. "pooled_output[0]"
    expression: str  # the NumPy expression used, as the learner would type it
    inputs: str  # where its tensors came from (file names, tensor names)
    max_abs_diff: float  # max |recomputed - model's output|
    tolerance: float  # the rounding bound the difference must stay under (see each check's comment)

    @property
    def agrees(self) -> bool:
        return self.max_abs_diff <= self.tolerance


@dataclasses.dataclass
class PoolerLesson:
    """What this checkpoint's pooler does to this input, in numbers."""
    z: np.ndarray  # [H] W·h_[CLS] + b, the model's own (out.trace["pooler.pre_tanh"])
    pooled: np.ndarray  # [H] tanh(z) = the model's pooler_output[0]
    z_min: float
    z_max: float
    max_tanh_gap: float  # max |tanh(z) - z|: how far the pooler is from the linear map W·h + b
    norm_cls: float  # |h_[CLS]|
    norm_z: float  # |z|
    norm_pooled: float  # |pooled_output|
    saturated: int  # dims with |tanh(z)| > SATURATION
    mean_slope: float  # mean of tanh'(z) = 1 - tanh²(z) over the dims: 1 is linear, near 0 is saturated
    cosine_vs_cls: float  # cos(pooled_output, h_[CLS])
    weight_std: float  # std of pooler.dense.weight
    initializer_range: float | None  # config.json's std of a freshly initialised weight (None if absent)
    weight_top_singular: float  # largest singular value of pooler.dense.weight
    random_edge: float  # 2·std·√H: the largest singular value of an H×H matrix of random N(0, std²) entries
    bias_max_abs: float  # max |pooler.dense.bias|; exactly 0: unchanged since its zero initialisation
    conclusion: list  # sentences drawn from the numbers above


@dataclasses.dataclass
class Explanation:
    """Everything `numpybert explain` reports for one text (or pair)."""
    text: str
    pair: str | None
    tokens: list  # WordPiece tokens, [CLS] and [SEP] included
    token_type_ids: list  # 0 for [CLS] A [SEP], 1 for B [SEP]
    num_layers: int  # L, from config.json
    num_heads: int  # N
    hidden_states: tuple  # L + 1 × [T, H] (this input's rows): embedding output, then each layer
    attentions: tuple  # L × [N, T, T] softmax probabilities
    h_cls: np.ndarray  # [H] last_hidden_state[0, 0]
    embedding_check: Check | None  # the [CLS] row of the embedding output, from the file
    pooler_check: Check | None  # pooled_output, from the file; None when the checkpoint has no pooler
    not_checked: str  # why a check could not be made (e.g. a bf16 file NumPy cannot read), else ""
    lesson: PoolerLesson | None  # None when the checkpoint has no pooler
    pooler_refusal: str  # the model's refusal message when it has no pooler, else ""
    nsp_is_next: float | None  # P(B follows A) from the checkpoint's NSP head, for a pair; else None
    sentence_pooling: str | None  # sentence-transformers pooling mode(s) as encode names them, e.g. "mean"
    model_type: str = DEFAULT  # config.json's: the family member
    instead_of_pooler: str = ""  # what its classifier reads instead of a pooler (the family registry's words)
    keras_preset: dict | None = None  # a keras-hub preset: its class, versions, GELU and TF Hub's four keys (keras_view)


GGUF_NOT_CHECKED = ("a GGUF file (llama.cpp): its tensors are checked by `numpybert audit --gguf FILE --model DIR` "
                    "against the original checkpoint, and it has no pooler to check")


def explain(model, text: str, pair: str | None = None) -> Explanation:
    """Run one text (or text pair), then check the embedding and pooler steps from the file."""
    batch = model.tokenize([text], None if pair is None else [pair], truncation=True)
    out = model(**batch, output_hidden_states=True, output_attentions=True, record=True)
    h_cls = out.last_hidden_state[0, 0]  # [B, T, H] -> [H]: the [CLS] row
    try:
        pooled = out.pooler_output[0]  # [B, H] -> [H]
        refusal = ""
    except MissingWeightsError as e:
        pooled, refusal = None, str(e)
    embedding_check = pooler_check = None
    not_checked = ""
    gguf = str(model.model_dir).endswith(".gguf")  # a llama.cpp file: no pooler, no safetensors to recheck
    try:
        if gguf:
            raise WeightsError(GGUF_NOT_CHECKED)
        file = CheckpointFile(model.model_dir, model.config)
        embedding_check = check_embedding_row(file, batch, out.hidden_states[0][0, 0], model)
        if pooled is not None:
            pooler_check = check_pooler(file, h_cls, pooled, model.dtype)
    except (WeightsError, TypeError, AttributeError) as e:  # bf16/f8 tensors NumPy cannot hold, no file
        not_checked = str(e) if gguf else f"{model.model_dir}: the tensors cannot be read with safetensors + NumPy ({e})"
    lesson = None
    if pooled is not None:
        lesson = pooler_lesson(model, h_cls, out.trace["pooler.pre_tanh"][0], pooled)
    return Explanation(
        text=text, pair=pair,
        tokens=model.tokenizer.convert_ids_to_tokens(batch["input_ids"][0]),
        token_type_ids=batch["token_type_ids"][0].tolist(),
        num_layers=model.config.num_hidden_layers, num_heads=model.config.num_attention_heads,
        hidden_states=tuple(h[0] for h in out.hidden_states), attentions=tuple(a[0] for a in out.attentions),
        h_cls=h_cls, embedding_check=embedding_check, pooler_check=pooler_check, not_checked=not_checked,
        lesson=lesson, pooler_refusal=refusal,
        nsp_is_next=_nsp_is_next(model, text, pair),
        sentence_pooling="+".join(model.sentence.settings.pooling if gguf else
                                  sentence_transformers_pooling(model.model_dir) or ()) or None,
        model_type=model.config.model_type, instead_of_pooler=model.config.family.instead_of_pooler,
        keras_preset=keras_view(model, out) if keras.is_preset(model.model_dir) else None,
    )


def keras_view(model, out) -> dict:
    """A keras-hub preset as a TF Hub user meets it: the preset's class and versions, its GELU, and TF Hub's four
    keys computed from it (`out.tfhub()`: keras-hub's BertBackbone returns sequence_output and pooled_output
    under those names; default and encoder_outputs are TF Hub's)."""
    config = keras.keras_config(model.model_dir)
    metadata = read_json_object(os.path.join(model.model_dir, "metadata.json"), "metadata.json", absent={})
    try:
        keys = out.tfhub()
    except MissingWeightsError:
        keys = {"sequence_output": out.last_hidden_state, "encoder_outputs": list(out.hidden_states[1:])}
    return {"class_name": config.get("class_name"), "keras_hub_version": metadata.get("keras_hub_version"),
            "hidden_act": model.config.hidden_act, "tfhub": keys}


# ----------------------------------------------------------------------------- independent checks

class CheckpointFile:
    """The checkpoint's tensors read with the `safetensors` library itself, not numpybert's loader.

    BertFor* checkpoints prefix names with `bert.`; old ones call LayerNorm's weight/bias gamma/beta."""

    def __init__(self, model_dir, config=None):
        from safetensors import safe_open
        from ..loading.checkpoint import canonical_name
        self.config = config
        self.arrays = None
        if keras.is_preset(model_dir):  # model.weights.h5 read with h5py, its variables under checkpoint names
            _, tensors, _ = keras.read_preset(model_dir)
            self.arrays = {name: array for name, (_, array, _) in tensors.items()}
            self.paths = [os.path.join(model_dir, keras.WEIGHTS_FILE)]
            self.where, self.family = {name: self.paths[0] for name in self.arrays}, {}
            return
        self.paths = sorted(glob.glob(os.path.join(os.fspath(model_dir or ""), "*.safetensors")))
        if not self.paths:
            raise WeightsError(f"{model_dir}: no .safetensors file to read the weights from")
        self.where = {}  # tensor name -> file path
        for path in self.paths:
            with safe_open(path, framework="np") as f:
                self.where.update({name: path for name in f.keys()})
        if config is not None and config.model_type != DEFAULT:  # the family's names (loading's map)
            self.family = {canonical_name(name, config): name for name in self.where}
        else:
            self.family = {}

    def name_of(self, name: str) -> str:
        """The name `name` has in the file (with `bert.` and/or gamma/beta, if that is how it is saved)."""
        legacy = name.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        for candidate in (name, "bert." + name, legacy, "bert." + legacy):
            if candidate in self.where:
                return candidate
        if name in self.family:
            return self.family[name]
        raise WeightsError(f"{', '.join(self.paths)}: no tensor {name}")

    def __getitem__(self, name: str) -> np.ndarray:
        from safetensors import safe_open
        saved = self.name_of(name)
        if self.arrays is not None:
            return self.arrays[saved].astype(np.float64)
        with safe_open(self.where[saved], framework="np") as f:
            return f.get_tensor(saved).astype(np.float64)

    def describe(self, names) -> str:
        files = sorted({os.path.basename(self.where[self.name_of(n)]) for n in names})
        return f"{', '.join(self.name_of(n) for n in names)} from {', '.join(files)}"


def check_pooler(file: CheckpointFile, h_cls, model_pooled, dtype) -> Check:
    """pooled_output = tanh(W · h_[CLS] + b), with W and b from the file, in float64."""
    W = file["pooler.dense.weight"]  # [H_out, H_in], torch's Linear layout
    b = file["pooler.dense.bias"]  # [H]
    h = h_cls.astype(np.float64)  # [H]: the model's [CLS] row is the input of this step
    pooled = np.tanh(W @ h + b)  # [H, H] @ [H] -> [H]
    # The model computes in `dtype` (unit roundoff u): a dot product of H terms plus a bias is off by at
    # most (H + 1)·u·Σ|W_ij·h_j| + |b_i|·u (Higham, Accuracy and Stability, §3.1); tanh has slope ≤ 1
    # and rounds once more (u). The tolerance is that bound, per dimension, at its largest.
    u = np.finfo(dtype).eps / 2
    bound = (W.shape[1] + 1) * u * (np.abs(W) @ np.abs(h) + np.abs(b)) + u  # [H]
    diff = np.abs(pooled - model_pooled)
    return Check(step="pooled_output[0]", expression="np.tanh(W @ h_cls + b)",
                 inputs=file.describe(["pooler.dense.weight", "pooler.dense.bias"]) + "; h_cls = the model's "
                        "last_hidden_state[0, 0]",
                 max_abs_diff=float(diff.max()), tolerance=float(bound.max()))


def check_embedding_row(file: CheckpointFile, batch, model_row, model) -> Check:
    """hidden_states[0][0, 0] = LayerNorm(word[id] + position[0] + token_type[type]), from the file."""
    token, kind = int(batch["input_ids"][0, 0]), int(batch["token_type_ids"][0, 0])
    config = model.config
    position = 0 if config.padding_idx is None else config.padding_idx + 1  # RoBERTa counts from padding_idx + 1
    names = ["embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
             "embeddings.token_type_embeddings.weight", "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias"]
    x = (file["embeddings.word_embeddings.weight"][token]  # [V, H] -> [H]: the [CLS] token's row
         + file["embeddings.position_embeddings.weight"][position])  # its position
    if config.type_vocab_size:  # DistilBERT has no segments
        x = x + file["embeddings.token_type_embeddings.weight"][kind]  # segment A
    else:
        names.remove("embeddings.token_type_embeddings.weight")
    mean, var = x.mean(), x.var()  # LayerNorm over the H values, biased variance as torch
    eps = config.layer_norm_eps
    g, beta = file["embeddings.LayerNorm.weight"], file["embeddings.LayerNorm.bias"]
    row = (x - mean) / np.sqrt(var + eps) * g + beta  # [H]
    if config.embedding_size is not None:  # ELECTRA: hidden_states[0] is after embeddings_project (E -> H)
        row = file["embeddings_project.weight"] @ row + file["embeddings_project.bias"]  # [H, E] @ [E] -> [H]
        names += ["embeddings_project.weight", "embeddings_project.bias"]
    # Tolerance: EMBEDDING_ULPS units of roundoff (of the model's dtype) at the scale of the output row.
    # A worst-case bound for LayerNorm in float32 is ~H·u·|g|·max|x|/std: 7e-4 on MiniLM's [CLS] row,
    # too loose to see a 1e-4 change; the measured difference is 1.7e-7 = 0.45·u·max|row|.
    u = np.finfo(model.dtype).eps / 2
    tolerance = EMBEDDING_ULPS * u * np.abs(row).max()
    return Check(step="hidden_states[0][0, 0] (the [CLS] row of the embedding output)",
                 expression=f"x = word[{token}] + position[{position}]"
                            + (f" + token_type[{kind}]; " if config.type_vocab_size else "; ")
                            + "(x - x.mean()) / np.sqrt(x.var() + eps) * g + beta"
                            + ("; W_project·row + b" if config.embedding_size is not None else ""),
                 inputs=file.describe(names), max_abs_diff=float(np.abs(row - model_row).max()),
                 tolerance=float(tolerance))


# ----------------------------------------------------------------------------- the lesson

def pooler_lesson(model, h_cls, z, pooled) -> PoolerLesson:
    """The pooler's effect on this input, and what the numbers say about it."""
    W = model.flat_params["pooler.dense.weight"].astype(np.float64)  # [H, H]
    b = model.flat_params["pooler.dense.bias"].astype(np.float64)  # [H]
    z64, pooled64, h64 = (np.asarray(a, np.float64) for a in (z, pooled, h_cls))
    std = float(W.std())
    lesson = PoolerLesson(
        z=z, pooled=pooled, z_min=float(z64.min()), z_max=float(z64.max()),
        max_tanh_gap=float(np.abs(np.tanh(z64) - z64).max()),
        norm_cls=float(np.linalg.norm(h64)), norm_z=float(np.linalg.norm(z64)),
        norm_pooled=float(np.linalg.norm(pooled64)),
        saturated=int((np.abs(pooled64) > SATURATION).sum()),
        mean_slope=float(np.mean(1.0 - np.tanh(z64) ** 2)), cosine_vs_cls=cosine(pooled64, h64),
        weight_std=std, initializer_range=initializer_range(model.model_dir),
        weight_top_singular=float(np.linalg.svd(W, compute_uv=False)[0]),
        random_edge=2 * std * np.sqrt(W.shape[0]), bias_max_abs=float(np.abs(b).max()), conclusion=[])
    lesson.conclusion = conclusion(lesson, len(h64))
    return lesson


def conclusion(p: PoolerLesson, H: int) -> list:
    """Sentences that follow from the numbers; nothing here is asserted without one of them."""
    if p.max_tanh_gap < NEARLY_LINEAR:
        shape = (f"Nearly linear: z stays within {p.z_min:+.3f} .. {p.z_max:+.3f}, where tanh(z) ≈ z (max "
                 f"|tanh z − z| = {p.max_tanh_gap:.1e}); on this input the pooler is, to that precision, the "
                 f"linear map W·h + b, which takes the norm from {p.norm_cls:.2f} to {p.norm_pooled:.2f}.")
    elif p.mean_slope < FLAT:
        shape = (f"Near saturation: z spans {p.z_min:+.2f} .. {p.z_max:+.2f} and the mean slope of tanh there is "
                 f"{p.mean_slope:.3f} (1 would be linear; {p.saturated} of {H} dims have |tanh z| > {SATURATION}): "
                 "pooled_output is close to a pattern of ±1, and small changes of h_[CLS] barely move it.")
    else:
        shape = (f"Non-linear: tanh bends z by up to {p.max_tanh_gap:.2f} (z spans {p.z_min:+.2f} .. "
                 f"{p.z_max:+.2f}; mean slope {p.mean_slope:.3f}, {p.saturated} of {H} dims with "
                 f"|tanh z| > {SATURATION}).")
    sentences = [shape]
    if p.bias_max_abs == 0.0:
        sentences.append(f"All {H} bias entries are exactly 0, the value transformers initialises a bias to: no "
                         "training step changed it since, so the pooler got no gradient in the training that "
                         "produced these weights.")
    else:
        sentences.append(f"The bias is not zero (max |b| = {p.bias_max_abs:.3g}): it is not the all-zero bias "
                         "transformers initialises, so the pooler has been changed since, by training presumably.")
    ratio = p.weight_top_singular / p.random_edge
    kind = ("like a random matrix" if ratio < 1.1 else "a structure a random matrix does not have")
    init = ("" if p.initializer_range is None else
            f" (config.json's initializer_range, the std of a fresh weight, is {p.initializer_range:g})")
    sentences.append(f"Weight std {p.weight_std:.4f}{init}; largest singular value {p.weight_top_singular:.3f} "
                     f"vs 2·std·√H = {p.random_edge:.3f} for random entries of that std: ratio {ratio:.2f}, "
                     f"{kind}.")
    return sentences


def _nsp_is_next(model, text, pair) -> float | None:
    """The task the pooler is trained for in pre-training: P(label 0 = "B follows A"), for a pair."""
    if pair is None:
        return None
    try:
        return float(model.next_sentence(text, pair)["is_next"])
    except MissingWeightsError:  # no NSP head (cls.seq_relationship.*) or no pooler
        return None


# ----------------------------------------------------------------------------- point at the code

# transformers' BertPooler, copied from the installed transformers (tests/teach/test_explain.py compares this
# copy with `inspect.getsourcelines(transformers.models.bert.modeling_bert.BertPooler)`).
TRANSFORMERS_POOLER = {
    "version": "5.23.0",
    "path": "transformers/models/bert/modeling_bert.py",
    "first_line": 451,
    "lines": [
        "class BertPooler(nn.Module):",
        "    def __init__(self, config):",
        "        super().__init__()",
        "        self.dense = nn.Linear(config.hidden_size, config.hidden_size)",
        "        self.activation = nn.Tanh()",
        "",
        "    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:",
        "        # We \"pool\" the model by simply taking the hidden state corresponding",
        "        # to the first token.",
        "        first_token_tensor = hidden_states[:, 0]",
        "        pooled_output = self.dense(first_token_tensor)",
        "        pooled_output = self.activation(pooled_output)",
        "        return pooled_output",
    ],
}


def reference_pooler_source():
    """(path relative to the package's parent, first line number, source lines) of numpybert.reference.pooler,
    the textbook version of the pooler; found at run time so the line numbers follow the file."""
    from .. import reference
    lines, first = inspect.getsourcelines(reference.pooler)
    path = inspect.getsourcefile(reference.pooler)
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(reference.__file__)))
    return os.path.relpath(path, package_root), first, [line.rstrip("\n") for line in lines]


# ----------------------------------------------------------------------------- small helpers

def initializer_range(model_dir) -> float | None:
    """config.json's initializer_range (the std transformers initialises weights with), or None."""
    path = os.path.join(os.fspath(model_dir or ""), "config.json")
    try:
        value = read_json_object(path, "config.json").get("initializer_range")
    except NumpybertError:
        return None
    return float(value) if isinstance(value, (int, float)) else None


def clipped(text: str, limit: int = TEXT_SHOWN) -> str:
    """repr(text), cut to its first `limit` characters with what was left out said."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... (the first {limit} of {len(text)} characters shown)"


def clipped_tokens(tokens: list, limit: int = TOKENS_SHOWN) -> tuple:
    """(the first `limit` tokens, a note saying how many were left out, or "")."""
    if len(tokens) <= limit:
        return list(tokens), ""
    return list(tokens[:limit]), f"... (the first {limit} of {len(tokens)} tokens shown)"
