"""`numpybert embed` (numpybert/apps/corpus.py): rows are the embeddings of the input's lines, bad
lines are never silent, OUT is never lost or clobbered, and a run killed anywhere resumes into a
file byte-identical to an uninterrupted run.

All on a tiny checkpoint with a vocabulary (tests/helpers.py `make_text_model`), so a
window of 1024 texts takes a fraction of a second. Embeddings are compared with
np.array_equal: the same texts in the same windows, in processes with the same BLAS thread
count, give the same bits (test_encode.py `test_window_boundaries_give_bit_identical_results`).
Killed and resumed runs are compared with a reference made by a fresh process as well, so no
state another test leaves in this process (BLAS threads) can touch the comparison.
"""

import errno
import glob
import json
import random
import signal
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import numpybert
from numpybert import cli
from numpybert.apps.corpus import CorpusJob, embed_corpus
from helpers import (kill_mid_run, leftovers, N_LINES, random_sentences,
                     rows_done, run_to_end, spawn_embed, wait_for_rows, WINDOW)


@pytest.fixture(scope="module")
def embedder(tiny_dir):
    return numpybert.Embedder(tiny_dir)


@pytest.fixture(scope="module")
def big(tmp_path_factory, tiny_dir):
    """A corpus of N_LINES lines and its uninterrupted embedding (the reference bytes)."""
    folder = tmp_path_factory.mktemp("big")
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(random_sentences(N_LINES)) + "\n")
    reference = folder / "reference.npy"
    run_to_end(tiny_dir, corpus, reference)  # a fresh process, as the runs it is compared with
    return corpus, reference.read_bytes()


def _embed(tiny_dir, *args):
    return cli.main(["embed", *map(str, args), "--model", str(tiny_dir), "--window", str(WINDOW), "--no-progress"])


# ----------------------------------------------------------------------------- what goes in, what comes out

def test_rows_are_the_embeddings_of_the_lines(tmp_path, tiny_dir, embedder):
    lines = ["the man plays", "", "café au lait", "a dog runs", "x"]
    raw = b"\xef\xbb\xbf" + "\n".join(lines[:3]).encode() + b"\r\n" + "\n".join(lines[3:]).encode()  # BOM, CRLF, no final \n
    (tmp_path / "in.txt").write_bytes(raw)
    out = tmp_path / "out.npy"
    assert _embed(tiny_dir, tmp_path / "in.txt", "--out", out) == 0
    got = np.load(out)
    assert got.dtype == np.float32 and got.shape == (5, 32)
    np.testing.assert_array_equal(got, embedder.embed(lines))
    assert leftovers(out) == []


def test_jsonl_text_field(tmp_path, tiny_dir, embedder):
    texts = random_sentences(40, seed=1)
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"id": i, "body": t}) + "\n" for i, t in enumerate(texts)))
    out = tmp_path / "out.npy"
    assert _embed(tiny_dir, tmp_path / "in.jsonl", "--out", out, "--text-field", "body", "--batch-size", 8) == 0
    np.testing.assert_array_equal(np.load(out), numpybert.Embedder(tiny_dir, batch_size=8).embed(texts))


def test_options_reach_the_embedder(tmp_path, tiny_dir):
    texts = random_sentences(30, seed=2)
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n")
    out = tmp_path / "out.npy"
    assert _embed(tiny_dir, tmp_path / "in.txt", "--out", out, "--pooling", "max", "--normalize",
                  "--max-seq-length", 8) == 0
    expected = numpybert.Embedder(tiny_dir, pooling="max", normalize=True, max_seq_length=8).embed(texts)
    np.testing.assert_array_equal(np.load(out), expected)


def test_empty_input_gives_zero_rows(tmp_path, tiny_dir, capsys):
    (tmp_path / "in.txt").write_bytes(b"")
    assert _embed(tiny_dir, tmp_path / "in.txt", "--out", tmp_path / "out.npy") == 0
    assert np.load(tmp_path / "out.npy").shape == (0, 32)
    assert "0 x 32 float32 (the input holds no texts)" in capsys.readouterr().err


