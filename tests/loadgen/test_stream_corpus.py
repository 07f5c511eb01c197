"""The conformance corpus: one byte stream per server and quirk (tests/loadgen/streams_corpus/,
each file citing the emitter it was written from), measured two ways.

- Replayed into the parser with a fake clock (each write read at its time): TTFT, TPOT
  (t_last − t_first)/(N − 1) per sequence, tokens and the error reason come out exact.
- Replayed with known timing by a server in its own process (tests/loadgen/corpus_server.py,
  the bench targets' protocol) under load: TTFT p50 within +6 ms of the truth (a read is
  never early; loopback, parsing and two event-loop wake-ups only add), TPOT p50 within
  2 ms, tokens exact, in-stream errors counted as protocol errors with their reason, and
  a run whose every request failed is never Passed. Best of 3 attempts (contention only
  ever adds delay), as tests/loadgen/test_accuracy.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from surge.bench import targets
from surge.bench.stream_shapes import read_corpus
from surge.loadgen.aggregate import compute_results, hist_stats_s
from surge.loadgen.goodput import SloBounds
from surge.loadgen.outcome import Outcome, ProtocolError
from surge.loadgen.recorder import Recorder
from surge.loadgen.streams import Streaming, TokenStream
from surge.loadgen.summary import WorkerSummary
from surge.verdicts import verdict
from tests.loadgen import corpus_server
from tests.loadgen.test_accuracy import best_of, run

CORPUS = sorted((Path(__file__).parent / "streams_corpus").iterdir())
OK = [p for p in CORPUS if "error=" not in read_corpus(p)[0]["expect"]]
BROKEN = [p for p in CORPUS if p not in OK]


def expect(path: Path) -> dict[str, str]:
    """`error=TEXT` (the rest of the line), or `key=value` pairs."""
    text = read_corpus(path)[0]["expect"]
    if text.startswith("error="):
        return {"error": text[6:]}
    return dict(kv.split("=", 1) for kv in text.split(" "))


def replay(path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    """The file's writes fed to the parser, each read at its own time (sent at 0)."""
    header, timeline = read_corpus(path)
    now = [0.0]
    monkeypatch.setattr(TokenStream, "clock", staticmethod(lambda: now[0]))
    out = Outcome(sent_at=0.0)
    stream = TokenStream(out, cast(Streaming, header["streaming"]), True)
    for at, data in timeline:
        now[0] = at
        stream.feed(data)
    stream.finish()
    out.done_at = timeline[-1][0]
    return out


def test_every_file_cites_its_source_and_says_what_to_expect() -> None:
    assert len(CORPUS) >= 15
    for path in CORPUS:
        header, timeline = read_corpus(path)
        assert {"source", "quirk", "streaming", "expect"} <= set(header), path.name
        assert "/" in header["source"].split(" ")[0], path.name  # owner/repo
        assert timeline, path.name


