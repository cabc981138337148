"""The uvicorn server of ``python -m service``: drains keep-alive clients on SIGTERM.

Imported by ``service.__main__`` only after the model has started loading (see
``service.preload``), because importing uvicorn and the app is half of the start-up time.
"""

from __future__ import annotations

import gc
import logging
import socket
import time
from types import FrameType

import uvicorn

from service.runtime import ServiceRuntime

logger = logging.getLogger("service")


class DrainingServer(uvicorn.Server):
    """A uvicorn server that drains on SIGTERM (or SIGINT) instead of closing at once.

    The first signal turns readiness off and starts the drain period; uvicorn's own shutdown
    (close the listener, close idle connections, wait for in-flight requests) starts only when
    the period is over. A second SIGINT during the period stops at once, as uvicorn's does.
    """

    def __init__(
        self, config: uvicorn.Config, state: ServiceRuntime, drain_period_s: float
    ) -> None:
        super().__init__(config)
        self.state = state
        self.drain_period_s = drain_period_s
        self._drain_deadline: float | None = None
        self._signal: tuple[int, FrameType | None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Mark the service as draining; uvicorn's shutdown follows after the drain period."""
        self.state.begin_shutdown()
        if self._drain_deadline is None and self.drain_period_s > 0:
            self._drain_deadline = time.monotonic() + self.drain_period_s
            self._signal = (sig, frame)
            logger.info(
                "draining for %.1f s: answering with Connection: close before closing the listener",
                self.drain_period_s,
            )
            return
        super().handle_exit(sig, frame)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's start-up, then move everything built so far out of the cyclic GC's sight.

        The imports (torch, FastAPI, pydantic) leave about 200,000 objects that live as long as
        the process. Python's cyclic GC walks all of them at every full collection: a pause
        of 60-240 ms measured here, on the event loop, in the middle of whichever requests are
        in flight. ``gc.freeze()`` moves them to a permanent generation the GC
        never scans (without a collection first, which would cost that pause once more at
        start-up); a full collection then only walks what was allocated since. ``python -m
        service`` keeps the GC off until here (see ``service.__main__.main``); it is on from now.
        """
        await super().startup(sockets)
        gc.freeze()
        gc.enable()
        if logger.isEnabledFor(logging.DEBUG):  # counting walks every frozen object: ~25 ms
            logger.debug("froze %d start-up objects out of the cyclic GC", gc.get_freeze_count())

    async def on_tick(self, counter: int) -> bool:
        """uvicorn's 0.1 s tick: start its shutdown once the drain period is over."""
        if (
            self._drain_deadline is not None
            and self._signal is not None
            and time.monotonic() >= self._drain_deadline
        ):
            sig, frame = self._signal
            self._signal = None
            super().handle_exit(sig, frame)
        return await super().on_tick(counter)
