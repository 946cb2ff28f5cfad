"""Request bodies -> checked inputs, or an `ApiError` that names the field (OpenAI's `param`).

No model and no HTTP here: plain values in, plain values out, so every refusal is easy to test
and to list (docs/serving.md, "Limits and errors").
"""

import dataclasses
import json


class ApiError(Exception):
    """An HTTP error answer: status, one-line message, the field at fault, OpenAI's error type."""

    def __init__(self, status, message, param=None, kind=None, headers=None):
        super().__init__(message)
        self.status, self.message, self.param, self.headers = status, message, param, headers or {}
        self.kind = kind or {400: "invalid_request_error", 401: "authentication_error", 413: "invalid_request_error",
                             422: "invalid_request_error", 429: "rate_limit_error",
                             503: "service_unavailable"}.get(status, "server_error")

    def openai(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": None}}

    def tei(self) -> dict:
        kind = {413: "Validation", 422: "Validation", 400: "Validation", 429: "Overloaded", 503: "Unhealthy",
                401: "Unauthorized"}.get(self.status, "Backend")
        return {"error": self.message, "error_type": kind}


@dataclasses.dataclass
class Limits:
    max_client_batch_size: int
    max_input_length: int  # tokens, [CLS]/[SEP] included
    vocab_size: int
    dimensions: int
    first_id: int | None = None  # the model's own frame of a token-id input ([CLS] ... [SEP]; <s> ... </s>)
    last_id: int | None = None


IDS_CONTRACT = ("token ids must be this model's own, framed by its special tokens as /tokenize returns them "
                "(first {first}, last {last})")
LANGCHAIN_HINT = ("ids from another tokenizer (LangChain's OpenAIEmbeddings sends tiktoken ids by default) are "
                  "refused: send text instead, e.g. OpenAIEmbeddings(..., check_embedding_ctx_length=False)")


def text(value, name, status):
    """A non-empty string that UTF-8 can encode (JSON's \\ud800 escapes make lone surrogates)."""
    if not isinstance(value, str):
        raise ApiError(status, f"{name} must be a string, got {type(value).__name__}", name)
    if not value:
        raise ApiError(status, f"{name} is an empty string", name)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ApiError(status, f"{name} holds a lone surrogate U+{ord(value[e.start]):04X} at character {e.start}, "
                               "which is not text (a broken UTF-16 pair); send valid Unicode", name) from None
    return value


def parse_json(body: bytes, invalid_status=400) -> dict:
    """The body as a JSON object."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ApiError(invalid_status, f"the body is not valid JSON: {e}", "body") from None
    except RecursionError:  # e.g. 10,000 nested arrays: Python's parser gives up on the depth
        raise ApiError(invalid_status, "the body is nested too deeply to be a request (JSON arrays or objects "
                                       "inside each other thousands of levels deep)", "body") from None
    if not isinstance(data, dict):
        raise ApiError(invalid_status, f"the body must be a JSON object, got {type(data).__name__}", "body")
    return data


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _ids(row, name, limits, status, framed=True):
    if not row:
        raise ApiError(status, f"{name} is an empty list of token ids", name)
    for j, t in enumerate(row):
        if not _is_int(t):
            raise ApiError(status, f"{name}[{j}] must be a token id (an integer), got {json.dumps(t)[:40]}", name)
        if not 0 <= t < limits.vocab_size:
            hint = f"; {LANGCHAIN_HINT}" if framed else ""
            raise ApiError(status, f"{name}[{j}] = {t} is outside the vocabulary [0, {limits.vocab_size}){hint}", name)
    if framed and limits.first_id is not None and (len(row) < 2 or row[0] != limits.first_id or row[-1] != limits.last_id):
        contract = IDS_CONTRACT.format(first=limits.first_id, last=limits.last_id)
        raise ApiError(status, f"{name}: {contract}; got {row[0]} ... {row[-1]}. {LANGCHAIN_HINT}", name)
    return list(row)


def ids_rows(value, field, limits, status):
    """TEI's /decode `ids`: one row of token ids or a list of rows (any ids of the vocabulary)."""
    if isinstance(value, list) and value and all(_is_int(t) for t in value):
        return [_ids(value, field, limits, status, framed=False)]
    if not isinstance(value, list) or not value or not all(isinstance(r, list) for r in value):
        raise ApiError(status, f"'{field}' must be an array of token ids or an array of such arrays", field)
    if len(value) > limits.max_client_batch_size:
        raise ApiError(413, f"'{field}' has {len(value)} rows, more than the server's --max-client-batch-size "
                            f"{limits.max_client_batch_size}", field)
    return [_ids(r, f"{field}[{i}]", limits, status, framed=False) for i, r in enumerate(value)]


def inputs(value, field, limits, status=400, allow_ids=True):
    """A string, a list of strings, a list of token ids or a list of token-id lists -> (kind, items):
    kind "texts" (non-empty str) or "ids" (lists of in-vocabulary ints)."""
    if value is None:
        raise ApiError(status, f"'{field}' is required", field)
    single = isinstance(value, str)
    if single:
        value = [value]
    elif not isinstance(value, list):
        raise ApiError(status, f"'{field}' must be a string or an array, got {type(value).__name__}", field)
    if not value:
        raise ApiError(status, f"'{field}' is an empty array; send at least one input", field)
    if allow_ids and all(_is_int(t) for t in value):  # a flat array of ids is ONE input, whatever its length
        return "ids", [_ids(value, field, limits, status)]
    if len(value) > limits.max_client_batch_size:
        raise ApiError(413, f"'{field}' has {len(value)} inputs, more than the server's --max-client-batch-size "
                            f"{limits.max_client_batch_size}", field)
    if allow_ids and all(isinstance(t, list) for t in value):
        return "ids", [_ids(row, f"{field}[{i}]", limits, status) for i, row in enumerate(value)]
    for i, t in enumerate(value):
        if not isinstance(t, str):
            what = "strings" if not allow_ids else "strings, or token ids, or token-id arrays (not mixed)"
            raise ApiError(status, f"{field}[{i}] must be a string (the array holds {what}), "
                                   f"got {type(t).__name__}", f"{field}[{i}]" if allow_ids else field)
        text(t, field if single else f"{field}[{i}]", status)
    return "texts", value


def boolean(data, field, default, status):
    value = data.get(field, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ApiError(status, f"'{field}' must be true or false, got {json.dumps(value)[:40]}", field)
    return value


def optional_str(data, field, status, choices=None):
    value = data.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(status, f"'{field}' must be a string, got {type(value).__name__}", field)
    if choices is not None and value not in choices:
        raise ApiError(status, f"'{field}' is {value!r}; expected one of {', '.join(map(repr, choices))}", field)
    return value


def dimensions(data, limits, status):
    value = data.get("dimensions")
    if value is None:
        return None
    if not _is_int(value):
        raise ApiError(status, f"'dimensions' must be an integer, got {json.dumps(value)[:40]}", "dimensions")
    if not 1 <= value <= limits.dimensions:
        raise ApiError(status, f"'dimensions' is {value}; this model's embeddings have 1 to {limits.dimensions} "
                               "dimensions", "dimensions")
    return value


def fit(counts, limits, truncate, field, status=413):
    """Inputs over max_input_length tokens: cut (truncate) or refused (413 naming the input).
    Counts may stop at max_input_length + 1 (texts are counted that far only). Returns the token
    counts that will run."""
    limit = limits.max_input_length
    for i, n in enumerate(counts):
        if n > limit and not truncate:
            raise ApiError(status, f"{field}[{i}] has more than the maximum input length of {limit} tokens; "
                                   "shorten it or send \"truncate\": true", field)
    return [min(n, limit) for n in counts]


def cut_ids(ids, limit, direction):
    """A framed token-id row ([CLS] ... [SEP], the contract) cut to `limit` tokens as a text is:
    its first and last (special) tokens kept, the content cut at the end (right) or the start (left)."""
    if len(ids) <= limit:
        return ids
    body = ids[1:-1]
    keep = body[:limit - 2] if direction == "right" else body[len(body) - (limit - 2):]
    return [ids[0]] + keep + [ids[-1]]
