"""Embedding a corpus file into a .npy, .parquet or .jsonl, streaming, resumable, and never losing data.

    numpybert embed corpus.jsonl --out corpus.parquet    # the command (numpybert/cli/embed.py)
    embed_corpus(CorpusJob("corpus.jsonl", "corpus.parquet", embedder))   # the same from Python

INPUT is a text file (one text per line; an empty line is an empty text) or JSONL (one JSON
object per line, the text under `text_field`, optionally an id under `id_field`), either one
gzip-compressed when its name ends in .gz, or Parquet (the `text_field` and `id_field` columns,
read a row group at a time: apps/parquet_input.py; a row counts as a line, its position in
`Position.line`). OUT's format comes from its extension
(numpybert/apps/outputs.py): row i = the i-th good line, with its id (the line number unless
`id_field` is given) in .parquet and .jsonl.

How it runs, and why nothing is lost:
1. Scan: one streaming pass over INPUT counts the texts (N) and their tokens (for an honest ETA,
   and to say how many texts are over the model's limit), checks every line (a bad line
   stops the run with its line number before any compute; with skip_bad it is listed in
   OUT.skipped.jsonl instead) and hashes the (uncompressed) content.
2. OUT.partial is created (apps/outputs.py); OUT.partial.json holds the job (input
   hash, model files, settings) and the position reached.
3. Embed: INPUT is read again lazily, a window of good texts at a time (the embedder's window,
   4096 by default); each window is embedded
   (sorted by length inside, see numpybert/apps/batching.py), written to its rows, flushed, and only
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
import gzip
import hashlib
import json
import os
import stat
import zlib

import numpy as np

from ..text.inputs import check_text
from .outputs import OUTPUTS, output_format
from . import parquet_input
from ..errors import InputValueError, NumpybertError
from ..loading.files import check_output_path

STATE_FORMAT = "numpybert-embed-state"
STATE_VERSION = 2
FORMATS = ("text", "jsonl", "parquet")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
INT64_MIN, INT64_MAX = -2**63, 2**63 - 1  # integer ids: an int64 column in .parquet (and in pandas/NumPy readers)
SCAN_BATCH = 1024  # texts tokenized together by the scan (token counts)
MODEL_FILES = ("config.json", "*.safetensors", "model.safetensors.index.json", "tokenizer.json", "vocab.txt",
               "tokenizer_config.json", "special_tokens_map.json")  # what the numbers depend on


@dataclasses.dataclass(frozen=True)
class Window:
    """A run of consecutive good texts, and where INPUT stands after its last line."""
    first_row: int
    texts: list
    end: "Position"
    ids: list = dataclasses.field(default_factory=list)  # one per text: its line number or its id field


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
    tokens: int = 0  # what the model will read, all texts
    window_tokens: tuple = ()  # the same per window of rows (progress after a resume, or per window)
    over: int = 0  # texts longer than max_seq_length: cut (long="truncate") or chunked
    id_kind: str = "int"  # "int" or "str": the type of the ids


@dataclasses.dataclass
class CorpusJob:
    """One `numpybert embed` run. `embedder` is a `numpybert.Embedder` (settings, batch size, model)."""
    input: str
    out: str
    embedder: object
    format: str = "auto"  # "text", "jsonl", "parquet", or "auto": .jsonl/.ndjson are JSONL, .parquet Parquet, else text
    text_field: str = "text"
    skip_bad: bool = False
    id_field: str | None = None  # JSONL field or Parquet column holding each text's id (default: the line/row number)

    def __post_init__(self):
        self.input, self.out = os.fspath(self.input), os.fspath(self.out)
        check_output_path(self.out, "--out")
        if _same_file(self.input, self.out):
            raise InputValueError(f"--out {self.out} is the input {self.input}; numpybert never writes over its "
                                  "input (even with --overwrite): name another output file")
        self.out_format = output_format(self.out)  # refuses an unknown extension now
        name = self.input.lower().removesuffix(".gz")
        if self.format == "auto":
            self.format = ("jsonl" if name.endswith(JSONL_SUFFIXES) else
                           "parquet" if self.input.lower().endswith(".parquet") else "text")
        if self.format not in FORMATS:
            raise InputValueError(f"format={self.format!r}: expected 'auto' or one of {FORMATS}")
        if self.format == "parquet" and self.input.lower().endswith(".gz"):
            raise InputValueError(f"{self.input}: Parquet is read as is (its pages are compressed inside), not .gz")
        if self.id_field is not None and self.format == "text":
            raise InputValueError("--id-field reads ids from JSONL or Parquet input; a text file's ids are its line numbers")
        if self.id_field is not None and self.out_format == "npy":
            raise InputValueError("--id-field: a .npy holds no ids; write .parquet or .jsonl to keep them")
        self.id_kind = "str" if self.id_field is not None else "int"  # known after the scan

    @property
    def unit(self) -> str:
        """What error messages count: input lines, or Parquet rows."""
        return "row" if self.format == "parquet" else "line"

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


def _same_file(a: str, b: str) -> bool:
    """Whether two paths name one file: the same path spelled differently, via a symlink, or a hard link."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


