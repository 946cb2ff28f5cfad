"""Fuzzing (hypothesis) of the loader, the config and the forward-pass validator, and the
invariances every BERT forward pass must have.

The only allowed outcomes of a fuzz case are a correct result or a NumpybertError (a
crash with any other exception, a hang, or a NaN fails the test). Every fuzz test is run
through `run_counted`, which checks that hypothesis really ran its examples: together they
are more than 10,000 cases (see MIN_EXAMPLES), and the file runs in well under a minute.
Settings are derandomized, so CI runs the same cases every time.

Sections: the safetensors reader, config.json, the forward-pass validator, invariances
(tiny random model, then the real all-MiniLM-L6-v2), and a separate section left for the
tokenizer's fuzzing.
"""

import collections
import functools
import inspect
import json
import struct

import numpy as np
import pytest
import safetensors.numpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import numpybert
from numpybert import BertConfig, NumpybertError
from numpybert.loading.checkpoint import DTYPES, expected_shapes, read_safetensors
from numpybert.loading.config import SUPPORTED_ACTIVATIONS
from helpers import TINY_CONFIG, tiny_tensors, write_model

RUNS = collections.Counter()  # examples each fuzz test really ran
MIN_EXAMPLES = {  # sums to 13,600: the issue asks for >= 10,000 fuzz cases in CI
    "fuzz_random_bytes": 2000, "fuzz_random_json_header": 1000, "fuzz_mutated_file": 3000,
    "fuzz_load_tensor": 300, "fuzz_config": 1500, "fuzz_forward_inputs": 2500,
    "fuzz_padding_invariance": 400, "fuzz_batch_invariance": 400, "fuzz_permutation": 500,
    "fuzz_tokenize": 2000,
}


def fuzz_settings(name):
    return settings(max_examples=MIN_EXAMPLES[name], deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck), print_blob=True)


def counted(f):
    """Count the examples hypothesis runs through `f` (the body of a fuzz test)."""
    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        RUNS[f.__name__] += 1
        return f(*args, **kwargs)
    return wrapper


def run_counted(fuzz, *args):
    """Run a hypothesis test and check that it ran at least its MIN_EXAMPLES cases."""
    name = fuzz.hypothesis.inner_test.__name__
    before = RUNS[name]
    fuzz(*args)
    assert RUNS[name] - before >= MIN_EXAMPLES[name], f"{name} ran only {RUNS[name] - before} examples"


def outcome(fn, *args, **kwargs):
    """fn's result, or None when it raised a NumpybertError; any other exception fails the test."""
    try:
        return fn(*args, **kwargs)
    except NumpybertError:
        return None


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return numpybert.load(write_model(tmp_path_factory.mktemp("tiny")))


# ----------------------------------------------------------------------------- the safetensors reader

def valid_file() -> bytes:
    """A small valid safetensors file with every kind of entry: several dtypes (BF16 included),
    a scalar, a zero-size tensor, metadata."""
    tensors = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(4, np.float16),
               "c": np.array([3, -4], np.int64), "d": np.array([0x3F80, 0xC000], np.uint16),
               "e": np.zeros((0, 3), np.float32), "f": np.array(2.5), "g": np.array([True, False])}
    raw = safetensors.numpy.save(tensors, metadata={"format": "pt"})
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header["d"]["dtype"] = "BF16"  # 0x3F80 = 1.0, 0xC000 = -2.0
    return encode(header, raw[8 + n:])


def encode(header, data: bytes) -> bytes:
    text = json.dumps(header).encode() if not isinstance(header, bytes) else header
    return struct.pack("<Q", len(text)) + text + data


VALID = valid_file()
JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=6),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                    max_leaves=8)
NEAR_VALID = st.one_of(  # values a header field might plausibly (or almost) hold
    st.sampled_from(sorted(DTYPES) + ["F8_E4M3", "F4", "U16", "f32", ""]),
    st.lists(st.integers(-2, 2**65), max_size=4), st.lists(st.integers(0, 64), min_size=2, max_size=2),
    st.just([2**40, 2**40]), st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=2))