@pytest.mark.parametrize("path", OK, ids=lambda p: p.name)
def test_replayed_exactly(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    want = expect(path)
    out = replay(path, monkeypatch)
    summary = WorkerSummary()
    rec = Recorder(
        summary, t0=0.0, window_start_s=0.0, window_end_s=10.0, open_loop=False, slo=SloBounds()
    )
    rec.record(0.0, out)
    rec.flush()
    seqs = int(want.get("sequences", "1"))
    stats = {n: hist_stats_s(summary.hists[n]) for n in ("ttft", "tpot", "ttft_content")}
    assert summary.hists["ttft"].get_total_count() == seqs
    assert summary.hists["tpot"].get_total_count() == seqs
    for name, key in (
        ("ttft", "ttft_ms"),
        ("tpot", "tpot_ms"),
        ("ttft_content", "ttft_content_ms"),
    ):
        truth = float(want.get(key, want["ttft_ms"])) / 1000
        for q in ("p50", "max"):
            assert stats[name][q] == pytest.approx(truth, rel=1e-3), (name, q)
    assert out.output_tokens == int(want["tokens"])
    assert out.input_tokens == (int(want["input"]) if "input" in want else None)
    assert (out.sequences is not None) == (seqs > 1)


@pytest.mark.parametrize("path", BROKEN, ids=lambda p: p.name)
def test_broken_streams_give_their_reason(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ProtocolError, match=expect(path)["error"].replace("[", r"\[")):
        replay(path, monkeypatch)


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_replayed_read_by_the_parser_in_any_pieces(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same bytes cut into reads of 7 bytes (a CR and its LF apart, a field name
    split): the same tokens, usage and outcome as whole writes."""
    header, timeline = read_corpus(path)
    whole: Outcome | str
    try:
        whole = replay(path, monkeypatch)
    except ProtocolError as exc:
        whole = str(exc)
    body = b"".join(data for _, data in timeline)
    out = Outcome(sent_at=0.0)
    stream = TokenStream(out, cast(Streaming, header["streaming"]), True)

    def read() -> None:
        for i in range(0, len(body), 7):
            stream.feed(body[i : i + 7])
        stream.finish()

    if isinstance(whole, str):
        with pytest.raises(ProtocolError) as caught:
            read()
        assert str(caught.value) == whole
        return
    read()
    assert isinstance(whole, Outcome)
    assert (out.output_tokens, out.input_tokens, out.text) == (
        whole.output_tokens,
        whole.input_tokens,
        whole.text,
    )
    assert len(out.chunk_times) == len(whole.chunk_times)


# -- the same bytes from a server in its own process -----------------------------------

LOAD = {"model": "constant", "warmup": "300ms", "stages": [{"duration": "1800ms", "target": 20}]}
STREAMS = 30  # arrivals k/20 s in [0.3 s, 1.8 s)
BODY = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}


async def measure(path: Path) -> tuple[dict[str, Any], WorkerSummary]:
    header = read_corpus(path)[0]
    proc, url = corpus_server.start(path)
    try:
        scenario = {"path": "/", "timeout": "5s", "streaming": header["streaming"], "body": BODY}
        s = await run(url, scenario=scenario, load=LOAD)
    finally:
        targets.stop(proc)
    return compute_results(s), s


@pytest.mark.timeout(60)
@pytest.mark.parametrize("path", OK, ids=lambda p: p.name)
async def test_timing_from_a_server_in_its_own_process(path: Path) -> None:
    want = expect(path)
    ttft, tpot = float(want["ttft_ms"]) / 1000, float(want["tpot_ms"]) / 1000
    seqs = int(want.get("sequences", "1"))

    async def attempt() -> list[str]:
        r, s = await measure(path)
        assert s.counts["ok"] == s.counts["sent"] == STREAMS, r["errors"]
        m = r["metrics"]
        print(path.name, {f: round(m[f"{f}.p50"] * 1000, 2) for f in ("ttft", "tpot", "itl")})
        assert r["tokens"]["output"] == STREAMS * int(want["tokens"])
        if "input" in want:
            assert r["tokens"]["input"] == STREAMS * int(want["input"])
        assert r["spectrum"]["tpot"]["count"] == STREAMS * seqs  # one sample a sequence
        misses = []
        if not -0.001 <= m["ttft.p50"] - ttft <= 0.006:
            misses.append(f"ttft.p50 {m['ttft.p50']} vs {ttft} (+6 ms)")
        if abs(m["tpot.p50"] - tpot) > 0.002:
            misses.append(f"tpot.p50 {m['tpot.p50']} vs {tpot} (± 2 ms)")
        return misses

    assert await best_of(attempt) == []


@pytest.mark.timeout(60)
@pytest.mark.parametrize("path", BROKEN, ids=lambda p: p.name)
async def test_in_stream_errors_from_a_server_in_its_own_process(path: Path) -> None:
    r, s = await measure(path)
    assert s.counts["protocol"] == s.counts["sent"] == STREAMS and s.counts["ok"] == 0
    reasons = r["errors"]["reasons"]
    assert len(reasons) == 1 and reasons[0]["count"] == STREAMS, reasons
    assert reasons[0]["errorClass"] == "protocol"
    assert expect(path)["error"] in reasons[0]["reason"]
    assert r["summary"]["topErrors"] == reasons
    judged = verdict([], r["metrics"])
    assert (judged.verdict, judged.reason) == ("Failed", "AllRequestsFailed")
