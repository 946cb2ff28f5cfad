"""docs/gguf.md is executed, as tests/teach/test_docs.py executes the teaching docs (the same convention:
each ```python block runs in one shared namespace and the ```text block after it is exactly what it prints).
It needs the GGUF files scripts/make_gguf.py makes (scripts/test.sh runs it) and the real MiniLM."""

import pytest

from helpers import ROOT, parse, require_gguf, require_minilm, run_block, same_output

DOC = ROOT / "docs" / "gguf.md"
BLOCKS = parse(DOC.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def outputs():
    require_minilm()
    for name in ("f32", "q8_0"):
        require_gguf(f"all-MiniLM-L6-v2.{name}.gguf")
    namespace = {"__name__": "__doc__"}
    return [run_block(block, namespace) for block in BLOCKS]


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=[f"gguf.md:{b.line}" for b in BLOCKS])
def test_gguf_doc_block_prints_what_the_doc_says(outputs, index):
    block = BLOCKS[index]
    assert same_output(outputs[index], block.expected), (
        f"gguf.md line {block.line}: the block printed\n{outputs[index]}\nbut the doc says\n{block.expected}")


def test_gguf_doc_has_executable_blocks():
    assert len(BLOCKS) >= 5 and all(b.expected.strip() for b in BLOCKS)
