"""The benchmark's measuring parts (no torch here: the workers' protocol, inputs, memory, report)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from helpers import CHECKPOINTS, ROOT
from numpybert import bench, cli
from numpybert.cli.bench import parse_shapes
from numpybert.errors import InputValueError


def test_padded_inputs_spread_lengths_and_pad_right():
    inputs = bench.make_inputs(30522, 32, 128, padded=True)
    lengths = inputs["attention_mask"].sum(axis=1)
    assert lengths.min() == 8 and lengths.max() == 128 and len(set(lengths)) > 20
    assert np.array_equal(inputs["attention_mask"], np.arange(128) < lengths[:, None])  # right padding
    assert not inputs["input_ids"][inputs["attention_mask"] == 0].any()
    assert bench.make_inputs(30522, 2, 8)["attention_mask"].all()


def test_padded_env_reaches_any_worker(monkeypatch):
    monkeypatch.setenv(bench.PADDED_ENV, "1")
    assert not bench.make_inputs(30522, 4, 64)["attention_mask"].all()


def test_flops_count_real_tokens_only():
    config = {"hidden_size": 384, "intermediate_size": 1536, "num_hidden_layers": 6, "vocab_size": 30522}
    full, padded = bench.flops(config, 32, 128), bench.flops(config, 32, 128, padded=True)
    assert full == 2.0 * 6 * 32 * 128 * (4 * 384 ** 2 + 2 * 384 * 1536 + 2 * 128 * 384)
    assert 0.4 * full < padded < 0.7 * full


def test_shapes_parse_with_padding_and_none():
    assert parse_shapes("minilm:32x128:padded,base:1x512") == [("minilm", 32, 128, "padded"), ("base", 1, 512)]
    assert parse_shapes("none") == []
    with pytest.raises(InputValueError):
        parse_shapes("minilm:32x128:padded", padded_ok=False)
    with pytest.raises(InputValueError):
        parse_shapes("minilm:32x128:other")


def test_peak_growth_sees_a_temporary_that_is_gone():
    """In a fresh process, as the benchmark measures (a long test process may hold freed memory
    resident and reuse it)."""
    code = ("import numpy as np; from numpybert import bench; "
            "print(bench.peak_growth_mb(lambda: np.ones(25_000_000, np.float32).sum()))")  # 100 MB, freed at once
    growth = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert 90 <= growth <= 200


def test_memory_row_from_a_fresh_worker(minilm_dir):
    env = bench.worker_env(1, keep_env=False)
    row = bench.memory("minilm", 2, 32, str(minilm_dir), 1, env, with_torch=False)
    assert row["growth_mb"]["numpybert"] < 100 and "ratio_to_torch" not in row  # 64 rows: a few MB
    text = bench.markdown({"shapes": [], "memory": [row]})
    assert "minilm 2 × 32" in text


def test_report_marks_targets():
    row = {"median_ms": 5.0, "min_ms": 4.0, "max_ms": 6.0, "gflops": 1.0, "ratio_to_torch": 0.45}
    shape = {"model": "minilm", "B": 32, "T": 128, "padded": True, "target": 0.5,
             "engines": {"numpybert": row, "torch": dict(row, ratio_to_torch=1.0)}}
    memory = {"model": "base", "B": 32, "T": 512, "target": 0.6, "growth_mb": {"numpybert": 371, "torch": 1384},
              "ratio_to_torch": 371 / 1384}
    corpus = {"texts": 3000, "runs": 1, "target": 1.2, "texts_per_s": {"numpybert": 150, "sentence-transformers": 140},
              "ratio_to_st": 150 / 140}
    text = bench.markdown({"shapes": [shape], "memory": [memory], "corpus": corpus})
    assert "32 × 128 padded | numpybert | 5.0 | 4.0–6.0 | 0.45× ✓" in text
    assert "| base 32 × 512 | 371 | 1384 | 0.27× ✓" in text
    assert "1.07× ✗" in text


def test_corpus_is_deterministic_and_mixed(minilm_dir):
    texts = bench.make_corpus(str(minilm_dir), 300)
    assert texts == bench.make_corpus(str(minilm_dir), 300) and len(texts) == 300
    words = [len(t.split()) for t in texts]
    assert min(words) < 20 and max(words) > 60


def test_onnxruntime_joins_when_given_an_export():
    commands = bench.worker_commands("/m", 1, 16, 2, 3, False, onnx_path="/m.onnx")
    assert set(commands) == {"numpybert", "onnxruntime"}
    assert commands["onnxruntime"][2:5] == ["numpybert.bench", "ort-worker", "/m"]


def test_onnxruntime_column_on_the_onnx_audits_export(tmp_path, capsys):
    out_dir = tmp_path / "bench"
    code = cli.main(["bench", "--minilm", str(CHECKPOINTS / "tiny-bert"), "--shapes", "minilm:2x8", "--no-torch",
                     "--memory-shapes", "none", "--corpus-runs", "0", "--cold-runs", "0", "--reps", "1",
                     "--warmup", "0", "--threads", "1", "--onnx-minilm", str(ROOT / "tests/onnx/tiny-bert.float32.onnx"),
                     "--out", str(out_dir)])
    assert code == 0, capsys.readouterr().err
    engines = json.loads((out_dir / "bench.json").read_text())["shapes"][0]["engines"]
    assert set(engines) == {"numpybert", bench.FLOOR, "onnxruntime"} and engines["onnxruntime"]["runs"] == 1
    assert engines["numpybert"]["ratio_to_floor"] > 0 and "| over the GEMM floor |" in (out_dir / "bench.md").read_text()
    assert cli.main(["bench", "--minilm", str(CHECKPOINTS / "tiny-bert"), "--no-torch", "--onnx-minilm",
                     str(tmp_path / "missing.onnx"), "--out", str(out_dir)]) != 0
    assert "missing.onnx: no such file" in capsys.readouterr().err


@pytest.mark.parametrize("padded", [False, True])
def test_gemm_floor_does_the_forwards_products_and_nothing_else(monkeypatch, padded):
    """The floor multiplies exactly the forward's useful work (bench.flops: the dense layers on the
    computed rows, each sequence's two attention products), and only multiplies."""
    import numpybert
    model = numpybert.load(CHECKPOINTS / "tiny-bert")
    c = model.config
    mask = bench.make_inputs(c.vocab_size, 5, 12, padded=padded)["attention_mask"]
    forward = bench.gemm_floor(model.params, c, mask)
    done, matmul = [], np.matmul

    def counting(a, b, out):
        done.append(2 * a.shape[-1] * out.size)  # 2 × multiply-adds: out's elements × the inner size
        return matmul(a, b, out=out)
    monkeypatch.setattr(np, "matmul", counting)
    forward()
    config = {"hidden_size": c.hidden_size, "intermediate_size": c.intermediate_size,
              "num_hidden_layers": c.num_hidden_layers, "vocab_size": c.vocab_size}
    assert sum(done) == bench.flops(config, 5, 12, padded=padded)
