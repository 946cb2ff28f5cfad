"""docs/training.md is executed (the harness of tests/teach/test_docs.py, from tests/helpers.py): the
gradient, AdamW and save blocks on a tiny checkpoint, and `numpybert explain --train` on real MiniLM,
whose every printed number (before/after separations, gradient norms, movements, the torch check) must
come out as the doc shows. Cost: ~1.5 min of CPU (20 float64 training steps of MiniLM on 32 sentences)."""

import pytest

from helpers import parse, require_minilm, ROOT, run_block, same_output

DOC = ROOT / "docs" / "training.md"
BLOCKS = parse(DOC.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def outputs():
    require_minilm()
    namespace = {"__name__": "__doc__"}
    return [run_block(b, namespace) for b in BLOCKS]


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_training_doc_prints_what_it_says(outputs, index):
    block = BLOCKS[index]
    assert same_output(outputs[index], block.expected), (
        f"training.md line {block.line}: the block printed\n{outputs[index]}\nbut the doc says\n{block.expected}")


def test_the_lesson_is_in_the_doc_and_checked_against_torch():
    assert any(b.kind == "console" and b.code == "numpybert explain --train" for b in BLOCKS)
    lesson = next(b.expected for b in BLOCKS if b.kind == "console")
    assert "torch autograd, step 1" in lesson and "the same 105 gradient tensors" in lesson


def test_explain_train_refuses_text_and_bad_steps(capsys):
    from numpybert import cli
    assert cli.main(["explain", "--train", "a sentence"]) == 2
    assert "--train takes no TEXT" in capsys.readouterr().err
    assert cli.main(["explain", "--train", "--steps", "0"]) == 2
    assert "--steps 0" in capsys.readouterr().err
    assert cli.main(["explain"]) == 2
    assert "explain needs TEXT" in capsys.readouterr().err
