"""`numpybert audit --onnx`: a deployed ONNX graph against numpybert's reference model.

The tiny-bert graphs under tests/onnx/ are committed (scripts/export_onnx.py tiny). The
all-MiniLM-L6-v2 graphs are never committed: they are exported once per session with torch (the
golden extra), or taken from $NUMPYBERT_ONNX_DIR when someone exported them already.
"""

import json
import os
import sys

import numpy as np
import pytest

from helpers import CHECKPOINTS, ROOT

import onnx  # the onnx extra is a prerequisite (CI installs it): missing fails, never skips
from numpybert import cli
from numpybert.audit import onnx as graph_audit


TINY = CHECKPOINTS / "tiny-bert"
GRAPHS = ROOT / "tests" / "onnx"
VARIANTS = ("float32", "optimized", "int8", "float16")


def audit_json(capsys, graph, model=TINY, *extra):
    code = cli.main(["audit", "--onnx", str(graph), "--model", str(model), "--json", *extra])
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if captured.out else None), captured.err


def names(report):
    return [t["name"] for t in report["tensors"]]


# ----------------------------------------------------------------------------- tiny-bert, committed graphs

def test_committed_graphs_are_small_and_say_how_they_were_made():
    for variant in VARIANTS:
        path = GRAPHS / f"tiny-bert.{variant}.onnx"
        assert path.stat().st_size < 1_000_000, path
        props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        assert props["numpybert.made_by"].startswith("scripts/export_onnx.py"), path


def test_float32_export_passes_with_every_hidden_state_mapped(capsys):
    code, report, err = audit_json(capsys, GRAPHS / "tiny-bert.float32.onnx")
    assert code == 0 and report["passed"] and report["first_divergence"] is None, err
    expected = ["embeddings.output"]
    for i in range(2):
        p = f"encoder.layer.{i}"
        expected += [f"{p}.attention.self.probs", f"{p}.attention.output", f"{p}.intermediate.output", f"{p}.output"]
    assert names(report) == expected + ["last_hidden_state", "pooler_output"]
    assert report["graph_precision"] == "float32"
    assert report["graph_inputs"]["input_ids"] == {"name": "input_ids", "dtype": "int64"}
    # the error budget: a float32 graph is as far from float64 as numpybert float32 is (rounding only)
    last = report["tensors"][-2]
    assert last["fp64"]["graph"]["max_abs"] < 1e-5 and last["fp64"]["numpybert_fp32"]["max_abs"] < 1e-5
    assert report["task"]["cosine_min"] > 1 - 1e-9 and report["task"]["top1"] == report["task"]["top5"] == 1.0


def test_optimized_graph_passes_and_says_what_fusion_hides(capsys):
    graph = GRAPHS / "tiny-bert.optimized.onnx"
    fused = {n.op_type for n in onnx.load(str(graph)).graph.node}
    assert {"Attention", "SkipLayerNormalization", "EmbedLayerNormalization", "BiasGelu"} <= fused
    code, report, err = audit_json(capsys, graph)
    assert code == 0 and report["passed"], err
    assert "encoder.layer.0.output" in names(report) and "encoder.layer.0.intermediate.output" in names(report)
    assert not any(n.endswith("attention.self.probs") for n in names(report))
    assert "attention probabilities: inside fused Attention nodes, not exposed" in report["unmapped"]


def test_int8_graph_fails_names_first_divergence_and_reports_the_task(capsys):
    code, report, _ = audit_json(capsys, GRAPHS / "tiny-bert.int8.onnx")
    assert code == 1 and not report["passed"]
    first = report["first_divergence"]
    # quantize_dynamic quantizes the embedding tables (Gather) too: the error starts there
    assert first["name"] == "embeddings.output" and first["index"] == 0
    assert first["graph_tensor"].endswith("LayerNormalization_output_0")
    # the budget: the graph's error is far beyond numpybert float32's own
    assert first["fp64"]["graph"]["max_abs"] > 1000 * first["fp64"]["numpybert_fp32"]["max_abs"]
    task = report["task"]
    assert 0.99 < task["cosine_min"] <= task["cosine_mean"] < 1 - 1e-6
    assert task["texts"] == 2 + len(graph_audit.RANDOM_LENGTHS)  # the audit rows and the ranking rows
    assert 0 <= task["top1"] <= 1 and 0 <= task["top5"] <= 1


def test_int8_table_marks_first_divergence_and_the_budget(capsys):
    code = cli.main(["audit", "--onnx", str(GRAPHS / "tiny-bert.int8.onnx"), "--model", str(TINY)])
    out = capsys.readouterr().out
    assert code == 1
    row = next(line for line in out.splitlines() if line.startswith("embeddings.output "))
    assert row.endswith("FAIL <- first divergence")
    assert "first divergence: embeddings.output" in out
    assert "from the graph's precision (int8)" in out
    assert "top-1 agreement" in out and "top-5 overlap" in out