BAD_LINES = {
    "invalid JSON": b'{"text": "unterminated\n',
    "no field 'text'": b'{"body": "x"}\n',
    "field 'text' is int": b'{"text": 5}\n',
    "field 'text' is None": b'{"text": null}\n',
    "expected a JSON object": b'["text"]\n',
    "lone surrogate": b'{"text": "\\ud800"}\n',
    "not valid UTF-8": b'{"text": "\xff"}\n',
    "invalid JSON (Expecting value": b"\n",  # an empty line is not a JSON object
}


@pytest.mark.parametrize("why", BAD_LINES)
def test_a_bad_line_stops_the_run_with_its_number(tmp_path, tiny_dir, capsys, why):
    good = b'{"text": "a dog"}\n'
    (tmp_path / "in.jsonl").write_bytes(good * 2 + BAD_LINES[why] + good)
    out = tmp_path / "out.npy"
    assert _embed(tiny_dir, tmp_path / "in.jsonl", "--out", out) == 2
    err = capsys.readouterr().err
    assert "line 3: " in err and why in err and "--skip-bad" in err
    assert not out.exists() and leftovers(out) == []


def test_skip_bad_skips_and_reports_every_bad_line(tmp_path, tiny_dir, embedder, capsys):
    good = [json.dumps({"text": t}).encode() + b"\n" for t in random_sentences(6, seed=3)]
    bad = list(BAD_LINES.values())
    mixed = [good[0], bad[0], good[1], good[2], *bad[1:4], good[3], good[4], *bad[4:], good[5]]
    (tmp_path / "in.jsonl").write_bytes(b"".join(mixed))
    out = tmp_path / "out.npy"
    assert _embed(tiny_dir, tmp_path / "in.jsonl", "--out", out, "--skip-bad") == 0
    np.testing.assert_array_equal(np.load(out), embedder.embed([json.loads(g)["text"] for g in good]))
    report = [json.loads(line) for line in (tmp_path / "out.npy.skipped.jsonl").read_text().splitlines()]
    assert [r["line"] for r in report] == [i + 1 for i, line in enumerate(mixed) if line in bad]
    assert all(r["error"] for r in report)
    assert f"skipped {len(bad)} bad line(s)" in capsys.readouterr().err


def test_existing_out_is_kept_without_overwrite(tmp_path, tiny_dir, embedder):
    (tmp_path / "in.txt").write_text("a dog\nthe cat\n")
    out = tmp_path / "out.npy"
    out.write_bytes(b"precious")
    assert _embed(tiny_dir, tmp_path / "in.txt", "--out", out) == 2
    assert out.read_bytes() == b"precious"
    assert _embed(tiny_dir, tmp_path / "in.txt", "--out", out, "--overwrite") == 0
    np.testing.assert_array_equal(np.load(out), embedder.embed(["a dog", "the cat"]))


# /sys stands for an unwritable directory: sysfs refuses new regular files to every user, root
# included (CI runs as root, where a chmod 0o500 directory is still writable).
@pytest.mark.parametrize("where, fragment", [
    ("unwritable", "cannot create files in /sys"),
    ("under_a_file", "is not a directory"),
    ("missing_dir", "does not exist"),
    ("a_directory", "is a directory"),
])
def test_an_output_that_cannot_be_written_fails_before_any_work(tmp_path, tiny_dir, capsys, where, fragment):
    corpus = tmp_path / "in.txt"
    corpus.write_text("a dog\nthe cat\n")
    assert Path("/sys").is_dir(), "this test needs Linux's /sys as an unwritable directory"
    out = {"unwritable": Path("/sys/out.npy"), "under_a_file": corpus / "out.npy",
           "missing_dir": tmp_path / "no" / "out.npy", "a_directory": tmp_path}[where]
    assert _embed(tiny_dir, corpus, "--out", out) == 2
    err = capsys.readouterr().err
    assert fragment in err and str(out) in err and "Traceback" not in err
    assert corpus.read_text() == "a dog\nthe cat\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt"]  # no probe, partial or state file left


