"""Run the app under uvicorn: listen first, load the model on a thread (/health says 503 until
it is ready), and on SIGTERM or Ctrl-C stop accepting, finish every admitted request, exit 0.

A second SIGTERM (a supervisor repeating itself) changes nothing: during the drain uvicorn only
notes it, and once the drain is done the process ignores SIGTERM for the rest of its teardown, so
the exit status stays 0 and no admitted request is lost. To stop at once: SIGKILL, or Ctrl-C twice.

`--workers N` (N > 1): the parent binds the port once and starts N worker processes (spawned, not
forked: no BLAS thread pool crosses a fork) that accept on that one socket, each with its own
event loop, batcher and compute thread. Each maps the weights (`mmap=True` is implied), so the
page cache holds one copy for all of them. The parent forwards SIGTERM/SIGINT to every worker,
waits for all to drain, and exits 0 (or a worker's failure status, e.g. 2/3 when the model fails
to load: then it stops the others).
"""

import contextlib
import dataclasses
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import threading

import uvicorn

from ..errors import NumpybertError
from .app import Options, create_app


class _Server(uvicorn.Server):
    """uvicorn's server, minus re-raising SIGTERM after its graceful shutdown (which would end the
    process with status 143 after all the work was done): numpybert serve exits 0.

    uvicorn restores the handlers it found when it stops, then re-raises the signals it caught. So
    SIGTERM is set to "ignore" just before uvicorn installs its handler (what it restores is then
    "ignore": a repeated SIGTERM during the teardown that follows the drain cannot kill the process),
    and no signal is kept for re-raising (handle_exit forgets it: a SIGTERM arriving between the
    drain's end and the restore once turned the status into 143)."""

    @contextlib.contextmanager
    def capture_signals(self):
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with super().capture_signals():
            yield

    def handle_exit(self, sig, frame):
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


def load_serve_model(options: Options):
    """The ServeModel for options.model (runs on the loader thread)."""
    from .. import load, set_threads
    from .model import ServeModel
    if options.threads is not None:
        set_threads(options.threads)
    model = load(options.model, mmap=options.mmap)
    return ServeModel(model, options.name, options.max_input_length, options.max_batch_tokens)


def _run_one(options: Options, host, port, log_level, sockets=None) -> int:
    app = create_app(options, lambda: load_serve_model(options))
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False, lifespan="on",
                            timeout_graceful_shutdown=None, limit_concurrency=None)
    server = _Server(config)
    state = app.state.server
    state.on_load_error = lambda e: setattr(server, "should_exit", True)
    server.run(sockets=sockets)
    if state.load_error is not None:
        return 2 if isinstance(state.load_error, NumpybertError) and not isinstance(state.load_error, OSError) else 3
    return 0 if server.started else 3


def serve(options: Options, host="127.0.0.1", port=8080, log_level="warning") -> int:
    if options.workers > 1:
        return _serve_workers(dataclasses.replace(options, mmap=True), host, port, log_level)
    print(f"numpybert serve: listening on http://{host}:{port} (pid {os.getpid()}), loading {options.model}",
          flush=True)
    return _run_one(options, host, port, log_level)


# ----------------------------------------------------------------------------- --workers N

def _worker(options, host, port, log_level, sock, index):
    """A worker process (spawned): serve on the parent's socket; SIGINT is the parent's to handle."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    print(f"numpybert serve: worker {index} (pid {os.getpid()}) loading {options.model}", flush=True)
    sys.exit(_run_one(options, host, port, log_level, sockets=[sock]))


def _serve_workers(options: Options, host, port, log_level) -> int:
    sock = socket.create_server((host, port), reuse_port=False, backlog=2048)
    sock.set_inheritable(True)
    multiprocessing.allow_connection_pickling()  # the socket goes to each worker
    ctx = multiprocessing.get_context("spawn")
    stopping = threading.Event()
    workers = []

    def stop(sig, frame):  # the first SIGTERM/SIGINT: every worker drains; more change nothing
        if not stopping.is_set():
            stopping.set()
            for p in workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        print(f"numpybert serve: listening on http://{host}:{port} (pid {os.getpid()}), {options.workers} "
              f"workers, loading {options.model} (memory-mapped, shared)", flush=True)
        for k in range(options.workers):
            p = ctx.Process(target=_worker, args=(options, host, port, log_level, sock, k), daemon=False,
                            name=f"numpybert-serve-{k}")
            p.start()
            workers.append(p)
        status = 0
        alive = list(workers)
        while alive:
            ended = multiprocessing.connection.wait([p.sentinel for p in alive])
            for p in [p for p in alive if p.sentinel in ended]:
                p.join()
                alive.remove(p)
                if p.exitcode != 0 and not stopping.is_set():  # a worker failed on its own: stop the rest
                    status = status or (p.exitcode if p.exitcode and p.exitcode > 0 else 3)
                    stop(None, None)
                elif p.exitcode not in (0, None) and status == 0 and p.exitcode > 0:
                    status = p.exitcode
        print(f"numpybert serve: stopped; {options.workers} workers drained", flush=True)
        return status
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # as _Server: a late repeat must not turn 0 into 143
        sock.close()
