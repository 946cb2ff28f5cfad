"""Sentence embeddings: `model.encode(sentences)` -> [N, D], as `SentenceTransformer.encode`.

    import numpybert
    model = numpybert.load()                                   # the fetched all-MiniLM-L6-v2
    emb = model.encode(["A man is playing a guitar.", "Someone plays music."])  # float32 [2, 384]
    model.similarity(emb, emb)                                                 # cosine, [2, 2]
    model.encode([("How old are you?", "I am six.")])                          # a pair: one vector
    model.encode(texts, output_value="token_embeddings")    # one [tokens, H] per text, no padding
    model.encode(texts, precision="ubinary")                # packed bits, as quantize_embeddings

`SentenceEncoder` is the sentence-transformers side of a `BertModel` (`model.sentence`): its
settings are read once, when it is made (numpybert/apps/st_config.py), and `BertModel.encode`,
`similarity`, `max_seq_length`, ... hand over to it. The arguments are sentence-transformers'
(same names, same meaning); numpybert's own additions (pooling override, max_seq_length, window,
long) are keyword-only and named. The parts: st_config.py (the directory's settings),
pooling.py (the math), batching.py (windows and batches), long.py (texts over the limit).
"""

import warnings

import numpy as np

from ..errors import ConfigError, InputTypeError, InputValueError, install_hint
from ..text.inputs import check_text
from ..util import positive_int
from .batching import MAX_BATCH_TOKENS, WINDOW, embed_texts, in_windows, run_window, tokenize_texts
from .long import check_long
from .pooling import SIMILARITY_FN_NAMES, l2_normalize, quantize_embeddings, similarity, similarity_pairwise
from .st_config import check_max_seq_length, read_settings

OUTPUT_VALUES = ("sentence_embedding", "token_embeddings", None)  # sentence-transformers' output_value
PRECISIONS = ("float32", "int8", "uint8", "binary", "ubinary")  # sentence-transformers' ALLOWED_PRECISIONS