# ----------------------------------------------------------------------------- reading lines

def parse_line(raw: bytes, fmt: str, text_field: str, first: bool = False, id_field: str | None = None):
    """One input line -> (text, id, None), or (None, None, why it is bad). The id is the
    `id_field` value (an int or a str), or None without id_field."""
    body = raw[:-1] if raw.endswith(b"\n") else raw
    body = body[:-1] if body.endswith(b"\r") else body
    if first and body.startswith(codecs.BOM_UTF8):
        body = body[len(codecs.BOM_UTF8):]
    try:
        line = body.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, None, f"not valid UTF-8 (byte {e.start})"
    if fmt == "text":
        return line, None, None
    return _parse_json_line(line, text_field, id_field)


def _parse_json_line(line: str, text_field: str, id_field: str | None):
    try:
        record = json.loads(line)
    except ValueError as e:
        return None, None, f"invalid JSON ({e})"
    if not isinstance(record, dict):
        return None, None, f"expected a JSON object, got {type(record).__name__}"
    for field in (text_field, id_field):
        if field is not None and field not in record:
            hint = " (--text-field NAME names the text's field)" if field == text_field else ""
            return None, None, (f"no field {field!r}{hint} (fields: {', '.join(map(repr, list(record)[:10]))})")
    key = record.get(id_field) if id_field is not None else None
    if id_field is not None and (isinstance(key, bool) or not isinstance(key, (int, str))):
        return None, None, f"id field {id_field!r} is {type(key).__name__}, expected a string or an integer"
    if isinstance(key, int) and not INT64_MIN <= key <= INT64_MAX:
        return None, None, (f"id field {id_field!r} is {key}, outside the 64-bit integer range of the id column; "
                            "write such ids as strings")
    try:
        return check_text(record[text_field], f"field {text_field!r}"), key, None
    except NumpybertError as e:
        return None, None, str(e)


def open_input(path):
    """INPUT for reading bytes; a .gz file is decompressed on the fly (offsets count uncompressed bytes)."""
    return gzip.open(path, "rb") if path.lower().endswith(".gz") else open(path, "rb")


def _lines(job: CorpusJob, f):
    """The lines of an open INPUT; a damaged .gz is one InputValueError naming the file."""
    try:
        yield from f
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise InputValueError(f"{job.input}: not a valid gzip file ({e or 'truncated'})") from None


def _records(job: CorpusJob, start: "Position"):
    """(raw bytes, text, id, error) for each line of INPUT from `start` on (raw is None for Parquet
    rows, which are counted in `Position.line`): see parse_line."""
    if job.format == "parquet":
        for text, key, error in parquet_input.parquet_rows(job.input, job.text_field, job.id_field, start.line):
            yield None, text, key, error
        return
    with open_input(job.input) as f:
        f.seek(start.offset)
        line = start.line
        for raw in _lines(job, f):
            line += 1
            yield (raw, *parse_line(raw, job.format, job.text_field, line == 1, job.id_field))


def _input_size(path) -> int:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"input not found: {path}") from None
    if not stat.S_ISREG(st.st_mode):
        raise InputValueError(f"{path}: not a regular file (the input is read twice and resumed by byte offset)")
    return st.st_size