def check_tiling(tensors, raw):
    """An accepted file's tensors account for every byte of the data section, none twice."""
    (n,) = struct.unpack("<Q", raw[:8])
    assert sum(DTYPES[dtype].itemsize * array.size for dtype, array in tensors.values()) == len(raw) - 8 - n


def read_bytes(path, raw):
    """Write raw to path and read it: a tiled result or a NumpybertError."""
    path.write_bytes(raw)
    result = outcome(read_safetensors, path)
    if result is not None:
        check_tiling(result[0], raw)


@fuzz_settings("fuzz_random_bytes")
@given(raw=st.binary(max_size=200))
@counted
def fuzz_random_bytes(path, raw):
    read_bytes(path, raw)


@fuzz_settings("fuzz_random_json_header")
@given(header=st.one_of(JSON, st.dictionaries(st.text(max_size=4), JSON, max_size=3)),
       data=st.binary(max_size=64), as_bytes=st.binary(max_size=40), raw_header=st.booleans())
@counted
def fuzz_random_json_header(path, header, data, as_bytes, raw_header):
    read_bytes(path, encode(as_bytes if raw_header else header, data))


FIELDS = st.sampled_from(["dtype", "shape", "data_offsets", "x"])
FIELD_VALUES = NEAR_VALID | JSON
EDITS = st.sampled_from(["field", "delete", "entry", "drop"])
DAMAGES = st.sampled_from(["none", "prefix", "flip", "cut", "append"])
INDEX = st.integers(0, 2**16)  # taken modulo a length: fixed strategies keep hypothesis fast
U64 = st.integers(0, 2**64 - 1)
ODD_SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)


def pick(draw, items):
    items = sorted(items)
    return items[draw(INDEX) % len(items)]


def edit_header(draw, header):
    """Corrupt one header entry in place: a field, a deleted field, the whole entry, or drop it."""
    name = pick(draw, header)
    kind = draw(EDITS)
    entry = header[name] = dict(header[name]) if isinstance(header[name], dict) else {}
    if kind == "field":
        entry[draw(FIELDS)] = draw(FIELD_VALUES)
    elif kind == "delete" and entry:
        del entry[pick(draw, entry)]
    elif kind == "entry":
        header[name] = draw(JSON)
    elif kind == "drop":
        del header[name]


def damage_bytes(draw, raw: bytes) -> bytes:
    """Corrupt the encoded file: the length prefix, one byte, a cut, or appended bytes (or nothing)."""
    kind, i = draw(DAMAGES), draw(INDEX) % len(raw)
    if kind == "prefix":
        return struct.pack("<Q", draw(U64)) + raw[8:]
    if kind == "flip":
        return raw[:i] + bytes([draw(INDEX) % 256]) + raw[i + 1:]
    if kind == "cut":
        return raw[:i]
    if kind == "append":
        return raw + draw(st.binary(min_size=1, max_size=16))
    return raw


@st.composite
def mutated_files(draw):
    """VALID after up to three header edits, maybe a duplicated entry, then maybe byte damage."""
    (n,) = struct.unpack("<Q", VALID[:8])
    header, section = json.loads(VALID[8:8 + n]), VALID[8 + n:]
    for _ in range(draw(st.integers(0, 3))):
        if header:
            edit_header(draw, header)
    text = json.dumps(header)
    if header and draw(st.booleans()):  # the same name twice: json.loads would keep the last
        name = pick(draw, header)
        text = text[:-1] + ", " + json.dumps({name: header[name]})[1:]
    return damage_bytes(draw, encode(text.encode(), section))


@fuzz_settings("fuzz_mutated_file")
@given(raw=mutated_files())
@counted
def fuzz_mutated_file(path, raw):
    read_bytes(path, raw)


