"""The user-facing model: `numpybert.load(dir)` and `model(input_ids, ...)`.

This file holds no math; it loads, checks inputs, runs the chosen engine's `bert` and packages
the outputs the way HuggingFace's `BertModel` (and TF Hub's BERT encoder) name them.
Two engines compute the same BertModel: "fast" (numpybert/engine/, the default) and
"reference" (numpybert/reference.py, the textbook and float64 oracle).
"""

import dataclasses
import functools
import os
from typing import Callable

import numpy as np

from . import apps  # what BERT is used for; this face (numpybert/apps/__init__.py) is api's one door into it
from . import reference as R
from .engine import model as M
from .engine.blocks import sharing
from .loading import hub, keras
from .loading.checkpoint import load_params, load_tensors, nest, release_pages
from .loading.config import BertConfig
from .errors import InputTypeError, InputValueError, MissingWeightsError, WeightsError, WeightsNotFoundError
from .text.inputs import check_inputs, check_inputs_embeds, check_masked_rows, warn_if_padding_and_no_attention_mask
from .engine.threads import choose_once

MASK_VALUES = ("finfo-min", "-10000", "-inf")
GELU_CONVENTIONS = {"erf": "gelu", "tanh": "gelu_new"}


@dataclasses.dataclass(frozen=True)
class Engine:
    """What BertModel asks of an implementation of the forward pass (`model.engine`).

    prepare(flat_params) -> flat_params, once at load (same names and values; the fast engine
        stacks Q, K and V into one [3H, H] tensor per layer, the names as views of it).
    bert(input_ids, token_type_ids, position_ids, attention_mask, params, config, mask_value, record,
         inputs_embeds=None, skip_padding=False, output_hidden_states=True, output_attentions=True)
        -> (hidden_states, attentions, pooled_output or None), as `numpybert.reference.bert`;
        `record` is a dict to fill with the intermediates under the audit's names, or None.
        The fast engine keeps only what is asked (hidden_states is [last_hidden_state] and
        attentions [] when not) and under skip_padding computes real tokens only (padded
        positions 0); the reference computes and returns everything (it is the textbook).
    mlm_head, nsp_head, classifier_head, first_token_classifier: the task heads, as in numpybert/reference.py.
    """
    name: str
    prepare: Callable
    bert: Callable
    mlm_head: Callable
    nsp_head: Callable
    classifier_head: Callable
    first_token_classifier: Callable


def choose_engine(name) -> Engine:
    """The engine called `name` ("fast" or "reference"); any other name is an InputValueError."""
    if not isinstance(name, str) or name not in ENGINES:
        raise InputValueError(f"engine={name!r}: expected one of {tuple(ENGINES)}")
    return ENGINES[name]


def _fast_bert(input_ids, token_type_ids, position_ids, attention_mask, params, config, mask_value, record,
               skip_padding=False, **kwargs):
    """numpybert/engine/ behind the interface: the record dict becomes its Trace, and one threading
    regime holds for the whole forward (numpybert/engine/blocks.py, threads.py)."""
    trace = M.NO_TRACE if record is None else M.Trace(store=record)
    rows = int(attention_mask.sum()) if skip_padding else attention_mask.size  # the token rows computed
    choose_once(rows)  # unless set_threads was called, the first large forward picks the threads
    with sharing(rows):
        return M.bert(input_ids, token_type_ids, position_ids, attention_mask, params, config,
                      mask_value=mask_value, trace=trace, skip_padding=skip_padding, **kwargs)


def _reference_bert(input_ids, token_type_ids, position_ids, attention_mask, params, config, mask_value, record,
                    inputs_embeds=None, skip_padding=False, output_hidden_states=True, output_attentions=True):
    """The textbook behind the interface: it computes every position and keeps every output."""
    return R.bert(input_ids, token_type_ids, position_ids, attention_mask, params, config, mask_value, record,
                  inputs_embeds=inputs_embeds)


ENGINES = {
    "fast": Engine("fast", M.prepare_params, _fast_bert, M.mlm_head, M.nsp_head, M.classifier_head,
                   M.first_token_classifier),
    "reference": Engine("reference", lambda flat_params: flat_params, _reference_bert, R.mlm_head, R.nsp_head,
                        R.classifier_head, R.first_token_classifier),
}


