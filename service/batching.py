"""Dynamic batching: concurrent requests share one forward pass on one dedicated worker thread.

How a batch forms. The worker thread takes the oldest queued request, then everything queued
behind it that fits (same trailing shapes, at most ``max_batch_size`` rows). If the batch is not
full and other requests have already announced themselves (an inference route calls
:meth:`DynamicBatcher.announce` before it reads and decodes the body), it waits for them, but
never past ``batch_timeout_s`` after the batch's first request arrived. With nothing else on its
way it runs at once: an idle model adds no delay to a lone request, which a plain
batch-or-timeout batcher would hold for the whole timeout. Requests that arrive while a batch runs
queue up and form the next batch, so under load batches fill by themselves.

The GIL handoff. The event loop and the worker are two threads of one interpreter, and every
batch needs several GIL handoffs between them (the worker wakes on the condition, runs its Python
around the forward pass, hands results to the loop with ``call_soon_threadsafe``). A thread that
wants the GIL while the other runs Python waits until the holder blocks or until the switch
interval forces it to let go: 5 ms by default, paid at every handoff while the loop is busy
parsing other requests. Measured on the digits model at concurrency 8 (wrk, 5 s cells, 2 shared
cores), that made p99 with batching 43 and 173 ms in two runs against 19 ms with batching off.
``python -m service`` therefore sets the interval to 0.5 ms (``GIL_SWITCH_INTERVAL_S`` in
``service/__main__.py``); two alternating runs then gave p99 19.6 and 18.6 ms with batching and
34.8 and 19.1 ms without, at the same throughput.

Waking the worker. The worker is woken only when what it waits for has happened: a first row
when it is idle, enough rows to fill the forming batch, or no more requests on their way. Waking
it at every queued request, as a plain ``notify`` per request would, costs two GIL handoffs per
request with an event loop that is busy parsing others, for a worker that would only go back to
waiting; under load that was a few percent of the server's CPU per request.

The tail at high concurrency. When the event loop, not the model, is the bottleneck (the digits
model at 64 connections: the model busy under half the time), a request's latency is mostly its
wait for the loop, with or without batching. Batching adds three things to it: the first request
of a batch waits for the announced ones behind it (at most ``batch_timeout_s``; at saturation some
are nearly always on their way, so this wait is often the full timeout); the results of a batch
come back to the loop together, so its requests are encoded and answered one after another in one
turn of the loop, the last waiting for the others; and the worker's Python around the forward
pass takes the GIL from the loop for its turns. Batching pays for these by running one forward
pass per batch instead of per request, which frees the loop's time for parsing, so at 64
connections on a quiet machine p99 with batching came out below the unbatched server's (31 vs
46 ms, medians of 4 interleaved 5 s cells). What made it worse in earlier runs was the machine:
on these 2 shared cores a cell during which other work takes a core has a p99 several times
longer, whichever mode it measures. Both modes can also be hit by a full collection of Python's
cyclic garbage collector, which walks the ~200,000 objects the imports leave (60-240 ms measured
here, on the event loop); ``service.server`` freezes those objects out of its sight once the
server has started, so a full collection walks only what was allocated since.

Lone requests. A request that finds the server idle (nothing queued or running, no other request
admitted, and, as its caller says, no other request received and not yet announced) would pay
two thread handoffs for nothing to batch with: the worker's wake-up and the event loop's wake-up
for the result, 0.1-0.2 ms each on this machine, more than the digits model's whole forward pass.
With ``inline_below_s`` set, such a request runs its batch on the event loop's own thread when
batches of its row count have recently taken less than that (an exponential average per row
count of those that ran): the loop is held no longer than a GIL switch interval or two, and only
while nothing else is in flight. A lock around every forward pass keeps the worker's batches and
a lone request's from ever overlapping. Under load no request is alone, so batching is
unchanged; a model slower than the budget (a big CPU model) always runs on the worker.

Overload. With ``max_queued_rows`` set, a request that finds the queue full (that many rows
queued, or that many requests admitted and not yet answered) is refused at once
(:class:`QueueFullError`, which the app answers 503 + ``Retry-After``) instead of waiting behind
an ever longer queue: accepted requests keep a bounded wait, refused ones learn it in about a
millisecond, and memory stays flat. The check runs twice: at :meth:`announce` (before the body is
read, so a refusal is cheap) and when the decoded rows are queued. An empty queue takes a request
of any size, so one larger than the bound still runs.

Under load inference runs only on the worker thread, never on the event loop, so health probes
stay fast and torch is never called from two threads at once. A request with more rows
than ``max_batch_size`` is split into chunks that run in consecutive batches and are joined again.
A batch that raises fails only the requests in it, with :class:`BatchFailedError`. A request
whose caller is cancelled while it waits in the queue (``service.inference_protocol`` cancels it
when its client disconnects) is dropped from the queue unrun.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType

import numpy as np

logger = logging.getLogger("service.batching")

Arrays = dict[str, np.ndarray]
RunBatch = Callable[[Arrays], Mapping[str, np.ndarray]]


class BatcherClosedError(RuntimeError):
    """The batcher no longer takes requests because the server is shutting down."""


class QueueFullError(RuntimeError):
    """The queue already holds ``max_queued_rows`` rows: the request is refused, not queued."""


class BatchFailedError(RuntimeError):
    """The model raised while running the batch a request was part of."""


@dataclass(eq=False)
class _Job:
    """One queued chunk of a request: its arrays, row count and the future awaiting its outputs."""

    inputs: Arrays
    rows: int
    key: tuple[tuple[str, str, tuple[int, ...]], ...]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Arrays]
    enqueued: float = field(default_factory=time.perf_counter)


def _compat_key(inputs: Arrays) -> tuple[tuple[str, str, tuple[int, ...]], ...]:
    # Only requests whose arrays agree on names, dtypes and every dim but the first can be stacked.
    return tuple((name, inputs[name].dtype.str, inputs[name].shape[1:]) for name in sorted(inputs))


def _check_rows(outputs: Mapping[str, np.ndarray], rows: int) -> None:
    for name, array in outputs.items():
        if array.ndim == 0 or array.shape[0] != rows:
            raise BatchFailedError(
                f"output {name!r} has shape {list(array.shape)}, expected {rows} rows"
            )


def _batch_failure(exc: Exception, rows: int) -> BatchFailedError:
    """Log a failed batch (with its traceback) and say what its requests fail with."""
    logger.exception("batch of %d rows failed", rows)
    if isinstance(exc, BatchFailedError):
        return exc
    return BatchFailedError(f"{type(exc).__name__}: {exc}")


def _settle(results: list[tuple[asyncio.Future[Arrays], Arrays | BaseException]]) -> None:
    for future, result in results:
        if future.done():  # the caller went away (cancelled); nobody wants the result
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)


class Arrival:
    """A request on its way into the batcher; see :meth:`DynamicBatcher.announce`."""

    def __init__(self, batcher: DynamicBatcher) -> None:
        self._batcher = batcher
        self._pending = True

    def __enter__(self) -> Arrival:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._pending:
            self._pending = False
            self._batcher._withdraw()
        self._batcher._leave()

    async def run(self, inputs: Arrays, *, may_run_inline: bool = False) -> Arrays:
        """Queue ``inputs`` (all arrays share dim 0) and return the model's outputs for them.

        ``may_run_inline``: the caller knows no other request is on its way (the batcher only
        sees those that announced themselves), so a lone request may run on this thread.
        """
        if not self._pending:
            raise RuntimeError("an Arrival runs one request only")
        jobs = self._batcher._prepare(inputs)
        if may_run_inline and len(jobs) == 1 and self._batcher._claim_inline(jobs[0].rows):
            self._pending = False
            return self._batcher._run_inline(jobs[0])
        self._pending = False
        futures = self._batcher._enqueue(jobs, announced=True)
        parts = [await futures[0]] if len(futures) == 1 else await asyncio.gather(*futures)
        if len(parts) == 1:
            return parts[0]
        return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


class DynamicBatcher:
    """Queues requests from the event loop and runs them in batches on one worker thread."""

    def __init__(
        self,
        run_batch: RunBatch,
        *,
        max_batch_size: int,
        batch_timeout_s: float,
        observe_batch: Callable[[int, float], None] | None = None,
        observe_queue_time: Callable[[float], None] | None = None,
        thread_setup: Callable[[], None] | None = None,
        thread_name: str = "inference-worker",
        max_queued_rows: int | None = None,
        inline_below_s: float = 0.0,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_queued_rows is not None and max_queued_rows < 1:
            raise ValueError(f"max_queued_rows must be >= 1, got {max_queued_rows}")
        if batch_timeout_s < 0:
            raise ValueError(f"batch_timeout_s must be >= 0, got {batch_timeout_s}")
        self._run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.batch_timeout_s = batch_timeout_s
        self._observe_batch = observe_batch
        self._observe_queue_time = observe_queue_time
        self._thread_setup = thread_setup
        self.max_queued_rows = max_queued_rows
        self._queue: deque[_Job] = deque()
        self._queued_rows = 0
        self._admitted = 0
        self._arriving = 0
        # Rows the waiting worker needs before it wants waking; 0 while it is not waiting.
        self._wanted = 0
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._work, name=thread_name, daemon=True)
        #: A lone request runs on the caller's thread when batches its size take under this.
        self.inline_below_s = inline_below_s
        # Recent wall time of batches, by row count (exponential averages).
        self._seconds_by_rows: dict[int, float] = {}
        # Held around every forward pass: the worker's and a lone request's never overlap.
        self._model_lock = threading.Lock()
        self._inline_threads: set[int] = set()

    def start(self) -> None:
        """Start the worker thread."""
        self._thread.start()

    @property
    def queued_rows(self) -> int:
        """Rows waiting in the queue (not those of the batch that is running)."""
        return self._queued_rows

    def full_error(self) -> QueueFullError | None:
        """The refusal :meth:`announce` would raise now for a full queue, else ``None``.

        Read without the lock: the HTTP protocol asks this before it spends anything on a
        request, and :meth:`announce` checks again under the lock for those it lets through.
        """
        limit = self.max_queued_rows
        if limit is not None and max(self._queued_rows, self._admitted) >= limit:
            return QueueFullError(self._full_message(limit))
        return None

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called; no new requests are taken then."""
        return self._closed

    def announce(self) -> Arrival:
        """Mark a request as on its way, so a forming batch may wait for it (up to the timeout).

        Use as ``with batcher.announce() as arrival: ...; outputs = await arrival.run(inputs)``;
        leaving the block without running withdraws the announcement. Raises
        :class:`QueueFullError` at once when the queue is already full, so a refused request
        costs no body read and no decoding.
        """
        with self._cond:
            if self._closed:
                raise BatcherClosedError("the server is shutting down and takes no new requests")
            # Each admitted request holds at least one row until it has its answer, so the
            # bound also counts requests past the queue (running, or waiting for the event loop
            # to send their answer): that is where they wait when the event loop, not the model,
            # is the bottleneck.
            full = self.full_error()
            if full is not None:
                raise full
            self._arriving += 1
            self._admitted += 1
        return Arrival(self)

    async def infer(self, inputs: Arrays) -> Arrays:
        """Queue ``inputs`` and return the model's outputs for them (no prior announcement)."""
        with self.announce() as arrival:
            return await arrival.run(inputs)

    def close(self, timeout: float | None = None) -> bool:
        """Stop taking requests, let the worker finish every queued one, and wait for it.

        Returns whether the worker finished within ``timeout`` seconds.
        """
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _leave(self) -> None:
        with self._cond:
            self._admitted -= 1

    def _withdraw(self) -> None:
        with self._cond:
            self._arriving -= 1
            self._wake_if_wanted()

    def _wake_if_wanted(self) -> None:
        # Called with the lock held. Waking the worker costs two GIL handoffs with the busy
        # event loop, so it is woken only when what it waits for has happened: enough rows to
        # fill its batch (any row when idle), or nothing more on its way.
        if self._wanted and (self._queued_rows >= self._wanted or self._arriving <= 0):
            self._cond.notify()

    def _prepare(self, inputs: Arrays) -> list[_Job]:
        rows = {array.shape[0] if array.ndim else -1 for array in inputs.values()}
        if len(rows) != 1 or min(rows) < 1:
            raise ValueError(f"every input needs the same batch size >= 1, got {sorted(rows)}")
        total = rows.pop()
        loop = asyncio.get_running_loop()
        key = _compat_key(inputs)
        jobs = []
        for start in range(0, total, self.max_batch_size):
            stop = min(start + self.max_batch_size, total)
            chunk = (
                inputs if stop - start == total else {n: a[start:stop] for n, a in inputs.items()}
            )
            jobs.append(_Job(chunk, stop - start, key, loop, loop.create_future()))
        return jobs

    def _enqueue(self, jobs: list[_Job], *, announced: bool) -> list[asyncio.Future[Arrays]]:
        with self._cond:
            if announced:
                self._arriving -= 1
            if self._closed:
                self._wake_if_wanted()
                raise BatcherClosedError("the server is shutting down and takes no new requests")
            rows = sum(job.rows for job in jobs)
            limit = self.max_queued_rows
            # An empty queue takes any request, so one bigger than the bound still runs.
            if limit is not None and self._queued_rows and self._queued_rows + rows > limit:
                self._wake_if_wanted()
                raise QueueFullError(self._full_message(limit))
            self._queue.extend(jobs)
            self._queued_rows += rows
            self._wake_if_wanted()
        return [job.future for job in jobs]

    def _full_message(self, limit: int) -> str:
        return (
            f"the server is overloaded: {self._queued_rows} rows queued, {self._admitted} "
            f"requests in progress (MAX_QUEUED_ROWS={limit}); retry later"
        )

    def _drop_abandoned(self) -> None:
        # Called with the lock held. A caller that went away (its client disconnected and the
        # HTTP protocol cancelled it) no longer wants its rows run: skip them, so they neither
        # cost a forward pass nor hold queue places from the requests behind them. Reading a
        # future's state from this thread races only with its cancellation, which at worst lets
        # one abandoned job run (``_settle`` then ignores its result).
        while self._queue and self._queue[0].future.cancelled():
            self._queued_rows -= self._queue.popleft().rows

    def _next_batch(self) -> list[_Job] | None:
        with self._cond:
            self._drop_abandoned()
            while not self._queue:
                if self._closed:
                    return None
                self._wanted = 1
                self._cond.wait()
                self._wanted = 0
                self._drop_abandoned()
            first = self._queue.popleft()
            self._queued_rows -= first.rows
            batch, rows = [first], first.rows
            deadline = first.enqueued + self.batch_timeout_s
            while rows < self.max_batch_size:
                self._drop_abandoned()
                if self._queue:
                    candidate = self._queue[0]
                    if candidate.key != first.key or rows + candidate.rows > self.max_batch_size:
                        break
                    batch.append(self._queue.popleft())
                    rows += candidate.rows
                    self._queued_rows -= candidate.rows
                    continue
                # Wait only for requests already on their way; an idle server runs at once.
                remaining = deadline - time.perf_counter()
                if self._arriving <= 0 or self._closed or remaining <= 0:
                    break
                self._wanted = self.max_batch_size - rows
                self._cond.wait(remaining)
                self._wanted = 0
            return batch

    def _claim_inline(self, rows: int) -> bool:
        """Whether the announced request about to queue may run on this thread instead.

        Only when it is alone (nothing queued or running, no other request admitted) and
        batches of its row count have recently taken under ``inline_below_s``; the claim takes
        the model lock, which :meth:`_run_inline` releases.
        """
        recent = self._seconds_by_rows.get(rows)
        if recent is None or recent >= self.inline_below_s:
            return False
        with self._cond:
            if self._queue or self._admitted != 1 or self._arriving != 1 or self._closed:
                return False
            if not self._model_lock.acquire(blocking=False):
                return False
            self._arriving -= 1
        return True

    def _run_inline(self, job: _Job) -> Arrays:
        """Run a claimed lone request's batch here; :class:`BatchFailedError` if it fails."""
        try:
            if self._thread_setup is not None and threading.get_ident() not in self._inline_threads:
                self._thread_setup()  # per-thread settings (torch's thread count) as the worker's
                self._inline_threads.add(threading.get_ident())
            started = time.perf_counter()
            if self._observe_queue_time is not None:
                self._observe_queue_time(0.0)
            outputs = dict(self._run_batch(job.inputs))
            _check_rows(outputs, job.rows)
        except Exception as exc:
            raise _batch_failure(exc, job.rows) from None
        finally:
            self._model_lock.release()
        self._observed(job.rows, time.perf_counter() - started)
        return outputs

    def _observed(self, rows: int, seconds: float) -> None:
        recent = self._seconds_by_rows.get(rows)
        self._seconds_by_rows[rows] = seconds if recent is None else 0.8 * recent + 0.2 * seconds
        if self._observe_batch is not None:
            self._observe_batch(rows, seconds)

    def _work(self) -> None:
        if self._thread_setup is not None:
            self._thread_setup()
        while (batch := self._next_batch()) is not None:
            self._execute(batch)

    def _execute(self, batch: list[_Job]) -> None:
        started = time.perf_counter()
        if self._observe_queue_time is not None:
            for job in batch:
                self._observe_queue_time(started - job.enqueued)
        rows = sum(job.rows for job in batch)
        results: list[tuple[asyncio.Future[Arrays], Arrays | BaseException]] = []
        try:
            inputs = (
                batch[0].inputs
                if len(batch) == 1
                else {
                    name: np.concatenate([job.inputs[name] for job in batch])
                    for name in batch[0].inputs
                }
            )
            with self._model_lock:
                outputs = self._run_batch(inputs)
            _check_rows(outputs, rows)
            offset = 0
            for job in batch:
                end = offset + job.rows
                results.append((job.future, {n: a[offset:end] for n, a in outputs.items()}))
                offset = end
        except Exception as exc:
            error = _batch_failure(exc, rows)
            results = [(job.future, error) for job in batch]
        else:
            self._observed(rows, time.perf_counter() - started)
        for loop in {job.loop for job in batch}:
            mine = [(future, result) for future, result in results if future.get_loop() is loop]
            try:
                loop.call_soon_threadsafe(_settle, mine)
            except RuntimeError:  # the loop is closed: its callers are gone
                logger.warning("dropped results of %d requests: their event loop closed", len(mine))
