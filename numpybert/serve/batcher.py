"""Dynamic batching: the inputs of concurrent requests run together on one compute thread.

A request becomes a `Job` (its inputs, its call, a future); its inputs wait in one queue.
The batcher (an asyncio task) takes queued inputs in arrival order up to `max_batch_tokens` real
tokens, groups them by equal calls (`Job.call`, a frozen dataclass of numpybert/serve/calls.py,
e.g. EmbedTexts(normalize=True)), and hands the groups to the compute thread; the computation itself sorts by length and skips padding
(`model.encode`, `model(..., skip_padding=True)`). The event loop never runs a forward: while a
batch computes, requests keep arriving and queue up for the next one. A lone input waits at most
`lone_wait` seconds (0.5 ms) for company before it runs.

A job whose client went away is `cancel()`ed: its inputs still queued are dropped; results of
inputs already computing are thrown away. A group that fails is retried one job at a time, so one
bad request fails alone.
"""

import asyncio
import concurrent.futures
import time

LONE_WAIT = 0.0005  # seconds a lone input waits for company (issue 20: <= ~1 ms)


class Job:
    """One request's inputs of one kind, and the future its handler awaits."""
    __slots__ = ("call", "items", "tokens", "results", "left", "future", "cancelled", "started")

    def __init__(self, call, items, tokens, loop):
        self.call, self.items, self.tokens = call, list(items), list(tokens)
        self.results = [None] * len(self.items)
        self.left = len(self.items)
        self.future = loop.create_future()
        self.cancelled = False
        self.started = time.perf_counter()

    def cancel(self):
        self.cancelled = True
        if not self.future.done():
            self.future.cancel()


class Batcher:
    """`await batcher.submit(job)` -> job.results once every input has been computed.
    `compute(call, items) -> results` runs on the compute thread, a list in the order of items."""

    def __init__(self, compute, max_batch_tokens=16384, metrics=None, lone_wait=LONE_WAIT):
        self.compute = compute
        self.max_batch_tokens = max_batch_tokens
        self.metrics = metrics
        self.lone_wait = lone_wait
        self.queue = []  # (job, index) in arrival order
        self.executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="numpybert-compute")
        self.wakeup = None
        self.task = None
        self.closing = False

    def start(self):
        self.wakeup = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self.run())

    @property
    def depth(self) -> int:
        """Inputs waiting: a cancelled job's inputs are not (the batcher drops them when it next looks)."""
        return sum(not job.cancelled for job, _ in self.queue)

    def submit_nowait(self, job):
        """Queue the job's inputs; the caller awaits job.future."""
        self.queue.extend((job, i) for i in range(len(job.items)))
        self.wakeup.set()

    async def submit(self, job):
        self.submit_nowait(job)
        return await job.future

    async def stop(self):
        """Finish what is queued, then stop the task and the compute thread."""
        self.closing = True
        if self.task is not None:
            self.wakeup.set()
            await self.task
        self.executor.shutdown(wait=True)

    async def run(self):
        loop = asyncio.get_running_loop()
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            self.queue = [(job, i) for job, i in self.queue if not job.cancelled]
            if not self.queue:
                if self.closing:
                    return
                continue
            if len(self.queue) == 1 and self.lone_wait:
                await asyncio.sleep(self.lone_wait)  # let requests being parsed right now join
            batch = self.take()
            groups = {}
            for job, i in batch:
                groups.setdefault(job.call, []).append((job, i))
            outcome = await loop.run_in_executor(self.executor, self.run_groups, groups)
            self.deliver(outcome)
            if self.queue:
                self.wakeup.set()

    def take(self):
        """Inputs from the head of the queue up to max_batch_tokens real tokens (at least one)."""
        total, n = 0, 0
        for job, i in self.queue:
            if n and total + job.tokens[i] > self.max_batch_tokens:
                break
            total += job.tokens[i]
            n += 1
        batch, self.queue = self.queue[:n], self.queue[n:]
        if self.metrics is not None:
            self.metrics.batch(n, total)
        return batch

    def run_groups(self, groups):
        """On the compute thread: each group's results, or its exception (then job by job)."""
        outcome = []
        for call, entries in groups.items():
            entries = [(job, i) for job, i in entries if not job.cancelled]
            if not entries:
                continue
            try:
                results = self.compute(call, [job.items[i] for job, i in entries])
                outcome.extend((job, i, r, None) for (job, i), r in zip(entries, results))
            except Exception as error:  # noqa: BLE001 - one bad request must not fail the others
                jobs = list(dict.fromkeys(job for job, _ in entries))
                if len(jobs) == 1:
                    outcome.extend((job, i, None, error) for job, i in entries)
                    continue
                for job in jobs:
                    mine = [(j, i) for j, i in entries if j is job]
                    try:
                        results = self.compute(call, [job.items[i] for _, i in mine])
                        outcome.extend((job, i, r, None) for (_, i), r in zip(mine, results))
                    except Exception as own:  # noqa: BLE001
                        outcome.extend((job, i, None, own) for _, i in mine)
        return outcome

    @staticmethod
    def deliver(outcome):
        """On the event loop: results back to their jobs; a job's future completes with its last input."""
        for job, i, result, error in outcome:
            if job.future.done():
                continue  # cancelled (client gone) or failed already
            if error is not None:
                job.future.set_exception(error)
                continue
            job.results[i] = result
            job.left -= 1
            if job.left == 0:
                job.future.set_result(job.results)
