"""Run the app under uvicorn: listen first, load the model on a thread (/health says 503 until
it is ready), and on SIGTERM or Ctrl-C stop accepting, finish every admitted request, exit 0."""

import contextlib
import os

import uvicorn

from ..errors import NumpybertError
from .app import Options, create_app


class _Server(uvicorn.Server):
    """uvicorn's server, minus re-raising SIGTERM after its graceful shutdown (which would end the
    process with status 143 after all the work was done): numpybert serve exits 0."""

    @contextlib.contextmanager
    def capture_signals(self):
        with super().capture_signals():
            yield
            self._captured_signals.clear()


def load_serve_model(options: Options):
    """The ServeModel for options.model (runs on the loader thread)."""
    from .. import load, set_threads
    from .model import ServeModel
    if options.threads is not None:
        set_threads(options.threads)
    model = load(options.model, mmap=options.mmap)
    return ServeModel(model, options.name, options.max_input_length, options.max_batch_tokens)


def serve(options: Options, host="127.0.0.1", port=8080, log_level="warning") -> int:
    app = create_app(options, lambda: load_serve_model(options))
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False, lifespan="on",
                            timeout_graceful_shutdown=None, limit_concurrency=None)
    server = _Server(config)
    state = app.state.server
    state.on_load_error = lambda e: setattr(server, "should_exit", True)
    print(f"numpybert serve: listening on http://{host}:{port} (pid {os.getpid()}), loading {options.model}",
          flush=True)
    server.run()
    if state.load_error is not None:
        return 2 if isinstance(state.load_error, NumpybertError) and not isinstance(state.load_error, OSError) else 3
    return 0 if server.started else 3
