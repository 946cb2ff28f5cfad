"""Hostile inputs to the forward pass: each gets a numpybert error naming the argument and
the item, before any math (NumPy would wrap negative ids, cast floats, broadcast bad masks).

The model is the tiny random checkpoint of tests/helpers.py (vocab 99, 64 positions,
2 token types), built in a temporary directory.
"""

import numpy as np
import pytest

import numpybert
from numpybert import InputTypeError, InputValueError, NumpybertError
from numpybert.text.inputs import check_inputs, check_masked_rows
from helpers import write_model

IDS = np.array([[2, 5, 7, 9, 3], [2, 8, 3, 0, 0]])
MASK = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return numpybert.load(write_model(tmp_path_factory.mktemp("tiny")))


def with_item(array, where, value, dtype=None):
    out = np.array(array, dtype=dtype or array.dtype)
    out[where] = value
    return out


def refused(model, error, fragments, **inputs):
    with pytest.raises(error) as info:
        model(**inputs)
    assert isinstance(info.value, NumpybertError)
    for fragment in fragments:
        assert fragment in str(info.value)


# ----------------------------------------------------------------------------- types

@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.bool_, np.complex64, object, "datetime64[s]", "U3"])
def test_ids_of_a_non_integer_dtype(model, dtype):
    refused(model, InputTypeError, ["input_ids", "integer dtype", str(np.dtype(dtype))], input_ids=IDS.astype(dtype))


@pytest.mark.parametrize("ids, kind", [("hello", "str"), (5, "int"), ({"a": 1}, "dict"), (b"\x01", "bytes")])
def test_ids_that_are_not_arrays(model, ids, kind):
    refused(model, InputTypeError, ["input_ids", kind], input_ids=ids)


def nested(depth):
    x = [1]
    for _ in range(depth):
        x = [x]
    return x


@pytest.mark.parametrize("ids", [[[1, 2, 3], [4]], nested(100)], ids=["ragged", "100-deep"])
def test_ragged_or_deep_list_of_ids(model, ids):
    refused(model, InputValueError, ["input_ids", "ragged"], input_ids=ids)


def test_empty_list_of_ids(model):
    refused(model, InputValueError, ["input_ids", "shape (1, 0)"], input_ids=[])


def test_masked_array_is_refused(model):
    refused(model, InputTypeError, ["input_ids", "masked array"], input_ids=np.ma.array(IDS, mask=IDS == 0))


def test_nested_list_of_ids_works(model):
    out = model(input_ids=IDS.tolist(), attention_mask=MASK.tolist())
    np.testing.assert_array_equal(out.last_hidden_state, model(IDS, MASK).last_hidden_state)


def test_missing_ids(model):
    refused(model, InputValueError, ["input_ids is required"], attention_mask=MASK)


def test_ids_given_twice(model):
    refused(model, InputValueError, ["input_ids", "input_word_ids"], input_ids=IDS, input_word_ids=IDS)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_float_mask_of_0_and_1_means_the_int_mask(model, dtype):
    """transformers accepts a float 0/1 mask (its tests build masks with torch.ones(...) floats)."""
    as_float = model(IDS, MASK.astype(dtype)).last_hidden_state
    np.testing.assert_array_equal(as_float, model(IDS, MASK).last_hidden_state)


@pytest.mark.parametrize("value", [0.5, -1.0, np.nan, 2.0])
def test_float_mask_other_than_0_and_1_is_refused(model, value):
    mask = MASK.astype(np.float32)
    mask[1, 1] = value
    refused(model, InputValueError, ["attention_mask[1, 1]", "only 0"], input_ids=IDS, attention_mask=mask)


def test_complex_or_str_mask_is_refused(model):
    refused(model, InputTypeError, ["attention_mask", "complex"], input_ids=IDS, attention_mask=MASK.astype(complex))


def test_bool_mask_means_0_and_1(model):
    as_bool = model(IDS, MASK.astype(bool)).last_hidden_state
    np.testing.assert_array_equal(as_bool, model(IDS, MASK).last_hidden_state)


# ----------------------------------------------------------------------------- values

@pytest.mark.parametrize("where, value", [((1, 2), -1), ((0, 4), 99), ((0, 0), 10**6)])
def test_ids_out_of_vocabulary(model, where, value):
    refused(model, InputValueError, [f"input_ids[{where[0]}, {where[1]}] = {value}", "[0, 99)", "vocab_size"],
            input_ids=with_item(IDS, where, value))


def test_huge_unsigned_id(model):
    ids = IDS.astype(np.uint64)
    ids[1, 1] = 2**64 - 1
    refused(model, InputValueError, [f"input_ids[1, 1] = {2**64 - 1}"], input_ids=ids)


@pytest.mark.parametrize("value", [2, -1, 7])
def test_token_types_out_of_range(model, value):
    types = with_item(np.zeros_like(IDS), (1, 1), value)
    refused(model, InputValueError, [f"token_type_ids[1, 1] = {value}", "type_vocab_size"], input_ids=IDS,
            token_type_ids=types)


