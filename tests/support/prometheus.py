"""A real Prometheus for integration tests: /usr/bin/prometheus on a free loopback port.

    with running_prometheus(tmp_path, targets=["127.0.0.1:8080"]) as prom:
        prom.url  # http://127.0.0.1:PORT

Backfill deterministic data first with `backfill(openmetrics_text, prom_dir)`: promtool
writes blocks into the storage dir, and Prometheus loads them when it starts.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

PROMETHEUS = Path("/usr/bin/prometheus")
PROMTOOL = Path("/usr/bin/promtool")


def prometheus_missing_reason() -> str | None:
    """Why the Prometheus tests cannot run here, or None (CI installs the package)."""
    if not PROMETHEUS.exists() or not PROMTOOL.exists():
        return "needs Debian's prometheus package (/usr/bin/prometheus, /usr/bin/promtool)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _duration(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"  # Prometheus durations take integers only


def scrape_config(targets: Sequence[str], interval_s: float, job: str = "test") -> str:
    static = "".join(f"          - '{t}'\n" for t in targets)
    return (
        "global:\n"
        f"  scrape_interval: {_duration(interval_s)}\n"
        f"  evaluation_interval: {_duration(interval_s)}\n"
        "scrape_configs:\n"
        f"  - job_name: {job}\n"
        f"    scrape_interval: {_duration(interval_s)}\n"
        f"    scrape_timeout: {_duration(max(interval_s * 0.8, 0.5))}\n"
        "    static_configs:\n"
        "      - targets:\n" + (static or "          []\n")
    )


@dataclass(frozen=True)
class PrometheusServer:
    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]


def backfill(openmetrics: str, data_dir: Path, timeout_s: float = 60.0) -> None:
    """promtool tsdb create-blocks-from openmetrics: the text must end with '# EOF'.
    Samples must lie outside the live head block (hours in the past)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    src = data_dir.parent / "backfill.om"
    src.write_text(openmetrics)
    done = subprocess.run(
        [str(PROMTOOL), "tsdb", "create-blocks-from", "openmetrics", str(src), str(data_dir)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"promtool failed ({done.returncode}): {done.stderr[-2000:]}")


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/-/ready", timeout=1.0) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def running_prometheus(
    workdir: Path,
    *,
    targets: Sequence[str] = (),
    scrape_interval_s: float = 1.0,
    data_dir: Path | None = None,
    ready_timeout_s: float = 60.0,
) -> Iterator[PrometheusServer]:
    """Start Prometheus (storage in workdir/data unless given), wait for /-/ready, stop it
    on exit (SIGTERM, then SIGKILL after 10 s). Raises RuntimeError when not ready in time."""
    data = data_dir or workdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(scrape_config(targets, scrape_interval_s))
    port = free_port()
    log = (workdir / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            str(PROMETHEUS),
            f"--config.file={config}",
            f"--storage.tsdb.path={data}",
            "--storage.tsdb.retention.time=30d",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.console.templates=/nonexistent",
            "--web.console.libraries=/nonexistent",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout_s
        while not _ready(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (workdir / "prometheus.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"prometheus not ready within {ready_timeout_s:g}s: {tail}")
            time.sleep(0.1)
        yield PrometheusServer(url, data, proc)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def cleanup_data(data_dir: Path) -> None:
    shutil.rmtree(data_dir, ignore_errors=True)
