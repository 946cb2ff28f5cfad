"""The serving benchmark (docs/serving.md): `python -m numpybert.serve.bench` (the serve-bench extra: httpx).

Measures, on one mixed-length corpus (numpybert.bench.make_corpus), for `numpybert serve` and a
peer server side by side in one run:
- throughput (texts/s) and p50/p99 latency at 1, 8 and 32 concurrent clients, one text per
  request on OpenAI's /v1/embeddings (/embeddings for the peer), answers as floats;
- the p50 latency of one short text sent alone, back to back;
- resident memory of the serving process (VmRSS after the load, VmHWM its peak);
- the time from process start to the first 200 on /health and on the embeddings route;
and, in this process, offline `model.encode` throughput on the same texts and a bare forward of
the short text. The peer: infinity-emb (`--peer infinity --peer-bin DIR/infinity_emb`, installed in
its own venv, with torch pinned: only numpybert/audit/torch_bridge.py may import torch in the
package, so the peer runs in its own process); `--peer none` skips it.
`--variant NAME="ARGS"` (repeatable) benchmarks numpybert serve with those extra arguments instead,
each variant side by side in the same run (e.g. --workers 2 --threads 1 vs --workers 1 --threads 2).
Writes a JSON file and prints a markdown table; `--plot F.png` (the plot extra) draws it. Every
server it starts is stopped, also when the run fails or is interrupted.
"""

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np

SHORT = "A man is playing a guitar."


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _httpx():
    try:
        import httpx
    except ImportError:  # one line naming the extra, never a traceback
        raise SystemExit("python -m numpybert.serve.bench: error: needs httpx (the serve-bench extra): "
                         "pip install 'httpx>=0.27'") from None
    return httpx


def proc_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def tree_kb(pid, key):
    """key (VmRSS / VmHWM) of pid plus its children (infinity runs workers)."""
    total = proc_kb(pid, key)
    try:
        for child in open(f"/proc/{pid}/task/{pid}/children").read().split():
            total += tree_kb(int(child), key)
    except OSError:
        pass
    return total


