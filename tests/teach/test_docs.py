"""The teaching docs are executed: a changed number in docs/*.md fails here.

Convention (docs/pooled-vs-cls.md):
* every ```python block runs, in order, in one namespace shared by the whole file, and the
  ```text block right after it holds exactly what it prints;
* a ```console block starts with `$ numpybert ARGS`; the rest of the block is exactly what that
  command prints (run in-process through `numpybert.cli.main`), and it must exit 0.
Blocks in any other language are prose.
"""

import json

import pytest

from helpers import parse, require_minilm, ROOT, run_block, same_output

DOCS = [ROOT / "docs" / "pooled-vs-cls.md", ROOT / "docs" / "bert-family.md",
        ROOT / "docs" / "keras-hub.md"]  # its keras-hub presets of MiniLM: made by scripts/test.sh


@pytest.fixture(scope="module")
def doc_outputs():
    """Run every doc once, block by block, sharing one namespace per doc."""
    require_minilm()
    results = {}
    for path in DOCS:
        namespace = {"__name__": "__doc__"}
        results[path.name] = [run_block(b, namespace) for b in parse(path.read_text(encoding="utf-8"))]
    return results


CASES = [(path, i) for path in DOCS for i in range(len(parse(path.read_text(encoding="utf-8"))))]


@pytest.mark.parametrize("path, index", CASES, ids=[f"{p.name}:{i}" for p, i in CASES])
def test_doc_block_prints_what_the_doc_says(doc_outputs, path, index):
    block = parse(path.read_text(encoding="utf-8"))[index]
    actual = doc_outputs[path.name][index]
    assert same_output(actual, block.expected), (
        f"{path.name} line {block.line}: the block printed\n{actual}\nbut the doc says\n{block.expected}")


def test_each_doc_has_executable_blocks_with_output():
    for path in DOCS:
        blocks = parse(path.read_text(encoding="utf-8"))
        assert len(blocks) >= 5, f"{path.name}: only {len(blocks)} executable blocks"
        assert all(b.expected.strip() for b in blocks), f"{path.name}: a block has an empty expected output"
        assert any(b.kind == "console" and b.code.startswith("numpybert explain") for b in blocks)


def test_the_harness_catches_a_changed_number():
    """The harness itself: a wrong expected output must not pass, a right one must."""
    doc = "```python\nx = 0.25\nprint(f'{x:.3f}')\n```\n\n```text\n0.251\n```\n"
    [block] = parse(doc)
    actual = run_block(block, {})
    assert actual == "0.250\n"
    assert not same_output(actual, block.expected)
    assert same_output(actual, "0.250")


def test_the_harness_refuses_a_python_block_without_output():
    with pytest.raises(ValueError, match="followed by a text block"):
        parse("```python\nprint(1)\n```\n\n```python\nprint(2)\n```\n")


def test_the_harness_reports_a_failing_command_as_output():
    [block] = parse("```console\n$ numpybert info --model /nonexistent/model\n```\n")
    assert "[exit code 3]" in run_block(block, {})


def test_the_docs_similarity_table_is_recomputed_from_the_shared_sentence_pairs(minilm):
    """The doc's similarity table, computed here another way: its `mean` column is the cosine of
    `model.encode` (mean pooling, as the doc's) for each pair of tests/data/sentences.json, in order.
    The doc prints 3 decimals (rounding: 5e-4); the doc batches fewer texts, so padding differs (~1e-6)."""
    data = json.loads((ROOT / "tests" / "data" / "sentences.json").read_text(encoding="utf-8"))
    pairs = data["paraphrase_pairs"] + data["non_paraphrase_pairs"]
    table = next(b.expected for b in parse(DOCS[0].read_text(encoding="utf-8"))
                 if b.kind == "python" and 'data["paraphrase_pairs"]' in b.code)
    rows = [line for line in table.splitlines() if line.startswith(("paraphrase", "unrelated"))]
    assert [r.split()[0] for r in rows] == ["paraphrase"] * len(data["paraphrase_pairs"]) + \
        ["unrelated"] * len(data["non_paraphrase_pairs"])
    vectors = minilm.encode(data["sentences"], pooling="mean", normalize=True)
    for row, (i, j) in zip(rows, pairs):
        assert data["sentences"][i][:22] in row and data["sentences"][j][:22] in row, row
        assert float(row.split()[-1]) == pytest.approx(float(vectors[i] @ vectors[j]), abs=6e-4), row


def test_the_harness_masks_only_a_rechecks_rounding_residue():
    """explain's recheck residue (float32 rounding, kernel- and thread-dependent) is the one number not
    compared digit by digit; its bound and verdict are, and nothing else is masked."""
    line = "   max |difference| {} <= rounding bound {}: {}"
    assert same_output(line.format("4.5e-08", "1.7e-05", "agrees"), line.format("3.7e-08", "1.7e-05", "agrees"))
    assert not same_output(line.format("4.5e-08", "1.7e-05", "agrees"), line.format("4.5e-08", "1.8e-05", "agrees"))
    assert not same_output(line.format("4.5e-04", "1.7e-05", "DISAGREES"), line.format("3.7e-08", "1.7e-05", "agrees"))
    assert not same_output("cosine 0.9999 4.5e-08", "cosine 0.9999 3.7e-08")