def scan(job: CorpusJob, report=None) -> Scan:
    """Pass 1: count good lines and their tokens, hash the content, and stop at the first bad
    line (or, with skip_bad, write it to `report` as a JSON line {"line", "error"})."""
    size = _input_size(job.input)
    sha, rows, lines, bad, id_kind = hashlib.sha256(), 0, 0, 0, None
    if job.format == "parquet":  # its columns are checked now, before any row; its bytes hashed whole
        id_kind = parquet_input.check_columns(job.input, parquet_input.open_parquet(job.input), job.text_field,
                                              job.id_field)
        digest = parquet_input.file_sha256(job.input)
    counter = _TokenCounter(job)
    for raw, text, key, error in _records(job, Position()):
        if raw is not None:
            sha.update(raw)
        lines += 1
        kind = "int" if key is None or isinstance(key, int) else "str"
        if error is None and id_kind not in (None, kind):
            error = f"id {key!r} is {kind}, but the ids before it are {id_kind}s (one type per column)"
        if error is None:
            rows, id_kind = rows + 1, kind
            counter.add(text)
        elif not job.skip_bad:
            raise InputValueError(f"{job.input} {job.unit} {lines}: {error} (fix it, or pass --skip-bad to skip "
                                  f"bad {job.unit}s and list them in a report)")
        else:
            bad += 1
            report.write(json.dumps({job.unit: lines, "error": error}) + "\n")
    tokens, window_tokens, over = counter.totals()
    digest = digest if job.format == "parquet" else sha.hexdigest()
    return Scan(rows, lines, bad, size, digest, tokens, window_tokens, over, id_kind or job.id_kind)


class _TokenCounter:
    """Token counts of the scanned texts, SCAN_BATCH at a time: the total, per window, and how many are too long."""

    def __init__(self, job: CorpusJob):
        self.embedder, self.window, self.pending = job.embedder, job.window, []
        self.windows, self.over, self.rows = [], 0, 0

    def add(self, text: str):
        self.pending.append(text)
        if len(self.pending) == SCAN_BATCH:
            self._count()

    def _count(self):
        counts, over = self.embedder.token_counts(self.pending)
        self.over += int(over.sum())
        for n in counts.tolist():
            if self.rows % self.window == 0:
                self.windows.append(0)
            self.windows[-1] += n
            self.rows += 1
        self.pending = []

    def totals(self):
        if self.pending:
            self._count()
        return sum(self.windows), tuple(self.windows), self.over


def read_windows(job: CorpusJob, start: Position):
    """Pass 2: good texts from `start` on, in windows of job.window rows (the last may be short).
    Bad lines were reported by the scan and are skipped here."""
    texts, ids, pos = [], [], start
    for raw, text, key, error in _records(job, start):
        kind = "int" if key is None or isinstance(key, int) else "str"
        good = error is None and kind == job.id_kind  # as the scan judged (ids of another type are bad)
        pos = Position(pos.row + good, pos.line + 1, pos.offset + (len(raw) if raw is not None else 0))
        if good:
            texts.append(text)
            ids.append(pos.line if key is None else key)
        if len(texts) == job.window:
            yield Window(pos.row - len(texts), texts, pos, ids)
            texts, ids = [], []
    if texts:
        yield Window(pos.row - len(texts), texts, pos, ids)


# ----------------------------------------------------------------------------- the state file

def model_fingerprint(model_dir) -> dict:
    """Size and mtime of every file the embeddings depend on: a changed model refuses to resume."""
    files = sorted({p for pattern in MODEL_FILES for p in glob.glob(os.path.join(glob.escape(model_dir), pattern))})
    return {os.path.basename(p): [os.stat(p).st_size, os.stat(p).st_mtime_ns] for p in files}


def job_identity(job: CorpusJob, scanned: Scan) -> dict:
    """Everything the output bytes depend on. Resuming requires all of it to be equal."""
    e = job.embedder
    identity = {"input_sha256": scanned.sha256, "input_size": scanned.size, "format": job.format,
            "text_field": job.text_field if job.format != "text" else None, "skip_bad": job.skip_bad,
            "window": job.window, "batch_size": e.batch_size, "max_batch_tokens": e.max_batch_tokens, "dtype": e.dtype,
            "settings": dataclasses.asdict(e.settings) | {"source": None}, "model": model_fingerprint(e.model_dir),
            "output": job.out_format, "id_field": job.id_field, "long": e.long,
            "stride": e.stride if e.long == "chunk" else None}
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
    over: int = 0  # texts longer than max_seq_length tokens: cut, or chunked (`long`)
    long: str = "truncate"
    max_seq_length: int = 0


