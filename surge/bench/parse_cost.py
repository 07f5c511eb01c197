"""The stream reader's CPU per chunk, in one process: `python -m surge.bench.parse_cost`.

Feeds the bench stream target's chunks (surge.bench.targets: an OpenAI SSE chunk of one
token a read) through what a worker runs per chunk after llhttp has de-chunked it: the
body decoder (surge.loadgen.http1_conn.decoder), the SSE framing and the format's handler
(surge.loadgen.streams, stream_formats) and the token's timestamp; then the recorder's
per-request work for the finished streams (ITL samples, folded into the HDR histograms).
Prints µs of CPU per chunk, the best of ROUNDS rounds (contention only adds time).
"""

from __future__ import annotations

import sys
import time

from surge.bench.targets import _TOKEN
from surge.loadgen.goodput import SloBounds
from surge.loadgen.http1_conn import decoder
from surge.loadgen.outcome import Outcome
from surge.loadgen.recorder import Recorder
from surge.loadgen.streams import TokenStream
from surge.loadgen.summary import WorkerSummary

STREAMS, TOKENS, ROUNDS = 200, 100, 5
_ROLE = b'data: {"choices":[{"delta":{"role":"assistant"}}]}\n\n'
_TAIL = b'data: {"choices":[],"usage":{"completion_tokens":100}}\n\ndata: [DONE]\n\n'


def one_round() -> float:
    """CPU seconds per chunk for STREAMS streams of TOKENS chunks, parsed and recorded."""
    summary = WorkerSummary()
    rec = Recorder(summary, t0=0.0, window_start_s=0.0, window_end_s=1e9, open_loop=False,
                   slo=SloBounds())  # fmt: skip
    c0 = time.process_time()
    for _ in range(STREAMS):
        out = Outcome(sent_at=time.monotonic())
        stream = TokenStream(out, "openai", False)
        feed = decoder(b"", stream.feed)
        feed(_ROLE)
        for _ in range(TOKENS - 1):
            feed(_TOKEN)
        feed(_TOKEN + _TAIL)
        feed(b"")
        stream.finish()
        out.done_at = time.monotonic()
        rec.record(out.sent_at, out)
    rec.flush()
    used = time.process_time() - c0
    assert summary.counts["ok"] == STREAMS and summary.counts["tokens"] == STREAMS * TOKENS
    return used / (STREAMS * (TOKENS + 2))


def main() -> None:
    rounds = [one_round() for _ in range(ROUNDS)]
    print(f"stream reader: {min(rounds) * 1e6:.2f} µs CPU per chunk (best of {ROUNDS}; "
          f"rounds {', '.join(f'{r * 1e6:.2f}' for r in rounds)})")  # fmt: skip


if __name__ == "__main__":
    main()
    sys.exit(0)
