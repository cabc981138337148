"""A closed-loop keep-alive HTTP/1.1 client that keeps every request's status and latency.

wrk reports one latency distribution for all responses; the overload benchmark needs accepted
(200) and refused (503) requests apart, and every request that was sent and never answered
counted. This client does exactly that with raw asyncio streams (no HTTP library on the hot path)
and is meant to run in its own process pinned to one core, like wrk.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


@dataclass
class ClientTally:
    """Every response's status and latency, and the requests that got no response."""

    latencies: dict[int, list[float]] = field(default_factory=dict)
    lost: int = 0
    connect_errors: int = 0

    def add(self, status: int, seconds: float) -> None:
        """Record one answered request."""
        self.latencies.setdefault(status, []).append(seconds)

    def count(self, status: int) -> int:
        """Responses with ``status``."""
        return len(self.latencies.get(status, ()))


def request_bytes(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """One POST request, ready to write on a keep-alive connection."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _header(head: bytes, wanted: bytes) -> bytes | None:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == wanted:
            return value.strip()
    return None


def _content_length(head: bytes) -> int:
    value = _header(head, b"content-length")
    if value is None:
        raise ValueError("response without Content-Length")
    return int(value)


async def _one_connection(
    host: str,
    port: int,
    request: bytes,
    stop_at: float,
    tally: ClientTally,
    honor_retry_after: bool,
) -> None:
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    while time.perf_counter() < stop_at:
        if writer is None:
            try:
                reader, writer = await asyncio.open_connection(host, port)
            except OSError:
                tally.connect_errors += 1
                await asyncio.sleep(0.01)
                continue
        assert reader is not None
        started = time.perf_counter()
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(_content_length(head))
        except (OSError, asyncio.IncompleteReadError, ValueError):
            tally.lost += 1
            writer.close()
            writer = None
            continue
        status = int(head[9:12])
        tally.add(status, time.perf_counter() - started)
        if b"connection: close" in head.lower():
            writer.close()
            writer = None
        if honor_retry_after and status == 503:
            # What urllib3's Retry (respect_retry_after_header) and similar clients do.
            retry_after = _header(head, b"retry-after")
            if retry_after is not None and retry_after.isdigit():
                await asyncio.sleep(min(float(retry_after), max(stop_at - time.perf_counter(), 0)))
    if writer is not None:
        writer.close()


async def drive(
    host: str,
    port: int,
    request: bytes,
    concurrency: int,
    seconds: float,
    *,
    honor_retry_after: bool = False,
) -> ClientTally:
    """``concurrency`` connections sending ``request`` back to back for ``seconds``.

    With ``honor_retry_after`` a connection answered 503 with ``Retry-After`` waits that long
    before its next request; without, it retries at once (a retry storm).
    """
    tally = ClientTally()
    stop_at = time.perf_counter() + seconds
    await asyncio.gather(
        *(
            _one_connection(host, port, request, stop_at, tally, honor_retry_after)
            for _ in range(concurrency)
        )
    )
    return tally
