"""Parquet INPUT for `numpybert embed` (numpybert/apps/parquet_input.py): a string column of texts and
an optional id column, read a row group at a time; a row is what a line is for text and JSONL (numbered
from 1 in errors, skipped with --skip-bad, resumed after a kill to a byte-identical file).

On the tiny checkpoint with a vocabulary; embeddings are compared with np.array_equal, as in
test_corpus.py (the same windows in the same process give the same bits).
"""

import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import numpybert
from numpybert import cli
from numpybert.apps.corpus import CorpusJob, embed_corpus
from numpybert.apps.parquet_input import parquet_rows

from helpers import assert_one_error_line, leftovers, random_sentences


def _embed(tiny_dir, *args):
    return cli.main(["embed", *map(str, args), "--model", str(tiny_dir), "--no-progress"])


@pytest.fixture(scope="module")
def texts():
    return random_sentences(500, seed=4)


def test_text_and_id_columns_in_row_groups(tmp_path, tiny_dir, texts):
    """Ids from an integer column, rows in input order across row groups smaller than a window."""
    ids = list(range(1000, 1500))
    pq.write_table(pa.table({"n": ids, "body": texts}), tmp_path / "in.parquet", row_group_size=64)
    out = tmp_path / "out.parquet"
    assert _embed(tiny_dir, tmp_path / "in.parquet", "--out", out, "--text-field", "body", "--id-field", "n",
                  "--window", 100) == 0
    table = pq.read_table(out)
    assert table.schema.field("id").type == pa.int64() and table.column("id").to_pylist() == ids
    got = np.array(table.column("embedding").to_pylist(), np.float32)
    np.testing.assert_array_equal(got, numpybert.Embedder(tiny_dir, window=100).embed(texts))
    assert leftovers(out) == []


def test_without_an_id_column_rows_are_numbered_from_1(tmp_path, tiny_dir, texts):
    pq.write_table(pa.table({"text": pa.array(texts[:20], pa.large_string())}), tmp_path / "in.parquet")
    out = tmp_path / "out.jsonl"
    assert _embed(tiny_dir, tmp_path / "in.parquet", "--out", out) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == list(range(1, 21))
    np.testing.assert_array_equal(np.array([r["embedding"] for r in rows], np.float32),
                                  numpybert.Embedder(tiny_dir).embed(texts[:20]))


@pytest.mark.parametrize("start", [0, 1, 63, 64, 65, 200, 499, 500])
def test_reading_from_a_row_skips_whole_row_groups(tmp_path, texts, start):
    pq.write_table(pa.table({"text": texts}), tmp_path / "in.parquet", row_group_size=64)
    got = [text for text, _, _ in parquet_rows(str(tmp_path / "in.parquet"), "text", None, start)]
    assert got == texts[start:]


def test_a_killed_run_resumes_inside_a_row_group_byte_identical(tmp_path, tiny_dir, texts):
    """Windows of 100 rows over row groups of 64: the resumed run starts in the middle of a group."""
    pq.write_table(pa.table({"id": [f"d{i}" for i in range(500)], "text": texts}), tmp_path / "in.parquet",
                   row_group_size=64)
    embedder = numpybert.Embedder(tiny_dir, window=100)
    reference = tmp_path / "reference.parquet"
    embed_corpus(CorpusJob(tmp_path / "in.parquet", reference, embedder, id_field="id"))

    def dies_after_two_windows(windows):
        for k, window in enumerate(windows):
            if k == 2:
                raise KeyboardInterrupt
            yield window, embedder.embed(window.texts)
    out = tmp_path / "out.parquet"
    with pytest.raises(KeyboardInterrupt):
        embed_corpus(CorpusJob(tmp_path / "in.parquet", out, embedder, id_field="id"), dies_after_two_windows)
    result = embed_corpus(CorpusJob(tmp_path / "in.parquet", out, embedder, id_field="id"))
    assert result.resumed_from == 200
    assert out.read_bytes() == reference.read_bytes()


def test_a_null_text_stops_the_run_with_its_row_number(tmp_path, tiny_dir, capsys):
    pq.write_table(pa.table({"text": ["a", "b", None, "d"]}), tmp_path / "in.parquet", row_group_size=2)
    assert _embed(tiny_dir, tmp_path / "in.parquet", "--out", tmp_path / "out.npy") == 2
    assert_one_error_line(capsys.readouterr().err, "embed", "in.parquet row 3: column 'text' is null")
    assert not (tmp_path / "out.npy").exists()