class Server:
    def __init__(self, name, cmd, route, model_name, env=None):
        self.name, self.cmd, self.route, self.model_name = name, cmd, route, model_name
        self.env = {**os.environ, **(env or {})}

    def start(self, port):
        cmd = [c.replace("{port}", str(port)) for c in self.cmd]
        self.url = f"http://127.0.0.1:{port}"
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=self.env)
        return self

    def first_200(self, what, timeout=300):
        """Seconds from process start to the first 200 on /health or the embeddings route."""
        httpx = _httpx()
        body = {"input": [SHORT], "model": self.model_name}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.proc.stderr.read().decode()[-3000:]}")
            try:
                r = (httpx.get(self.url + "/health", timeout=5) if what == "health" else
                     httpx.post(self.url + self.route, json=body, timeout=30))
                if r.status_code == 200:
                    return time.perf_counter() - self.t0
            except httpx.HTTPError:
                pass
            time.sleep(0.01)
        raise RuntimeError(f"{self.name}: no 200 on {what} within {timeout} s")

    def stop(self):
        if self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def _load(url, route, model_name, texts, concurrency, n_requests):
    httpx = _httpx()
    latencies, errors, cursor = [], [], iter(range(n_requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=300, limits=limits) as c:
        async def client():
            for i in cursor:
                t = time.perf_counter()
                r = await c.post(url + route, json={"input": [texts[i % len(texts)]], "model": model_name,
                                                    "encoding_format": "float"})
                latencies.append(time.perf_counter() - t)
                if r.status_code != 200:
                    errors.append(r.status_code)
        t0 = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    lat = np.array(latencies) * 1e3
    return {"texts_per_s": n_requests / wall, "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99)), "requests": n_requests, "errors": len(errors)}


def measure_server(server, texts, concurrencies, requests_per_client, lone_requests):
    """Two starts (first 200 on /health, then on the route), then the load runs on the second."""
    out = {}
    server.start(free_port())
    try:
        out["first_200_health_s"] = server.first_200("health")
    finally:
        server.stop()
    server.start(free_port())
    try:
        out["first_200_embeddings_s"] = server.first_200("embeddings")
        asyncio.run(_load(server.url, server.route, server.model_name, texts, 8, 64))  # warm-up
        lone = asyncio.run(_load(server.url, server.route, server.model_name, [SHORT], 1, lone_requests))
        out["lone_short_p50_ms"] = lone["p50_ms"]
        for n in concurrencies:
            out[f"c{n}"] = asyncio.run(_load(server.url, server.route, server.model_name, texts, n,
                                             max(64, requests_per_client * n)))
        out["rss_mb"] = tree_kb(server.proc.pid, "VmRSS") / 1024
        out["peak_rss_mb"] = tree_kb(server.proc.pid, "VmHWM") / 1024
    finally:
        server.stop()
    return out


def offline(model_dir, texts, threads):
    """numpybert's offline numbers in this process: encode throughput on the texts (batch_size 32,
    best of 2), and the median of a bare forward of the short text."""
    import numpybert
    if threads:
        numpybert.set_threads(threads)
    model = numpybert.load(model_dir)
    model.encode(texts[:64])
    runs = []
    for _ in range(2):
        t = time.perf_counter()
        model.encode(texts)
        runs.append(time.perf_counter() - t)
    batch = model.tokenize([SHORT])
    times = []
    for _ in range(50):
        t = time.perf_counter()
        model(**batch, skip_padding=True)
        times.append(time.perf_counter() - t)
    return {"encode_texts_per_s": len(texts) / min(runs), "bare_forward_short_ms": float(np.median(times)) * 1e3}


# ----------------------------------------------------------------------------- report

def markdown(result):
    rows = ["| server | clients | texts/s | p50 ms | p99 ms |", "|---|---|---|---|---|"]
    for name, r in result["servers"].items():
        for n in result["concurrencies"]:
            c = r[f"c{n}"]
            rows.append(f"| {name} | {n} | {c['texts_per_s']:.1f} | {c['p50_ms']:.1f} | {c['p99_ms']:.1f} |")
    rows += ["", "| server | lone short p50 ms | RSS MB (peak) | first 200 /health s | first 200 embeddings s |",
             "|---|---|---|---|---|"]
    for name, r in result["servers"].items():
        rows.append(f"| {name} | {r['lone_short_p50_ms']:.1f} | {r['rss_mb']:.0f} ({r['peak_rss_mb']:.0f}) | "
                    f"{r['first_200_health_s']:.2f} | {r['first_200_embeddings_s']:.2f} |")
    o = result["offline"]
    rows += ["", f"offline `model.encode` (batch_size 32): {o['encode_texts_per_s']:.1f} texts/s; bare forward of "
                 f"the short text: {o['bare_forward_short_ms']:.1f} ms; load average "
                 f"{result['load_before'][0]:.2f} before, {result['load_after'][0]:.2f} after "
                 f"({result['cpus']} CPUs)"]
    return "\n".join(rows)


def ratios(result):
    if "numpybert serve" not in result["servers"]:  # --variant runs: each variant against the first
        names = list(result["servers"])
        n = max(result["concurrencies"])
        first = result["servers"][names[0]][f"c{n}"]["texts_per_s"]
        return {f"{name}_vs_{names[0]}_throughput_c{n}": result["servers"][name][f"c{n}"]["texts_per_s"] / first
                for name in names[1:]}
    nb = result["servers"]["numpybert serve"]
    n = max(result["concurrencies"])
    out = {"throughput_vs_offline": nb[f"c{n}"]["texts_per_s"] / result["offline"]["encode_texts_per_s"],
           "lone_p50_vs_forward_plus_3ms": nb["lone_short_p50_ms"] / (result["offline"]["bare_forward_short_ms"] + 3),
           "first_200_embeddings_s": nb["first_200_embeddings_s"]}
    peers = [k for k in result["servers"] if k != "numpybert serve"]
    if peers:
        p = result["servers"][peers[0]]
        out["throughput_vs_peer"] = nb[f"c{n}"]["texts_per_s"] / p[f"c{n}"]["texts_per_s"]
        out["rss_vs_peer"] = nb["rss_mb"] / p["rss_mb"]
        out["peak_rss_vs_peer"] = nb["peak_rss_mb"] / p["peak_rss_mb"]
    return out


def plot(result, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    ns = result["concurrencies"]
    for k, (name, r) in enumerate(result["servers"].items()):
        a.plot(ns, [r[f"c{n}"]["texts_per_s"] for n in ns], marker="o", color=f"C{k}", label=name)
        b.plot(ns, [r[f"c{n}"]["p50_ms"] for n in ns], marker="o", color=f"C{k}", label=f"{name} p50")
        b.plot(ns, [r[f"c{n}"]["p99_ms"] for n in ns], marker="x", color=f"C{k}", linestyle="--",
               label=f"{name} p99")
    a.axhline(result["offline"]["encode_texts_per_s"], color="gray", linestyle=":", label="offline model.encode")
    load = f"load average {result['load_before'][0]:.1f}→{result['load_after'][0]:.1f}, {result['cpus']} CPUs"
    a.set(xlabel="concurrent clients", ylabel="texts/s", xscale="log", title=f"throughput ({load})")
    b.set(xlabel="concurrent clients", ylabel="ms", xscale="log", yscale="log", title="latency")
    a.set_xticks(ns, [str(n) for n in ns])
    b.set_xticks(ns, [str(n) for n in ns])
    a.legend(fontsize=8)
    b.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m numpybert.serve.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="model directory (default: as `numpybert serve`)")
    p.add_argument("--texts", type=int, default=512, help="corpus size (default 512)")
    p.add_argument("--requests-per-client", type=int, default=16, help="requests per client at each level")
    p.add_argument("--lone-requests", type=int, default=100)
    p.add_argument("--concurrency", default="1,8,32")
    p.add_argument("--threads", type=int, default=None, help="numpybert's threads (default: its own choice)")
    p.add_argument("--peer", choices=("infinity", "none"), default="none")
    p.add_argument("--peer-bin", help="the infinity_emb executable (--peer infinity)")
    p.add_argument("--variant", action="append", default=[], metavar='NAME="ARGS"',
                   help="numpybert serve with these extra arguments, e.g. w2t1=\"--workers 2 --threads 1\" "
                        "(repeatable; default: one server named 'numpybert serve' with --mmap and --threads)")
    p.add_argument("--json", default="serve-bench.json")
    p.add_argument("--plot", default=None)
    args = p.parse_args(argv)
    from ..bench import make_corpus
    from ..loading.locate import resolve_model
    model_dir = os.path.abspath(resolve_model(args.model))
    texts = make_corpus(model_dir, args.texts)
    concurrencies = [int(n) for n in args.concurrency.split(",")]
    threads = ["--threads", str(args.threads)] if args.threads else []
    base = [sys.executable, "-m", "numpybert", "serve", "--model", model_dir, "--port", "{port}", "--mmap"]
    servers = [Server("numpybert serve", base + threads, "/v1/embeddings", "m")]
    if args.variant:
        import shlex
        servers = [Server(name, base + shlex.split(extra), "/v1/embeddings", "m")
                   for name, _, extra in (v.partition("=") for v in args.variant)]
    offline_env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
                   "INFINITY_ANONYMOUS_USAGE_STATS": "0", "DO_NOT_TRACK": "1"}
    if args.peer == "infinity":
        servers.append(Server("infinity-emb", [args.peer_bin, "v2", "--model-id", model_dir, "--host", "127.0.0.1",
                                               "--port", "{port}", "--engine", "torch", "--device", "cpu",
                                               "--served-model-name", "m", "--batch-size", "32", "--no-model-warmup"],
                              "/embeddings", "m", offline_env))
    result = {"model": model_dir, "texts": len(texts), "concurrencies": concurrencies, "cpus": os.cpu_count(),
              "load_before": os.getloadavg(), "servers": {}}
    for server in servers:
        print(f"benchmarking {server.name} ...", file=sys.stderr, flush=True)
        result["servers"][server.name] = measure_server(server, texts, concurrencies, args.requests_per_client,
                                                        args.lone_requests)
    result["offline"] = offline(model_dir, texts, args.threads)
    result["load_after"] = os.getloadavg()
    result["ratios"] = ratios(result)
    with open(args.json, "w") as f:
        json.dump(result, f, indent=1)
    print(markdown(result))
    print(json.dumps(result["ratios"], indent=1))
    if args.plot:
        plot(result, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