@dataclasses.dataclass
class BertOutput:
    """What `BertModel.__call__` returns, named as transformers names it.

    Also used as transformers' `ModelOutput`: `out["last_hidden_state"]`, `out[0]`, `out.keys()`,
    `out.to_tuple()`, `dict(out)`, and `last_hidden_state, pooler_output = out`, over the fields
    that are set, in transformers' order (`OUTPUT_FIELDS`). A checkpoint without a pooler has no
    pooler entry there (as transformers' `add_pooling_layer=False`); `out.pooler_output` and
    `out["pooler_output"]` raise a clear error instead of returning None.
    """
    last_hidden_state: np.ndarray  # [B, T, H]: the final layer, every token ("sequence_output")
    _pooler_output: np.ndarray | None  # [B, H]: tanh(W·h_[CLS] + b), or None when the checkpoint has no pooler
    hidden_states: tuple | None = None  # L+1 × [B, T, H]: the embedding output, then each layer's output
    attentions: tuple | None = None  # L × [B, N, T, T]: softmax probabilities (one per layer, so one fewer)
    trace: dict | None = None  # every recorded intermediate, in forward order (record=True); numpybert's own
    _encoder_outputs: object = ()  # L × [B, T, H] for tfhub(), or a function that computes them (see tfhub)
    _pooler_missing: str = ""

    OUTPUT_FIELDS = ("last_hidden_state", "pooler_output", "hidden_states", "attentions")  # transformers' order

    @property
    def pooler_output(self) -> np.ndarray:
        if self._pooler_output is None:
            raise MissingWeightsError(self._pooler_missing)
        return self._pooler_output

    # -- transformers' ModelOutput conventions ---------------------------------------------------
    def keys(self) -> tuple:
        """The transformers fields that are set (not None), in transformers' order."""
        stored = {k: self._pooler_output if k == "pooler_output" else getattr(self, k) for k in self.OUTPUT_FIELDS}
        return tuple(k for k in self.OUTPUT_FIELDS if stored[k] is not None)

    def values(self) -> tuple:
        return self.to_tuple()

    def items(self) -> tuple:
        return tuple(zip(self.keys(), self.to_tuple()))

    def to_tuple(self) -> tuple:
        """The set fields' values, as transformers' `ModelOutput.to_tuple()` (and return_dict=False)."""
        return tuple(getattr(self, k) for k in self.keys())

    def __getitem__(self, key):
        if isinstance(key, str):
            if key == "pooler_output" or key in self.keys():
                return getattr(self, key)
            raise KeyError(f"{key!r}: this output has {list(self.keys())}")
        return self.to_tuple()[key]  # an int or a slice, as transformers

    def __contains__(self, key) -> bool:
        return key in self.keys()

    def __iter__(self):
        """Unpacking gives the values: `last_hidden_state, pooler_output = model(**batch)`.
        (transformers' ModelOutput is an OrderedDict, so iterating it gives the keys; see README.)"""
        return iter(self.to_tuple())

    def __len__(self) -> int:
        return len(self.keys())

    def tfhub(self) -> dict:
        """TF Hub's BERT encoder keys. `default` IS `pooled_output` (the same array);
        `encoder_outputs` are the L layer outputs without the embedding output, so
        `encoder_outputs[-1]` is `sequence_output` (HF's hidden_states has L+1 entries).
        The forward keeps the layer outputs only when asked (output_hidden_states=True); without
        them, tfhub() runs the forward again on the same inputs to get them (memory stays bounded
        by what the caller asked for; ask for hidden states to avoid the second forward)."""
        pooled = self.pooler_output
        encoder_outputs = self._encoder_outputs() if callable(self._encoder_outputs) else self._encoder_outputs
        return {"sequence_output": self.last_hidden_state, "pooled_output": pooled, "default": pooled,
                "encoder_outputs": list(encoder_outputs)}


