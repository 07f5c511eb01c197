"""The stream ladder's verdict line: a miss on a saturated target is a lower bound."""

from __future__ import annotations

from typing import Any

from surge.bench.report import stream_lines


def _row(
    users: int, held: bool, target: float, bound: bool = False, client: float = 0.5
) -> dict[str, Any]:
    return {"users": users, "processes": 1, "ok": users, "errors": 0, "ttft_p99": 0.13,
            "itl_p99": 0.06 if held else 0.08, "tpot_p99": 0.05, "tries": 1 if held else 2,
            "held": held, "client_cpu": client, "target_cpu": target,
            "target_bound": bound, "client_bound": bound and client >= 0.9}  # fmt: skip


def test_a_miss_on_a_saturated_target_says_the_figure_is_a_lower_bound() -> None:
    out = "\n".join(stream_lines([_row(4000, True, 0.74), _row(5000, False, 0.93, True)]))
    assert "holds: 4,000 or more: the target's core was saturated at 5,000" in out
    assert "the client's was not" in out
    assert "CPU share: client 0.50, target 0.93" in out


def test_a_miss_with_the_target_to_spare_is_the_clients() -> None:
    out = "\n".join(stream_lines([_row(4000, True, 0.74), _row(5000, False, 0.80)]))
    assert out.endswith("Streams one worker of 1 process(es) holds: 4,000")


def test_a_miss_with_both_cores_saturated_claims_no_bound() -> None:
    rows = [_row(5000, True, 0.89), _row(6000, False, 0.99, True, client=0.96)]
    out = "\n".join(stream_lines(rows))
    assert "holds: 5,000 (at 6,000 both the client's and the target's core were saturated" in out
    assert "or more" not in out
