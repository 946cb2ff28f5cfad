"""Length-bucketed batching: every item once, batches of similar length, results in input order."""

import numpy as np
import pytest

from numpybert import batching
from numpybert.errors import InputTypeError, InputValueError


def test_every_index_once_and_batches_sorted_by_length():
    lengths = np.random.default_rng(0).integers(1, 200, 1001)
    batches = batching.bucket_batches(lengths, batch_size=32)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1001))
    assert all(len(b) <= 32 for b in batches)
    assert np.all(np.diff(lengths[flat]) <= 0)  # longest first, non-increasing throughout


def test_bucketing_computes_fewer_padded_tokens_than_input_order():
    lengths = np.random.default_rng(1).integers(5, 128, 512)
    in_order = [np.arange(i, min(i + 32, 512)) for i in range(0, 512, 32)]
    bucketed = batching.bucket_batches(lengths, batch_size=32)
    assert batching.padded_tokens(lengths, bucketed) < batching.padded_tokens(lengths, in_order)
    assert batching.padded_tokens(lengths, bucketed) >= lengths.sum()


def test_max_tokens_caps_padded_tokens_but_never_drops_an_item():
    lengths = [500, 3, 3, 3, 3, 100, 100, 100]
    batches = batching.bucket_batches(lengths, batch_size=8, max_tokens=250)
    assert [len(b) for b in batches][0] == 1  # 500 tokens alone, over the cap but not dropped
    assert all(len(b) * max(lengths[i] for i in b) <= 250 for b in batches[1:])
    assert sorted(np.concatenate(batches).tolist()) == list(range(8))


def test_map_batches_returns_rows_in_input_order():
    lengths = [7, 1, 5, 5, 2, 9, 0]
    seen = []

    def fn(indices):
        seen.append(list(indices))
        return np.stack([np.full(3, i * 10.0) for i in indices])

    out = batching.map_batches(fn, lengths, batch_size=3)
    assert np.array_equal(out[:, 0], np.arange(7) * 10.0)
    assert max(len(b) for b in seen) <= 3 and len(seen) == 3


def test_map_batches_refuses_a_wrong_row_count():
    with pytest.raises(InputValueError, match="rows for a batch of 2"):
        batching.map_batches(lambda idx: np.zeros((1, 2)), [1, 2], batch_size=2)


@pytest.mark.parametrize("bad, error", [([[1, 2]], InputTypeError), ([1.5], InputTypeError), ([3, -1], InputValueError)])
def test_bad_lengths_are_refused(bad, error):
    with pytest.raises(error):
        batching.bucket_batches(bad)


@pytest.mark.parametrize("kw", [{"batch_size": 0}, {"batch_size": True}, {"max_tokens": 0}])
def test_bad_sizes_are_refused(kw):
    with pytest.raises(InputValueError):
        batching.bucket_batches([1, 2], **kw)


def test_empty_input():
    assert batching.bucket_batches([]) == []
    assert batching.map_batches(lambda idx: idx, []).shape == (0,)