class BertModel:
    """A loaded BERT: parameters, config, and the conventions the math runs under."""

    def __init__(self, params, config: BertConfig, manifest, dtype=np.float32, mask_value="finfo-min",
                 model_dir=None, engine="fast"):
        if mask_value not in MASK_VALUES:
            raise InputValueError(f"mask_value={mask_value!r}: expected one of {MASK_VALUES}")
        self.engine = choose_engine(engine)  # computes the forward pass and the task heads
        # {checkpoint name: array}, for auditors to diff against the file (the fast engine stacks Q|K|V
        # into one [3H, H] tensor per layer; the names are views of it: same values)
        self.flat_params = self.engine.prepare(params)
        self.params = nest(self.flat_params)
        self.config = config
        self.manifest = manifest
        self.dtype = np.dtype(dtype)
        self.mask_value = mask_value
        self.model_dir = model_dir

    def __repr__(self):
        return (f"BertModel({self.model_dir!r}, dtype={self.dtype.name}, engine={self.engine.name}; "
                f"{self.config.summary()})")

    @property
    def has_pooler(self) -> bool:
        return "pooler" in self.params

    def with_conventions(self, mask_value=None, gelu=None, eps=None) -> "BertModel":
        """The same weights under another convention, to reproduce why other BERTs disagree:
        mask_value "finfo-min" | "-10000" | "-inf", gelu "erf" | "tanh", eps a LayerNorm epsilon."""
        changes = {}
        if gelu is not None:
            if gelu not in GELU_CONVENTIONS:
                raise InputValueError(f"gelu={gelu!r}: expected one of {tuple(GELU_CONVENTIONS)}")
            changes["hidden_act"] = GELU_CONVENTIONS[gelu]
        if eps is not None:
            changes["layer_norm_eps"] = float(eps)
        config = dataclasses.replace(self.config, **changes)
        return BertModel(self.flat_params, config, self.manifest, self.dtype,
                         mask_value or self.mask_value, self.model_dir, self.engine.name)

    def __call__(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                 inputs_embeds=None, output_hidden_states=False, output_attentions=False, record=False,
                 input_word_ids=None, input_mask=None, input_type_ids=None, skip_padding=False) -> BertOutput:
        """Run the encoder, as transformers' `BertModel.forward`.

        input_ids [B, T] ints, or inputs_embeds [B, T, H] floats used instead of the word embeddings
        (position and token-type embeddings are still added). attention_mask: 0/1 as bool, int or
        float. Also accepts TF Hub's preprocessor keys (input_word_ids, input_mask, input_type_ids).
        `record=True` fills `out.trace` with every intermediate.
        skip_padding=False (default): every position, padded ones included, gets HuggingFace's
        value. skip_padding=True: only real tokens (mask 1) are computed, each sequence attending
        over its own real tokens: the same values there, less work on padded batches; padded
        positions are 0 in every output (and pooler_output is tanh(bias) for a sequence whose
        first position is padding). `encode` / `embed` use it. (The reference engine computes
        every position either way.)"""
        input_ids, attention_mask, token_type_ids = _tfhub_aliases(
            input_ids, attention_mask, token_type_ids, input_word_ids, input_mask, input_type_ids, inputs_embeds)
        embeds = None if inputs_embeds is None else check_inputs_embeds(self.config, inputs_embeds, self.dtype)
        ids, mask, types, positions = check_inputs(self.config, input_ids, attention_mask, token_type_ids,
                                                   position_ids, embeds)
        if attention_mask is None and ids is not None:
            warn_if_padding_and_no_attention_mask(ids, self.config.pad_token_id)
        check_masked_rows(mask, self.mask_value)
        trace = {} if record else None
        hidden_states, attentions, pooled = self.engine.bert(ids, types, positions, mask, self.params, self.config,
                                                             self.mask_value, trace, inputs_embeds=embeds,
                                                             skip_padding=skip_padding,
                                                             output_hidden_states=output_hidden_states,
                                                             output_attentions=output_attentions)
        _check_finite(hidden_states, self.model_dir, None if output_hidden_states else functools.partial(
            self._encoder_outputs, ids, mask, types, positions, skip_padding, embeds))
        return BertOutput(
            last_hidden_state=hidden_states[-1],
            _pooler_output=pooled,
            hidden_states=tuple(hidden_states) if output_hidden_states else None,
            attentions=tuple(attentions) if output_attentions else None,
            trace=trace,
            _encoder_outputs=tuple(hidden_states[1:]) if output_hidden_states else
            functools.partial(self._encoder_outputs, ids, mask, types, positions, skip_padding, embeds),
            _pooler_missing=_pooler_missing(self.model_dir, self.config.family),
        )

    def _encoder_outputs(self, ids, mask, types, positions, skip_padding, embeds=None):
        """The L layer outputs, for `BertOutput.tfhub()` of a forward that did not keep them."""
        return self(ids, mask, types, positions, inputs_embeds=embeds, output_hidden_states=True,
                    skip_padding=skip_padding).hidden_states[1:]

    # -- text in -------------------------------------------------------------------------------
    @functools.cached_property
    def tokenizer(self):
        """The model directory's tokenizer (`numpybert.text.tokenizer.BertTokenizer`), read on first use."""
        from .text.tokenizer import BertTokenizer
        return BertTokenizer.from_dir(self.model_dir, self.config.max_length)

    def tokenize(self, texts, text_pairs=None, **kwargs) -> dict:
        """Texts -> int arrays ready for `model(**batch)`; see `BertTokenizer.__call__`."""
        return self.tokenizer(texts, text_pairs, **kwargs)

    # -- what BERT is used for (numpybert/apps/): sentence embeddings and task heads ----------------
    @functools.cached_property
    def sentence(self):
        """The sentence-transformers side of this model (`numpybert.apps.encode.SentenceEncoder`): its
        settings (modules.json, Pooling, sentence_bert_config.json, prompts, ...) are read once, here,
        on first use; `encode`, `similarity`, `max_seq_length`, ... below hand over to it."""
        return apps.SentenceEncoder(self)

    def encode(self, sentences, prompt_name=None, prompt=None, batch_size=32, show_progress_bar=None,
               output_value="sentence_embedding", precision="float32", convert_to_numpy=True,
               convert_to_tensor=False, device=None, normalize_embeddings=False, truncate_dim=None,
               *, pooling=None, normalize=None, max_seq_length=None, window=None, long="truncate", stride=None,
               max_batch_tokens=None):
        """Sentence embeddings [N, D], as `SentenceTransformer.encode` (same arguments, same meaning);
        numpybert's keyword-only additions: `numpybert.apps.encode.SentenceEncoder.encode`."""
        return self.sentence.encode(sentences, prompt_name, prompt, batch_size, show_progress_bar, output_value,
                                    precision, convert_to_numpy, convert_to_tensor, device, normalize_embeddings,
                                    truncate_dim, pooling=pooling, normalize=normalize, max_seq_length=max_seq_length,
                                    window=window, long=long, stride=stride, max_batch_tokens=max_batch_tokens)

    @property
    def max_seq_length(self) -> int:
        """Tokens per text in `encode` ([CLS]/[SEP] included); settable, as SentenceTransformer's."""
        return self.sentence.max_seq_length

    @max_seq_length.setter
    def max_seq_length(self, value):
        self.sentence.max_seq_length = value

    @property
    def similarity_fn_name(self) -> str:
        """"cosine" | "dot" | "euclidean" | "manhattan": the model's (config_sentence_transformers.json,
        cosine by default), settable, as SentenceTransformer's."""
        return self.sentence.similarity_fn_name

    @similarity_fn_name.setter
    def similarity_fn_name(self, value):
        self.sentence.similarity_fn_name = value

    def similarity(self, embeddings1, embeddings2) -> np.ndarray:
        """Scores [N, M] between all embeddings, with `similarity_fn_name`, as SentenceTransformer.similarity."""
        return self.sentence.similarity(embeddings1, embeddings2)

    def similarity_pairwise(self, embeddings1, embeddings2) -> np.ndarray:
        """Scores [N] between embeddings1[i] and embeddings2[i], as SentenceTransformer.similarity_pairwise."""
        return self.sentence.similarity_pairwise(embeddings1, embeddings2)

    def get_sentence_embedding_dimension(self) -> int:
        """D of `encode`'s vectors: hidden_size times the number of pooling modes."""
        return self.sentence.dimension

    get_embedding_dimension = get_sentence_embedding_dimension  # sentence-transformers 6's newer name

    def fill_mask(self, text, top_k=5) -> list:
        """Top-k tokens for each [MASK] (masked-LM head); see `numpybert.apps.heads.fill_mask`."""
        return apps.fill_mask(self, text, top_k)

    def next_sentence(self, text_a, text_b) -> dict:
        """P(text_b follows text_a) (next-sentence head); see `numpybert.apps.heads.next_sentence`."""
        return apps.next_sentence(self, text_a, text_b)

    def classify(self, texts, text_pairs=None, **kwargs) -> list:
        """Label probabilities (classifier head); see `numpybert.apps.heads.classify`."""
        return apps.classify(self, texts, text_pairs, **kwargs)