def test_the_unmutated_file_reads(tmp_path):
    path = tmp_path / "x.safetensors"
    path.write_bytes(VALID)
    tensors, metadata = read_safetensors(path)
    assert metadata == {"format": "pt"}
    np.testing.assert_array_equal(tensors["d"][1], [1.0, -2.0])  # BF16 -> float32, exact
    assert tensors["e"][1].shape == (0, 3) and tensors["f"][1].shape == () and tensors["g"][0] == "BOOL"


def test_fuzz_random_bytes(tmp_path):
    run_counted(fuzz_random_bytes, tmp_path / "x.safetensors")


def test_fuzz_random_json_header(tmp_path):
    run_counted(fuzz_random_json_header, tmp_path / "x.safetensors")


def test_fuzz_mutated_file(tmp_path):
    run_counted(fuzz_mutated_file, tmp_path / "x.safetensors")


TINY_TENSORS = tiny_tensors()
RENAMES = st.sampled_from(["same", "same", "same", "bert.", "gamma", "extra"])
TENSOR_DTYPES = st.sampled_from([np.float32, np.float32, np.float16, np.float64, np.int64, np.uint8, np.bool_])
SPECIALS = st.sampled_from([None, None, np.nan, np.inf, -np.inf, 1e300, 6e4])


@st.composite
def replaced_tensors(draw):
    """The tiny checkpoint with one tensor replaced: maybe renamed (a `bert.` prefix, a legacy
    gamma/beta, an unknown name), maybe another dtype or shape, maybe holding a NaN, an Inf or a
    value too large for float16/float32."""
    tensors = dict(TINY_TENSORS)
    name = pick(draw, tensors)
    array = tensors.pop(name).astype(draw(TENSOR_DTYPES))
    if draw(INDEX) % 5 == 0:
        array = np.resize(array, draw(ODD_SHAPES))
    special = draw(SPECIALS)
    if special is not None and array.size and array.dtype.kind == "f":
        with np.errstate(over="ignore"):
            array.reshape(-1)[draw(INDEX) % array.size] = special
    rename = draw(RENAMES)
    new = {"same": name, "bert.": "bert." + name, "extra": "extra." + name,
           "gamma": name.replace("LayerNorm.weight", "LayerNorm.gamma")}[rename]
    tensors[new] = array
    return tensors


@fuzz_settings("fuzz_load_tensor")
@given(tensors=replaced_tensors())
@counted
def fuzz_load_tensor(folder, tensors):
    safetensors.numpy.save_file(tensors, str(folder / "model.safetensors"))
    model = outcome(numpybert.load, folder)
    if model is not None:  # accepted: every weight is finite and shaped as config.json says
        for name, shape in expected_shapes(model.config).items():
            assert model.flat_params[name].shape == shape and model.flat_params[name].dtype == np.float32
            assert np.isfinite(model.flat_params[name]).all()


def test_fuzz_load_tensor(tmp_path):
    run_counted(fuzz_load_tensor, write_model(tmp_path / "tiny"))


# ----------------------------------------------------------------------------- config.json

CONFIG_VALUES = st.one_of(st.integers(-3, 130), st.floats(), st.sampled_from(["gelu", "relu", "swish", "absolute",
                                                                             "relative_key", "bert", "roberta"]),
                          st.dictionaries(st.sampled_from(["0", "1", "2", "x"]), st.text(max_size=3), max_size=3), JSON)


@fuzz_settings("fuzz_config")
@given(changes=st.dictionaries(st.sampled_from(sorted(TINY_CONFIG) + ["id2label", "is_decoder", "x"]), CONFIG_VALUES,
                               max_size=3),
       drop=st.lists(st.sampled_from(sorted(TINY_CONFIG)), max_size=2))
@counted
def fuzz_config(changes, drop):
    d = {k: v for k, v in dict(TINY_CONFIG, **changes).items() if k not in drop}
    config = outcome(BertConfig.from_dict, d)
    if config is not None:
        assert config.hidden_size % config.num_attention_heads == 0 and config.hidden_act in SUPPORTED_ACTIVATIONS
        assert min(config.vocab_size, config.hidden_size, config.num_hidden_layers, config.intermediate_size,
                   config.max_position_embeddings, config.type_vocab_size) > 0
        assert 0 < config.layer_norm_eps < float("inf")


