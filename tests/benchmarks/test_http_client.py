"""The overload client: statuses and latencies kept apart, unanswered requests counted."""

from __future__ import annotations

import asyncio

import pytest

from benchmarks.http_client import drive, request_bytes

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def serve(answers: list[bytes | None]) -> tuple[asyncio.Server, int]:
    """A server that answers requests with ``answers`` in turn; None closes the connection."""
    turn = iter(answers * 1000)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            answer = next(turn)
            if answer is None:
                break
            writer.write(answer)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def response(status: int, extra: str = "") -> bytes:
    return f"HTTP/1.1 {status} X\r\nContent-Length: 2\r\n{extra}\r\nok".encode()


async def test_statuses_are_kept_apart_and_unanswered_requests_are_lost() -> None:
    server, port = await serve([response(200), response(503, "Retry-After: 1\r\n"), None])
    request = request_bytes("127.0.0.1", port, "/predict", b"{}", {"X": "1"})
    assert request.startswith(b"POST /predict HTTP/1.1\r\n")
    assert b"Content-Length: 2\r\n" in request
    async with server:
        tally = await drive("127.0.0.1", port, request, concurrency=1, seconds=0.3)
    assert tally.count(200) > 0
    assert tally.count(503) > 0
    # Every third request had its connection closed under it: sent, never answered.
    assert tally.lost > 0
    assert abs(tally.lost - tally.count(200)) <= 1


async def test_a_client_that_honors_retry_after_waits_before_its_next_request() -> None:
    refusal = response(503, "Retry-After: 1\r\n")
    server, port = await serve([refusal] * 100)
    request = request_bytes("127.0.0.1", port, "/predict", b"{}", {})
    async with server:
        storm = await drive("127.0.0.1", port, request, concurrency=1, seconds=0.1)
    server, port = await serve([refusal] * 100)
    request = request_bytes("127.0.0.1", port, "/predict", b"{}", {})
    async with server:
        polite = await drive(
            "127.0.0.1", port, request, concurrency=1, seconds=0.3, honor_retry_after=True
        )
    # At once: a refusal every few hundred microseconds; honoring: one, then a 1 s wait
    # (cut to the end of the run).
    assert storm.count(503) > 20
    assert polite.count(503) == 1
    assert polite.lost == 0
