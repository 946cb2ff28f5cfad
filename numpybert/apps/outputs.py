"""The files `numpybert embed` writes, chosen by OUT's extension, each resumable after any kill.

    .npy       float32 [N, D]; row i = the i-th good input line (ids are not stored: a .npy has no
               column for them; the skipped-lines report says which lines are missing)
    .parquet   one row per text: `id` (int64 or string) and `embedding` (fixed_size_list<float32>[D]);
               one row group per window (needs pyarrow: the parquet extra)
    .jsonl     one line per text: {"id": ..., "embedding": [...]} (floats print exactly, so
               np.float32(value) gives the stored float32 back)

Every format is written to OUT.partial (and, for .parquet, OUT.parts/ with one file per window),
and after each window its progress is recorded in the job's state file (corpus.py), only once
the window's bytes are flushed to disk. A resumed run cuts away whatever a killed run wrote past
the recorded point and goes on; the finished file is byte-identical to an uninterrupted run's.
`id` is the input's line number (1-based, as in error messages) unless --id-field names a
JSONL field holding it.
"""

import json
import os
import shutil

import numpy as np

from ..errors import ConfigError, InputValueError, install_hint

EXTENSIONS = (".npy", ".parquet", ".jsonl")


def output_format(path: str) -> str:
    """OUT's format from its extension; anything else is refused (before any work)."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in EXTENSIONS:
        raise InputValueError(f"--out {path}: unknown extension {ext or '(none)'!r}; the format comes from it: "
                              + ", ".join(EXTENSIONS))
    if ext == ".parquet":
        require_pyarrow()
    return ext[1:]


def require_pyarrow():
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise ConfigError(f".parquet output needs pyarrow: {install_hint('parquet')}") from None


def _fsync(f):
    f.flush()
    os.fsync(f.fileno())


class NpyOutput:
    """A [N, D] .npy memory map, row slices written in place."""

    def __init__(self, job, rows: int, dim: int, dtype, state: dict | None):
        self.path = job.partial
        if state is not None:
            self.array = np.lib.format.open_memmap(self.path, mode="r+")
            if self.array.shape != (rows, dim):
                raise InputValueError(f"{self.path} has shape {self.array.shape}, expected {(rows, dim)}; "
                                      "pass --restart to start over")
        elif rows == 0:  # nothing to map: write the empty array whole (a file object: np.save adds .npy to paths)
            with open(self.path, "wb") as f:
                np.save(f, np.empty((0, dim), dtype))
            self.array = None
        else:
            self.array = np.lib.format.open_memmap(self.path, mode="w+", dtype=dtype, shape=(rows, dim))

    def write(self, first_row: int, ids: list, vectors) -> dict:
        self.array[first_row:first_row + len(vectors)] = vectors
        self.array.flush()
        return {}

    def finish(self):
        if self.array is not None:
            self.array.flush()
        self.array = None

    def cleanup(self):
        pass


class JsonlOutput:
    """JSON lines appended to OUT.partial; the state records its length after every window."""

    def __init__(self, job, rows: int, dim: int, dtype, state: dict | None):
        self.path = job.partial
        if state is None:
            open(self.path, "wb").close()
        size = state["output"].get("bytes", 0) if state else 0
        if os.path.getsize(self.path) < size:
            raise InputValueError(f"{self.path} is shorter than its state file says; pass --restart to start over")
        self.file = open(self.path, "r+b")
        self.file.truncate(size)  # what a killed run wrote after the last recorded window
        self.file.seek(size)

    def write(self, first_row: int, ids: list, vectors) -> dict:
        lines = [json.dumps({"id": i, "embedding": v}) + "\n" for i, v in zip(ids, vectors.tolist())]
        self.file.write("".join(lines).encode("utf-8"))
        _fsync(self.file)
        return {"bytes": self.file.tell()}

    def finish(self):
        _fsync(self.file)
        self.file.close()

    def cleanup(self):
        pass


class ParquetOutput:
    """One Parquet file per window in OUT.parts/; at the end they become OUT.partial's row groups.
    (A Parquet file's footer is written last, so a killed writer's file cannot be continued.)"""

    def __init__(self, job, rows: int, dim: int, dtype, state: dict | None):
        import pyarrow as pa
        self.parts, self.path, self.dim = job.out + ".parts", job.partial, dim
        self.count = state["output"].get("parts", 0) if state else 0
        if state is None:
            shutil.rmtree(self.parts, ignore_errors=True)
            open(self.path, "wb").close()  # a placeholder: OUT.partial marks a run to resume
        os.makedirs(self.parts, exist_ok=True)
        for name in os.listdir(self.parts):  # written after the last recorded window
            if not name.endswith(".parquet") or int(name.split(".")[0]) >= self.count:
                os.remove(os.path.join(self.parts, name))
        id_type = pa.string() if job.id_kind == "str" else pa.int64()
        value = pa.float64() if np.dtype(dtype) == np.float64 else pa.float32()
        self.schema = pa.schema([("id", id_type), ("embedding", pa.list_(value, dim))])

    def _part(self, k: int) -> str:
        return os.path.join(self.parts, f"{k:08d}.parquet")

    def write(self, first_row: int, ids: list, vectors) -> dict:
        import pyarrow.parquet as pq
        pq.write_table(self._table(ids, vectors), self._part(self.count))
        with open(self._part(self.count), "rb") as f:
            os.fsync(f.fileno())
        self.count += 1
        return {"parts": self.count}

    def _table(self, ids, vectors):
        import pyarrow as pa
        flat = pa.array(np.ascontiguousarray(vectors).reshape(-1), type=self.schema.field("embedding").type.value_type)
        column = pa.FixedSizeListArray.from_arrays(flat, self.dim)  # [n·D] -> n × [D]
        return pa.Table.from_arrays([pa.array(ids, type=self.schema.field("id").type), column], schema=self.schema)

    def finish(self):
        """Join the windows' files into OUT.partial, one row group each, in order."""
        import pyarrow.parquet as pq
        with pq.ParquetWriter(self.path, self.schema) as writer:
            if self.count == 0:
                writer.write_table(self.schema.empty_table())
            for k in range(self.count):
                writer.write_table(pq.read_table(self._part(k), schema=self.schema))
        with open(self.path, "rb") as f:
            os.fsync(f.fileno())

    def cleanup(self):
        shutil.rmtree(self.parts, ignore_errors=True)


OUTPUTS = {"npy": NpyOutput, "jsonl": JsonlOutput, "parquet": ParquetOutput}
