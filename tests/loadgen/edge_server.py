"""A raw HTTP/1.1 server for edge cases, run in its own process:
python -m tests.loadgen.edge_server MODE N (prints its port). Per connection, request k (1-based):
close: the Nth answers with Connection: close and closes; drop: the Nth is dropped unanswered
(counted over all connections, as slow and partial are);
early: answers at the request line, before the body arrives; chunked: chunked 200s;
slow: every Nth request the server reads, counted over all connections (so which connection
the client picks cannot change which requests wait), waits 0.6 s (past a short timeout);
continue: a 100 Continue first;
double: the Nth gets two answers; reject: a 413 and a close before the body is read;
partial: the Nth (over all connections) gets half its body, then the connection is aborted.
Edges that fail requests count over all connections so that which connection the client picks
(a second one opens whenever an answer is slower than the gap between arrivals) cannot change
how many fail."""

from __future__ import annotations

import asyncio
import sys

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\no\r\n1\r\nk\r\n0\r\n\r\n"


SEEN = [0]  # requests read over all connections, for slow


async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter, mode: str, n: int) -> None:
    k = 0
    try:
        while k < 10_000:
            head = await r.readuntil(b"\r\n\r\n")
            k += 1
            SEEN[0] += 1
            if mode == "early":
                w.write(OK)
            if mode == "reject":
                w.write(b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                await w.drain()
                break
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if length:
                await r.readexactly(length)
            if mode == "close" and k == n:
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                await w.drain()
                break
            if mode == "drop" and SEEN[0] % n == 0:
                break
            if mode == "partial" and SEEN[0] % n == 0:  # half a body, then a reset
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok")
                await w.drain()
                await asyncio.sleep(0.01)
                w.transport.abort()
                return
            if mode == "continue":
                w.write(b"HTTP/1.1 100 Continue\r\n\r\n" + OK)
            elif mode == "double" and k % n == 0:
                w.write(OK + OK)  # an answer nobody asked for after the right one
            elif mode == "chunked":
                w.write(CHUNKED)
            elif mode == "slow" and SEEN[0] % n == 0:
                await asyncio.sleep(0.6)
                w.write(OK)
            elif mode not in ("early", "continue"):
                w.write(OK)
            await w.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        w.close()


async def main(mode: str, n: int) -> None:
    server = await asyncio.start_server(lambda r, w: handle(r, w, mode, n), "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(60)  # bounded: the test kills it sooner


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
