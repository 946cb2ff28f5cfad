"""Embedding a corpus file into a .npy, streaming, resumable, and never losing data.

    numpybert embed corpus.jsonl --out corpus.npy        # the command (numpybert/commands/embed.py)
    embed_corpus(CorpusJob("corpus.jsonl", "corpus.npy", embedder))   # the same from Python

INPUT is a text file (one text per line; an empty line is an empty text) or JSONL (one JSON
object per line, the text under `text_field`). OUT is a float32 [N, D] .npy, row i = the
i-th good line.

How it runs, and why nothing is lost:
1. Scan: one streaming pass over INPUT counts the texts (N), checks every line (a bad line
   stops the run with its line number before any compute; with skip_bad it is listed in
   OUT.skipped.jsonl instead) and hashes the file.
2. OUT.partial is created as a [N, D] .npy memory map; OUT.partial.json holds the job (input
   hash, model files, settings) and the position reached.
3. Embed: INPUT is read again lazily, a window of good texts at a time (the embedder's window,
   4096 by default); each window is embedded
   (sorted by length inside, see numpybert/encode.py), written to its rows, flushed, and only
   then is the position in OUT.partial.json advanced (written to a temporary file, fsynced,
   renamed: atomic). Memory holds one window, whatever the corpus size.
4. Done: OUT.partial is renamed to OUT and the state file removed.
A run killed at any point (SIGINT, SIGKILL, power) restarts from the last recorded window when
started again with the same arguments. Windows are always cut at multiples of the window size,
so the resumed run makes the same batches and its file is byte-identical to an uninterrupted one
(when both run on the same engine: the BLAS thread count moves the last bits). Different
arguments or a changed INPUT refuse to resume, naming the difference.
"""

import codecs
import dataclasses
import glob
import hashlib
import json
import os
import stat

import numpy as np

from ..text.inputs import check_text
from ..errors import InputValueError, NumpybertError
from ..loading.files import check_output_path

STATE_FORMAT = "numpybert-embed-state"
STATE_VERSION = 1
FORMATS = ("text", "jsonl")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
MODEL_FILES = ("config.json", "*.safetensors", "model.safetensors.index.json", "tokenizer.json", "vocab.txt",
               "tokenizer_config.json", "special_tokens_map.json")  # what the numbers depend on


@dataclasses.dataclass(frozen=True)
class Window:
    """A run of consecutive good texts, and where INPUT stands after its last line."""
    first_row: int
    texts: list
    end: "Position"


@dataclasses.dataclass(frozen=True)
class Position:
    """How far INPUT has been consumed: rows written, lines read, bytes read."""
    row: int = 0
    line: int = 0
    offset: int = 0


@dataclasses.dataclass(frozen=True)
class Scan:
    rows: int  # good lines: the rows of OUT
    lines: int
    bad: int  # lines skipped (skip_bad)
    size: int
    sha256: str


@dataclasses.dataclass
class CorpusJob:
    """One `numpybert embed` run. `embedder` is a `numpybert.Embedder` (settings, batch size, model)."""
    input: str
    out: str
    embedder: object
    format: str = "auto"  # "text", "jsonl", or "auto": .jsonl/.ndjson are JSONL, anything else text
    text_field: str = "text"
    skip_bad: bool = False

    def __post_init__(self):
        self.input, self.out = os.fspath(self.input), os.fspath(self.out)
        if self.format == "auto":
            self.format = "jsonl" if self.input.lower().endswith(JSONL_SUFFIXES) else "text"
        if self.format not in FORMATS:
            raise InputValueError(f"format={self.format!r}: expected 'auto' or one of {FORMATS}")

    @property
    def window(self) -> int:
        """Texts per window: the embedder's (its batches must be the ones a resumed run makes)."""
        return self.embedder.window

    @property
    def partial(self) -> str:
        return self.out + ".partial"

    @property
    def state_path(self) -> str:
        return self.out + ".partial.json"

    @property
    def report_path(self) -> str:
        return self.out + ".skipped.jsonl"


# ----------------------------------------------------------------------------- reading lines

def parse_line(raw: bytes, fmt: str, text_field: str, first: bool = False):
    """One input line -> (text, None), or (None, why it is bad)."""
    body = raw[:-1] if raw.endswith(b"\n") else raw
    body = body[:-1] if body.endswith(b"\r") else body
    if first and body.startswith(codecs.BOM_UTF8):
        body = body[len(codecs.BOM_UTF8):]
    try:
        line = body.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, f"not valid UTF-8 (byte {e.start})"
    if fmt == "text":
        return line, None
    return _parse_json_line(line, text_field)


