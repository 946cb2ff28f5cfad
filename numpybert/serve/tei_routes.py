"""text-embeddings-inference's API: POST /embed, /embed_all, /tokenize, /decode, /predict, /rerank,
POST / and /invocations (embed for an embedding model, predict for a classifier, as TEI), and
GET /, /info, /health, /metrics.

Errors have TEI's shape, {"error", "error_type"}, with status 422 for a bad request and 413 for too
much (app.route wraps every handler). /health answers without the API key (load balancers probe it).
"""

import os

import numpy as np
from starlette.responses import Response

from . import requests as rq
from .app import embedding_work, json_response, route
from .calls import Classify, Rerank, TokenEmbeddings
from .model import shorten


async def embed(server, request, data=None):
    data = await server.body(request, "tei") if data is None else data
    work = await embedding_work(server, data, "inputs", "tei", False)
    vectors = np.stack(await server.run(request, work.call, work.items, work.tokens))
    if work.dimensions is not None:
        vectors = vectors[:, :work.dimensions]
        vectors = shorten(vectors, vectors.shape[1]) if work.normalize else vectors
    return json_response(vectors.tolist())


async def embed_all(server, request):
    data = await server.body(request, "tei")
    limits = server.limits
    _, items = rq.inputs(data.get("inputs"), "inputs", limits, 422, allow_ids=False)
    truncate = rq.boolean(data, "truncate", False, 422)
    direction = (rq.optional_str(data, "truncation_direction", 422, ("right", "left", "Right", "Left"))
                 or "right").lower()
    if direction != "right":
        raise rq.ApiError(422, "'truncation_direction' left is supported by /embed only", "truncation_direction")
    tokens = rq.fit(await server.count(items), limits, truncate, "inputs")
    results = await server.run(request, TokenEmbeddings(), items, tokens)
    return json_response([r.tolist() for r in results])


async def tokenize(server, request):
    """Per input, its tokens: id, text (the input's own substring, from the offsets; a special token's
    own string), special, start and stop (character offsets; null for special tokens), as TEI."""
    data = await server.body(request, "tei")
    _, items = rq.inputs(data.get("inputs"), "inputs", server.limits, 422, allow_ids=False)
    special = rq.boolean(data, "add_special_tokens", True, 422)
    answer = []
    for text, (ids, mask, offsets) in zip(items, await server.tokenizing(server.sm.tokenize, items, special)):
        pieces = server.sm.tokenizer.convert_ids_to_tokens([int(i) for i in ids])
        answer.append([{"id": int(i), "text": piece if s else text[a:b], "special": bool(s),
                        "start": None if s else int(a), "stop": None if s else int(b)}
                       for i, piece, s, (a, b) in zip(ids, pieces, mask, offsets)])
    return json_response(answer)


async def decode(server, request):
    """Token ids -> text (one string per row), as TEI's /decode."""
    data = await server.body(request, "tei")
    rows = rq.ids_rows(data.get("ids"), "ids", server.limits, 422)
    skip = rq.boolean(data, "skip_special_tokens", True, 422)
    return json_response(server.sm.decode(rows, skip))


def _need_classifier(server, route_name):
    if server.sm.labels is None:
        raise rq.ApiError(422, f"{route_name} needs a checkpoint with a sequence-classification head "
                               "(classifier.weight); this model has none", None)