class SentenceEncoder:
    """What SentenceTransformer adds to a BERT: settings (read once, here), encode, similarity."""

    def __init__(self, model, settings=None):
        self.model = model
        self.settings = settings or read_settings(model.model_dir, model.config.max_length)
        self._similarity_fn_name = self.settings.similarity_fn_name

    @property
    def max_seq_length(self) -> int:
        return self.settings.max_seq_length

    @max_seq_length.setter
    def max_seq_length(self, value):
        value = check_max_seq_length(value, self.model.config.max_length)
        self.settings = self.settings.replace(max_seq_length=value)

    @property
    def similarity_fn_name(self) -> str:
        return self._similarity_fn_name

    @similarity_fn_name.setter
    def similarity_fn_name(self, value):
        if value not in SIMILARITY_FN_NAMES:
            raise InputValueError(f"similarity_fn_name={value!r}: expected one of {SIMILARITY_FN_NAMES}")
        self._similarity_fn_name = value

    @property
    def dimension(self) -> int:
        """D of `encode`'s vectors: hidden_size times the number of pooling modes."""
        return self.model.config.hidden_size * len(self.settings.pooling)

    def similarity(self, embeddings1, embeddings2) -> np.ndarray:
        return similarity(embeddings1, embeddings2, self._similarity_fn_name)

    def similarity_pairwise(self, embeddings1, embeddings2) -> np.ndarray:
        return similarity_pairwise(embeddings1, embeddings2, self._similarity_fn_name)

    def encode(self, sentences, prompt_name=None, prompt=None, batch_size: int = 32, show_progress_bar=None,
               output_value="sentence_embedding", precision="float32", convert_to_numpy: bool = True,
               convert_to_tensor: bool = False, device=None, normalize_embeddings: bool = False,
               truncate_dim=None, *, pooling=None, normalize=None, max_seq_length=None, window=None,
               long: str = "truncate", stride=None, max_batch_tokens=None):
        """`SentenceTransformer.encode`, same arguments and meaning, in NumPy.

        sentences: a str (-> one result), or a list of str, or a list of pairs (tuples/lists of two str:
            "[CLS] a [SEP] b [SEP]", one embedding per pair).
        prompt / prompt_name: text put before every sentence (the first of a pair); prompt_name picks one of
            the model's `prompts` (config_sentence_transformers.json); with neither, its default_prompt_name.
        output_value: "sentence_embedding" -> [N, D]; "token_embeddings" -> a list of [tokens_i, H] arrays
            (padding removed); None -> a list of dicts per text (input_ids, attention_mask, token_type_ids,
            token_embeddings, sentence_embedding), each without padding.
        precision: "float32" | "int8" | "uint8" | "binary" | "ubinary", as sentence-transformers'
            `quantize_embeddings` (int8/uint8 take per-dimension ranges from these embeddings, so they need
            at least two; binary packs the signs into D/8 bytes).
        normalize_embeddings: an EXTRA L2 normalization after the model's own modules (a model with a
            Normalize module, such as all-MiniLM-L6-v2, returns unit vectors either way).
        truncate_dim: keep the first truncate_dim dimensions (before normalize_embeddings, as sentence-transformers).
        convert_to_numpy=False: a list of 1-D arrays. convert_to_tensor=True: an error (numpybert has no torch).
        device: None or "cpu". show_progress_bar: a tqdm bar over texts (needs the `cli` extra).
        batch_size: sentence-transformers' meaning for full-length texts; numpybert skips padding, so a
            forward takes a token budget of batch_size × max_seq_length real tokens instead: batch_size
            texts of max_seq_length tokens, more of shorter ones (same answers; apps/batching.py).

        numpybert's own, keyword-only: pooling (override the model's pooling modes, POOLING_MODES),
        normalize (True/False: run or skip the model's Normalize module, as Embedder and `--normalize`;
        None, the default: the model's modules.json decides, as sentence-transformers, which has no such switch),
        max_seq_length (override model.max_seq_length for this call), window (texts sorted together),
        long: "truncate" (sentence-transformers' behaviour) cuts texts at max_seq_length; "chunk" embeds a
        longer text as the weighted mean of overlapping windows, `stride` tokens shared (apps/long.py;
        sentence embeddings of single texts only).
        Results are in the model's dtype (float32 unless loaded with dtype="float64").
        """
        model = self.model
        _check_encode_options(output_value, precision, convert_to_tensor, device, truncate_dim)
        batch_size, window = positive_int("batch_size", batch_size), positive_int("window", window or WINDOW)
        max_batch_tokens = positive_int("max_batch_tokens", MAX_BATCH_TOKENS if max_batch_tokens is None
                                        else max_batch_tokens)
        settings = self._settings_for(pooling, normalize, max_seq_length)
        single = isinstance(sentences, str)
        texts, pairs = split_pairs([sentences] if single else sentences)
        texts, prompt_length = self._with_prompt(texts, settings, prompt, prompt_name)
        if long != "truncate":  # texts over max_seq_length embedded whole, in windows (numpybert/apps/long.py)
            if pairs is not None or output_value != "sentence_embedding":
                raise InputValueError(f"long={long!r} embeds single texts into sentence embeddings; pairs and "
                                      f"output_value={output_value!r} take long='truncate'")
            stride = check_long(long, stride, settings.max_seq_length)
        with progress_bar(show_progress_bar, len(texts)) as bar:
            if output_value == "sentence_embedding":
                results = embed_texts(model, texts, settings, batch_size, window, bar.update, long, stride,
                                      max_batch_tokens, pairs, prompt_length)
                results = _finish_sentence_embeddings(results, truncate_dim, normalize_embeddings, precision)
                results = results if convert_to_numpy else list(results)
            else:
                results = token_outputs(model, texts, pairs, settings, batch_size, window, output_value,
                                        prompt_length, bar.update, max_batch_tokens)
        if output_value == "token_embeddings" and precision != "float32":
            results = quantize_embeddings(results, precision)
        elif output_value is None and truncate_dim is not None:
            for item in results:
                item["sentence_embedding"] = item["sentence_embedding"][:truncate_dim]
        return results[0] if single else results


    def _settings_for(self, pooling, normalize, max_seq_length):
        """The model's settings with one call's overrides (None keeps the model's), checked."""
        if (pooling, normalize, max_seq_length) == (None, None, None):
            return self.settings
        if max_seq_length is not None:
            max_seq_length = check_max_seq_length(max_seq_length, self.model.config.max_length)
        return self.settings.replace(pooling, None if normalize is None else bool(normalize), max_seq_length)

    def _with_prompt(self, texts: list, settings, prompt, prompt_name) -> tuple:
        """(texts with the prompt in front, the prompt's tokens with [CLS]: left out of pooling when the
        model's Pooling says include_prompt=false), as sentence-transformers."""
        prompt = resolve_prompt(settings, prompt, prompt_name)
        if not prompt:
            return texts, 0
        prompt_ids = tokenize_texts(self.model.tokenizer, [prompt], settings)["input_ids"][0]
        return [prompt + t for t in texts], len(prompt_ids) - 1  # minus [SEP]