GGUF_NO_POOLER = ("{path}: a GGUF has no pooler, so there is no pooled_output: llama.cpp's converter drops "
                  "pooler.dense.* (\"we are only using BERT for embeddings\"). Use last_hidden_state, or "
                  "model.encode (the file's pooling_type).")


def _pooler_missing(model_dir, family) -> str:
    """The error for `out.pooler_output` when there is no pooler (the family registry's words
    for the members that have none; a GGUF file's own reason)."""
    if str(model_dir).endswith(".gguf"):
        return GGUF_NO_POOLER.format(path=model_dir)
    if not family.pooler:
        return family.no_pooler_message(model_dir)
    return (f"{model_dir}: the checkpoint has no pooler weights (pooler.dense.*), so there "
            "is no pooled_output. (transformers would fill in a random pooler; its load report lists "
            "pooler.dense.* as MISSING, \"newly initialized\".) "
            "Use last_hidden_state, e.g. its mean over real tokens, instead.")


def _check_finite(hidden_states, model_dir, rerun=None):
    """Finite weights can still overflow (values near 1e38): say where, never return NaN silently.
    Without the layer outputs (not asked for), `rerun()` runs the forward again keeping them."""
    if np.isfinite(hidden_states[-1]).all():
        return
    if rerun is not None:
        rerun()  # raises, naming the layer
    i = next(i for i, h in enumerate(hidden_states) if not np.isfinite(h).all())
    where = "the embedding output" if i == 0 else f"the output of layer {i - 1}"
    raise WeightsError(f"{model_dir}: the forward pass overflowed to NaN/Inf in {where}; the weights are finite "
                       "but too large for this dtype (corrupt checkpoint?)")


