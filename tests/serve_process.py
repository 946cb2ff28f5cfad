"""Test helper (not tests): `numpybert serve` started as a user starts it, as a subprocess
(`python -m numpybert serve ...`) on a free loopback port, ready once GET /health answers 200."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time

import httpx

START_TIMEOUT = 60.0  # seconds; the model loads in ~0.3 s, but the machine is shared


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(self, model, *args, env=None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # one compute thread: the tests check answers, not speed, and the test machine is shared (two
        # threads that wait on each other at every step slow down 4-15x when other processes take the cores)
        cmd = [sys.executable, "-m", "numpybert", "serve", "--model", str(model), "--port", str(self.port),
               "--threads", "1", *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, **(env or {})})
        self.started = time.perf_counter()
        self.output = None

    def wait_ready(self, headers=None):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited with {self.proc.returncode}: {self.proc.stdout.read()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/health", timeout=1.0, headers=headers).status_code == 200:
                    return self
            time.sleep(0.05)
        raise AssertionError(f"the server did not get ready in {START_TIMEOUT} s")

    def stop(self, timeout=30.0) -> int:
        """SIGTERM, wait; the exit status (the output is kept in self.output)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.output, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.output, _ = self.proc.communicate()
            raise AssertionError(f"the server did not stop within {timeout} s of SIGTERM") from None
        return self.proc.returncode


@contextlib.contextmanager
def running(model, *args, headers=None):
    server = ServerProcess(model, *args)
    try:
        yield server.wait_ready(headers)
    finally:
        server.stop()
