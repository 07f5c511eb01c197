"""A server, in its own process, that answers every request with one corpus stream:

    python -m tests.loadgen.corpus_server FILE

Each write of the file (surge.bench.stream_shapes.read_corpus) leaves at its time after
the request, on absolute deadlines (stream_shapes.serve_shape), over the bench targets'
keep-alive HTTP/1.1 protocol (surge.bench.targets). Prints "ready PORT" once listening."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from surge.bench import targets
from surge.bench.stream_shapes import read_corpus, serve_shape

ROOT = Path(__file__).parents[2]


def start(path: Path) -> tuple[subprocess.Popen[str], str]:
    """Start the server for `path`; returns (process, base URL). Raises RuntimeError."""
    argv = [sys.executable, "-m", "tests.loadgen.corpus_server", str(path)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    word, _, port = proc.stdout.readline().strip().partition(" ")
    if word != "ready":
        targets.stop(proc)
        raise RuntimeError(f"corpus server for {path.name} did not start")
    return proc, f"http://127.0.0.1:{port}"


async def serve(path: str) -> None:
    _, timeline = read_corpus(path)
    answer = serve_shape(lambda body: timeline)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: targets._Http(answer), "127.0.0.1", 0, backlog=1024, reuse_address=True
    )
    print(f"ready {server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(sys.argv[1]))
    else:
        uvloop.run(serve(sys.argv[1]))