def _tfhub_aliases(input_ids, attention_mask, token_type_ids, input_word_ids, input_mask, input_type_ids,
                   inputs_embeds=None):
    for hf, tf, hf_name, tf_name in ((input_ids, input_word_ids, "input_ids", "input_word_ids"),
                                     (attention_mask, input_mask, "attention_mask", "input_mask"),
                                     (token_type_ids, input_type_ids, "token_type_ids", "input_type_ids")):
        if hf is not None and tf is not None:
            raise InputValueError(f"pass {hf_name} or {tf_name}, not both")
    input_ids = input_ids if input_ids is not None else input_word_ids
    if input_ids is not None and inputs_embeds is not None:
        raise InputValueError("pass input_ids or inputs_embeds, not both (as transformers)")
    if input_ids is None and inputs_embeds is None:
        raise InputValueError("input_ids is required (or inputs_embeds, as transformers)")
    return (input_ids, attention_mask if attention_mask is not None else input_mask,
            token_type_ids if token_type_ids is not None else input_type_ids)


def _model_dtype(dtype) -> np.dtype:
    """float32 or float64, the only dtypes numpybert computes in."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved not in (np.float32, np.float64):
        raise InputValueError(f"dtype={dtype!r}: numpybert computes in float32 or float64")
    return resolved


def load(name_or_path=None, dtype="float32", mask_value="finfo-min", strict=True, mmap=False, engine="fast",
         revision=None) -> BertModel:
    """Load a BERT checkpoint: a local directory (config.json + model.safetensors or shards), or a
    Hub name (`org/name` or `name`) already in the local Hugging Face cache (`numpybert.loading.hub`;
    `revision` picks a branch, tag or commit there). Never downloads.
    No name_or_path: $NUMPYBERT_MODEL, else the default model `numpybert fetch` downloaded
    (numpybert/loading/locate.py says where).

    engine="fast" (default) runs numpybert/engine/; engine="reference" runs numpybert/reference.py,
    the plain textbook model: same API, same outputs within float noise (tests/engine/test_reference.py),
    as fast on one short text but ~4-5x slower on batches (mostly its per-element erf).

    mmap=False (default) copies the weights into memory numpybert owns: nothing done to the file
    later can change or crash the model. mmap=True maps the file instead: a faster, smaller start
    (memory holds only the pages the forward pass touches), but the file must not be truncated
    or rewritten while the model is in use (the process would die of SIGBUS)."""
    if name_or_path is None:
        from .loading.locate import resolve_model
        name_or_path = resolve_model(cli=False)
    dtype = _model_dtype(dtype)
    choose_engine(engine)  # a bad name fails before any file is read
    if isinstance(name_or_path, (str, os.PathLike)) and os.fspath(name_or_path).endswith(".gguf"):
        if revision is not None:
            raise InputValueError(f"revision={revision!r} applies to Hub names; {name_or_path} is a GGUF file")
        return _load_gguf(os.fspath(name_or_path), dtype, mask_value, strict, mmap, engine)
    model_dir = resolve_model_dir(name_or_path, revision)
    if keras.is_preset(model_dir):  # a keras-hub BertBackbone preset: model.weights.h5, mapped to BERT's names
        config, params, manifest = keras_load(model_dir, dtype, strict)
    else:
        config = BertConfig.from_json(os.path.join(model_dir, "config.json"))
        params, manifest = load_params(model_dir, config, dtype, strict=strict, mmap=mmap)
    model = BertModel(params, config, manifest, dtype, mask_value, model_dir, engine)
    if mmap:  # the pages the load read (dtype checks, the fast engine's preparation) go back to the page cache
        release_pages(model.flat_params.values())
    return model


def keras_load(model_dir, dtype, strict):
    """A keras-hub preset through the strict loader: (config, params, manifest listing every keras variable's
    checkpoint name and reshape)."""
    config_dict, tensors, notes = keras.read_preset(model_dir)
    config = BertConfig.from_dict(config_dict, source=os.path.join(model_dir, "config.json"))
    params, manifest = load_tensors(tensors, config, dtype, strict=strict, source=os.path.join(model_dir, keras.WEIGHTS_FILE),
                                    files=[keras.WEIGHTS_FILE])
    manifest.renamed = notes + manifest.renamed
    manifest.ignored += [note] if (note := keras.task_note(model_dir)) else []
    return config, params, manifest


def _load_gguf(path, dtype, mask_value, strict, mmap, engine) -> BertModel:
    """A llama.cpp GGUF file (numpybert/loading/gguf.py: one more name map into the strict loader),
    with the tokenizer its metadata states and its pooling_type as `encode`'s pooling (docs/gguf.md)."""
    from .loading import gguf
    from .text.gguf_vocab import gguf_tokenizer
    from .text.tokenizer import BertTokenizer
    config_dict, checkpoint, info = gguf.read_gguf(path, mmap)
    config = BertConfig.from_dict(config_dict, source=path)
    files, tensors = checkpoint
    params, manifest = load_tensors(tensors, config, dtype, strict=strict, source=path, mmap=mmap,
                                    files=[os.path.basename(f) for f in files])
    model = BertModel(params, config, gguf.note_types(manifest, info), dtype, mask_value, path, engine)
    tokenizer, special, model.tokenizer_notes = gguf_tokenizer(info["metadata"], path)
    model.tokenizer = BertTokenizer(tokenizer, special, config.max_length, f"{path} (GGUF metadata)")
    settings = apps.gguf_settings(info["pooling"], info["pooling_type"], config.max_length, path)
    model.sentence = apps.SentenceEncoder(model, settings)
    model.gguf = info
    return model


def resolve_model_dir(name_or_path, revision=None) -> str:
    """The model directory: name_or_path itself when it exists, else a Hub name from the local cache."""
    if not isinstance(name_or_path, (str, bytes, os.PathLike)):
        raise InputTypeError(f"name_or_path must be a model directory or a Hub name, got {type(name_or_path).__name__}")
    model_dir = os.fsdecode(name_or_path)
    if os.path.exists(model_dir) and not os.path.isdir(model_dir):
        raise WeightsError(f"{model_dir}: not a directory; pass the model directory (config.json + model.safetensors)")
    if os.path.isdir(model_dir):
        if revision is not None:
            raise InputValueError(f"revision={revision!r} applies to Hub names; {model_dir} is a local directory")
        return model_dir
    if hub.looks_like_hub_name(model_dir):
        return hub.resolve(model_dir, revision)
    from .loading.locate import not_found_hint
    raise WeightsNotFoundError(f"model directory not found: {model_dir}{not_found_hint(model_dir)}; numpybert reads local "
                               "directories and the local Hugging Face cache only (no hub downloads)")
