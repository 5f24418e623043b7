"""The AsyncClient's transport (httpx, one connection per lane): connections kept alive and
reused, the limits, a connection the server closed, and the errors raised once the retries are
spent, against a scripted asyncio server that writes exactly the bytes each test needs."""

import asyncio
import socket

import httpx
import pytest

from govledger.aio import AsyncClient, pool_limits


class Scripted:
    """Accepts connections on a free port; each request (head and Content-Length body) gets the
    next answer of `answers` (bytes, or None: say nothing; the last one repeats), after `delay`
    seconds, and after `close_after` answers on a connection the server closes it. Records each
    request's connection number and head, how many connections it accepted and the most
    requests it had in flight at once."""

    def __init__(self, answers, close_after=None, delay=0.0):
        self.answers = list(answers)
        self.close_after = close_after
        self.delay = delay
        self.requests = []
        self.connections = 0
        self.in_flight = 0
        self.most_in_flight = 0

    async def __aenter__(self):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = "http://127.0.0.1:%d" % self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader, writer):
        self.connections += 1
        conn = self.connections
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                self.requests.append((conn, head.decode()))
                self.in_flight += 1
                self.most_in_flight = max(self.most_in_flight, self.in_flight)
                answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
                if answer is None:
                    await asyncio.sleep(3600)
                await asyncio.sleep(self.delay)
                self.in_flight -= 1
                writer.write(answer)
                await writer.drain()
                served += 1
                if self.close_after is not None and served >= self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


def answer(body: bytes, status: str = "200 OK", extra: str = "") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
            .encode() + body)


def run(coro):
    return asyncio.run(coro)


def recording():
    sleeps = []

    async def sleep(d):
        sleeps.append(d)
    return sleeps, sleep


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_connections_are_kept_alive_and_reused_up_to_the_limits():
    async def main():
        async with Scripted([answer(b"cp\n")], delay=0.01) as s:
            async with AsyncClient(s.url + "/log/", token="t") as c:
                for _ in range(3):
                    assert await c.checkpoint() == "cp\n"
                assert s.connections == 1
                # 64 tasks at once (the default limits): each on its own connection, kept for
                # the next round.
                for _ in range(3):
                    assert await asyncio.gather(*(c.checkpoint() for _ in range(64))) == ["cp\n"] * 64
                assert s.connections <= 64 and s.most_in_flight <= 64
            first = s.requests[0][1]
            assert first.startswith("GET /log/checkpoint HTTP/1.1\r\n") and "\r\nAuthorization: Bearer t\r\n" in first

            async with AsyncClient(s.url, limits=pool_limits(4)) as c:
                before, s.most_in_flight = s.connections, 0
                assert len(await asyncio.gather(*(c.checkpoint() for _ in range(32)))) == 32
                assert s.connections - before <= 4 and s.most_in_flight <= 4
    run(main())


def test_connections_beyond_max_keepalive_are_closed_when_idle():
    async def main():
        async with Scripted([answer(b"cp\n")], delay=0.01) as s:
            limits = httpx.Limits(max_connections=4, max_keepalive_connections=1)
            async with AsyncClient(s.url, limits=limits) as c:
                await asyncio.gather(*(c.checkpoint() for _ in range(8)))
                assert 1 < s.most_in_flight <= 4
                assert len(c.http._open) == 1  # the others were closed as they came back
                before = s.connections
                await c.checkpoint()
                assert s.connections == before  # the one kept carries the next request
    run(main())


def test_a_connection_the_server_closed_is_replaced():
    async def main():
        sleeps, sleep = recording()
        async with Scripted([answer(b"1")], close_after=1) as s:
            async with AsyncClient(s.url, sleep=sleep) as c:
                assert await c.checkpoint() == "1"
                await asyncio.sleep(0.05)  # the server has closed the connection the lane keeps
                assert await c.checkpoint() == "1"
            return s

    s = run(main())
    assert s.connections == 2 and len(s.requests) == 2


def test_connection_close_is_honoured():
    async def main():
        async with Scripted([answer(b"1", extra="Connection: close\r\n")]) as s:
            async with AsyncClient(s.url) as c:
                for _ in range(3):
                    assert await c.checkpoint() == "1"
            return s

    assert run(main()).connections == 3


def test_silence_times_out_after_the_retries_as_an_httpx_timeout():
    async def main():
        sleeps, sleep = recording()
        async with Scripted([None]) as s:
            async with AsyncClient(s.url, timeout=0.2, retries=2, sleep=sleep, backoff=0.1) as c:
                with pytest.raises(httpx.ReadTimeout) as e:
                    await c.checkpoint()
        assert isinstance(e.value, httpx.TransportError)
        assert len(sleeps) == 2 and len(s.requests) == 3
        for d, cap in zip(sleeps, (0.1, 0.2)):  # backoff doubling, with jitter
            assert cap / 2 <= d <= cap
    run(main())


def test_a_refused_connection_is_retried_then_raised_as_connect_error():
    async def main():
        sleeps, sleep = recording()
        async with AsyncClient(f"http://127.0.0.1:{free_port()}", retries=3, sleep=sleep) as c:
            with pytest.raises(httpx.ConnectError):
                await c.submit_audit("X", "c", "a", {"n": 1}, ["SOX"])
        assert len(sleeps) == 3
    run(main())


def test_a_url_httpx_cannot_speak_is_not_retried():
    async def main():
        sleeps, sleep = recording()
        async with AsyncClient("ftp://127.0.0.1:1", sleep=sleep) as c:
            with pytest.raises(httpx.UnsupportedProtocol):
                await c.checkpoint()
        assert sleeps == []
    run(main())


def test_a_truncated_answer_is_a_transport_error():
    async def main():
        sleeps, sleep = recording()
        async with Scripted([b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"], close_after=1) as s:
            async with AsyncClient(s.url, retries=1, sleep=sleep) as c:
                with pytest.raises(httpx.TransportError):
                    await c.checkpoint()
        assert len(sleeps) == 1 and len(s.requests) == 2
    run(main())
