"""Collecting concurrent requests into batches for one blocking worker (the decoder).

Decoding is blocking and the model is one, so requests are handled by one worker thread, and the point of a server
is to hand it as many requests at once as it can take: a batched decoder call costs little more than a single one.
`Batcher` runs inside the event loop:

1. a request handler puts its item on an asyncio queue (bounded: a full queue is refused at once, `QueueFull`) and
   awaits its own future;
2. the collector takes the first waiting item, then keeps taking items for `window_s` (or until `max_batch`); items
   that were already waiting are taken at once, without waiting for the window;
3. the batch goes to the worker thread (`process(items)`, one call) while the event loop stays free; the collector
   waits for it before collecting the next batch, so requests that arrive during a decode pile up in the queue and
   form the next batch immediately: under load batches grow towards `max_batch` by themselves, and a lone request
   waits at most `window_s` extra;
4. each item's future gets its result (or its own exception: `process` returns one per item, so one bad request
   does not fail its batch-mates).

A request whose client went away (its future cancelled) before its batch left is dropped from the batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

I = TypeVar("I")  # noqa: E741
R = TypeVar("R")


class QueueFull(Exception):
    """More requests are waiting than the batcher takes (`max_queue`)."""


@dataclass
class BatchStats:
    """What the batcher has done: batches sent to the worker, requests in them, and the sizes of the batches."""

    batches: int = 0
    requests: int = 0
    largest: int = 0
    sizes: list[int] = field(default_factory=list)

    def record(self, size: int) -> None:
        self.batches += 1
        self.requests += size
        self.largest = max(self.largest, size)
        self.sizes.append(size)
        del self.sizes[:-1000]  # the recent ones are enough

    def as_json(self) -> dict[str, Any]:
        return {"batches": self.batches, "requests": self.requests, "largest_batch": self.largest,
                "mean_batch": self.requests / self.batches if self.batches else 0.0}


class Batcher(Generic[I, R]):
    """Batches items for `process`, which runs in one worker thread (see the module docstring).

    Args:
        process: items -> one result per item, in order; an item's result may be an exception instance, which is
            raised to that item's caller. If `process` itself raises, every item of the batch gets that exception.
        window_s: how long to wait for more items after the first of a batch.
        max_batch: the most items one `process` call takes.
        max_queue: the most items waiting; `submit` raises `QueueFull` beyond it.
    """

    def __init__(self, process: Callable[[Sequence[I]], Sequence[R | BaseException]], *, window_s: float,
                 max_batch: int, max_queue: int = 1024) -> None:
        if max_batch < 1 or max_queue < 1 or window_s < 0:
            raise ValueError("max_batch and max_queue must be >= 1 and window_s >= 0")
        self.process = process
        self.window_s = window_s
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.stats = BatchStats()
        self._queue: asyncio.Queue[tuple[I, asyncio.Future[R]]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._in_flight: list[asyncio.Future[R]] = []

    async def start(self) -> None:
        """Start the collector in the running event loop and the worker thread."""
        self._queue = asyncio.Queue(maxsize=self.max_queue)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="selfrag-decoder")
        self._task = asyncio.create_task(self._collect(), name="selfrag-batcher")

    async def stop(self) -> None:
        """Stop collecting, let a batch in flight finish, and fail the requests still waiting."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        waiting = [future for _, future in self._drain()] + self._in_flight
        for future in waiting:
            if not future.done():
                future.set_exception(RuntimeError("the server is shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    def _drain(self) -> list[tuple[I, asyncio.Future[R]]]:
        items = []
        while self._queue is not None and not self._queue.empty():
            items.append(self._queue.get_nowait())
        return items

    @property
    def waiting(self) -> int:
        """Items waiting for a batch."""
        return self._queue.qsize() if self._queue is not None else 0

    async def submit(self, item: I) -> R:
        """Queue `item` and wait for its result.

        Raises:
            QueueFull: `max_queue` items are already waiting.
            RuntimeError: the batcher was not started.
            Exception: the item's own error from `process`.
        """
        if self._queue is None:
            raise RuntimeError("the batcher is not running (Batcher.start was not called)")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait((item, future))
        except asyncio.QueueFull:
            raise QueueFull(f"{self.max_queue} requests are already waiting; try again shortly") from None
        return await future

    async def _collect(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self.window_s
            while len(batch) < self.max_batch:
                if not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except TimeoutError:
                    break
            live = [(item, future) for item, future in batch if not future.done()]
            if not live:
                continue
            self.stats.record(len(live))
            self._in_flight = [future for _, future in live]
            try:
                results = await loop.run_in_executor(self._executor, self.process, [item for item, _ in live])
                if len(results) != len(live):
                    raise RuntimeError(f"process returned {len(results)} results for {len(live)} items")
            except Exception as err:  # the whole batch failed: every caller hears it
                log.exception("batch of %d failed", len(live))
                results = [err] * len(live)
            for (_, future), result in zip(live, results):
                if future.done():  # the client went away while its batch was decoded
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
            self._in_flight = []