def embed_corpus(job: CorpusJob, run_windows=None, progress=None, overwrite=False, restart=False) -> CorpusResult:
    """Embed job.input into job.out (see the module docstring).

    run_windows(windows) -> iterable of (window, vectors) in order: how windows are embedded;
    default: one after the other in this process with job.embedder. `progress(rows, total_rows,
    tokens, total_tokens)` is called with the rows and tokens done so far: at the start (what an
    interrupted run already did), after each batch (in this process) or each window.
    """
    check_output_path(job.out, "--out")
    if os.path.exists(job.out) and not overwrite:
        raise InputValueError(f"{job.out} exists; pass --overwrite to replace it")
    progress = progress or (lambda rows, total_rows, tokens, total_tokens: None)
    scanned = _scan_with_report(job)
    job.id_kind = scanned.id_kind
    identity = job_identity(job, scanned)
    out, state = _open_output(job, scanned, identity, restart)
    resumed_from = state["position"]["row"]

    def report(rows, tokens):
        progress(rows, scanned.rows, tokens, scanned.tokens)

    def tokens_before(row):  # the windows before `row`: cut at multiples of job.window rows (the last may be short)
        return sum(scanned.window_tokens[:-(-row // job.window)])
    report(resumed_from, tokens_before(resumed_from))
    run_windows = run_windows or _local_runner(
        job.embedder, lambda w, rows, tokens: report(w.first_row + rows, tokens_before(w.first_row) + tokens))
    for window, vectors in run_windows(read_windows(job, Position(**state["position"]))):
        _write_window(job, out, state, window, vectors)
        report(window.end.row, tokens_before(window.end.row))
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
    """Embed windows one after the other in this process; after every batch, progress(window,
    texts done, tokens done) within the window. Batches go longest first, so tokens are counted
    in that order: the ETA follows the work, not the number of texts."""
    def run(windows):
        for window in windows:
            done, cumulative = 0, _tokens_in_batch_order(embedder, window.texts).cumsum()

            def on_batch(k):
                nonlocal done
                done += k
                progress(window, done, int(cumulative[done - 1]))
            yield window, embedder.embed(window.texts, on_batch)
    return run


def _tokens_in_batch_order(embedder, texts):
    """Token counts in the order `embedder.embed` finishes the texts: longest first; with
    long="chunk", the texts within the limit first, then the chunked ones (apps/long.py)."""
    counts, over = embedder.token_counts(texts)
    if embedder.long == "truncate":
        return -np.sort(-counts, kind="stable")
    return np.concatenate([-np.sort(-counts[~over], kind="stable"), counts[over]])


def _open_output(job, scanned: Scan, identity: dict, restart: bool):
    """Resume OUT.partial when its state matches, else create it: (output writer, state)."""
    dim, dtype = job.embedder.dim, job.embedder.dtype
    state = None if restart or scanned.rows == 0 else read_state(job)  # nothing to resume in 0 rows
    if state is not None:
        check_resumable(job, state, identity)
        return OUTPUTS[job.out_format](job, scanned.rows, dim, dtype, state), state
    if os.path.exists(job.state_path):
        os.remove(job.state_path)  # first the state, so a crash below leaves nothing that looks resumable
    out = OUTPUTS[job.out_format](job, scanned.rows, dim, dtype, None)
    state = {"format": STATE_FORMAT, "version": STATE_VERSION, "job": identity, "rows": scanned.rows,
             "dim": dim, "position": dataclasses.asdict(Position()), "output": {}}
    write_state(job.state_path, state)
    return out, state


def _write_window(job, out, state, window: Window, vectors):
    """Write a window's rows, flush them to disk, then record the new position (in that order)."""
    if window.end.row > state["rows"] or vectors.shape != (len(window.texts), state["dim"]):
        raise InputValueError(f"{job.input} changed while it was being embedded (more texts than the scan "
                              "counted); rerun with --restart")
    state["output"] = out.write(window.first_row, window.ids, vectors)
    state["position"] = dataclasses.asdict(window.end)
    write_state(job.state_path, state)


def _finish(job, out, state, scanned: Scan, resumed_from: int) -> CorpusResult:
    """Check every row was written, then rename OUT.partial -> OUT and the report into place."""
    if state["position"]["row"] != scanned.rows:
        raise InputValueError(f"{job.input} changed while it was being embedded ({state['position']['row']} "
                              f"texts read, the scan counted {scanned.rows}); rerun with --restart")
    out.finish()
    os.replace(job.partial, job.out)
    os.remove(job.state_path)
    out.cleanup()
    if job.skip_bad:
        os.replace(job.report_path + ".tmp", job.report_path)
    if not scanned.bad and os.path.exists(job.report_path):
        os.remove(job.report_path)  # empty, or a stale report of an earlier run: it would describe another OUT
    report = job.report_path if scanned.bad else None
    return CorpusResult(job.out, scanned.rows, state["dim"], scanned.bad, resumed_from, report, scanned.over,
                        job.embedder.long, job.embedder.settings.max_seq_length)
