"""Leader election: the decision table, the Lease written, and two candidates on one Lease
(the FakeKube applies resourceVersion conflicts as the API server does)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from surge.operator.kube import leader
from tests.operator.fake_kube import FakeKube

T0 = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)
A = leader.Election(namespace="surge", identity="a", duration_s=15, renew_s=5, retry_s=2)
B = leader.Election(namespace="surge", identity="b", duration_s=15, renew_s=5, retry_s=2)


def _lease(holder: str, renewed: datetime) -> dict[str, Any]:
    return leader.lease_body(leader.Election(namespace="surge", identity=holder), renewed, None)


@pytest.mark.parametrize(
    ("lease", "me", "now", "action"),
    [
        (None, "a", T0, "create"),
        (_lease("a", T0), "a", T0 + timedelta(seconds=3), "renew"),
        (_lease("b", T0), "a", T0 + timedelta(seconds=14), "wait"),
        (_lease("b", T0), "a", T0 + timedelta(seconds=16), "take"),
    ],
)
def test_decide(lease: dict[str, Any] | None, me: str, now: datetime, action: str) -> None:
    assert leader.decide(lease, me, now) == action


def test_one_leader_at_a_time_and_a_takeover_after_the_lease_runs_out() -> None:
    kube: Any = FakeKube()
    assert leader.try_once(kube, A, T0)  # created
    assert not leader.try_once(kube, B, T0 + timedelta(seconds=1))  # fresh: b waits
    assert leader.try_once(kube, A, T0 + timedelta(seconds=5))  # a renews
    assert not leader.try_once(kube, B, T0 + timedelta(seconds=19))  # renewed at 5: fresh
    assert leader.try_once(kube, B, T0 + timedelta(seconds=21))  # a silent since 5: b takes
    lease = kube.lease("surge", A.name)
    assert lease is not None
    assert lease["spec"]["holderIdentity"] == "b" and lease["spec"]["leaseTransitions"] == 1
    assert not leader.try_once(kube, A, T0 + timedelta(seconds=22))  # a, back, waits


def test_a_stale_write_loses() -> None:
    kube: Any = FakeKube()
    assert leader.try_once(kube, A, T0)
    stale = kube.lease("surge", A.name)
    assert leader.try_once(kube, A, T0 + timedelta(seconds=5))  # the version moves on
    body = leader.lease_body(B, T0 + timedelta(seconds=30), stale)
    assert not kube.replace_lease(body)  # b read before a's renewal: conflict


async def test_a_leader_that_cannot_renew_stops() -> None:
    kube: Any = FakeKube()
    fast_a = leader.Election(namespace="surge", identity="a", duration_s=1, renew_s=0.05)
    await asyncio.wait_for(leader.acquire(kube, fast_a), 2)
    lost = asyncio.Event()
    keeper = asyncio.create_task(leader.keep(kube, fast_a, lost))
    await asyncio.sleep(0.2)
    assert not lost.is_set()
    lease = kube.lease("surge", fast_a.name)
    assert lease is not None
    lease["spec"]["holderIdentity"] = "b"  # someone else holds it now
    kube.objects[("Lease", "surge", fast_a.name)] = lease
    await asyncio.wait_for(lost.wait(), 2)
    keeper.cancel()