@pytest.mark.parametrize("value", [2, -1, 255])
def test_mask_not_0_or_1(model, value):
    refused(model, InputValueError, [f"attention_mask[0, 3] = {value}", "only 0"], input_ids=IDS,
            attention_mask=with_item(MASK, (0, 3), value))


@pytest.mark.parametrize("shape", [(2, 4), (3, 5), (1, 5), (5,), (2, 5, 1)])
def test_mask_of_the_wrong_shape(model, shape):
    mask = np.ones(shape, np.int64)
    refused(model, InputValueError, ["attention_mask", "shape"], input_ids=IDS, attention_mask=mask)


def test_position_ids_out_of_range(model):
    positions = with_item(np.broadcast_to(np.arange(5), (2, 5)), (1, 4), 64)
    refused(model, InputValueError, ["position_ids[1, 4] = 64", "max_position_embeddings"], input_ids=IDS,
            position_ids=positions)


def test_longer_than_max_position_embeddings(model):
    refused(model, InputValueError, ["65 tokens", "max_position_embeddings=64"], input_ids=np.ones((1, 65), int))


@pytest.mark.parametrize("shape", [(0, 5), (2, 0), (0,), (0, 0)])
def test_empty_batch_or_sequence(model, shape):
    refused(model, InputValueError, ["input_ids", "shape"], input_ids=np.zeros(shape, np.int64))


@pytest.mark.parametrize("shape", [(), (1, 2, 3)])
def test_ids_of_the_wrong_rank(model, shape):
    refused(model, InputValueError, ["input_ids", "[batch, tokens]"], input_ids=np.ones(shape, np.int64))


def test_inputs_are_not_modified(model):
    ids, mask = IDS.copy(), MASK.copy()
    model(ids, mask)
    np.testing.assert_array_equal(ids, IDS)
    np.testing.assert_array_equal(mask, MASK)


# ----------------------------------------------------------------------------- a row with no real token

def test_all_zero_mask_row_is_defined(model):
    """HF semantics (finfo.min): a row with every key masked attends uniformly to all T keys,
    so its outputs are finite; the other rows are unaffected."""
    mask = with_item(MASK, 1, 0)
    out = model(IDS, mask, output_attentions=True)
    assert np.isfinite(out.last_hidden_state).all() and np.isfinite(out.pooler_output).all()
    for probs in out.attentions:
        np.testing.assert_allclose(probs[1], 1 / IDS.shape[1], rtol=1e-6)  # float32 softmax rounding
    alone = model(IDS[:1], mask[:1]).last_hidden_state
    np.testing.assert_allclose(out.last_hidden_state[0], alone[0], atol=1e-5)  # batch invariance, test_fuzz.py


def test_all_zero_mask_row_with_minus_inf_is_refused():
    """Under mask_value="-inf" such a row's softmax is 0/0 = NaN: refused, naming the row."""
    mask = with_item(MASK, 1, 0)
    with pytest.raises(InputValueError, match=r"attention_mask row 1 .*-inf"):
        check_masked_rows(mask, "-inf")
    check_masked_rows(mask, "finfo-min")
    check_masked_rows(mask, "-10000")
    check_masked_rows(MASK, "-inf")


def test_check_inputs_returns_int64_defaults(model):
    """Default positions are filled as token types are (the family registry's rule, `family.position_ids`:
    BERT's 0..T-1, RoBERTa's from the ids); given ones come back int64."""
    ids, mask, types, positions = check_inputs(model.config, IDS.astype(np.int8))
    assert all(a.dtype == np.int64 and a.shape == IDS.shape for a in (ids, mask, types, positions))
    assert mask.all() and not types.any()
    np.testing.assert_array_equal(positions, np.broadcast_to(np.arange(IDS.shape[1]), IDS.shape))
    given = np.broadcast_to(np.arange(5, dtype=np.int8), (2, 5))
    positions = check_inputs(model.config, IDS, position_ids=given)[3]
    assert positions.dtype == np.int64 and positions.shape == IDS.shape
    np.testing.assert_array_equal(positions, np.broadcast_to(np.arange(5), (2, 5)))


# ----------------------------------------------------------------------------- overflow

def test_finite_weights_that_overflow_are_an_error_not_nan(tmp_path):
    """Weights near float32's max are finite (the loader accepts them) but overflow in the sum of
    the embeddings: the forward pass says where instead of returning NaN."""
    from helpers import tiny_tensors
    tensors = tiny_tensors()
    tensors["embeddings.word_embeddings.weight"][:] = 3e38
    tensors["embeddings.position_embeddings.weight"][:] = 3e38
    model = numpybert.load(write_model(tmp_path, tensors))
    with pytest.raises(numpybert.WeightsError, match="overflowed to NaN/Inf in the embedding output"), \
            np.errstate(over="ignore", invalid="ignore"):
        model(IDS, attention_mask=MASK)
