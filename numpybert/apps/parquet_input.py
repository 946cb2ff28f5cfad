"""Parquet INPUT for `numpybert embed` (numpybert/apps/corpus.py): the texts of one string column,
optionally the ids of another, read a row group at a time in record batches (never the whole file).

    numpybert embed corpus.parquet --out corpus.npy --text-field body --id-field doc_id

A row plays the part of a line: it is numbered from 1, a bad row (a null text or id, an integer
id outside int64) stops the scan with its number or, with --skip-bad, is listed; a resumed run
starts at the first row group holding the recorded row and skips the rows before it. A column
that is missing or of another type is one error before any work.
"""

import hashlib

from ..errors import ConfigError, InputValueError, NumpybertError, install_hint
from ..text.inputs import check_text

BATCH_ROWS = 1024  # rows converted to Python at a time (pyarrow reads the row group's pages)
INT64_MAX = 2**63 - 1


def open_parquet(path: str):
    """pyarrow's ParquetFile of INPUT, or one error naming the file."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError(f"Parquet input needs pyarrow: {install_hint('parquet')}") from None
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError, ValueError) as e:
        raise InputValueError(f"{path}: not a valid Parquet file ({str(e).strip() or type(e).__name__})") from None


def check_columns(path: str, parquet_file, text_field: str, id_field: str | None) -> str:
    """Refuse a missing column, a text column that is not strings, an id column that is neither
    integers nor strings; the ids' kind ("int" or "str") otherwise."""
    import pyarrow as pa
    schema = parquet_file.schema_arrow
    for field, flag in ((text_field, "--text-field"), (id_field, "--id-field")):
        if field is not None and field not in schema.names:
            raise InputValueError(f"{path}: no column {field!r} ({flag} NAME names it; columns: "
                                  f"{', '.join(map(repr, schema.names[:10]))})")
    strings = (pa.types.is_string, pa.types.is_large_string, getattr(pa.types, "is_string_view", lambda t: False))
    kind = schema.field(text_field).type
    if not any(test(kind) for test in strings):
        raise InputValueError(f"{path}: column {text_field!r} is {kind}, expected strings (--text-field NAME names "
                              "the texts' column)")
    if id_field is None:
        return "int"
    kind = schema.field(id_field).type
    if pa.types.is_integer(kind):
        return "int"
    if any(test(kind) for test in strings):
        return "str"
    raise InputValueError(f"{path}: id column {id_field!r} is {kind}, expected integers or strings")


def file_sha256(path: str) -> str:
    """The file's bytes hashed (a resumed run refuses a changed INPUT)."""
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def parquet_rows(path: str, text_field: str, id_field: str | None, start_row: int = 0):
    """(text, id, None) or (None, None, why it is bad) for each row from `start_row` (0-based) on.
    Whole row groups before it are not read."""
    parquet_file = open_parquet(path)
    check_columns(path, parquet_file, text_field, id_field)
    groups, skip = parquet_file.num_row_groups, start_row
    first = 0
    while first < groups and skip >= parquet_file.metadata.row_group(first).num_rows:
        skip -= parquet_file.metadata.row_group(first).num_rows
        first += 1
    if first == groups:
        return
    columns = list(dict.fromkeys([text_field] + ([id_field] if id_field is not None else [])))
    for group in range(first, groups):  # one row group at a time: pyarrow pre-buffers what it is asked for
        for batch in parquet_file.iter_batches(batch_size=BATCH_ROWS, row_groups=[group], columns=columns):
            if skip >= batch.num_rows:
                skip -= batch.num_rows
                continue
            batch, skip = batch.slice(skip), 0
            texts = batch.column(text_field).to_pylist()
            ids = batch.column(id_field).to_pylist() if id_field is not None else [None] * len(texts)
            for text, key in zip(texts, ids):
                yield _row(text, key, text_field, id_field)


def _row(text, key, text_field: str, id_field: str | None):
    if text is None:
        return None, None, f"column {text_field!r} is null"
    if id_field is not None and key is None:
        return None, None, f"id column {id_field!r} is null"
    if isinstance(key, int) and key > INT64_MAX:  # a uint64 column
        return None, None, (f"id column {id_field!r} is {key}, outside the 64-bit integer range of the id column; "
                            "write such ids as strings")
    try:
        return check_text(text, f"column {text_field!r}"), key, None
    except NumpybertError as e:
        return None, None, str(e)