def _parse_json_line(line: str, text_field: str):
    try:
        record = json.loads(line)
    except ValueError as e:
        return None, f"invalid JSON ({e})"
    if not isinstance(record, dict):
        return None, f"expected a JSON object, got {type(record).__name__}"
    if text_field not in record:
        return None, f"no field {text_field!r} (fields: {', '.join(map(repr, list(record)[:10]))})"
    try:
        return check_text(record[text_field], f"field {text_field!r}"), None
    except NumpybertError as e:
        return None, str(e)


def _input_size(path) -> int:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"input not found: {path}") from None
    if not stat.S_ISREG(st.st_mode):
        raise InputValueError(f"{path}: not a regular file (the input is read twice and resumed by byte offset)")
    return st.st_size


def scan(job: CorpusJob, report=None) -> Scan:
    """Pass 1: count good lines, hash the file, and stop at the first bad line (or, with
    skip_bad, write it to `report` as a JSON line {"line", "error"})."""
    size = _input_size(job.input)
    sha, rows, lines, bad = hashlib.sha256(), 0, 0, 0
    with open(job.input, "rb") as f:
        for raw in f:
            sha.update(raw)
            lines += 1
            _, error = parse_line(raw, job.format, job.text_field, first=lines == 1)
            if error is None:
                rows += 1
            elif not job.skip_bad:
                raise InputValueError(f"{job.input} line {lines}: {error} (fix it, or pass --skip-bad to skip "
                                      "bad lines and list them in a report)")
            else:
                bad += 1
                report.write(json.dumps({"line": lines, "error": error}) + "\n")
    return Scan(rows, lines, bad, size, sha.hexdigest())


def read_windows(job: CorpusJob, start: Position):
    """Pass 2: good texts from `start` on, in windows of job.window rows (the last may be short).
    Bad lines were reported by the scan and are skipped here."""
    texts, pos = [], start
    with open(job.input, "rb") as f:
        f.seek(start.offset)
        for raw in f:
            text, error = parse_line(raw, job.format, job.text_field, first=pos.line == 0)
            pos = Position(pos.row + (error is None), pos.line + 1, pos.offset + len(raw))
            if error is None:
                texts.append(text)
            if len(texts) == job.window:
                yield Window(pos.row - len(texts), texts, pos)
                texts = []
    if texts:
        yield Window(pos.row - len(texts), texts, pos)


# ----------------------------------------------------------------------------- the state file

def model_fingerprint(model_dir) -> dict:
    """Size and mtime of every file the embeddings depend on: a changed model refuses to resume."""
    files = sorted({p for pattern in MODEL_FILES for p in glob.glob(os.path.join(glob.escape(model_dir), pattern))})
    return {os.path.basename(p): [os.stat(p).st_size, os.stat(p).st_mtime_ns] for p in files}


def job_identity(job: CorpusJob, scanned: Scan) -> dict:
    """Everything the output bytes depend on. Resuming requires all of it to be equal."""
    e = job.embedder
    identity = {"input_sha256": scanned.sha256, "input_size": scanned.size, "format": job.format,
            "text_field": job.text_field if job.format == "jsonl" else None, "skip_bad": job.skip_bad,
            "window": job.window, "batch_size": e.batch_size, "dtype": e.dtype,
            "settings": dataclasses.asdict(e.settings) | {"source": None}, "model": model_fingerprint(e.model_dir)}
    return json.loads(json.dumps(identity))  # as the state file will hold it (tuples become lists)


