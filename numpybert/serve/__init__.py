"""`numpybert serve`: an embedding server speaking OpenAI's and text-embeddings-inference's APIs.

    pip install -e '.[serve]'                  # in a checkout (numpybert is not on PyPI)
    pip install 'numpybert-0.1.0-py3-none-any.whl[serve]'   # or from a built wheel
    numpybert serve --model weights/all-MiniLM-L6-v2 --port 8080
    curl -s localhost:8080/v1/embeddings -H 'content-type: application/json' -d '{"input": "hello", "model": "x"}'

Needs the `serve` extra (starlette + uvicorn); `import numpybert` never imports this package.
The parts: app.py (shared state, the one route wrapper), openai_routes.py and tei_routes.py (the
two APIs), calls.py (the typed call of each operation), batcher.py (dynamic batching on one compute
thread), model.py (the model's side, numpybert's public API only), requests.py (checks and errors),
metrics.py (/metrics), runner.py (uvicorn, graceful SIGTERM, --workers). docs/serving.md is the
user's guide; bench.py the load generator (`python -m numpybert.serve.bench`, the serve-bench extra).
"""

from ..errors import MissingExtraError

try:
    import starlette  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as e:  # one line naming the extra, never a traceback
    raise MissingExtraError(f"numpybert serve needs the 'serve' extra ({e.name} is missing): "
                            "pip install 'starlette>=0.37' 'uvicorn>=0.30'") from None

from .app import Options, create_app  # noqa: E402
from .runner import serve  # noqa: E402

__all__ = ["Options", "create_app", "serve"]
