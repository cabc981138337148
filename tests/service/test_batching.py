"""The dynamic batcher: who shares a batch, how long anyone waits, how failures stay contained."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping

import numpy as np
import pytest

from service.batching import BatcherClosedError, BatchFailedError, DynamicBatcher, QueueFullError

Arrays = dict[str, np.ndarray]
pytestmark = pytest.mark.anyio


class RecordingModel:
    """Doubles its input and records the row count of every batch it runs (on which thread)."""

    def __init__(self, delay: float = 0.0, fail_when: float | None = None) -> None:
        self.delay = delay
        self.fail_when = fail_when
        self.batches: list[int] = []
        self.threads: set[str] = set()
        self.release = threading.Event()
        self.release.set()

    def __call__(self, inputs: Arrays) -> Mapping[str, np.ndarray]:
        self.threads.add(threading.current_thread().name)
        self.release.wait(5)
        x = inputs["x"]
        self.batches.append(x.shape[0])
        if self.delay:
            time.sleep(self.delay)
        if self.fail_when is not None and (x == self.fail_when).any():
            raise RuntimeError("poisoned row")
        return {"y": x * 2}


def rows(*values: float) -> Arrays:
    return {"x": np.asarray(values, dtype=np.float32).reshape(-1, 1)}


def make(
    model: RecordingModel, *, max_batch_size: int = 8, timeout: float = 0.05
) -> DynamicBatcher:
    batcher = DynamicBatcher(model, max_batch_size=max_batch_size, batch_timeout_s=timeout)
    batcher.start()
    return batcher


async def test_results_go_back_to_their_callers() -> None:
    model = RecordingModel()
    batcher = make(model)
    results = await asyncio.gather(*(batcher.infer(rows(i, i + 0.5)) for i in range(20)))
    for i, result in enumerate(results):
        assert result["y"].ravel().tolist() == [2 * i, 2 * i + 1]
    assert batcher.close(5)
    assert model.threads == {"inference-worker"}


async def test_requests_queued_while_the_model_runs_share_the_next_batch() -> None:
    model = RecordingModel()
    model.release.clear()  # hold the first batch so the others queue behind it
    batcher = make(model, max_batch_size=8)
    first = asyncio.ensure_future(batcher.infer(rows(0)))
    await asyncio.sleep(0.05)
    rest = [asyncio.ensure_future(batcher.infer(rows(i))) for i in range(1, 12)]
    await asyncio.sleep(0.05)
    model.release.set()
    await asyncio.gather(first, *rest)
    assert model.batches == [1, 8, 3]
    assert batcher.close(5)


async def test_an_idle_model_adds_no_delay() -> None:
    # A 2 s timeout would dominate if the batcher waited for the timeout with nobody coming.
    model = RecordingModel()
    batcher = make(model, timeout=2.0)
    await batcher.infer(rows(1))  # first call starts the thread's work loop
    started = time.perf_counter()
    await batcher.infer(rows(1))
    assert time.perf_counter() - started < 0.5
    assert batcher.close(5)


async def test_a_forming_batch_waits_for_announced_requests_up_to_the_timeout() -> None:
    model = RecordingModel()
    batcher = make(model, timeout=1.0)
    late = batcher.announce()  # a request whose body is still being read

    async def arrive_later() -> Arrays:
        await asyncio.sleep(0.1)
        with late:
            return await late.run(rows(2))

    results = await asyncio.gather(batcher.infer(rows(1)), arrive_later())
    assert model.batches == [2]
    assert [r["y"].item() for r in results] == [2.0, 4.0]
    assert batcher.close(5)


async def test_the_timeout_bounds_the_wait_for_a_request_that_never_comes() -> None:
    model = RecordingModel()
    batcher = make(model, timeout=0.1)
    stuck = batcher.announce()
    started = time.perf_counter()
    await batcher.infer(rows(1))
    waited = time.perf_counter() - started
    assert 0.09 <= waited < 1.0
    with stuck:
        pass  # withdrawn without running
    started = time.perf_counter()
    await batcher.infer(rows(1))
    assert time.perf_counter() - started < 0.09
    assert batcher.close(5)


async def test_a_request_larger_than_the_max_batch_is_split_and_joined() -> None:
    model = RecordingModel()
    batcher = make(model, max_batch_size=4)
    values = [float(i) for i in range(10)]
    result = await batcher.infer(rows(*values))
    assert result["y"].ravel().tolist() == [2 * v for v in values]
    assert model.batches == [4, 4, 2]
    assert batcher.close(5)


async def test_a_failing_batch_fails_only_its_own_requests() -> None:
    model = RecordingModel(fail_when=-1.0)
    model.release.clear()
    batcher = make(model, max_batch_size=2)
    blocker = asyncio.ensure_future(batcher.infer(rows(0)))
    await asyncio.sleep(0.05)
    # Queued behind the blocker: [-1, 1] share a batch and fail; [2, 3] form the next and pass.
    futures = [asyncio.ensure_future(batcher.infer(rows(v))) for v in (-1.0, 1.0, 2.0, 3.0)]
    await asyncio.sleep(0.05)
    model.release.set()
    results = await asyncio.gather(blocker, *futures, return_exceptions=True)
    assert isinstance(results[1], BatchFailedError)
    assert "poisoned row" in str(results[1])
    assert isinstance(results[2], BatchFailedError)
    assert [r["y"].item() for r in (results[0], results[3], results[4])] == [0.0, 4.0, 6.0]  # type: ignore[index]
    # The worker survives the failure.
    assert (await batcher.infer(rows(5)))["y"].item() == 10.0
    assert batcher.close(5)


async def test_requests_of_different_trailing_shapes_never_share_a_batch() -> None:
    model = RecordingModel()
    model.release.clear()
    batcher = make(model)
    first = asyncio.ensure_future(batcher.infer(rows(0)))
    await asyncio.sleep(0.05)
    wide = {"x": np.zeros((1, 3), dtype=np.float32)}
    others = [
        asyncio.ensure_future(batcher.infer(rows(1))),
        asyncio.ensure_future(batcher.infer(wide)),
        asyncio.ensure_future(batcher.infer(rows(2))),
    ]
    await asyncio.sleep(0.05)
    model.release.set()
    results = await asyncio.gather(first, *others)
    assert results[2]["y"].shape == (1, 3)
    assert model.batches == [1, 1, 1, 1]
    assert batcher.close(5)


async def test_close_finishes_queued_requests_then_refuses_new_ones() -> None:
    model = RecordingModel(delay=0.02)
    batcher = make(model, max_batch_size=1)
    futures = [asyncio.ensure_future(batcher.infer(rows(i))) for i in range(5)]
    await asyncio.sleep(0)  # let every request reach the queue
    closed = asyncio.get_running_loop().run_in_executor(None, batcher.close, 5.0)
    results = await asyncio.gather(*futures)
    assert [r["y"].item() for r in results] == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert await closed is True
    with pytest.raises(BatcherClosedError):
        await batcher.infer(rows(1))


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="max_batch_size"):
        DynamicBatcher(RecordingModel(), max_batch_size=0, batch_timeout_s=0.0)
    with pytest.raises(ValueError, match="batch_timeout_s"):
        DynamicBatcher(RecordingModel(), max_batch_size=1, batch_timeout_s=-1.0)


async def test_a_full_queue_refuses_at_once_and_frees_up_as_batches_run() -> None:
    model = RecordingModel()
    model.release.clear()  # the worker holds the first batch; the rest queue behind it
    batcher = DynamicBatcher(model, max_batch_size=2, batch_timeout_s=0.0, max_queued_rows=3)
    batcher.start()
    running = asyncio.ensure_future(batcher.infer(rows(0)))
    await asyncio.sleep(0.05)
    queued = asyncio.ensure_future(batcher.infer(rows(1, 1)))
    await asyncio.sleep(0.05)
    assert batcher.queued_rows == 2
    # 2 + 2 rows would pass the bound of 3: refused when the decoded rows are queued ...
    with pytest.raises(QueueFullError, match="MAX_QUEUED_ROWS=3"):
        await batcher.infer(rows(2, 2))
    third = asyncio.ensure_future(batcher.infer(rows(3)))  # 2 + 1 fits
    await asyncio.sleep(0.05)
    assert batcher.queued_rows == 3
    # ... and with the queue full, before the body would even be read.
    with pytest.raises(QueueFullError):
        batcher.announce()
    model.release.set()
    await asyncio.gather(running, queued, third)
    assert batcher.queued_rows == 0
    assert (await batcher.infer(rows(5)))["y"].item() == 10.0
    assert batcher.close(5)


async def test_an_empty_queue_takes_a_request_larger_than_the_bound() -> None:
    model = RecordingModel()
    model.release.clear()
    batcher = DynamicBatcher(model, max_batch_size=4, batch_timeout_s=0.0, max_queued_rows=2)
    batcher.start()
    big = asyncio.ensure_future(batcher.infer(rows(*range(10))))
    await asyncio.sleep(0.05)
    # The worker holds one chunk of 4; the other 6 rows wait, so one more row is refused.
    with pytest.raises(QueueFullError):
        await batcher.infer(rows(1))
    model.release.set()
    assert (await big)["y"].ravel().tolist() == [2.0 * i for i in range(10)]
    assert batcher.close(5)


async def test_requests_in_progress_count_toward_the_bound() -> None:
    # When the event loop is the bottleneck, requests wait past the queue (decoding, or for the
    # loop to send their answer): they still hold their place until they leave.
    batcher = make(RecordingModel())
    batcher.max_queued_rows = 2
    first, second = batcher.announce(), batcher.announce()
    with pytest.raises(QueueFullError, match="2 requests in progress"):
        batcher.announce()
    with first:
        pass
    with batcher.announce():
        pass
    with second:
        pass
    assert batcher.close(5)


def make_inline(
    model: RecordingModel, budget: float, setups: list[str] | None = None
) -> DynamicBatcher:
    def setup() -> None:
        if setups is not None:
            setups.append(threading.current_thread().name)

    batcher = DynamicBatcher(
        model,
        max_batch_size=8,
        batch_timeout_s=0.05,
        inline_below_s=budget,
        thread_setup=setup,
    )
    batcher.start()
    return batcher


async def lone(batcher: DynamicBatcher, inputs: Arrays, *, may: bool = True) -> Arrays:
    """One request whose caller says (``may``) that nothing else is in progress."""
    with batcher.announce() as arrival:
        return await arrival.run(inputs, may_run_inline=may)


async def test_a_lone_request_runs_on_the_callers_thread_once_one_row_batches_are_quick() -> None:
    model = RecordingModel()
    setups: list[str] = []
    batcher = make_inline(model, budget=1.0, setups=setups)
    caller = threading.current_thread().name
    first = await lone(batcher, rows(1))  # no timing for one row yet: the worker runs it
    assert model.threads == {"inference-worker"}
    for value in (2, 3, 4):
        assert (await lone(batcher, rows(value)))["y"].ravel().tolist() == [2 * value]
    assert first["y"].ravel().tolist() == [2]
    assert model.threads == {"inference-worker", caller}
    # The caller's thread got the worker's per-thread set-up, once.
    assert sorted(setups) == sorted(["inference-worker", caller])
    assert batcher.close(5)


async def test_only_a_request_its_caller_calls_alone_runs_on_the_callers_thread() -> None:
    model = RecordingModel()
    batcher = make_inline(model, budget=1.0)
    await lone(batcher, rows(0))  # teaches the batcher that one-row batches are quick
    model.threads.clear()
    await lone(batcher, rows(1), may=False)
    await batcher.infer(rows(2))  # the plain API never runs inline
    assert model.threads == {"inference-worker"}
    assert batcher.close(5)


async def test_requests_that_are_not_alone_still_batch_on_the_worker() -> None:
    model = RecordingModel()
    batcher = make_inline(model, budget=1.0)
    await lone(batcher, rows(0))
    model.threads.clear()
    model.batches.clear()
    model.release.clear()  # hold the first batch on the worker, so the others find it running
    first = asyncio.ensure_future(lone(batcher, rows(0), may=False))
    await asyncio.sleep(0.05)
    # Their callers say they may run inline; the batcher sees one admitted before them.
    gathered = asyncio.gather(first, *(lone(batcher, rows(i)) for i in range(1, 6)))
    await asyncio.sleep(0.05)
    model.release.set()
    await gathered
    assert model.threads == {"inference-worker"}
    assert sum(model.batches) == 6
    assert len(model.batches) < 6  # they shared batches
    assert batcher.close(5)


async def test_a_model_slower_than_the_budget_never_runs_on_the_caller() -> None:
    model = RecordingModel(delay=0.01)
    batcher = make_inline(model, budget=0.005)
    for value in range(4):
        await lone(batcher, rows(value))
    assert model.threads == {"inference-worker"}
    assert batcher.close(5)


async def test_a_failing_lone_request_fails_alone_and_frees_the_model() -> None:
    model = RecordingModel(fail_when=9.0)
    batcher = make_inline(model, budget=1.0)
    await lone(batcher, rows(1))
    with pytest.raises(BatchFailedError, match="poisoned row"):
        await lone(batcher, rows(9))
    assert threading.current_thread().name in model.threads  # it ran inline
    assert (await lone(batcher, rows(2)))["y"].ravel().tolist() == [4]
    assert batcher._model_lock.acquire(blocking=False)  # released after the failure
    batcher._model_lock.release()
    assert batcher.close(5)


async def test_a_cancelled_caller_is_dropped_from_the_queue_unrun() -> None:
    model = RecordingModel()
    batcher = make(model, max_batch_size=1, timeout=0.0)
    model.release.clear()  # the first request holds the worker
    first = asyncio.ensure_future(batcher.infer(rows(1)))
    await asyncio.sleep(0.05)
    abandoned = asyncio.ensure_future(batcher.infer(rows(2)))
    kept = asyncio.ensure_future(batcher.infer(rows(3)))
    await asyncio.sleep(0.05)
    assert batcher.queued_rows == 2
    abandoned.cancel()  # what the HTTP protocol does when its client disconnects
    await asyncio.sleep(0)
    model.release.set()
    assert (await first)["y"].ravel().tolist() == [2]
    assert (await kept)["y"].ravel().tolist() == [6]
    assert abandoned.cancelled()
    assert model.batches == [1, 1]  # the abandoned row never ran
    assert batcher.queued_rows == 0
    assert batcher.full_error() is None
    assert batcher.close(5)
