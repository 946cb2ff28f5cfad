"""OpenAI's embeddings API: POST /v1/embeddings (and /embeddings), GET /v1/models (and /models).

Errors have OpenAI's shape, {"error": {"message", "type", "param", "code"}}, with status 400 for
a bad request (app.route wraps every handler). `model` may be absent or null (one model is served,
whatever its name); any other non-string is refused, naming `model`.
"""

import base64

import numpy as np

from . import requests as rq
from .app import embedding_work, json_response, route
from .model import shorten


async def embeddings(server, request):
    data = await server.body(request, "openai")
    for field in ("model", "user"):
        value = data.get(field)
        if value is not None and not isinstance(value, str):
            raise rq.ApiError(400, f"'{field}' must be a string, got {type(value).__name__}", field)
    fmt = rq.optional_str(data, "encoding_format", 400, ("float", "base64")) or "float"
    work = await embedding_work(server, data, "input", "openai", True)
    vectors = shorten(np.stack(await server.run(request, work.call, work.items, work.tokens)), work.dimensions)
    if fmt == "base64":
        rows = [base64.b64encode(v.astype("<f4").tobytes()).decode() for v in vectors]
    else:
        rows = vectors.tolist()
    total = int(sum(work.tokens))
    return json_response({"object": "list",
                          "data": [{"object": "embedding", "index": i, "embedding": r} for i, r in enumerate(rows)],
                          "model": server.options.name,
                          "usage": {"prompt_tokens": total, "total_tokens": total}})


async def models(server, request):
    return json_response({"object": "list", "data": [{"id": server.options.name, "object": "model", "created": 0,
                                                      "owned_by": "numpybert"}]})


def routes(server):
    return [route(server, "/v1/embeddings", "openai", embeddings),
            route(server, "/embeddings", "openai", embeddings),
            route(server, "/v1/models", "openai", models, "GET", ready=False),
            route(server, "/models", "openai", models, "GET", ready=False)]