def test_fuzz_config():
    run_counted(fuzz_config)


# ----------------------------------------------------------------------------- the forward-pass validator

INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]
INT_CHOICES = st.sampled_from(INT_DTYPES)
DTYPE_CHOICES = st.sampled_from(INT_DTYPES + [np.bool_, np.float16, np.float32, np.float64, np.complex64, object])
VALUE_MODES = st.sampled_from(["valid", "near", "huge", "edge"])
FORMS = st.sampled_from(["array", "array", "list", "none"])
BATCH, TOKENS = st.integers(0, 4), st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 8, 64, 65])
SEEDS = st.integers(0, 2**32 - 1)


def values(rng, mode, shape, high):
    """int64 values: in [0, high), around it, anywhere in int64, or at the edges."""
    if mode == "valid":
        return rng.integers(0, high, shape)
    if mode == "near":
        return rng.integers(-2, high + 2, shape)
    if mode == "huge":
        return rng.integers(-2**63, 2**63 - 1, shape, endpoint=True)
    return rng.choice(np.array([-2**63, -1, 0, high - 1, high, 2**63 - 1]), shape)


def draw_input(draw, shape, high, rng):
    """One argument. Three times in four a valid one (the right shape, an integer dtype, values
    in [0, high)); else a random form, shape, dtype and values: a nested list, None, an odd
    shape, a float or object array, values around [0, high), huge or at the edges."""
    if draw(INDEX) % 4:
        return values(rng, "valid", shape, high).astype(draw(INT_CHOICES))
    form = draw(FORMS)
    if form == "none":
        return None
    if draw(INDEX) % 3 == 0:
        shape = draw(ODD_SHAPES)
    with np.errstate(over="ignore", invalid="ignore"):  # int64 -> float16 may overflow: a case too
        array = values(rng, draw(VALUE_MODES), shape, high).astype(draw(DTYPE_CHOICES))
    return array.tolist() if form == "list" else array


@st.composite
def forward_cases(draw):
    """(input_ids, {attention_mask, token_type_ids, position_ids}); the values come from a
    NumPy generator seeded by hypothesis (fast), the structure from hypothesis."""
    shape, rng = (draw(BATCH), draw(TOKENS)), np.random.default_rng(draw(SEEDS))
    ids = draw_input(draw, shape, 99, rng)
    optional = {name: draw_input(draw, shape, high, rng)
                for name, high in (("attention_mask", 2), ("token_type_ids", 2), ("position_ids", 64))}
    return ids, optional


@fuzz_settings("fuzz_forward_inputs")
@given(case=forward_cases())
@counted
def fuzz_forward_inputs(model, case):
    ids, optional = case
    out = outcome(model, ids, **optional)
    if out is not None:  # accepted: ids were a valid [B, T] (or [T]) array, and the outputs are finite
        assert out.last_hidden_state.shape == np.atleast_2d(np.asarray(ids)).shape + (TINY_CONFIG["hidden_size"],)
        assert np.isfinite(out.last_hidden_state).all() and np.isfinite(out.pooler_output).all()


def test_fuzz_forward_inputs(tiny):
    run_counted(fuzz_forward_inputs, tiny)


# ----------------------------------------------------------------------------- invariances

def pad_batch(seqs, T, pad_id=0, pad_type=0):
    """Right-padded [B, T] ids, mask and token types; padding holds pad_id / pad_type."""
    ids = np.full((len(seqs), T), pad_id, np.int64)
    mask = np.zeros((len(seqs), T), np.int64)
    types = np.full((len(seqs), T), pad_type, np.int64)
    for i, s in enumerate(seqs):
        ids[i, :len(s)], mask[i, :len(s)], types[i, :len(s)] = s, 1, 0
    return ids, mask, types