def test_skip_bad_lists_bad_rows(tmp_path, tiny_dir, capsys):
    pq.write_table(pa.table({"id": ["x", None, "z", "w"], "text": ["a", "b", None, "d"]}), tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    assert _embed(tiny_dir, tmp_path / "in.parquet", "--out", out, "--id-field", "id", "--skip-bad") == 0
    assert pq.read_table(out).column("id").to_pylist() == ["x", "w"]
    report = [json.loads(line) for line in (tmp_path / "out.parquet.skipped.jsonl").read_text().splitlines()]
    assert report == [{"row": 2, "error": "id column 'id' is null"}, {"row": 3, "error": "column 'text' is null"}]


def test_uint64_ids_beyond_int64_are_bad_rows(tmp_path, tiny_dir, capsys):
    pq.write_table(pa.table({"id": pa.array([1, 2**63], pa.uint64()), "text": ["a", "b"]}), tmp_path / "in.parquet")
    assert _embed(tiny_dir, tmp_path / "in.parquet", "--out", tmp_path / "o.parquet", "--id-field", "id") == 2
    assert_one_error_line(capsys.readouterr().err, "embed", "row 2: id column 'id' is 9223372036854775808, outside")


@pytest.mark.parametrize("table, args, fragment", [
    ({"body": ["a"]}, [], "no column 'text' (--text-field NAME names it; columns: 'body')"),
    ({"text": ["a"]}, ["--id-field", "key"], "no column 'key' (--id-field NAME names it; columns: 'text')"),
    ({"text": [1, 2]}, [], "column 'text' is int64, expected strings"),
    ({"text": ["a"], "key": [1.5]}, ["--id-field", "key"], "id column 'key' is double, expected integers or strings"),
])
def test_a_wrong_column_is_one_error_before_any_work(tmp_path, tiny_dir, capsys, table, args, fragment):
    pq.write_table(pa.table(table), tmp_path / "in.parquet")
    assert _embed(tiny_dir, tmp_path / "in.parquet", "--out", tmp_path / "out.jsonl", *args) == 2
    assert_one_error_line(capsys.readouterr().err, "embed", fragment)
    assert leftovers(tmp_path / "out.jsonl") == [] and not (tmp_path / "out.jsonl").exists()


def test_a_file_that_is_not_parquet_is_one_error(tmp_path, tiny_dir, capsys):
    (tmp_path / "in.parquet").write_text("id,text\n1,a\n")
    assert _embed(tiny_dir, tmp_path / "in.parquet", "--out", tmp_path / "out.npy") == 2
    assert_one_error_line(capsys.readouterr().err, "embed", "in.parquet: not a valid Parquet file")


def _peak_reading(path) -> tuple:
    """(rows read, pyarrow's peak allocation) in a fresh process: the memory pool's peak is per process."""
    code = ("import pyarrow as pa, sys; from numpybert.apps.parquet_input import parquet_rows; "
            "n = sum(1 for _ in parquet_rows(sys.argv[1], 'text', None)); "
            "print(n, pa.default_memory_pool().max_memory())")
    out = subprocess.run([sys.executable, "-c", code, str(path)], check=True, capture_output=True, text=True).stdout
    return tuple(map(int, out.split()))


def test_the_file_is_read_one_row_group_at_a_time(tmp_path):
    """pyarrow's peak allocation while every row is read does not grow with the file: 16 and 64 row
    groups of 1000 texts (~0.2 MB each). Measured: 0.95 MB for both (14 MB of text in the larger),
    and 1.2 / 2.0 MB when every row group was asked of pyarrow at once (it pre-buffers them all)."""
    peaks = {}
    for groups in (16, 64):
        texts = [f"text {i} " + "word " * 40 for i in range(groups * 1000)]
        pq.write_table(pa.table({"text": texts}), tmp_path / f"{groups}.parquet", row_group_size=1000)
        rows, peaks[groups] = _peak_reading(tmp_path / f"{groups}.parquet")
        assert rows == groups * 1000
    whole = sum(map(len, texts))
    assert peaks[64] < 1.1 * peaks[16] and peaks[64] < whole / 8, (peaks, whole)
