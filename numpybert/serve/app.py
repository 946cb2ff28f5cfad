"""The HTTP routes (starlette): OpenAI's /v1/embeddings and /v1/models, and text-embeddings-
inference's /embed, /embed_all, /tokenize, /predict, /rerank, /health, /info, /metrics.

Handlers parse and check (numpybert/serve/requests.py), count tokens, queue the work with the
batcher (numpybert/serve/batcher.py) and format the answer; no handler runs a forward.
"""

import asyncio
import base64
import dataclasses
import json
import sys
import threading
import time

import numpy as np
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from ..errors import NumpybertError
from . import requests as rq
from .batcher import Batcher, Job
from .metrics import Metrics
from .model import shorten

INLINE_CHARS = 4096  # requests with fewer characters are tokenized on the event loop (~20 us per short text)


@dataclasses.dataclass
class Options:
    model: str  # the model directory
    name: str  # the name /v1/models and the answers give
    max_batch_tokens: int = 16384
    max_concurrent_requests: int = 512
    max_client_batch_size: int = 2048
    max_input_length: int | None = None  # None: the model's max_seq_length
    payload_limit: int = 2_000_000
    api_key: str | None = None
    mmap: bool = False
    threads: int | None = None  # None: numpybert's default (numpybert.set_threads)


class ClientGone(Exception):
    pass


def json_response(data, status=200, headers=None):
    body = json.dumps(data, separators=(",", ":"), allow_nan=False).encode()
    return Response(body, status, headers=headers, media_type="application/json")


