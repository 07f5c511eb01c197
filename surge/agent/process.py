"""Alice as a subprocess: start `python -m surge.agent`, wait until healthy, stop it."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from queue import Empty, Queue


def _wait_healthy(url: str, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1.0) as resp:
                if resp.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    return False


def start_agent_process(
    args: Sequence[str] = (),
    *,
    timeout_s: float = 20.0,
    stderr: int | None = None,
) -> tuple[subprocess.Popen[str], str]:
    """Start `python -m surge.agent ARGS` and return (process, base_url) once /healthz is 200.

    `args` are demo-agent flags; without --port the agent binds an ephemeral port.
    stderr (the agent's log) is inherited unless given (e.g. subprocess.DEVNULL).
    Raises RuntimeError (after killing the process) when it is not healthy in time.
    Stop it with stop_agent_process.
    """
    argv = list(args)
    if not any(a == "--port" or a.startswith("--port=") for a in argv):
        argv += ["--port", "0"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "surge.agent", *argv],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    lines: Queue[str] = Queue()

    def pump() -> None:
        # Reads the one "listening" line, then keeps the pipe drained.
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout_s
    url = ""
    while not url and time.monotonic() < deadline and proc.poll() is None:
        try:
            event = json.loads(lines.get(timeout=0.1))
        except Empty:
            continue
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict) and event.get("event") == "listening":
            url = str(event["url"])
    if not url or not _wait_healthy(url, deadline):
        stop_agent_process(proc)
        raise RuntimeError(f"demo agent did not become healthy within {timeout_s}s: {argv}")
    return proc, url


def stop_agent_process(proc: subprocess.Popen[str], timeout_s: float = 10.0) -> int:
    """SIGTERM, then SIGKILL after timeout_s; returns the exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode if proc.returncode is not None else -1
