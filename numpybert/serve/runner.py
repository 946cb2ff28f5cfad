"""Run the app under uvicorn: listen first, load the model on a thread (/health says 503 until
it is ready), and on SIGTERM or Ctrl-C stop accepting, finish every admitted request, exit 0.

A second SIGTERM (a supervisor repeating itself) changes nothing: during the drain uvicorn only
notes it, and once the drain is done the process ignores SIGTERM for the rest of its teardown, so
the exit status stays 0 and no admitted request is lost. To stop at once: SIGKILL, or Ctrl-C twice.

`--workers N` (N > 1): this process binds the port once, starts N - 1 more worker processes that
inherit the socket (started fresh, not forked: no BLAS thread pool crosses a fork), and serves as
the first worker itself; the kernel hands each new connection to one of them. Each has its own
event loop, batcher and compute thread, and maps the weights (`mmap=True` is implied), so the
page cache holds one copy for all. The first SIGTERM/SIGINT is forwarded to every other worker;
all drain at once; the exit status is 0 (or a worker's failure status, e.g. 2/3 when the model
fails to load: then the others stop).
"""

import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
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

    on_exit = None  # called on the first SIGTERM/SIGINT (--workers: forward it to the other workers)

    def handle_exit(self, sig, frame):
        first = not self.should_exit
        super().handle_exit(sig, frame)
        self._captured_signals.clear()
        if first and self.on_exit is not None:
            self.on_exit()


def load_serve_model(options: Options):
    """The ServeModel for options.model (runs on the loader thread)."""
    from .. import load, set_threads
    from .model import ServeModel
    if options.threads is not None:
        set_threads(options.threads)
    model = load(options.model, mmap=options.mmap)
    return ServeModel(model, options.name, options.max_input_length, options.max_batch_tokens)


# An idle keep-alive connection stays open this long (uvicorn's default is 5 s). A server that closes an
# idle connection races the client's next request on it: a POST sent as the close happens fails with a
# connection error that no client retries (seen under load: httpx.ReadError mid-hammer). Closing idle
# connections is left to the client and to proxies, whose idle timeouts are shorter (nginx 75 s, AWS ALB
# 60 s: a server behind one should outlast it). SIGTERM still closes idle connections at once.
KEEP_ALIVE_S = 90


def _run_one(options: Options, host, port, log_level, sockets=None, on_exit=None, watch=None) -> int:
    app = create_app(options, lambda: load_serve_model(options))
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False, lifespan="on",
                            timeout_graceful_shutdown=None, limit_concurrency=None, timeout_keep_alive=KEEP_ALIVE_S)
    server = _Server(config)
    server.on_exit = on_exit
    state = app.state.server
    state.on_load_error = lambda e: setattr(server, "should_exit", True)
    if watch is not None:
        threading.Thread(target=watch, args=(server,), daemon=True, name="numpybert-workers").start()
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

def _serve_workers(options: Options, host, port, log_level) -> int:
    """This process binds the port and serves as worker 0; workers 1..N-1 are `python -m
    numpybert.serve.worker` processes that inherit the socket (no fork: no BLAS thread pool crosses
    one; no supervisor process of its own: N processes in all). The first SIGTERM/SIGINT here is
    forwarded to every other worker, so all drain at once; then this one waits for them."""
    sock = socket.create_server((host, port), backlog=2048)
    env = {**os.environ, "NUMPYBERT_SERVE_WORKER": json.dumps({
        "options": dataclasses.asdict(options), "host": host, "port": port, "log_level": log_level,
        "fd": sock.fileno()})}
    print(f"numpybert serve: listening on http://{host}:{port} (pid {os.getpid()}), {options.workers} workers, "
          f"loading {options.model} (memory-mapped: the page cache holds one copy)", flush=True)
    others = [subprocess.Popen([sys.executable, "-m", "numpybert.serve.worker", str(k)], pass_fds=(sock.fileno(),),
                               env=env) for k in range(1, options.workers)]
    failed = []

    def stop_others():
        for p in others:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGTERM)

    def watch(server):  # a worker that ends on its own (e.g. its model failed to load) stops them all
        for p in others:
            code = p.wait()
            if code != 0 and not server.should_exit:
                failed.append(code if code > 0 else 3)
                server.should_exit = True
    status = _run_one(options, host, port, log_level, sockets=[sock], on_exit=stop_others, watch=watch)
    stop_others()
    codes = [p.wait() for p in others]
    sock.close()
    print(f"numpybert serve: stopped; {options.workers} workers drained", flush=True)
    bad = failed + [c for c in codes if c > 0]
    return status or (bad[0] if bad else 0)


def worker_main(index: int) -> int:
    """A worker started by _serve_workers: serve on the inherited socket (`python -m numpybert.serve.worker K`)."""
    spec = json.loads(os.environ.pop("NUMPYBERT_SERVE_WORKER"))
    options = Options(**spec["options"])
    sock = socket.socket(fileno=spec["fd"])
    print(f"numpybert serve: worker {index} (pid {os.getpid()}) loading {options.model}", flush=True)
    return _run_one(options, spec["host"], spec["port"], spec["log_level"], sockets=[sock])