async def predict(server, request, data=None):
    data = await server.body(request, "tei") if data is None else data
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
        parts = [t] if isinstance(t, str) else t
        if not isinstance(parts, list) or not 1 <= len(parts) <= 2:
            raise rq.ApiError(422, f"inputs[{i}] must be a non-empty string or a [text, text] pair", "inputs")
        for j, part in enumerate(parts):
            rq.text(part, f"inputs[{i}]" + ("" if isinstance(t, str) else f"[{j}]"), 422)
        items.append(parts[0] if len(parts) == 1 else tuple(parts))
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
    parameters = data.get("parameters")  # Hugging Face's Inference API form (InferenceClient.text_classification)
    function, top_k = ("none" if raw else None), None
    if parameters is not None:
        if not isinstance(parameters, dict):
            raise rq.ApiError(422, "'parameters' must be an object", "parameters")
        function = rq.optional_str(parameters, "function_to_apply", 422, ("softmax", "sigmoid", "none")) or function
        top_k = parameters.get("top_k")
        if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
            raise rq.ApiError(422, f"'parameters.top_k' must be a positive integer, got {top_k!r}"[:120], "top_k")
    results = await server.run(request, Classify(function), items, tokens)
    if parameters is not None:  # that API answers a list per input, even for one text
        return json_response([r[:top_k] for r in results])
    return json_response(results[0] if single else results)


async def rerank(server, request):
    data = await server.body(request, "tei")
    _need_classifier(server, "/rerank")
    query = rq.text(data.get("query"), "query", 422) if data.get("query") is not None else None
    if query is None:
        raise rq.ApiError(422, "'query' is required", "query")
    _, texts = rq.inputs(data.get("texts"), "texts", server.limits, 422, allow_ids=False)
    raw = rq.boolean(data, "raw_scores", False, 422)
    return_text = rq.boolean(data, "return_text", False, 422)
    truncate = rq.boolean(data, "truncate", False, 422)
    counts = await server.count([query] + texts)
    tokens = rq.fit([counts[0] + n - 1 for n in counts[1:]], server.limits, truncate, "texts")
    scores = await server.run(request, Rerank(query, raw), texts, tokens)
    ranked = sorted(range(len(texts)), key=lambda i: -scores[i])
    return json_response([{"index": i, "score": scores[i], **({"text": texts[i]} if return_text else {})}
                          for i in ranked])


async def root(server, request):
    """POST / and /invocations: what TEI does there, by model kind: predict for a classifier, else embed."""
    data = await server.body(request, "tei")
    if server.sm.labels is not None:
        return await predict(server, request, data)
    return await embed(server, request, data)


async def health(server, request):
    server.check_ready()
    return Response(status_code=200)


async def info(server, request):
    o, sm = server.options, server.sm
    body = {"model_id": o.name, "model_dir": o.model, "model_dtype": "float32", "ready": sm is not None,
            "max_concurrent_requests": o.max_concurrent_requests, "max_batch_tokens": o.max_batch_tokens,
            "max_client_batch_size": o.max_client_batch_size, "payload_limit": o.payload_limit,
            "auth_required": o.api_key is not None, "version": _version(), "backend": "numpybert",
            "workers": o.workers, "pid": os.getpid()}  # with --workers N: the worker that answered
    if sm is not None:
        pooling = {"modes": list(sm.settings.pooling), "normalize": sm.settings.normalize}
        body.update({"max_input_length": sm.max_input_length, "dimensions": sm.dimensions, "pooling": pooling,
                     "model_type": {"classifier": {"id2label": dict(enumerate(sm.labels))}} if sm.labels else
                     {"embedding": {"pooling": "+".join(sm.settings.pooling)}}})
    return json_response(body)


async def metrics(server, request):
    return Response(server.metrics.render(server.batcher.depth, server.in_flight, server.sm is not None),
                    media_type="text/plain; version=0.0.4")


def _version():
    from .. import __version__
    return __version__


def routes(server):
    return [route(server, "/embed", "tei", embed),
            route(server, "/embed_all", "tei", embed_all),
            route(server, "/tokenize", "tei", tokenize),
            route(server, "/decode", "tei", decode),
            route(server, "/predict", "tei", predict),
            route(server, "/rerank", "tei", rerank),
            route(server, "/", "tei", root),
            route(server, "/invocations", "tei", root),
            route(server, "/", "tei", info, "GET", ready=False),
            route(server, "/health", "tei", health, "GET", auth=False, ready=False),
            route(server, "/info", "tei", info, "GET", ready=False),
            route(server, "/metrics", "tei", metrics, "GET", ready=False)]