def test_a_disk_that_fills_up_mid_run_is_one_error_line_and_resumable(tmp_path, tiny_dir, embedder, capsys,
                                                                       monkeypatch):
    corpus, out = tmp_path / "in.txt", tmp_path / "out.npy"
    corpus.write_text("\n".join(random_sentences(3 * WINDOW)) + "\n")
    write_window, calls = numpybert.apps.corpus._write_window, []

    def full_after_one_window(*args):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(out) + ".partial")
        write_window(*args)
    monkeypatch.setattr(numpybert.apps.corpus, "_write_window", full_after_one_window)
    assert _embed(tiny_dir, corpus, "--out", out) == 3
    err = capsys.readouterr().err
    assert "No space left on device" in err and "Traceback" not in err
    monkeypatch.undo()
    assert _embed(tiny_dir, corpus, "--out", out) == 0  # resumes after the one window written
    assert "resumed at row" in capsys.readouterr().err
    np.testing.assert_allclose(np.load(out), embedder.embed(random_sentences(3 * WINDOW)), atol=1e-6)


# ----------------------------------------------------------------------------- kill and resume


def test_sigkill_then_resume_is_byte_identical(tmp_path, tiny_dir, big):
    corpus, reference = big
    seed = random.randrange(10**6)
    out = tmp_path / "out.npy"
    code, _ = kill_mid_run(tiny_dir, corpus, out, signal.SIGKILL, random.Random(seed))
    assert code == -signal.SIGKILL
    done = rows_done(out)
    err = run_to_end(tiny_dir, corpus, out)
    assert f"resumed at row {done}" in err and done > 0, f"seed {seed}: {err}"
    assert out.read_bytes() == reference, f"seed {seed}: resumed file differs"
    assert leftovers(out) == []


def test_sigkill_right_after_start_then_rerun_is_byte_identical(tmp_path, tiny_dir, big):
    corpus, reference = big
    out = tmp_path / "out.npy"
    proc = spawn_embed(tiny_dir, corpus, out)
    time.sleep(random.uniform(0.05, 0.5))  # during start-up, the scan or the first window
    proc.kill()
    proc.communicate()
    run_to_end(tiny_dir, corpus, out)
    assert out.read_bytes() == reference


@pytest.fixture(scope="module")
def workers_reference(tmp_path_factory, tiny_dir, big):
    """An uninterrupted --workers 2 run: processes with one BLAS thread each, whose last bits differ
    from a 2-thread process's (see test_dask.py), so resumed --workers runs are compared with this."""
    out = tmp_path_factory.mktemp("workers") / "reference.npy"
    run_to_end(tiny_dir, big[0], out, "--workers", 2)
    return out.read_bytes()


@pytest.mark.parametrize("workers", [1, 2])
def test_sigint_stops_cleanly_and_resumes_byte_identical(tmp_path, tiny_dir, big, workers, workers_reference):
    """Also with --workers 2 (a pool of processes)."""
    corpus, reference = big
    reference = workers_reference if workers > 1 else reference
    seed = random.randrange(10**6)
    out = tmp_path / "out.npy"
    code, err = kill_mid_run(tiny_dir, corpus, out, signal.SIGINT, random.Random(seed), "--workers", workers)
    assert code == 130, err
    done = rows_done(out)
    assert f"the same command resumes at row {done} (input line {done + 1})" in err and "Traceback" not in err
    assert f"resumed at row {done}" in run_to_end(tiny_dir, corpus, out, "--workers", workers)
    assert out.read_bytes() == reference, f"seed {seed}: resumed file differs"


def _children(pid):
    """The live child processes of `pid` (Linux /proc; a zombie counts as gone)."""
    kids = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            state, ppid = open(stat).read().rsplit(")", 1)[1].split()[:2]
        except (OSError, ValueError):
            continue
        if int(ppid) == pid and state != "Z":
            kids.append(int(stat.split("/")[2]))
    return kids


