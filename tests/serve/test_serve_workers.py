"""`numpybert serve --workers 2` (a subprocess, as a user starts it): two processes answer on one port,
each with its own batcher, the weights memory-mapped so the page cache holds one copy (summed PSS
<= one worker's RSS + 100 MB, the issue's target, on MiniLM); answers equal `model.encode` (1e-6, see
test_serve.py); SIGTERM to the parent drains both workers, every admitted request answered, exit 0.
On all-mpnet-base-v2 (438 MB of weights) the target is one worker's RSS + 150 MB.
/metrics and /info are per worker (the one that answered; /info says its pid)."""

import asyncio
import re

import httpx
import numpy as np

from helpers import ServerProcess, require_mpnet

ATOL = 1e-6
TEXTS = [f"sentence number {k} about a man playing a guitar" for k in range(32)]
TEXTS += TEXTS[:3]  # requests take TEXTS[k:k + 4], k < 32


def tree_memory_kb(pid):
    """{pid: (Rss, Pss)} of a process and its children (the workers, multiprocessing's resource tracker)."""
    pids = [pid] + [int(p) for p in open(f"/proc/{pid}/task/{pid}/children").read().split()]
    out = {}
    for p in pids:
        fields = dict(line.split(":", 1) for line in open(f"/proc/{p}/smaps_rollup") if ":" in line)
        out[p] = (int(fields["Rss"].split()[0]), int(fields["Pss"].split()[0]))
    return out


async def hammer(url, n, offline, pids, answered=None):
    """n requests, 32 at a time; with `answered` (a list): the shutdown closes connections, a request on one
    that closed was not admitted (httpx.TransportError), every other must be answered right."""
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=32)) as c:
        async def one(k):
            if answered is not None:
                try:
                    r = await c.post(url + "/v1/embeddings", json={"input": TEXTS[k % 32:k % 32 + 4], "model": "m"})
                except httpx.TransportError:
                    return
                answered.append(r.status_code)
                return
            r = await c.post(url + "/v1/embeddings", json={"input": TEXTS[k % 32:k % 32 + 4], "model": "m",
                                                           "encoding_format": "float"})
            assert r.status_code == 200, r.text
            got = np.asarray([d["embedding"] for d in r.json()["data"]])
            assert np.abs(got - offline[k % 32:k % 32 + 4]).max() <= ATOL
            pids.add((await c.get(url + "/info")).json()["pid"])
        await asyncio.gather(*(one(k) for k in range(n)))


def test_two_workers_share_the_weights_and_drain_on_sigterm(minilm_dir, minilm):
    offline = minilm.encode(TEXTS)
    one = ServerProcess(minilm_dir, "--mmap").wait_ready()
    try:
        asyncio.run(hammer(one.url, 64, offline, set()))
        single_rss = tree_memory_kb(one.proc.pid)[one.proc.pid][0]
    finally:
        assert one.stop() == 0
    two = ServerProcess(minilm_dir, "--workers", "2").wait_ready()
    try:
        pids = set()
        for _ in range(20):  # until both workers answered (the kernel picks who accepts)
            asyncio.run(hammer(two.url, 64, offline, pids))
            if len(pids) == 2:
                break
        assert len(pids) == 2, pids
        memory = tree_memory_kb(two.proc.pid)
        summed_pss = sum(pss for _, pss in memory.values())
        print(f"\n--workers 2 --mmap: summed PSS {summed_pss / 1024:.0f} MB (processes: "
              f"{ {p: (r // 1024, s // 1024) for p, (r, s) in memory.items()} }); one worker's RSS "
              f"{single_rss / 1024:.0f} MB")
        assert summed_pss <= single_rss + 100 * 1024, (summed_pss, single_rss)

        answered = []

        async def load_then_stop():
            task = asyncio.ensure_future(hammer(two.url, 200, offline, set(), answered))
            while len(answered) < 8:
                await asyncio.sleep(0.01)
            two.proc.send_signal(15)
            await task
        asyncio.run(load_then_stop())
    finally:
        # two processes drain up to 200 queued requests: 30 s was not enough once in a full suite run on the
        # loaded 2-core machine (it passed 17 of 18 runs alone under two busy loops, ~20 s each)
        status = two.stop(timeout=90.0)
    assert status == 0, two.output
    summaries = [tuple(map(int, m)) for m in re.findall(r"answered (\d+) of (\d+) requests admitted", two.output)]
    assert len(summaries) == 2 and all(a == b for a, b in summaries), two.output
    assert set(answered) == {200}
    assert "2 workers drained" in two.output and "Traceback" not in two.output


def test_two_workers_share_all_mpnet_base_v2():
    """The issue's second memory target: --workers 2 --mmap on all-mpnet-base-v2, summed PSS <= one worker's
    RSS + 150 MB (each worker's own heap: tokenizer, activations, the event loop; the weights counted once)."""
    model_dir = require_mpnet()
    texts = [f"sentence number {k} about a man playing a guitar" for k in range(8)]

    def rss_after_use(server, workers):
        pids = set()
        for _ in range(40):  # until every worker answered (the kernel picks who accepts each new connection)
            with httpx.Client(timeout=120) as c:  # one connection: the embedding and /info come from one worker
                r = c.post(server.url + "/v1/embeddings", json={"input": texts, "model": "m"})
                assert r.status_code == 200, r.text
                pids.add(c.get(server.url + "/info").json()["pid"])
            if len(pids) == workers:
                break
        assert len(pids) == workers, pids
        return tree_memory_kb(server.proc.pid)

    one = ServerProcess(model_dir, "--mmap").wait_ready()
    try:
        memory = rss_after_use(one, 1)
        single_rss = memory[one.proc.pid][0]
    finally:
        assert one.stop() == 0
    two = ServerProcess(model_dir, "--workers", "2").wait_ready()
    try:
        memory = rss_after_use(two, 2)
        summed_pss = sum(pss for _, pss in memory.values())
        print(f"\nall-mpnet-base-v2 --workers 2 --mmap: summed PSS {summed_pss / 1024:.0f} MB (processes: "
              f"{ {p: (r // 1024, s // 1024) for p, (r, s) in memory.items()} }); one worker's RSS "
              f"{single_rss / 1024:.0f} MB")
        assert len(memory) == 2, memory
        assert summed_pss <= single_rss + 150 * 1024, (summed_pss, single_rss)
    finally:
        assert two.stop(timeout=90.0) == 0, two.output
