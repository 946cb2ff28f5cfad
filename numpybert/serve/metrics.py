"""Counters for GET /metrics, in Prometheus' text format (version 0.0.4), kept by hand: a few
dicts, no prometheus_client dependency."""

import bisect
import threading

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Histogram:
    def __init__(self, buckets):
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0
        self.n = 0

    def observe(self, value):
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.n += 1

    def lines(self, name, labels=""):
        out, running = [], 0
        for bound, count in zip(self.buckets, self.counts):
            running += count
            out.append(f'{name}_bucket{{{labels}{"," if labels else ""}le="{bound}"}} {running}')
        out.append(f'{name}_bucket{{{labels}{"," if labels else ""}le="+Inf"}} {self.n}')
        suffix = f"{{{labels}}}" if labels else ""
        out += [f"{name}_sum{suffix} {self.sum}", f"{name}_count{suffix} {self.n}"]
        return out


class Metrics:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = {}  # (route, status) -> count
        self.latency = {}  # route -> Histogram
        self.batch_inputs = Histogram(BATCH_BUCKETS)
        self.batch_tokens = Histogram(tuple(64 * 2 ** k for k in range(10)))
        self.tokens = 0
        self.inputs = 0

    def request(self, route, status, seconds):
        with self.lock:
            self.requests[(route, status)] = self.requests.get((route, status), 0) + 1
            self.latency.setdefault(route, Histogram(LATENCY_BUCKETS)).observe(seconds)

    def batch(self, n_inputs, n_tokens):
        with self.lock:
            self.batch_inputs.observe(n_inputs)
            self.batch_tokens.observe(n_tokens)
            self.tokens += n_tokens
            self.inputs += n_inputs

    def render(self, queue_depth, in_flight, ready):
        with self.lock:
            lines = ["# HELP numpybert_requests_total HTTP requests by route and status.",
                     "# TYPE numpybert_requests_total counter"]
            lines += [f'numpybert_requests_total{{route="{r}",status="{s}"}} {n}'
                      for (r, s), n in sorted(self.requests.items())]
            lines += ["# HELP numpybert_request_duration_seconds Time from request to response.",
                      "# TYPE numpybert_request_duration_seconds histogram"]
            for route, hist in sorted(self.latency.items()):
                lines += hist.lines("numpybert_request_duration_seconds", f'route="{route}"')
            lines += ["# HELP numpybert_queue_depth Inputs waiting for the batcher.",
                      "# TYPE numpybert_queue_depth gauge", f"numpybert_queue_depth {queue_depth}",
                      "# HELP numpybert_requests_in_flight Requests admitted and not yet answered.",
                      "# TYPE numpybert_requests_in_flight gauge", f"numpybert_requests_in_flight {in_flight}",
                      "# HELP numpybert_ready 1 once the model is loaded.",
                      "# TYPE numpybert_ready gauge", f"numpybert_ready {int(ready)}",
                      "# HELP numpybert_batch_inputs Inputs per batch the compute thread ran.",
                      "# TYPE numpybert_batch_inputs histogram"]
            lines += self.batch_inputs.lines("numpybert_batch_inputs")
            lines += ["# HELP numpybert_batch_tokens Real tokens per batch.", "# TYPE numpybert_batch_tokens histogram"]
            lines += self.batch_tokens.lines("numpybert_batch_tokens")
            lines += ["# HELP numpybert_tokens_total Real tokens computed.", "# TYPE numpybert_tokens_total counter",
                      f"numpybert_tokens_total {self.tokens}",
                      "# HELP numpybert_inputs_total Inputs computed.", "# TYPE numpybert_inputs_total counter",
                      f"numpybert_inputs_total {self.inputs}"]
        return "\n".join(lines) + "\n"