def forward(model, seqs, T, pad_id=0, pad_type=0):
    ids, mask, types = pad_batch(seqs, T, pad_id, pad_type)
    out = model(ids, mask, types)
    return out.last_hidden_state, out.pooler_output


# Tolerances. PADDED: the bound, 1e-5. Measured max over 30 (tiny) and 8 (MiniLM)
# random batches of 1-4 sequences: 1.2e-6 on the tiny model, 3.3e-6 on MiniLM; masked keys get
# exp(finfo.min - max) = 0 exactly, so only the GEMM blocking of a longer T changes rounding.
# PERMUTED: the dense layers run as one GEMM over all [B·T, H] rows, and OpenBLAS's edge kernels
# round a row by where it sits in that matrix: measured ≤ 1.4e-6 (MiniLM), 1.0e-6 (tiny); the
# issue's 1e-5 bound for invariances applies.
PADDED, PERMUTED = 1e-5, 1e-5
SEQS = st.lists(st.lists(st.integers(1, 98), min_size=1, max_size=24), min_size=1, max_size=4)


def assert_padding_invariant(model, seqs, extra, pad_id, pad_type):
    T = max(map(len, seqs))
    h, pooled = forward(model, seqs, T)
    h_more, pooled_more = forward(model, seqs, T + extra, pad_id, pad_type)
    for i, s in enumerate(seqs):
        np.testing.assert_allclose(h_more[i, :len(s)], h[i, :len(s)], rtol=0, atol=PADDED)
    np.testing.assert_allclose(pooled_more, pooled, rtol=0, atol=PADDED)


def assert_batch_invariant(model, seqs):
    h, pooled = forward(model, seqs, max(map(len, seqs)))
    for i, s in enumerate(seqs):
        h_alone, pooled_alone = forward(model, [s], len(s))
        np.testing.assert_allclose(h[i, :len(s)], h_alone[0], rtol=0, atol=PADDED)
        np.testing.assert_allclose(pooled[i], pooled_alone[0], rtol=0, atol=PADDED)


def assert_permutation_equivariant(model, seqs, order):
    T = max(map(len, seqs))
    h, pooled = forward(model, seqs, T)
    h_perm, pooled_perm = forward(model, [seqs[i] for i in order], T)
    np.testing.assert_allclose(h_perm, h[order], rtol=0, atol=PERMUTED)
    np.testing.assert_allclose(pooled_perm, pooled[order], rtol=0, atol=PERMUTED)


@fuzz_settings("fuzz_padding_invariance")
@given(seqs=SEQS, extra=st.integers(1, 12), pad_id=st.integers(0, 98), pad_type=st.integers(0, 1))
@counted
def fuzz_padding_invariance(model, seqs, extra, pad_id, pad_type):
    """Appending padding (any id, any type) never changes the real tokens' outputs."""
    assert_padding_invariant(model, seqs, extra, pad_id, pad_type)


@fuzz_settings("fuzz_batch_invariance")
@given(seqs=SEQS)
@counted
def fuzz_batch_invariance(model, seqs):
    """A sequence alone gives the same outputs as inside any batch."""
    assert_batch_invariant(model, seqs)


@fuzz_settings("fuzz_permutation")
@given(seqs=SEQS, order=st.permutations(range(4)))
@counted
def fuzz_permutation(model, seqs, order):
    """Permuting the batch permutes the outputs. (`order` restricted to the batch's rows is a
    uniformly drawn permutation of them.)"""
    assert_permutation_equivariant(model, seqs, np.array([i for i in order if i < len(seqs)]))


def test_fuzz_padding_invariance(tiny):
    run_counted(fuzz_padding_invariance, tiny)


def test_fuzz_batch_invariance(tiny):
    run_counted(fuzz_batch_invariance, tiny)


def test_fuzz_permutation(tiny):
    run_counted(fuzz_permutation, tiny)