class Server:
    """The state every route shares: options, the model once loaded, the batcher, the counters."""

    def __init__(self, options: Options, load):
        self.options = options
        self.load = load  # () -> ServeModel, run on a thread at startup
        self.sm = None
        self.load_error = None
        self.metrics = Metrics()
        self.batcher = Batcher(self.compute, options.max_batch_tokens, self.metrics)
        self.in_flight = 0
        self.limits = None
        self.on_load_error = None
        self.admitted = self.answered = 0  # POST requests whose handler started / returned an answer

    # -- lifecycle -------------------------------------------------------------------------------
    async def startup(self):
        self.batcher.start()
        loop = asyncio.get_running_loop()
        threading.Thread(target=self._load, args=(loop,), daemon=True, name="numpybert-load").start()

    def _load(self, loop):
        try:
            sm = self.load()
        except Exception as e:  # noqa: BLE001 - said on /health and in the log, the process stays up
            self.load_error = e
            print(f"numpybert serve: error: {e}", file=sys.stderr, flush=True)
            if self.on_load_error is not None:
                self.on_load_error(e)  # the runner stops the server: exit 2 or 3, as every command
            return
        self.limits = rq.Limits(self.options.max_client_batch_size, sm.max_input_length, sm.vocab_size,
                                sm.dimensions)
        self.sm = sm
        print(f"numpybert serve: model {self.options.name} loaded; ready", flush=True)

    async def shutdown(self):
        """After uvicorn stopped accepting and every admitted request was answered (SIGTERM)."""
        await self.batcher.stop()
        print(f"numpybert serve: stopped; answered {self.answered} of {self.admitted} requests admitted "
              "(POST routes)", flush=True)

    # -- the compute thread -----------------------------------------------------------------------
    def compute(self, key, items):
        kind, sm = key[0], self.sm
        if kind == "texts":
            return list(sm.embed_texts(items, key[1], key[2]))
        if kind == "ids":
            return list(sm.embed_ids(items, key[1]))
        if kind == "tokens":
            return sm.token_embeddings(items)
        if kind == "predict":
            texts = [t if isinstance(t, str) else t[0] for t in items]
            pairs = None if all(isinstance(t, str) for t in items) else [None if isinstance(t, str) else t[1]
                                                                         for t in items]
            if pairs is not None and None in pairs:
                return [self.compute(key, [t])[0] for t in items]  # singles and pairs do not mix in one call
            return self._predict(texts, pairs, key[1])
        if kind == "rerank":
            scores = sm.rerank_scores(key[1], items, key[2])
            return [float(s) for s in scores]
        raise ValueError(f"unknown work {kind!r}")

    def _predict(self, texts, pairs, raw_scores):
        if not raw_scores:
            return self.sm.classify(texts, pairs)
        logits = self.sm.logits(texts, pairs)
        return [[{"label": self.sm.labels[i], "score": float(row[i])} for i in np.argsort(-row, kind="stable")]
                for row in logits]

    # -- helpers for handlers ---------------------------------------------------------------------
    async def body(self, request, flavor):
        key = self.options.api_key
        if key is not None and request.headers.get("authorization", "") != f"Bearer {key}":
            raise rq.ApiError(401, "missing or wrong API key: send the header 'Authorization: Bearer <key>'",
                              "authorization")
        if self.sm is None:
            why = f"the model failed to load: {self.load_error}" if self.load_error else "the model is loading"
            raise rq.ApiError(503, why, None, headers={"Retry-After": "1"})
        limit = self.options.payload_limit
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise rq.ApiError(413, f"the body has {length} bytes, more than the server's --payload-limit {limit}",
                              "body")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise rq.ApiError(413, f"the body has more than the server's --payload-limit {limit} bytes", "body")
            chunks.append(chunk)
        return rq.parse_json(b"".join(chunks), 400 if flavor == "openai" else 422)

    async def count(self, texts):
        if sum(map(len, texts)) < INLINE_CHARS:
            return self.sm.count(texts)
        return await asyncio.to_thread(self.sm.count, texts)

    async def encodings(self, texts):
        if sum(map(len, texts)) < INLINE_CHARS:
            return self.sm.encodings(texts)
        return await asyncio.to_thread(self.sm.encodings, texts)

    async def run(self, request, key, items, tokens):
        """Queue the work, wait for it (or for the client to leave), return the results in order."""
        if self.in_flight >= self.options.max_concurrent_requests:
            raise rq.ApiError(429, f"the server is busy: {self.in_flight} requests in flight, its "
                                   f"--max-concurrent-requests {self.options.max_concurrent_requests}; "
                                   "retry after 1 s", None,
                              headers={"Retry-After": "1"})
        self.in_flight += 1
        job = Job(key, items, tokens, asyncio.get_running_loop())
        watcher = asyncio.ensure_future(_disconnected(request))
        try:
            self.batcher.submit_nowait(job)
            await asyncio.wait({job.future, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if not job.future.done():
                job.cancel()
                raise ClientGone()
            return job.future.result()
        finally:
            watcher.cancel()
            self.in_flight -= 1


async def _disconnected(request):
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def route(server, name, flavor, method="POST"):
    """A starlette endpoint around a handler: errors in their API's shape, and the metrics."""
    def decorate(handler):
        async def endpoint(request):
            start = time.perf_counter()
            server.admitted += method == "POST"
            try:
                response = await handler(server, request)
            except rq.ApiError as e:
                response = json_response(e.openai() if flavor == "openai" else e.tei(), e.status, e.headers)
            except ClientGone:
                response = Response(status_code=499)
            except NumpybertError as e:  # the model refused an input the checks let through
                status = 400 if flavor == "openai" else 422
                e = rq.ApiError(status, str(e).splitlines()[0], None)
                response = json_response(e.openai() if flavor == "openai" else e.tei(), status)
            server.metrics.request(name, response.status_code, time.perf_counter() - start)
            server.answered += method == "POST" and response.status_code != 499
            return response
        return Route(name, endpoint, methods=[method])
    return decorate


# ----------------------------------------------------------------------------- embeddings

async def _embed(server, data, field, flavor, truncate_default):
    """Shared by /v1/embeddings and /embed: the body, checked -> (kind "texts" | "ids", the inputs
    (cut when truncating from the left), real tokens per input, the batcher's key, dimensions)."""
    status = 400 if flavor == "openai" else 422
    limits, sm = server.limits, server.sm
    kind, items = rq.inputs(data.get(field), field, limits, status)
    truncate = rq.boolean(data, "truncate", truncate_default, status)
    direction = (rq.optional_str(data, "truncation_direction", status, ("right", "left", "Right", "Left"))
                 or "right").lower()
    normalize = rq.boolean(data, "normalize", None, status) if flavor == "tei" else None
    normalize = True if flavor == "tei" and normalize is None else normalize
    prompt_name = rq.optional_str(data, "prompt_name", status) if flavor == "tei" else None
    dims = rq.dimensions(data, limits, status)
    if kind == "texts":
        counts = await server.count(items)
        tokens = rq.fit(counts, limits, truncate, field)
        if direction == "left" and any(n > limits.max_input_length for n in counts):  # cut from the start: ids
            encs = await server.encodings(items)
            kind, items = "ids", [rq.cut_encoding(e.ids, limits.max_input_length, "left", sm.cls_id, sm.sep_id)
                                  for e in encs]
    else:
        tokens = rq.fit([len(r) for r in items], limits, truncate, field)
        items = [rq.cut_ids(r, limits.max_input_length, direction) for r in items]
    if kind == "ids" and sm.pooling is None:
        raise rq.ApiError(status, f"'{field}': this model's pooling combines several modes, which the server "
                                  "computes from text only; send text", field)
    if kind == "ids" and prompt_name is not None:
        raise rq.ApiError(status, "'prompt_name' applies to text inputs, not token ids", "prompt_name")
    key = ("texts", normalize, prompt_name) if kind == "texts" else ("ids", normalize)
    return kind, items, tokens, key, dims


async def openai_embeddings(server, request):
    data = await server.body(request, "openai")
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        raise rq.ApiError(400, f"'model' must be a string, got {type(model).__name__}", "model")
    fmt = rq.optional_str(data, "encoding_format", 400, ("float", "base64")) or "float"
    user = data.get("user")
    if user is not None and not isinstance(user, str):
        raise rq.ApiError(400, f"'user' must be a string, got {type(user).__name__}", "user")
    kind, items, tokens, key, dims = await _embed(server, data, "input", "openai", True)
    vectors = shorten(np.stack(await server.run(request, key, items, tokens)), dims)
    if fmt == "base64":
        rows = [base64.b64encode(v.astype("<f4").tobytes()).decode() for v in vectors]
    else:
        rows = vectors.tolist()
    total = int(sum(tokens))
    return json_response({"object": "list",
                          "data": [{"object": "embedding", "index": i, "embedding": r} for i, r in enumerate(rows)],
                          "model": server.options.name,
                          "usage": {"prompt_tokens": total, "total_tokens": total}})


async def tei_embed(server, request):
    data = await server.body(request, "tei")
    kind, items, tokens, key, dims = await _embed(server, data, "inputs", "tei", False)
    vectors = np.stack(await server.run(request, key, items, tokens))
    if dims is not None:
        vectors = vectors[:, :dims]
        vectors = shorten(vectors, vectors.shape[1]) if key[1] else vectors
    return json_response(vectors.tolist())


async def tei_embed_all(server, request):
    data = await server.body(request, "tei")
    limits = server.limits
    kind, items = rq.inputs(data.get("inputs"), "inputs", limits, 422, allow_ids=False)
    truncate = rq.boolean(data, "truncate", False, 422)
    direction = (rq.optional_str(data, "truncation_direction", 422, ("right", "left", "Right", "Left"))
                 or "right").lower()
    if direction != "right":
        raise rq.ApiError(422, "'truncation_direction' left is supported by /embed only", "truncation_direction")
    tokens = rq.fit(await server.count(items), limits, truncate, "inputs")
    results = await server.run(request, ("tokens",), items, tokens)
    return json_response([r.tolist() for r in results])


async def tei_tokenize(server, request):
    data = await server.body(request, "tei")
    kind, items = rq.inputs(data.get("inputs"), "inputs", server.limits, 422, allow_ids=False)
    special = rq.boolean(data, "add_special_tokens", True, 422)
    encs = await asyncio.to_thread(server.sm.counter.encode_batch, items, add_special_tokens=special)
    answer = []
    for text, e in zip(items, encs):
        answer.append([{"id": int(i), "text": tok, "special": bool(s), "start": None if s else int(a),
                        "stop": None if s else int(b)}
                       for i, tok, s, (a, b) in zip(e.ids, e.tokens, e.special_tokens_mask, e.offsets)])
    return json_response(answer)


# ----------------------------------------------------------------------------- classifier routes

def _need_classifier(server, route_name):
    if server.sm.labels is None:
        raise rq.ApiError(422, f"{route_name} needs a checkpoint with a sequence-classification head "
                               "(classifier.weight); this model has none", None)


async def tei_predict(server, request):
    data = await server.body(request, "tei")
    _need_classifier(server, "/predict")
    value = data.get("inputs")
    single = isinstance(value, str)  # one text -> one list of scores; a list -> one list per input
    if single:
        value = [value]
    if not isinstance(value, list) or not value:
        raise rq.ApiError(422, "'inputs' must be a string, a list of strings, or a list of [text, text] pairs",
                          "inputs")
    if len(value) > server.limits.max_client_batch_size:
        raise rq.ApiError(413, f"'inputs' has {len(value)} inputs, more than the server's --max-client-batch-size "
                               f"{server.limits.max_client_batch_size}", "inputs")
    items = []
    for i, t in enumerate(value):
        ok = (isinstance(t, str) and t) or (isinstance(t, list) and 1 <= len(t) <= 2 and
                                            all(isinstance(s, str) and s for s in t))
        if not ok:
            raise rq.ApiError(422, f"inputs[{i}] must be a non-empty string or a [text, text] pair", "inputs")
        items.append(t if isinstance(t, str) else (t[0] if len(t) == 1 else tuple(t)))
    raw = rq.boolean(data, "raw_scores", False, 422)
    truncate = rq.boolean(data, "truncate", False, 422)
    flat = [s for t in items for s in ((t,) if isinstance(t, str) else t)]
    counts = await server.count(flat)
    per_item, k = [], 0
    for t in items:
        n = 1 if isinstance(t, str) else 2
        per_item.append(sum(counts[k:k + n]) - (n - 1))
        k += n
    tokens = rq.fit(per_item, server.limits, truncate, "inputs")
    results = await server.run(request, ("predict", raw), items, tokens)
    return json_response(results[0] if single else results)


async def tei_rerank(server, request):
    data = await server.body(request, "tei")
    _need_classifier(server, "/rerank")
    query = data.get("query")
    if not isinstance(query, str) or not query:
        raise rq.ApiError(422, "'query' must be a non-empty string", "query")
    kind, texts = rq.inputs(data.get("texts"), "texts", server.limits, 422, allow_ids=False)
    raw = rq.boolean(data, "raw_scores", False, 422)
    return_text = rq.boolean(data, "return_text", False, 422)
    truncate = rq.boolean(data, "truncate", False, 422)
    counts = await server.count([query] + texts)
    tokens = rq.fit([counts[0] + n - 1 for n in counts[1:]], server.limits, truncate, "texts")
    scores = await server.run(request, ("rerank", query, raw), texts, tokens)
    ranked = sorted(range(len(texts)), key=lambda i: -scores[i])
    return json_response([{"index": i, "score": scores[i], **({"text": texts[i]} if return_text else {})}
                          for i in ranked])


# ----------------------------------------------------------------------------- GET routes

async def health(server, request):
    if server.sm is None:
        why = f"the model failed to load: {server.load_error}" if server.load_error else "the model is loading"
        raise rq.ApiError(503, why)
    return Response(status_code=200)


async def info(server, request):
    o, sm = server.options, server.sm
    body = {"model_id": o.name, "model_dir": o.model, "model_dtype": "float32", "ready": sm is not None,
            "max_concurrent_requests": o.max_concurrent_requests, "max_batch_tokens": o.max_batch_tokens,
            "max_client_batch_size": o.max_client_batch_size, "payload_limit": o.payload_limit,
            "auth_required": o.api_key is not None, "version": _version(), "backend": "numpybert"}
    if sm is not None:
        body.update({"max_input_length": sm.max_input_length, "dimensions": sm.dimensions,
                     "pooling": None if sm.pooling is None else dataclasses.asdict(sm.pooling),
                     "model_type": {"classifier": {"id2label": dict(enumerate(sm.labels))}} if sm.labels else
                     {"embedding": {"pooling": None if sm.pooling is None else sm.pooling.mode}}})
    return json_response(body)


async def metrics(server, request):
    return Response(server.metrics.render(server.batcher.depth, server.in_flight, server.sm is not None),
                    media_type="text/plain; version=0.0.4")


async def models(server, request):
    return json_response({"object": "list", "data": [{"id": server.options.name, "object": "model", "created": 0,
                                                      "owned_by": "numpybert"}]})


def _version():
    from .. import __version__
    return __version__


def _guarded(handler):
    """GET routes other than /health need the API key too, when one is set."""
    async def wrapped(server, request):
        key = server.options.api_key
        if key is not None and request.headers.get("authorization", "") != f"Bearer {key}":
            raise rq.ApiError(401, "missing or wrong API key: send the header 'Authorization: Bearer <key>'",
                              "authorization")
        return await handler(server, request)
    return wrapped


def create_app(options: Options, load):
    """The ASGI app. `load()` returns the ServeModel; it runs on a thread once the server listens."""
    server = Server(options, load)
    routes = [
        route(server, "/v1/embeddings", "openai")(openai_embeddings),
        route(server, "/embeddings", "openai")(openai_embeddings),
        route(server, "/v1/models", "openai", "GET")(_guarded(models)),
        route(server, "/models", "openai", "GET")(_guarded(models)),
        route(server, "/embed", "tei")(tei_embed),
        route(server, "/embed_all", "tei")(tei_embed_all),
        route(server, "/tokenize", "tei")(tei_tokenize),
        route(server, "/predict", "tei")(tei_predict),
        route(server, "/rerank", "tei")(tei_rerank),
        route(server, "/health", "tei", "GET")(health),
        route(server, "/info", "tei", "GET")(_guarded(info)),
        route(server, "/metrics", "tei", "GET")(_guarded(metrics)),
    ]

    import contextlib

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await server.startup()
        yield
        await server.shutdown()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.server = server
    return app
