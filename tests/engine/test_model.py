"""Structural guarantees of the forward pass on the real MiniLM: dtypes, counts, identities,
padding invariance, TF Hub names. Numerical parity with torch is tests/engine/test_golden.py."""

import numpy as np
import pytest

import numpybert
from numpybert.errors import MissingWeightsError

IDS = np.array([[101, 7592, 2088, 1010, 2023, 2003, 1037, 3231, 1012, 102]])  # [CLS] hello world, this is a test. [SEP]


@pytest.fixture(scope="module")
def minilm64(minilm_dir):
    return numpybert.load(minilm_dir, dtype="float64")


@pytest.mark.parametrize("which", ["float32", "float64"])
def test_every_output_keeps_the_model_dtype(which, minilm, minilm64):
    model = minilm if which == "float32" else minilm64
    out = model(IDS, output_hidden_states=True, output_attentions=True, record=True)
    arrays = [out.last_hidden_state, out.pooler_output, *out.hidden_states, *out.attentions, *out.trace.values()]
    assert {a.dtype for a in arrays} == {np.dtype(which)}


def test_counts_hidden_states_are_one_more_than_attentions(minilm):
    """HF returns the embedding output plus one output per layer, but one attention per layer."""
    out = minilm(IDS, output_hidden_states=True, output_attentions=True)
    L, N, H = minilm.config.num_hidden_layers, minilm.config.num_attention_heads, minilm.config.hidden_size
    assert len(out.hidden_states) == L + 1 and len(out.attentions) == L
    assert all(h.shape == (1, IDS.shape[1], H) for h in out.hidden_states)
    assert all(a.shape == (1, N, IDS.shape[1], IDS.shape[1]) for a in out.attentions)
    assert out.hidden_states[-1] is out.last_hidden_state
    np.testing.assert_allclose(out.attentions[0].sum(-1), 1.0, atol=1e-6)


def test_outputs_not_asked_for_are_none(minilm):
    out = minilm(IDS)
    assert out.hidden_states is None and out.attentions is None and out.trace is None


def test_tfhub_identities(minilm):
    out = minilm(IDS, output_hidden_states=True)
    tf = out.tfhub()
    assert set(tf) == {"sequence_output", "pooled_output", "default", "encoder_outputs"}
    assert tf["default"] is tf["pooled_output"] is out.pooler_output
    assert tf["sequence_output"] is out.last_hidden_state
    assert len(tf["encoder_outputs"]) == minilm.config.num_hidden_layers  # no embedding output
    assert tf["encoder_outputs"][-1] is tf["sequence_output"]
    for a, b in zip(tf["encoder_outputs"], out.hidden_states[1:]):
        assert a is b


def test_pooled_output_is_not_the_cls_row(minilm):
    out = minilm(IDS)
    cls = out.last_hidden_state[:, 0]
    assert np.abs(out.pooler_output - cls).max() > 0.1
    w, b = minilm.flat_params["pooler.dense.weight"], minilm.flat_params["pooler.dense.bias"]
    np.testing.assert_array_equal(out.pooler_output, np.tanh(cls @ w.T + b))


def test_one_dimensional_input_is_one_sequence(minilm):
    np.testing.assert_array_equal(minilm(IDS[0]).last_hidden_state, minilm(IDS).last_hidden_state)


def test_padding_invariance(minilm):
    """A sentence alone and inside a right-padded batch with a longer one: ≤ 1e-5 on its tokens
    (float32 rounding of different GEMM shapes; measured ~1e-6)."""
    long = np.array([[101] + [2023, 2003, 1037, 2172, 2936, 6251] * 5 + [102]])
    T = long.shape[1]
    ids = np.zeros((2, T), np.int64)
    ids[0, :IDS.shape[1]], ids[1] = IDS[0], long[0]
    mask = (ids != 0).astype(np.int64)
    batch = minilm(ids, attention_mask=mask)
    alone = minilm(IDS)
    n = IDS.shape[1]
    assert np.abs(batch.last_hidden_state[0, :n] - alone.last_hidden_state[0]).max() <= 1e-5
    assert np.abs(batch.pooler_output[0] - alone.pooler_output[0]).max() <= 1e-5


def test_tfhub_input_names_are_accepted(minilm):
    ids32 = IDS.astype(np.int32)
    a = minilm(input_word_ids=ids32, input_mask=np.ones_like(ids32), input_type_ids=np.zeros_like(ids32))
    np.testing.assert_array_equal(a.last_hidden_state, minilm(IDS).last_hidden_state)


def test_fully_masked_row_is_defined(minilm):
    """HF adds finfo.min to every score of the row: all equal, so attention is uniform, no NaN."""
    ids = np.vstack([IDS, IDS])
    mask = np.ones_like(ids)
    mask[1] = 0
    out = minilm(ids, attention_mask=mask, output_attentions=True)
    assert np.isfinite(out.last_hidden_state).all()
    np.testing.assert_allclose(out.attentions[0][1], 1.0 / ids.shape[1], rtol=1e-6)


def test_conventions_change_the_math(minilm):
    """with_conventions shares the weights and changes only the named convention."""
    tanh = minilm.with_conventions(gelu="tanh")
    assert tanh.config.hidden_act == "gelu_new" and minilm.config.hidden_act == "gelu"
    assert tanh.flat_params is minilm.flat_params
    diff = np.abs(tanh(IDS).last_hidden_state - minilm(IDS).last_hidden_state).max()
    assert 1e-5 < diff < 0.1


def test_missing_pooler_is_refused_not_random(tmp_path, minilm_dir):
    """A checkpoint without pooler weights loads, but pooler_output is an error, never random; the
    output is transformers' BertModel(add_pooling_layer=False): no pooler_output among its keys.
    (The one test of a missing pooler; tests/checkpoints/tiny-no-pooler runs in test_reference.)"""
    import shutil
    from safetensors.numpy import save_file
    from numpybert.loading.checkpoint import read_safetensors
    tensors, _ = read_safetensors(minilm_dir / "model.safetensors")
    save_file({k: a for k, (_, a) in tensors.items() if not k.startswith("pooler.")}, str(tmp_path / "model.safetensors"))
    shutil.copy(minilm_dir / "config.json", tmp_path / "config.json")
    model = numpybert.load(tmp_path)
    assert not model.has_pooler and ("pooler", ) == tuple(g for g, _ in model.manifest.missing if g == "pooler")
    out = model(IDS)
    assert out.last_hidden_state.shape == (1, IDS.shape[1], 384) and np.isfinite(out.last_hidden_state).all()
    np.testing.assert_array_equal(out.last_hidden_state, numpybert.load(minilm_dir)(IDS).last_hidden_state)
    for get in (lambda: out.pooler_output, lambda: out["pooler_output"], out.tfhub):
        with pytest.raises(MissingWeightsError, match="no pooler"):
            get()
    out = model(IDS, output_attentions=True)
    assert out.keys() == ("last_hidden_state", "attentions")  # as BertModel(add_pooling_layer=False)
    assert out[1] is out.attentions and len(out.to_tuple()) == 2 and "pooler_output" not in out


def test_tfhub_without_hidden_states_recomputes_them(minilm):
    """The forward keeps no layer output unless asked; tfhub() then runs it again for encoder_outputs."""
    out, kept = minilm(IDS), minilm(IDS, output_hidden_states=True)
    assert out.hidden_states is None
    tf = out.tfhub()
    assert len(tf["encoder_outputs"]) == minilm.config.num_hidden_layers
    for a, b in zip(tf["encoder_outputs"], kept.hidden_states[1:]):
        assert np.array_equal(a, b)
