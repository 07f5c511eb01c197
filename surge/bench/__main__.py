"""Benchmark: Surge's worker vs Locust FastHttpUser (and wrk when installed), each pinned to
core 0 with taskset, against one fast aiohttp target pinned to core 1. All on 127.0.0.1,
each run 8 s. Prints req/s per core and the ratio Surge/Locust."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = """
import sys
from aiohttp import web
async def ok(request):
    return web.Response(text="ok")
app = web.Application()
app.router.add_route("*", "/", ok)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""

LOCUSTFILE = """
from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser
class U(FastHttpUser):
    wait_time = constant(0)
    @task
    def t(self):
        self.client.get("/")
"""

PLAN = """apiVersion: surge.dev/v1alpha1
kind: LoadTest
metadata: {{name: bench}}
spec:
  target: {{url: "http://127.0.0.1:{port}"}}
  scenario: {{method: GET, path: /}}
  load: {{model: closed, stages: [{{duration: {secs}s, target: {users}}}]}}
"""

SECS, USERS, PORT = 8, 50, 18777


def pinned(core: int, *argv: str) -> list[str]:
    return ["taskset", "-c", str(core), *argv] if shutil.which("taskset") else list(argv)


def surge_rps(tmp: Path) -> float:
    from surge.api.manifests import load_documents, parse_resource
    from surge.loadgen.plan import build_plan, plan_json

    lt = parse_resource(load_documents(PLAN.format(port=PORT, secs=SECS, users=USERS))[0])
    plan = build_plan(lt.spec, name="bench", namespace="local", run_id="1")  # type: ignore[arg-type]
    (tmp / "plan.json").write_text(plan_json(plan))
    out = tmp / "summary.json"
    subprocess.run(
        pinned(0, sys.executable, "-m", "surge.loadgen.commands", "worker",
               "--plan", str(tmp / "plan.json"), "--summary-out", str(out), "--no-progress"),
        check=True, capture_output=True, timeout=SECS + 30,
    )  # fmt: skip
    data = json.loads(out.read_text())
    return float(data["counts"]["ok"]) / float(data["measuredS"])


def locust_rps(tmp: Path) -> float | None:
    if shutil.which("locust") is None and not (Path(sys.executable).parent / "locust").exists():
        return None
    exe = shutil.which("locust") or str(Path(sys.executable).parent / "locust")
    (tmp / "lf.py").write_text(LOCUSTFILE)
    subprocess.run(
        pinned(0, exe, "-f", str(tmp / "lf.py"), "--headless", "-u", str(USERS),
               "-r", str(USERS), "-t", f"{SECS}s", "--host", f"http://127.0.0.1:{PORT}",
               "--csv", str(tmp / "l"), "--only-summary"),
        capture_output=True, timeout=SECS + 60, check=False,
    )  # fmt: skip
    for line in (tmp / "l_stats.csv").read_text().splitlines():
        if line.startswith(",Aggregated") or ",Aggregated," in line:
            cols = line.split(",")
            return float(cols[9])  # Requests/s
    return None


def wrk_rps() -> float | None:
    if shutil.which("wrk") is None:
        return None
    p = subprocess.run(
        pinned(0, "wrk", "-t1", f"-c{USERS}", f"-d{SECS}s", f"http://127.0.0.1:{PORT}/"),
        capture_output=True, text=True, timeout=SECS + 30, check=False,
    )  # fmt: skip
    for line in p.stdout.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    return None


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "target.py").write_text(TARGET)
        target = subprocess.Popen(pinned(1, sys.executable, str(tmp / "target.py"), str(PORT)))
        try:
            time.sleep(1.5)
            s = surge_rps(tmp)
            print(f"surge worker (closed, {USERS} users, records everything): {s:,.0f} req/s/core")
            lo = locust_rps(tmp)
            print(
                f"locust FastHttpUser: {'not installed' if lo is None else f'{lo:,.0f} req/s/core'}"
            )
            w = wrk_rps()
            print(f"wrk: {'not installed' if w is None else f'{w:,.0f} req/s/core'}")
            if lo:
                print(f"ratio surge/locust: {s / lo:.2f}x")
        finally:
            target.terminate()
            target.wait(timeout=10)


if __name__ == "__main__":
    main()