def _alive(pid):
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_sigkill_with_workers_leaves_no_worker_and_resumes(tmp_path, tiny_dir, big, workers_reference):
    corpus, _ = big
    out = tmp_path / "out.npy"
    proc = spawn_embed(tiny_dir, corpus, out, "--workers", 2)
    wait_for_rows(proc, out, 2 * WINDOW)
    workers = _children(proc.pid)
    assert len(workers) >= 2, "expected the pool's worker processes"
    proc.kill()
    proc.communicate()
    deadline = time.monotonic() + 10
    while any(map(_alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(map(_alive, workers)), "worker processes outlived the killed run"
    run_to_end(tiny_dir, corpus, out, "--workers", 2)
    assert out.read_bytes() == workers_reference


def test_resume_refuses_other_arguments_or_a_changed_input(tmp_path, tiny_dir, big, capsys):
    corpus, reference = big
    local = tmp_path / "corpus.txt"
    local.write_bytes(corpus.read_bytes())
    out = tmp_path / "out.npy"
    kill_mid_run(tiny_dir, local, out, signal.SIGKILL, random.Random(0))
    assert _embed(tiny_dir, local, "--out", out, "--batch-size", 16) == 2
    assert "batch_size: 32 then, 16 now" in capsys.readouterr().err
    assert _embed(tiny_dir, local, "--out", out, "--pooling", "cls") == 2
    assert "settings" in capsys.readouterr().err
    with open(local, "a") as f:
        f.write("one more line\n")
    assert _embed(tiny_dir, local, "--out", out) == 2
    err = capsys.readouterr().err
    assert "input_sha256" in err and "--restart" in err
    local.write_bytes(corpus.read_bytes())
    run_to_end(tiny_dir, local, out, "--restart")  # a fresh process, as the reference: the same BLAS threads
    assert out.read_bytes() == reference  # (an earlier test's set_threads here changed the last bits: order-dependent)


# ----------------------------------------------------------------------------- streaming

class _FakeEmbedder(numpybert.Embedder):
    """The real job plumbing with a free 'model': row i of a window gets the text's length."""

    def embed(self, texts, on_batch=None):
        self.largest_call = max(getattr(self, "largest_call", 0), len(texts))
        return np.repeat(np.array([[len(t)] for t in texts], np.float32), self.dim, axis=1)


def _peak_memory(tmp_path, tiny_dir, n_lines):
    corpus = tmp_path / f"c{n_lines}.txt"
    corpus.write_text("".join(f"line {i} " + "word " * (i % 50) + "\n" for i in range(n_lines)))
    job = CorpusJob(corpus, tmp_path / f"c{n_lines}.npy", _FakeEmbedder(tiny_dir, window=WINDOW))
    tracemalloc.start()
    embed_corpus(job)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak, job


def test_memory_does_not_grow_with_the_corpus(tmp_path, tiny_dir):
    small, _ = _peak_memory(tmp_path, tiny_dir, 4 * WINDOW)
    large, job = _peak_memory(tmp_path, tiny_dir, 64 * WINDOW)  # 16x the lines (~9 MB of text)
    assert job.embedder.largest_call == WINDOW
    assert large < 1.5 * small, f"peak traced memory {small} B for 4 windows, {large} B for 64"
    rows = np.load(job.out)
    assert rows.shape == (64 * WINDOW, 32) and rows[123, 0] == len(f"line 123 " + "word " * 23)


def test_progress_bar_counts_tokens_and_texts(tmp_path, tiny_dir, embedder, capsys):
    """The bar's total is the tokens the model will read (so the ETA follows the work: the
    longest texts go first); texts are shown beside it."""
    import tqdm  # noqa: F401  (the cli extra is part of the test extra: missing means FAIL)
    texts = random_sentences(50, seed=4)
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n")
    assert cli.main(["embed", str(tmp_path / "in.txt"), "--out", str(tmp_path / "o.npy"), "--model", str(tiny_dir)]) == 0
    err = capsys.readouterr().err
    tokens = int(embedder.token_counts(texts)[0].sum())
    assert f"{tokens}/{tokens} tokens, 50/50 texts" in err and "tok/s" in err


def test_progress_follows_tokens_not_texts(tmp_path, tiny_dir):
    """After the first batch (the longest texts), the tokens done are far ahead of the texts done."""
    texts = ["word " * 60] * 8 + ["a"] * 56  # 8 long texts, then 56 short ones
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n")
    calls = []
    embedder = numpybert.Embedder(tiny_dir, batch_size=8)
    embed_corpus(CorpusJob(tmp_path / "in.txt", tmp_path / "o.npy", embedder), progress=lambda *a: calls.append(a))
    counts = embedder.token_counts(texts)[0]
    assert counts[0] > 10 * counts[-1]
    rows, total_rows, tokens, total_tokens = calls[1]  # after the first batch
    assert (rows, total_rows) == (8, 64) and (tokens, total_tokens) == (counts[:8].sum(), counts.sum())
    assert tokens / total_tokens > 0.5 > rows / total_rows
    assert calls[-1] == (64, 64, total_tokens, total_tokens)
