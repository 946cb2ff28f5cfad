"""The app: the state every route shares (`Server`), the one route wrapper (`route`), `create_app`.

The routes themselves live in openai_routes.py (/v1/embeddings, /v1/models) and tei_routes.py
(text-embeddings-inference's /embed, /embed_all, /tokenize, /decode, /predict, /rerank, POST /,
/invocations, GET /, /health, /info, /metrics). Handlers parse and check (requests.py), count
tokens, hand a typed call (calls.py) to the batcher (batcher.py) and format the answer; no handler
runs a forward. `route` does for every handler what each would otherwise repeat: the API key
(constant-time compare), "not ready yet" (503), errors in the route's API shape (OpenAI or TEI),
a client that left (499, counted, no traceback) and a catch-all that answers an API-shaped 500,
counts it and logs one line.
"""

import asyncio
import contextlib
import dataclasses
import hmac
import json
import sys
import threading
import time

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import Route

from ..errors import NumpybertError
from . import requests as rq
from .batcher import Batcher, Job
from .metrics import Metrics

INLINE_CHARS = 4096  # requests with fewer characters are tokenized on the event loop (~20 us per short text)
CLIENT_GONE = 499  # nginx's status for "the client closed the connection before the answer"


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
    workers: int = 1  # processes sharing the port (runner.py)


class ClientGone(Exception):
    pass


def json_response(data, status=200, headers=None):
    body = json.dumps(data, separators=(",", ":"), allow_nan=False).encode()
    return Response(body, status, headers=headers, media_type="application/json")


def error_response(error: rq.ApiError, flavor: str):
    return json_response(error.openai() if flavor == "openai" else error.tei(), error.status, error.headers)


class Server:
    """The state every route shares: options, the model once loaded, the batcher, the counters."""

    def __init__(self, options: Options, load):
        self.options = options
        self.load = load  # () -> ServeModel, run on a thread at startup
        self.sm = None
        self.load_error = None
        self.metrics = Metrics()
        self.batcher = Batcher(lambda call, items: call.run(self.sm, items), options.max_batch_tokens, self.metrics)
        self.in_flight = 0
        self.limits = None
        self.on_load_error = None
        # POST requests whose handler started / that got an answer / whose client left first (499):
        # admitted == answered + gone once all are done (the SIGTERM summary)
        self.admitted = self.answered = self.gone = 0

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
                                sm.dimensions, sm.first_id, sm.last_id)
        self.sm = sm
        print(f"numpybert serve: model {self.options.name} loaded; ready", flush=True)

    async def shutdown(self):
        """After uvicorn stopped accepting and every admitted request was answered (SIGTERM)."""
        await self.batcher.stop()
        print(f"numpybert serve: stopped; answered {self.answered} of {self.admitted} requests admitted "
              f"(POST routes), {self.gone} whose client left first (499)", flush=True)

    # -- checks every route shares -----------------------------------------------------------------
    def check_key(self, request):
        key = self.options.api_key
        if key is None:
            return
        sent = request.headers.get("authorization", "").encode("latin-1", "replace")
        if not hmac.compare_digest(sent, f"Bearer {key}".encode("latin-1", "replace")):  # constant time
            raise rq.ApiError(401, "missing or wrong API key: send the header 'Authorization: Bearer <key>'",
                              "authorization")

    def check_ready(self):
        if self.sm is None:
            why = f"the model failed to load: {self.load_error}" if self.load_error else "the model is loading"
            raise rq.ApiError(503, why, None, headers={"Retry-After": "1"})

    # -- helpers for handlers ---------------------------------------------------------------------
    async def body(self, request, flavor):
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

    async def tokenizing(self, fn, texts, *args):
        """fn(texts, *args) on the event loop for short inputs, else on a worker thread."""
        if sum(map(len, texts)) < INLINE_CHARS:
            return fn(texts, *args)
        return await asyncio.to_thread(fn, texts, *args)

    async def count(self, texts):
        return await self.tokenizing(self.sm.count, texts)

    async def run(self, request, call, items, tokens):
        """Queue the work, wait for it (or for the client to leave), return the results in order."""
        if self.in_flight >= self.options.max_concurrent_requests:
            raise rq.ApiError(429, f"the server is busy: {self.in_flight} requests in flight, its "
                                   f"--max-concurrent-requests {self.options.max_concurrent_requests}; "
                                   "retry after 1 s", None,
                              headers={"Retry-After": "1"})
        self.in_flight += 1
        job = Job(call, items, tokens, asyncio.get_running_loop())
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