def test_float16_graph_fails_at_float32_tolerance_but_keeps_the_task(capsys):
    code, report, _ = audit_json(capsys, GRAPHS / "tiny-bert.float16.onnx")
    assert code == 1 and report["graph_precision"] == "float16"
    assert report["first_divergence"]["name"] == "embeddings.output"
    assert 2e-4 < report["first_divergence"]["real"]["max_abs"] < 1e-2  # float16 rounding: eps 9.8e-4
    assert report["task"]["cosine_min"] > 1 - 1e-5 and report["task"]["top1"] == 1.0


def test_padded_positions_are_reported_not_judged():
    """A graph that computes padding its own way (another mask value, a fused kernel) still passes."""
    mask = np.array([[1, 1, 1], [1, 0, 0]])
    ref = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    graph = ref.copy()
    graph[1, 1:] += 1.9  # what the notes measured at padded positions of a torch export
    row = graph_audit.compare_row("last_hidden_state", "out", graph, ref, ref.astype(np.float64), mask)
    assert row.passed and row.real.max_abs == 0 and row.padded.max_abs == pytest.approx(1.9, rel=1e-6)
    graph[0, 2, 0] += 1e-3  # a real token off: fails
    assert not graph_audit.compare_row("last_hidden_state", "out", graph, ref, ref.astype(np.float64), mask).passed


def test_ranking_agreement():
    x = np.random.default_rng(0).standard_normal((12, 8))
    assert graph_audit.ranking_agreement(x, x) == (1.0, 1.0)
    assert graph_audit.ranking_agreement(x, x * 3.0 + 0.0) == (1.0, 1.0)  # cosine ignores scale
    top1, top5 = graph_audit.ranking_agreement(x, np.random.default_rng(1).standard_normal((12, 8)))
    assert top1 < 0.5 and top5 < 0.8


# ----------------------------------------------------------------------------- graphs that are not BERT's

def reseeded(tmp_path):
    """tiny-bert's float32 graph with every weight redrawn: another checkpoint of the same shape."""
    from onnx import numpy_helper
    proto = onnx.load(str(GRAPHS / "tiny-bert.float32.onnx"))
    rng = np.random.default_rng(1)
    for init in proto.graph.initializer:
        a = numpy_helper.to_array(init)
        if a.dtype == np.float32 and a.ndim >= 1 and a.size > 1:
            init.CopyFrom(numpy_helper.from_array(rng.standard_normal(a.shape).astype(np.float32) * a.std()
                                                  + a.mean(), init.name))
    path = tmp_path / "other.onnx"
    onnx.save(proto, str(path))
    return path


