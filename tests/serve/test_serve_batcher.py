"""The batcher and the /metrics histogram, in-process (no HTTP, no model): a failing input fails
only its own request, equal calls share one compute call and different calls never do, a cancelled
job's queued inputs are dropped, results come back in order; histogram buckets are cumulative."""

import asyncio
import re
import threading

import pytest

from numpybert.serve.batcher import Batcher, Job
from numpybert.serve.calls import EmbedIds, EmbedTexts
from numpybert.serve.metrics import Histogram, Metrics


class Recorder:
    """compute(call, items): records each call; items starting with "bad" raise; "slow" blocks on a gate."""

    def __init__(self):
        self.calls = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, call, items):
        self.calls.append((call, list(items)))
        if any(str(t).startswith("slow") for t in items):
            assert self.gate.wait(30)
        if any(str(t).startswith("bad") for t in items):
            raise ValueError("bad input")
        return [f"{call.normalize}:{t}" for t in items]


def run(coro):
    return asyncio.run(coro)


async def submit_all(batcher, specs):
    loop = asyncio.get_running_loop()
    jobs = [Job(call, items, [1] * len(items), loop) for call, items in specs]
    for job in jobs:
        batcher.submit_nowait(job)
    return jobs, await asyncio.gather(*(j.future for j in jobs), return_exceptions=True)


def test_a_failing_input_fails_only_its_own_request():
    compute = Recorder()

    async def main():
        b = Batcher(compute, lone_wait=0)
        b.start()
        call = EmbedTexts(True)
        _, results = await submit_all(b, [(call, ["a", "b"]), (call, ["bad one"]), (call, ["c"])])
        await b.stop()
        return results
    ok1, failed, ok2 = run(main())
    assert ok1 == ["True:a", "True:b"] and ok2 == ["True:c"]
    assert isinstance(failed, ValueError) and str(failed) == "bad input"
    assert compute.calls[0][1] == ["a", "b", "bad one", "c"]  # first together, then one job at a time


def test_equal_calls_share_a_compute_call_and_different_calls_never_do():
    compute = Recorder()

    async def main():
        b = Batcher(compute, lone_wait=0)
        b.start()
        _, results = await submit_all(b, [(EmbedTexts(True), ["a"]), (EmbedTexts(False), ["b"]),
                                          (EmbedTexts(True), ["c"]), (EmbedIds(True), ["d"])])
        await b.stop()
        return results
    results = run(main())
    assert results == [["True:a"], ["False:b"], ["True:c"], ["True:d"]]
    groups = {call: items for call, items in compute.calls}
    assert groups == {EmbedTexts(True): ["a", "c"], EmbedTexts(False): ["b"], EmbedIds(True): ["d"]}
    assert len(compute.calls) == 3


def test_max_batch_tokens_splits_the_queue_in_arrival_order():
    compute = Recorder()

    async def main():
        b = Batcher(compute, max_batch_tokens=3, lone_wait=0)
        b.start()
        _, results = await submit_all(b, [(EmbedTexts(None), ["a", "b", "c", "d", "e"])])
        await b.stop()
        return results
    assert run(main()) == [["None:a", "None:b", "None:c", "None:d", "None:e"]]
    assert [items for _, items in compute.calls] == [["a", "b", "c"], ["d", "e"]]


def test_a_cancelled_job_is_dropped_from_the_queue_and_others_still_run():
    compute = Recorder()
    compute.gate.clear()

    metrics = Metrics()

    async def main():
        b = Batcher(compute, max_batch_tokens=1, metrics=metrics, lone_wait=0)
        b.start()
        loop = asyncio.get_running_loop()
        blocker = Job(EmbedTexts(None), ["slow"], [1], loop)
        b.submit_nowait(blocker)
        while not compute.calls:  # the compute thread holds "slow"
            await asyncio.sleep(0.001)
        leaving = Job(EmbedTexts(None), ["x1", "x2", "x3"], [1, 1, 1], loop)
        staying = Job(EmbedTexts(None), ["y"], [1], loop)
        b.submit_nowait(leaving)
        b.submit_nowait(staying)
        assert b.depth == 4
        leaving.cancel()
        assert b.depth == 1  # the leaver's inputs no longer count as waiting
        compute.gate.set()
        results = await asyncio.gather(blocker.future, staying.future)
        await b.stop()
        return results, leaving.future.cancelled()
    (slow, y), cancelled = run(main())
    assert slow == ["None:slow"] and y == ["None:y"] and cancelled
    assert [items for _, items in compute.calls] == [["slow"], ["y"]]  # x1..x3 never computed
    assert metrics.inputs == 2  # nor taken into a batch: dropped from the queue


def test_a_job_cancelled_inside_a_taken_batch_is_skipped():
    """Its inputs were taken with others (another call's group computing first): they are not computed."""
    compute = Recorder()
    compute.gate.clear()

    async def main():
        b = Batcher(compute, lone_wait=0)
        loop = asyncio.get_running_loop()
        blocker = Job(EmbedTexts(None), ["slow"], [1], loop)
        leaving = Job(EmbedTexts(False), ["x"], [1], loop)
        b.start()
        b.submit_nowait(blocker)
        b.submit_nowait(leaving)  # no await between: the batcher's first look takes both, two groups
        while not compute.calls:
            await asyncio.sleep(0.001)
        leaving.cancel()
        compute.gate.set()
        result = await blocker.future
        await b.stop()
        return result
    assert run(main()) == ["None:slow"]
    assert [items for _, items in compute.calls] == [["slow"]]


def test_histogram_buckets_are_cumulative():
    h = Histogram((1, 2, 4))
    for v in (0.5, 1, 1.5, 3, 3, 10):
        h.observe(v)
    lines = h.lines("x")
    counts = [int(re.search(r" (\d+)$", line).group(1)) for line in lines if "_bucket" in line]
    assert counts == [2, 3, 5, 6]  # le=1: 0.5, 1; le=2: +1.5; le=4: +3, 3; +Inf: all 6
    assert lines[-2:] == ["x_sum 19.0", "x_count 6"]


def test_metrics_render_counts_every_status():
    m = Metrics()
    for status in (200, 200, 499, 500):
        m.request("/embed", status, 0.003)
    text = m.render(queue_depth=2, in_flight=1, ready=True)
    assert 'numpybert_requests_total{route="/embed",status="200"} 2' in text
    assert 'numpybert_requests_total{route="/embed",status="499"} 1' in text
    assert 'numpybert_requests_total{route="/embed",status="500"} 1' in text
    assert 'numpybert_request_duration_seconds_bucket{route="/embed",le="0.0025"} 0' in text
    assert 'numpybert_request_duration_seconds_bucket{route="/embed",le="0.005"} 4' in text
    assert "numpybert_queue_depth 2" in text and "numpybert_requests_in_flight 1" in text


@pytest.mark.parametrize("value, cls", [(EmbedTexts(True, "q"), EmbedTexts), (EmbedIds(False), EmbedIds)])
def test_calls_are_hashable_values(value, cls):
    assert hash(value) == hash(cls(*[getattr(value, f) for f in value.__dataclass_fields__]))