def token_outputs(model, texts, pairs, settings, batch_size, window, output_value, prompt_length, on_batch,
                  max_batch_tokens: int = MAX_BATCH_TOKENS) -> list:
    """Per text, in input order: its token embeddings [tokens_i, H] (output_value "token_embeddings"),
    or a dict of its inputs, token embeddings and sentence embedding (output_value None), unpadded."""
    def embed_one(part, part_pairs):
        results = [None] * len(part)
        for rows, batch, sentence, hidden in run_window(model, part, settings, batch_size, part_pairs,
                                                        prompt_length, max_batch_tokens):
            for j, row in enumerate(rows):
                n = int(batch["attention_mask"][j].sum())  # right padding: the first n tokens are real
                if output_value == "token_embeddings":
                    results[row] = hidden[j, :n]
                else:
                    results[row] = {**{k: v[j, :n] for k, v in batch.items()},
                                    "token_embeddings": hidden[j, :n], "sentence_embedding": sentence[j]}
            on_batch(len(rows))
        return results
    return [item for part in in_windows(texts, window, embed_one, pairs) for item in part]


def _finish_sentence_embeddings(x, truncate_dim, normalize_embeddings, precision):
    """sentence-transformers' order after the modules: truncate_dim, normalize_embeddings, precision."""
    if truncate_dim is not None:
        x = x[:, :truncate_dim]
    if normalize_embeddings:
        x = l2_normalize(x)
    if precision != "float32" and len(x):
        x = quantize_embeddings(x, precision)
    return x


def _check_encode_options(output_value, precision, convert_to_tensor, device, truncate_dim):
    if output_value not in OUTPUT_VALUES:
        raise InputValueError(f"output_value={output_value!r}: expected one of {OUTPUT_VALUES}")
    if precision not in PRECISIONS:
        raise InputValueError(f"precision={precision!r}: expected one of {PRECISIONS}")
    if convert_to_tensor:
        raise InputValueError("convert_to_tensor=True: numpybert returns NumPy arrays and has no torch; "
                              "leave convert_to_numpy=True (the default)")
    if device not in (None, "cpu"):
        raise InputValueError(f"device={device!r}: numpybert computes on the CPU only (device=None or 'cpu')")
    if truncate_dim is not None:
        positive_int("truncate_dim", truncate_dim)


def split_pairs(items) -> tuple:
    """sentences as sentence-transformers takes them -> (texts, pairs or None): all plain texts, or all
    pairs (a tuple/list of two texts). A NumPy array of str is a list of texts."""
    if isinstance(items, np.ndarray) and items.ndim == 1:
        items = items.tolist()
    if not isinstance(items, (list, tuple)):
        raise InputTypeError(f"sentences must be a str, a list of str or a list of (text, text) pairs, "
                             f"got {type(items).__name__}")
    items = list(items)
    is_pair = [isinstance(item, (tuple, list)) for item in items]
    if not any(is_pair):
        return [check_text(t, f"sentences[{i}]") for i, t in enumerate(items)], None
    if not all(is_pair):
        i = is_pair.index(False)
        raise InputTypeError(f"sentences[{i}] is a {type(items[i]).__name__} but sentences[{is_pair.index(True)}] "
                             "is a pair; pass all texts or all (text, text) pairs")
    for i, item in enumerate(items):
        if len(item) != 2:
            raise InputValueError(f"sentences[{i}] has {len(item)} texts; a pair is (text, text)")
    return ([check_text(a, f"sentences[{i}][0]") for i, (a, _) in enumerate(items)],
            [check_text(b, f"sentences[{i}][1]") for i, (_, b) in enumerate(items)])


def resolve_prompt(settings, prompt=None, prompt_name=None):
    """The prompt to put before each text, as sentence-transformers picks it: prompt, else
    prompts[prompt_name], else the default prompt (if the model names one), else None."""
    prompts = dict(settings.prompts)
    if prompt is not None:
        if prompt_name is not None:
            warnings.warn("Provide either a `prompt`, a `prompt_name`, or neither, but not both. "
                          "Ignoring the `prompt_name` in favor of `prompt`.", UserWarning, stacklevel=3)
        if not isinstance(prompt, str):
            raise InputTypeError(f"prompt must be a str, got {type(prompt).__name__}")
        return prompt
    if prompt_name is not None:
        if prompt_name not in prompts:
            raise InputValueError(f"prompt_name={prompt_name!r} is not one of the model's prompts "
                                  f"{list(prompts)} (config_sentence_transformers.json)")
        return prompts[prompt_name]
    return prompts.get(settings.default_prompt_name) if settings.default_prompt_name else None


class _NoBar:
    def update(self, n=1):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def progress_bar(enabled, total: int, **kwargs):
    """A tqdm bar over `total` texts on stderr, or a no-op when not enabled (None means off)."""
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        raise ConfigError(f"show_progress_bar needs tqdm: {install_hint('cli')}") from None
    return tqdm(total=total, unit="text", **kwargs)
