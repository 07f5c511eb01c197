"""The stream ladder's verdict: which side used its core in the window of what missed
(surge.bench.measure.miss_bound), and the line the report prints from it."""

from __future__ import annotations

from typing import Any

from surge.bench.measure import miss_bound
from surge.bench.report import stream_lines


def _row(
    users: int,
    *,
    ttft: float = 0.13,
    itl: float = 0.06,
    ramp: tuple[float, float | None] = (0.5, 0.5),
    all_in: tuple[float, float | None] = (0.5, 0.5),
) -> dict[str, Any]:
    """A level; ramp/all_in: (target share, client share) of each window."""
    row = {"users": users, "processes": 1 if all_in[1] is not None else 2, "ok": users,
           "errors": 0, "ttft_p99": ttft, "itl_p99": itl, "tpot_p99": 0.05, "tries": 1,
           "target_cpu_ramp": ramp[0], "client_cpu_ramp": ramp[1],
           "target_cpu_all_in": all_in[0], "client_cpu_all_in": all_in[1]}  # fmt: skip
    row["held"] = ttft < 0.2 and itl < 0.075
    row["target_bound"], row["client_bound"] = miss_bound(row)
    return row


def test_an_itl_miss_is_judged_on_the_window_with_every_stream_in() -> None:
    busy_ramp = _row(5000, itl=0.09, ramp=(0.95, 0.5), all_in=(0.8, 0.5))
    assert miss_bound(busy_ramp) == (False, False)
    assert miss_bound(_row(5000, itl=0.09, all_in=(0.93, 0.8))) == (True, False)


def test_a_ttft_miss_is_judged_on_the_ramp() -> None:
    assert miss_bound(_row(4000, ttft=0.71, ramp=(0.95, 0.6), all_in=(0.8, 0.8))) == (True, False)
    assert miss_bound(_row(4000, ttft=0.71, ramp=(0.7, 0.6), all_in=(0.95, 0.8))) == (False, False)


def test_a_held_level_is_nobodys_and_an_unmeasured_client_is_none() -> None:
    assert miss_bound(_row(3000, all_in=(0.95, 0.95))) == (False, False)
    assert miss_bound(_row(3000, itl=0.09, all_in=(0.95, None), ramp=(0.5, None))) == (True, None)


def test_a_miss_on_a_saturated_target_says_the_figure_is_a_lower_bound() -> None:
    out = "\n".join(stream_lines([_row(4000), _row(5000, itl=0.08, all_in=(0.93, 0.5))]))
    assert "holds: 4,000 or more: at 5,000 the target used ≥ 0.9 of its core and the client" in out
    assert "CPU share, ramp/all in: client 0.50/0.50, target 0.50/0.93" in out


def test_a_miss_with_the_target_to_spare_is_the_clients() -> None:
    out = "\n".join(stream_lines([_row(4000), _row(5000, itl=0.08, all_in=(0.8, 0.95))]))
    assert out.endswith("Streams one worker of 1 process(es) holds: 4,000")


def test_a_miss_with_both_cores_saturated_claims_no_bound() -> None:
    out = "\n".join(stream_lines([_row(5000), _row(6000, itl=0.09, all_in=(0.99, 0.96))]))
    assert "holds: 5,000 (at 6,000 both the client and the target used ≥ 0.9" in out
    assert "or more" not in out


def test_several_processes_do_not_read_as_a_saturated_client() -> None:
    rows = [_row(2000, all_in=(0.5, None), ramp=(0.5, None)),
            _row(3000, itl=0.09, all_in=(0.95, None), ramp=(0.5, None))]  # fmt: skip
    out = "\n".join(stream_lines(rows))
    assert "the client's processes were not measured: the miss may be either's" in out
    assert "both" not in out


def test_a_share_just_under_the_bound_never_prints_as_the_bound() -> None:
    # 0.8996 rounds to 0.90, yet the client is below 0.9: the line must not contradict the
    # verdict beside it (a target-bound "or more").
    out = "\n".join(stream_lines([_row(5000), _row(6000, itl=0.09, all_in=(0.986, 0.8996))]))
    assert "holds: 5,000 or more" in out
    assert "client 0.50/0.89, target 0.50/0.98" in out