def write_state(path, state: dict):
    """Atomically replace the state file: write a temporary file, fsync it, rename it over."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(state, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_state(job: CorpusJob):
    """The saved state of an interrupted run, or None when there is nothing to resume."""
    if not (os.path.isfile(job.state_path) and os.path.isfile(job.partial)):
        return None
    try:
        with open(job.state_path, encoding="utf-8") as f:
            state = json.load(f)
    except ValueError:
        return None  # cannot happen with atomic writes; treat as no state and start over
    if state.get("format") != STATE_FORMAT or state.get("version") != STATE_VERSION:
        return None
    return state


def check_resumable(job: CorpusJob, state: dict, identity: dict):
    """Refuse to resume a run started with other arguments, another model or a changed input."""
    saved = state["job"]
    diffs = [f"{key}: {saved.get(key)!r} then, {value!r} now" for key, value in identity.items()
             if saved.get(key) != value]
    if diffs:
        raise InputValueError(f"{job.partial} was started by a run that differs from this one ("
                              + "; ".join(diffs) + "). Rerun with the same input, model and arguments to "
                              "resume, or pass --restart to discard it and start over.")


# ----------------------------------------------------------------------------- the run

@dataclasses.dataclass
class CorpusResult:
    out: str
    rows: int
    dim: int
    bad: int
    resumed_from: int  # rows already done when this run started
    report: str | None  # the skipped-lines report, when lines were skipped


def embed_corpus(job: CorpusJob, run_windows=None, progress=None, overwrite=False, restart=False) -> CorpusResult:
    """Embed job.input into job.out (see the module docstring).

    run_windows(windows) -> iterable of (window, vectors) in order: how windows are embedded;
    default: one after the other in this process with job.embedder. `progress(done, total)` is
    called with the rows written so far, at the start (rows already done) and after each window.
    """
    check_output_path(job.out, "--out")
    if os.path.exists(job.out) and not overwrite:
        raise InputValueError(f"{job.out} exists; pass --overwrite to replace it")
    progress = progress or (lambda done, total: None)
    scanned = _scan_with_report(job)
    identity = job_identity(job, scanned)
    out, state = _open_output(job, scanned, identity, restart)
    resumed_from = state["position"]["row"]
    progress(resumed_from, scanned.rows)
    run_windows = run_windows or _local_runner(job.embedder, lambda done: progress(done, scanned.rows))
    for window, vectors in run_windows(read_windows(job, Position(**state["position"]))):
        _write_window(job, out, state, window, vectors)
        progress(window.end.row, scanned.rows)
    return _finish(job, out, state, scanned, resumed_from)


def _scan_with_report(job: CorpusJob) -> Scan:
    """The scan; with skip_bad its report goes to OUT.skipped.jsonl.tmp (renamed when OUT is complete)."""
    if not job.skip_bad:
        return scan(job)
    tmp = job.report_path + ".tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as report:
            return scan(job, report)
    except BaseException:
        os.remove(tmp)
        raise


def _local_runner(embedder, progress):
    """Embed windows one after the other in this process, reporting progress after every batch."""
    def run(windows):
        for window in windows:
            done = window.first_row

            def on_batch(k):
                nonlocal done
                done += k
                progress(done)
            yield window, embedder.embed(window.texts, on_batch)
    return run


def _open_output(job, scanned: Scan, identity: dict, restart: bool):
    """Resume OUT.partial when its state matches, else create it: (memmap [N, D], state)."""
    dim = job.embedder.dim
    state = None if restart or scanned.rows == 0 else read_state(job)  # nothing to resume in 0 rows
    if state is not None:
        check_resumable(job, state, identity)
        out = np.lib.format.open_memmap(job.partial, mode="r+")
        if out.shape != (scanned.rows, dim):
            raise InputValueError(f"{job.partial} has shape {out.shape}, expected {(scanned.rows, dim)}; "
                                  "pass --restart to start over")
        return out, state
    if os.path.exists(job.state_path):
        os.remove(job.state_path)  # first the state, so a crash below leaves nothing that looks resumable
    out = _create_npy(job.partial, (scanned.rows, dim), np.dtype(job.embedder.dtype))
    state = {"format": STATE_FORMAT, "version": STATE_VERSION, "job": identity, "rows": scanned.rows,
             "dim": dim, "position": dataclasses.asdict(Position())}
    write_state(job.state_path, state)
    return out, state


def _create_npy(path, shape, dtype):
    """A new .npy of `shape`, memory-mapped for writing (an empty one is written whole: nothing to map)."""
    if shape[0] == 0:
        with open(path, "wb") as f:  # a file object: np.save would append .npy to a path
            np.save(f, np.empty(shape, dtype))
        return np.empty(shape, dtype)
    return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)


def _write_window(job, out, state, window: Window, vectors):
    """Write a window's rows, flush them to disk, then record the new position (in that order)."""
    rows = slice(window.first_row, window.first_row + len(window.texts))
    if window.end.row > state["rows"] or vectors.shape != (len(window.texts), state["dim"]):
        raise InputValueError(f"{job.input} changed while it was being embedded (more texts than the scan "
                              "counted); rerun with --restart")
    out[rows] = vectors
    out.flush()
    state["position"] = dataclasses.asdict(window.end)
    write_state(job.state_path, state)


def _finish(job, out, state, scanned: Scan, resumed_from: int) -> CorpusResult:
    """Check every row was written, then rename OUT.partial -> OUT and the report into place."""
    if state["position"]["row"] != scanned.rows:
        raise InputValueError(f"{job.input} changed while it was being embedded ({state['position']['row']} "
                              f"texts read, the scan counted {scanned.rows}); rerun with --restart")
    if isinstance(out, np.memmap):
        out.flush()
    del out
    os.replace(job.partial, job.out)
    os.remove(job.state_path)
    if job.skip_bad:
        os.replace(job.report_path + ".tmp", job.report_path)
    if not scanned.bad and os.path.exists(job.report_path):
        os.remove(job.report_path)  # empty, or a stale report of an earlier run: it would describe another OUT
    report = job.report_path if scanned.bad else None
    return CorpusResult(job.out, scanned.rows, state["dim"], scanned.bad, resumed_from, report)
