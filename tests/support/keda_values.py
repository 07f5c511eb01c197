"""The loopback metrics-api server of the KEDA differential test
(tests/e2e/test_keda_simulator.py): each scenario's value on its own clock."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support import keda_compare as kc


class Values:
    """`GET /<scenario>` answers {"value": its block's value at this instant} on 127.0.0.1;
    a scenario's clock (kc.CREATED_S) starts at its first request."""

    def __init__(self, batch: list[kc.Scenario]) -> None:
        self.by_name = {s.name: s for s in batch}
        self.w0 = 0.0
        self.requests = 0
        self.started: dict[str, float] = {}
        """Each scenario's first request, in seconds after w0."""
        self.racing: list[str] = []
        """Scenarios whose loop's phase fell within 1.2 s of the HPA's sync grid."""
        self.seen: dict[str, list[float]] = {s.name: [] for s in batch}
        """Every request, on the scenario's clock."""
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                s = outer.by_name.get(self.path.strip("/"))
                if s is None:
                    self.send_error(404)
                    return
                with outer.lock:
                    outer.requests += 1
                    at = time.monotonic() - outer.w0
                    start = outer.started.setdefault(s.name, at)
                    own = at - start + kc.CREATED_S
                    outer.seen[s.name].append(own)
                value = s.value_at(own)
                body = json.dumps({"value": value}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def own_now(self, name: str) -> float | None:
        """Now on the scenario's clock; None before KEDA's first request for it."""
        start = self.started.get(name)
        return None if start is None else time.monotonic() - self.w0 - start + kc.CREATED_S

    def __enter__(self) -> Values:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
