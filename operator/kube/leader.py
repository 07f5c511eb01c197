"""Leader election for `surge operator --leader-elect`: one coordination.k8s.io Lease, the
client-go way, so several replicas run and exactly one acts.

The leader renews the Lease every `renew_s`; a standby tries every `retry_s` and takes the
Lease once it has not been renewed for `duration_s` (its holder died or was cut off). Every
write carries the resourceVersion read, so two candidates can never both win (the loser
gets a conflict). A leader that cannot renew within `duration_s` stops acting at once.

`decide` is pure; `acquire` and `keep` are the loop, with the API calls in threads (the
Kubernetes client blocks).
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from surge.operator.kube.client import Kube, KubeError

log = logging.getLogger("surge.operator.kube.leader")


@dataclass(frozen=True)
class Election:
    namespace: str
    name: str = "surge-operator-leader"
    identity: str = ""
    duration_s: float = 15.0
    renew_s: float = 5.0
    retry_s: float = 2.0


Action = Literal["create", "take", "renew", "wait"]


def _micro(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.strptime(text.rstrip("Z")[:26], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=UTC)


def decide(lease: dict[str, Any] | None, me: str, now: datetime) -> Action:
    """create: no Lease yet; renew: mine; take: another's, not renewed within its duration;
    wait: another's, still fresh."""
    if lease is None:
        return "create"
    spec = lease.get("spec") or {}
    if spec.get("holderIdentity") == me:
        return "renew"
    renewed = _parse(spec.get("renewTime")) or _parse(spec.get("acquireTime"))
    duration = float(spec.get("leaseDurationSeconds") or 0)
    if not spec.get("holderIdentity") or renewed is None:
        return "take"
    return "take" if now > renewed + timedelta(seconds=duration) else "wait"


def lease_body(e: Election, now: datetime, live: dict[str, Any] | None) -> dict[str, Any]:
    """The Lease as `e.identity` holds it now (acquired now, or renewed keeping acquireTime)."""
    spec = dict((live or {}).get("spec") or {})
    mine = spec.get("holderIdentity") == e.identity
    transitions = int(spec.get("leaseTransitions") or 0) + (0 if mine or live is None else 1)
    meta: dict[str, Any] = {"name": e.name, "namespace": e.namespace}
    if live is not None:
        meta["resourceVersion"] = live["metadata"].get("resourceVersion")
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": meta,
        "spec": {
            "holderIdentity": e.identity,
            "leaseDurationSeconds": max(1, math.ceil(e.duration_s)),  # whole seconds, >= 1
            "acquireTime": spec.get("acquireTime") if mine else _micro(now),
            "renewTime": _micro(now),
            "leaseTransitions": transitions,
        },
    }


def try_once(kube: Kube, e: Election, now: datetime) -> bool:
    """One attempt to hold the Lease (create, take or renew); True when `e.identity` holds it."""
    live = kube.lease(e.namespace, e.name)
    action = decide(live, e.identity, now)
    if action == "wait":
        return False
    body = lease_body(e, now, live)
    if action == "create":
        return kube.create_lease(body)
    return kube.replace_lease(body)


async def acquire(kube: Kube, e: Election) -> None:
    """Wait until this candidate holds the Lease (API errors are retried)."""
    while True:
        try:
            if await asyncio.to_thread(try_once, kube, e, datetime.now(UTC)):
                log.info("leader: %s holds %s/%s", e.identity, e.namespace, e.name)
                return
        except KubeError as exc:
            log.warning("leader election: %s", exc)
        await asyncio.sleep(e.retry_s)


async def keep(kube: Kube, e: Election, lost: asyncio.Event) -> None:
    """Renew until a renewal fails for `duration_s` (or another holder appears): then set
    `lost`, so the operator stops acting before anyone else can take over."""
    last = asyncio.get_running_loop().time()
    while not lost.is_set():
        await asyncio.sleep(e.renew_s)
        try:
            held = await asyncio.to_thread(try_once, kube, e, datetime.now(UTC))
        except KubeError as exc:
            log.warning("leader renewal: %s", exc)
            held = None
        now = asyncio.get_running_loop().time()
        if held:
            last = now
        elif held is False or now - last >= e.duration_s - e.renew_s:
            log.error("leader: %s lost %s/%s; stopping", e.identity, e.namespace, e.name)
            lost.set()