def route(server, path, flavor, handler, method="POST", auth=True, ready=True):
    """A starlette Route around `handler(server, request) -> Response`: the API key, readiness, errors
    in the API's shape (OpenAI's {"error": {...}} or TEI's {"error", "error_type"}), 499 for a client
    that left, an API-shaped 500 for anything unexpected; every answer counted in /metrics."""
    status_of_refusal = 400 if flavor == "openai" else 422

    async def endpoint(request):
        start = time.perf_counter()
        server.admitted += method == "POST"
        try:
            if auth:
                server.check_key(request)
            if ready:
                server.check_ready()
            response = await handler(server, request)
        except rq.ApiError as e:
            response = error_response(e, flavor)
        except (ClientGone, ClientDisconnect):
            response = Response(status_code=CLIENT_GONE)
        except NumpybertError as e:  # the library refused an input the checks let through: say why
            response = error_response(rq.ApiError(status_of_refusal, str(e).splitlines()[0]), flavor)
        except Exception as e:  # noqa: BLE001 - a bug: one log line, an API-shaped 500, counted
            what = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            print(f"numpybert serve: error: {method} {path} failed: {what}", file=sys.stderr, flush=True)
            response = error_response(rq.ApiError(500, f"internal error ({what}); the server log has this line"),
                                      flavor)
        status = response.status_code
        server.metrics.request(path, status, time.perf_counter() - start)
        if method == "POST":
            server.gone += status == CLIENT_GONE
            server.answered += status != CLIENT_GONE
        return response

    return Route(path, endpoint, methods=[method])


def create_app(options: Options, load):
    """The ASGI app. `load()` returns the ServeModel; it runs on a thread once the server listens."""
    from . import openai_routes, tei_routes
    server = Server(options, load)
    routes = openai_routes.routes(server) + tei_routes.routes(server)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await server.startup()
        yield
        await server.shutdown()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.server = server
    return app


# ----------------------------------------------------------------------------- shared by /v1/embeddings and /embed

@dataclasses.dataclass
class EmbeddingWork:
    call: object  # calls.EmbedTexts | calls.EmbedIds
    items: list  # texts, or token-id rows
    tokens: list  # real tokens per input, after truncation
    dimensions: int | None
    normalize: bool | None


async def embedding_work(server, data, field, flavor, truncate_default) -> EmbeddingWork:
    """The body of an embedding request, checked: what to run, on which inputs, at what token cost.
    Texts are cut (right: by the library's tokenizer, after its char cap; left: as token ids with
    the special tokens kept); token-id rows must be the model's own (requests.IDS_CONTRACT) and are
    cut the same way."""
    from .calls import EmbedIds, EmbedTexts
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
            kind, items = "ids", await server.tokenizing(sm.left_cut, items)
    else:
        tokens = rq.fit([len(r) for r in items], limits, truncate, field)
        items = [rq.cut_ids(r, limits.max_input_length, direction) for r in items]
    if kind == "ids" and prompt_name is not None:
        raise rq.ApiError(status, "'prompt_name' applies to text inputs, not token ids", "prompt_name")
    call = EmbedTexts(normalize, prompt_name) if kind == "texts" else EmbedIds(normalize)
    return EmbeddingWork(call, items, tokens, dims, normalize)
