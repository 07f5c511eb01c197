"""One run's way to the target: send a request or a whole conversation, and record it.

The engine's loops decide when to send (open loop: the schedule; closed loop: the
users); a Sender does the sending. It owns the run's transport: the lean HTTP/1.1
client for http:// and https:// targets (several times less CPU a request than
aiohttp's session; surge.loadgen.http1), aiohttp's session with
SURGE_HTTP_CLIENT=aiohttp or headers the lean client refuses. Both
get the same URL and headers: credentials in the URL are turned into an Authorization
header once, here (surge.loadgen.client.with_url_credentials).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable

from surge.api.loadtest import Scenario as ScenarioSpec
from surge.loadgen import http1
from surge.loadgen.client import execute, make_session, with_url_credentials
from surge.loadgen.dispatch import Dispatch
from surge.loadgen.outcome import Outcome
from surge.loadgen.recorder import Recorder
from surge.loadgen.scenario import Prepared, Scenario


async def sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds`, or less when `stop` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


class Sender:
    """Sends through one session (or lean client) and records every outcome.

    Make it inside the running loop (the session needs one); `close()` when done.
    """

    def __init__(
        self,
        spec: ScenarioSpec,
        scenario: Scenario,
        url: str,
        headers: dict[str, str],
        recorder: Recorder,
        stop: asyncio.Event,
        *,
        limit: int,
    ) -> None:
        """limit: the session's connection pool; stop: set, it ends conversations early."""
        self.spec = spec
        self.scenario = scenario
        url, headers = with_url_credentials(url, headers)
        self.url = url
        self.headers = headers
        self._token_events = tuple(spec.sse_token_events or ("message",))
        self.recorder = recorder
        self._stop = stop
        self._hdr_cache: dict[str, dict[str, str]] = {}
        self.session = make_session(limit, spec.timeout)
        self.lean: http1.Http1Client | None = None
        if os.environ.get("SURGE_HTTP_CLIENT", "lean") != "aiohttp" and http1.usable(url, headers):
            self.lean = http1.Http1Client(url)

    async def close(self) -> None:
        if self.lean is not None:
            self.lean.close()
        await self.session.close()

    def _headers(self, content_type: str | None) -> dict[str, str]:
        """The request headers with this Content-Type, merged once per type."""
        if content_type is None:
            return self.headers
        hdrs = self._hdr_cache.get(content_type)
        if hdrs is None:
            hdrs = {**self.headers, "Content-Type": content_type}
            self._hdr_cache[content_type] = hdrs
        return hdrs

    async def _send(self, req: Prepared, *, keep_text: bool = False) -> Outcome:
        return await execute(
            self.session,
            self.url,
            req,
            self._headers(req.content_type),
            streaming=self.spec.streaming,
            timeout_s=self.spec.timeout,
            keep_text=keep_text,
            lean=self.lean,
            token_events=self._token_events,
        )

    def dispatch(self, on_done: Callable[[], None]) -> Dispatch | None:
        """The open loop's task-free path for plain single requests through the lean
        client (surge.loadgen.dispatch); None for streams, conversations or aiohttp."""
        if self.lean is None or self.spec.streaming != "none" or self.spec.conversation is not None:
            return None
        return Dispatch(
            self.lean, self.scenario, self._headers, self.recorder, self.spec.timeout, on_done
        )

    async def single(self, due: float | None) -> None:
        """One request; latency counts from `due` (open loop) or, when None, from the send."""
        out = await self._send(self.scenario.single())
        self.recorder.record(out.sent_at if due is None else due, out)

    async def conversation(self, due: float | None) -> None:
        """One conversation; `due` is the first turn's due time (None: closed loop)."""
        conv = self.spec.conversation
        assert conv is not None
        picked = self.scenario.next_conversation()
        if picked is None:
            return
        row, turns = picked
        history: list[dict[str, str]] = []
        for i, turn in enumerate(turns):
            if i and conv.think_time:
                await sleep_unless(self._stop, conv.think_time)
            if self._stop.is_set():
                return
            out = await self._send(self.scenario.turn_request(row, turn, history), keep_text=True)
            intended = due if (i == 0 and due is not None) else out.sent_at
            self.recorder.record(intended, out, scheduled=i == 0)
            if not out.ok:
                return  # a broken conversation ends; its later turns make no sense
            history.append({"role": "user", "content": turn})
            history.append({"role": "assistant", "content": out.text})