def test_fuzz_cases_total():
    """The >= 10,000 cases are real: every fuzz body of this module is a hypothesis test whose
    settings ask for its MIN_EXAMPLES, and a test runs it through run_counted (which fails when
    fewer examples ran); their counts add up to 10,000 or more."""
    fuzzers = {name: f for name, f in globals().items() if name.startswith("fuzz_") and hasattr(f, "hypothesis")}
    assert set(fuzzers) == set(MIN_EXAMPLES), set(fuzzers) ^ set(MIN_EXAMPLES)
    asked = {name: f._hypothesis_internal_use_settings.max_examples for name, f in fuzzers.items()}
    assert asked == MIN_EXAMPLES
    runners = [inspect.getsource(f) for name, f in globals().items() if name.startswith("test_") and callable(f)]
    for name in fuzzers:
        assert any(f"run_counted({name}," in src or f"run_counted({name})" in src for src in runners), name
    assert sum(asked.values()) >= 10_000


def test_minilm_invariances(minilm):
    """The three properties on the real all-MiniLM-L6-v2 (conftest's `minilm`: missing weights
    FAIL with "run: numpybert fetch"), on fixed random batches ([CLS] ... [SEP] around word pieces)."""
    rng = np.random.default_rng(7)
    seqs = [[101, *rng.integers(1000, 30522, n), 102] for n in (3, 30, 11, 1)]
    assert_padding_invariant(minilm, seqs, extra=9, pad_id=0, pad_type=0)
    assert_padding_invariant(minilm, seqs[:2], extra=3, pad_id=2023, pad_type=1)
    assert_batch_invariant(minilm, seqs)
    assert_permutation_equivariant(minilm, seqs, np.array([2, 0, 3, 1]))


# ----------------------------------------------------------------------------- tokenizer fuzzing
# Random Unicode (lone surrogates, control and format characters, special-token strings) and
# random non-text items through model.tokenize on the real MiniLM tokenizer.

SPICE = ["\ud800", "\udfff", "\x00", "\x07", "\x85", "\u200b", "\ufeff", "[SEP]", "[CLS]", "[MASK]", " ", "\n",
         "e\u0301", "🍕", "北京", "ß", "İ", "\U0010ffff"]
TEXT = st.lists(st.one_of(st.characters(codec=None, categories=None), st.sampled_from(SPICE)), max_size=20).map("".join)
ITEM = st.one_of(TEXT, TEXT, TEXT, st.none(), st.binary(max_size=5), st.integers(), st.lists(TEXT, max_size=2))


def is_clean(item):
    return isinstance(item, str) and not any("\ud800" <= c <= "\udfff" for c in item)


@fuzz_settings("fuzz_tokenize")
@given(texts=st.lists(ITEM, min_size=1, max_size=4), pairs=st.booleans(), max_length=st.none() | st.integers(0, 40))
@counted
def fuzz_tokenize(model, texts, pairs, max_length):
    text_pairs = list(reversed(texts)) if pairs else None
    batch = outcome(model.tokenize, texts, text_pairs, max_length=max_length)
    specials = 3 if pairs else 2
    clean = all(is_clean(t) for t in texts) and (max_length is None or max_length >= specials)
    assert (batch is not None) == clean, f"clean input refused, or bad input accepted: {texts!r}"
    if batch is None:
        return
    ids, mask, types = batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]
    assert ids.dtype == mask.dtype == types.dtype == np.int64 and ids.shape == mask.shape == types.shape
    assert ids.shape[0] == len(texts) and ((ids >= 0) & (ids < model.config.vocab_size)).all()
    assert set(np.unique(mask)) <= {0, 1} and set(np.unique(types)) <= ({0, 1} if pairs else {0})
    assert max_length is None or ids.shape[1] <= max_length
    assert (ids[:, 0] == model.tokenizer.cls_token_id).all()


def test_fuzz_tokenize(minilm):
    run_counted(fuzz_tokenize, minilm)