def test_graph_of_another_checkpoint_is_said_in_one_line(capsys, tmp_path):
    code = cli.main(["audit", "--onnx", str(reseeded(tmp_path)), "--model", str(TINY)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "its weights do not belong to" in err and "cosine" in err


def test_graph_of_another_shape_is_said_in_one_line(capsys, minilm_dir):
    code = cli.main(["audit", "--onnx", str(GRAPHS / "tiny-bert.float32.onnx"), "--model", str(minilm_dir)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "its weights do not belong to" in err


def tfhub_int32(tmp_path):
    """The float32 graph behind TF Hub's int32 inputs (input_word_ids, input_mask, input_type_ids)."""
    from onnx import TensorProto, helper
    proto = onnx.load(str(GRAPHS / "tiny-bert.float32.onnx"))
    renames = {"input_ids": "input_word_ids", "attention_mask": "input_mask", "token_type_ids": "input_type_ids"}
    casts = []
    for graph_input in proto.graph.input:
        old, new = graph_input.name, renames[graph_input.name]
        graph_input.name = new
        graph_input.type.tensor_type.elem_type = TensorProto.INT32
        casts.append(helper.make_node("Cast", [new], [old], to=TensorProto.INT64))
    nodes = casts + list(proto.graph.node)
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)
    path = tmp_path / "tfhub.onnx"
    onnx.save(proto, str(path))
    return path


def test_tfhub_names_and_int32_inputs(capsys, tmp_path):
    code, report, err = audit_json(capsys, tfhub_int32(tmp_path))
    assert code == 0 and report["passed"], err
    assert report["graph_inputs"]["input_ids"] == {"name": "input_word_ids", "dtype": "int32"}
    assert report["graph_inputs"]["attention_mask"]["name"] == "input_mask"


def test_not_an_onnx_file_is_one_line(capsys, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00not a protobuf at all" * 10)
    code = cli.main(["audit", "--onnx", str(bad), "--model", str(TINY)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "not an ONNX model" in err
    code = cli.main(["audit", "--onnx", str(tmp_path / "missing.onnx"), "--model", str(TINY)])
    assert code == 3 and "no such ONNX file" in capsys.readouterr().err


def test_without_the_onnx_extra_says_install_it(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    code = cli.main(["audit", "--onnx", str(GRAPHS / "tiny-bert.float32.onnx"), "--model", str(TINY)])
    err = capsys.readouterr().err
    assert code == 2 and "pip install -e '.[onnx]'" in err and len(err.strip().splitlines()) == 1


def test_switches_that_do_not_apply_are_refused(capsys):
    code = cli.main(["audit", "--onnx", str(GRAPHS / "tiny-bert.float32.onnx"), "--model", str(TINY),
                     "--gelu", "tanh"])
    assert code == 2 and "drop --mask-value" in capsys.readouterr().err


def test_import_numpybert_does_not_load_onnx():
    import subprocess
    code = ("import sys, numpybert, numpybert.audit, numpybert.cli; numpybert.cli.build_parser(); "
            "bad = [m for m in ('onnx', 'onnxruntime', 'torch') if m in sys.modules]; sys.exit(bool(bad))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# ----------------------------------------------------------------------------- all-MiniLM-L6-v2, exported here

@pytest.fixture(scope="session")
def minilm_graphs(minilm_dir, tmp_path_factory):
    """The four MiniLM variants: from $NUMPYBERT_ONNX_DIR (scripts/export_onnx.py minilm --out DIR) or exported now."""
    ready = os.environ.get("NUMPYBERT_ONNX_DIR")
    if ready:
        paths = {v: os.path.join(ready, f"all-MiniLM-L6-v2.{v}.onnx") for v in VARIANTS}
        missing = [p for p in paths.values() if not os.path.isfile(p)]
        if missing:
            pytest.fail(f"NUMPYBERT_ONNX_DIR={ready} lacks {missing}", pytrace=False)
        return paths
    try:
        import torch  # noqa: F401
    except ImportError:
        pytest.fail("exporting all-MiniLM-L6-v2 to ONNX needs torch: install the golden extra "
                    "(pip install -e '.[golden]'), or point NUMPYBERT_ONNX_DIR at exports made by "
                    "scripts/export_onnx.py minilm", pytrace=False)
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import export_onnx
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    out = tmp_path_factory.mktemp("minilm-onnx")
    return {v: str(p) for v, p in export_onnx.export_all(minilm_dir, out, "all-MiniLM-L6-v2").items()}


def test_minilm_float32_export_passes(capsys, minilm_graphs, minilm_dir):
    code, report, err = audit_json(capsys, minilm_graphs["float32"], minilm_dir)
    assert code == 0 and report["passed"], err
    assert len(report["tensors"]) == 1 + 4 * 6 + 2  # every hidden state, probs and GELU output, both outputs
    assert report["task"]["cosine_min"] > 1 - 1e-9 and report["task"]["top1"] == 1.0


def test_minilm_optimized_graph_passes(capsys, minilm_graphs, minilm_dir):
    code, report, err = audit_json(capsys, minilm_graphs["optimized"], minilm_dir)
    assert code == 0 and report["passed"], err
    assert "attention probabilities: inside fused Attention nodes, not exposed" in report["unmapped"]


def test_minilm_int8_fails_with_divergence_cosine_and_ranking(capsys, minilm_graphs, minilm_dir):
    code, report, _ = audit_json(capsys, minilm_graphs["int8"], minilm_dir)
    assert code == 1 and report["first_divergence"]["name"] == "embeddings.output"
    task = report["task"]
    assert task["texts"] == 2 + len(graph_audit.RANKING_TEXTS)
    # measured: cosine min 0.948, mean 0.962; top-1 83%, top-5 88% (QInt8 weights and embedding tables)
    assert 0.9 < task["cosine_min"] <= task["cosine_mean"] < 0.999
    assert 0.5 <= task["top5"] < 1.0 and 0.5 <= task["top1"] <= 1.0
    layers = [t for t in report["tensors"] if t["name"].endswith(".output") and ".attention" not in t["name"]
              and "intermediate" not in t["name"]]
    assert len(layers) == 7 and all(not t["passed"] for t in layers)


def test_minilm_float16(capsys, minilm_graphs, minilm_dir):
    code, report, _ = audit_json(capsys, minilm_graphs["float16"], minilm_dir)
    assert code == 1 and report["graph_precision"] == "float16"
    assert report["task"]["cosine_min"] > 0.9999 and report["task"]["top1"] == 1.0


# ----------------------------------------------------------------------------- other graph layouts

def with_sentence_embedding(tmp_path):
    """The float32 graph plus sentence-transformers' head: mean pooling over the mask, then L2
    normalisation, as output `sentence_embedding` (what ONNX exports of embedding models return)."""
    from onnx import TensorProto, helper
    proto = onnx.load(str(GRAPHS / "tiny-bert.float32.onnx"))
    h = "last_hidden_state"
    nodes = [
        helper.make_node("Cast", ["attention_mask"], ["se_mask"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["se_mask", "se_axis2"], ["se_mask3"]),
        helper.make_node("Mul", [h, "se_mask3"], ["se_masked"]),
        helper.make_node("ReduceSum", ["se_masked", "se_axis1"], ["se_sum"], keepdims=0),
        helper.make_node("ReduceSum", ["se_mask3", "se_axis1"], ["se_count"], keepdims=0),
        helper.make_node("Div", ["se_sum", "se_count"], ["se_mean"]),
        helper.make_node("LpNormalization", ["se_mean"], ["sentence_embedding"], axis=-1, p=2),
    ]
    proto.graph.initializer.extend([helper.make_tensor("se_axis1", TensorProto.INT64, [1], [1]),
                                    helper.make_tensor("se_axis2", TensorProto.INT64, [1], [2])])
    proto.graph.node.extend(nodes)
    proto.graph.output.append(helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", 32]))
    path = tmp_path / "st.onnx"
    onnx.save(proto, str(path))
    return path


def test_a_sentence_embedding_output_is_used_for_the_task(capsys, tmp_path):
    code, report, err = audit_json(capsys, with_sentence_embedding(tmp_path))
    assert code == 0, err
    assert report["graph_outputs"] == {"last_hidden_state": "last_hidden_state", "pooler_output": "pooler_output",
                                       "sentence_embedding": "sentence_embedding"}
    assert report["task"]["embedding"] == "the graph's sentence embedding"
    assert report["task"]["cosine_min"] > 1 - 1e-9


def test_a_fixed_sequence_length_graph_gets_padded_inputs(capsys, tmp_path):
    """TF Hub style: every input is [batch, 16]; the audit pads its ids to 16 for both sides."""
    proto = onnx.load(str(GRAPHS / "tiny-bert.float32.onnx"))
    for graph_input in proto.graph.input:
        graph_input.type.tensor_type.shape.dim[1].dim_value = 16
    path = tmp_path / "fixed.onnx"
    onnx.save(proto, str(path))
    code, report, err = audit_json(capsys, path)
    assert code == 0 and report["inputs"]["shape"] == [2, 16] and report["inputs"]["real_tokens"] == 14, err


def test_a_graph_without_attention_mask_runs_row_by_row(capsys, tmp_path):
    """An export taking input_ids only cannot skip padding: each row runs unpadded."""
    from onnx import TensorProto, helper
    proto = onnx.load(str(GRAPHS / "tiny-bert.float32.onnx"))
    [mask] = [i for i in proto.graph.input if i.name == "attention_mask"]
    proto.graph.input.remove(mask)
    # the mask becomes ones shaped like input_ids, computed inside the graph
    proto.graph.node.insert(0, helper.make_node("Shape", ["input_ids"], ["am_shape"]))
    proto.graph.node.insert(1, helper.make_node("ConstantOfShape", ["am_shape"], ["attention_mask"],
                                                value=helper.make_tensor("one", TensorProto.INT64, [1], [1])))
    path = tmp_path / "nomask.onnx"
    onnx.save(proto, str(path))
    code, report, err = audit_json(capsys, path)
    assert code == 0 and report["passed"], err
    assert "attention_mask" not in report["graph_inputs"] and report["inputs"]["real_tokens"] == 14
    assert report["inputs"]["shape"] == [2, 9]  # one row is padded: it ran alone, unpadded


# ----------------------------------------------------------------------------- the BERT family (issue 21)

def test_roberta_export_passes_and_its_int8_fails_at_a_named_tensor(capsys):
    """An exported RobertaModel (positions from the ids inside the graph, pad id 1): the float32
    graph passes with every hidden state mapped, the int8 one fails and names where it diverges."""
    roberta = CHECKPOINTS / "tiny-roberta"
    code, report, err = audit_json(capsys, GRAPHS / "tiny-roberta.float32.onnx", roberta)
    assert code == 0 and report["passed"] and report["first_divergence"] is None, err
    assert "encoder.layer.1.output" in names(report) and names(report)[-2:] == ["last_hidden_state", "pooler_output"]
    assert report["task"]["cosine_min"] > 1 - 1e-9
    code, report, _ = audit_json(capsys, GRAPHS / "tiny-roberta.int8.onnx", roberta)
    assert code == 1 and not report["passed"] and report["first_divergence"]
