"""One run per target, atomically: a coordination.k8s.io Lease per target.

The first run to create (or take over) the Lease holds the target; the API server's
create/update semantics (409 on a name taken, 409 on a stale resourceVersion) make the
check-and-take one atomic step, so two LoadTests created in one sync can never both run.
The Lease lives in the run's namespace (an experiment's Deployment key: its namespace) and
is released, with the resourceVersion read as precondition, once the run's end is persisted.
A holder that no longer exists, no longer runs, or let the Lease expire loses it.

Decisions are pure (`holder_identity`, `parse_holder`, `lease_object`, `expired`); `acquire`
and `release` are the only functions that call the API.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from surge.operator.conditions import parse_time
from surge.operator.kube.client import Kube

PREFIX = "surge-target-"
LEASE_SLACK_S = 300
"""Added to a holder's own bound (its timeouts) for the Lease's duration."""
TERMINAL = frozenset({"Succeeded", "Failed", "Aborted"})


@dataclass(frozen=True)
class Holder:
    """Who holds a target: a LoadTest run or a ScalingExperiment."""

    kind: str
    namespace: str
    name: str
    uid: str
    run_id: str = ""

    def identity(self) -> str:
        return "/".join((self.kind, self.namespace, self.name, self.uid, self.run_id))

    def describe(self) -> str:
        run = f" run {self.run_id}" if self.run_id else ""
        return f"{self.kind} {self.namespace}/{self.name}{run}"


def parse_holder(identity: str | None) -> Holder | None:
    parts = (identity or "").split("/")
    if len(parts) != 5:
        return None
    return Holder(*parts)


def lease_name(target_key: str) -> str:
    """A DNS-safe, stable name per target key ("service/ns/name:port", "url/host:port", or
    an experiment's "deployment/ns/name")."""
    return PREFIX + hashlib.sha256(target_key.encode()).hexdigest()[:16]


def deployment_key(namespace: str, name: str) -> str:
    """The key of an experiment's Deployment (held beside its load's target key)."""
    return f"deployment/{namespace}/{name}"


def lease_namespace(target_key: str, run_namespace: str) -> str:
    """A Deployment's own namespace; else the run's (where the operator surely may write: a
    Service of the run's namespace is keyed there, another namespace's is not shared)."""
    kind, _, rest = target_key.partition("/")
    return rest.split("/", 1)[0] if kind == "deployment" else run_namespace


def lease_object(
    namespace: str, name: str, target_key: str, holder: Holder, now: datetime, duration_s: int
) -> dict[str, Any]:
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "surge"},
            "annotations": {"surge.dev/target": target_key},
        },
        "spec": {
            "holderIdentity": holder.identity(),
            "leaseDurationSeconds": max(int(duration_s), 1),
            "acquireTime": stamp,
            "renewTime": stamp,
        },
    }


def expired(lease: dict[str, Any], now: datetime) -> bool:
    spec = lease.get("spec") or {}
    renewed = _micro_time(spec.get("renewTime") or spec.get("acquireTime"))
    duration = int(spec.get("leaseDurationSeconds") or 0)
    return renewed is None or now > renewed + timedelta(seconds=duration)


def _micro_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return parse_time(text.split(".")[0].rstrip("Z") + "Z")


@dataclass(frozen=True)
class Acquired:
    """held: this holder has the target now; else `by` names who has it."""

    held: bool
    by: Holder | None = None


def acquire(
    kube: Kube,
    *,
    target_key: str,
    run_namespace: str,
    holder: Holder,
    still_holds: Callable[[Holder], bool],
    now: datetime,
    duration_s: int,
    shared_with: str | None = None,
) -> Acquired:
    """Take the target's Lease for `holder`, or say who holds it. `still_holds(other)` says
    whether another holder still runs (its object exists with that uid and run, not
    finished); one that does not, or whose Lease expired, is taken over. A holder whose uid
    is `shared_with` (the ScalingExperiment that owns this LoadTest) shares its Lease."""
    ns, name = lease_namespace(target_key, run_namespace), lease_name(target_key)
    wanted = lease_object(ns, name, target_key, holder, now, duration_s)
    if kube.create_lease(wanted):
        return Acquired(True)
    live = kube.lease(ns, name)
    if live is None:  # released between our create and read: try again next tick
        return Acquired(False)
    current = parse_holder((live.get("spec") or {}).get("holderIdentity"))
    if current == holder or (current is not None and current.uid == shared_with):
        return Acquired(True)
    if current is not None and not expired(live, now) and still_holds(current):
        return Acquired(False, current)
    wanted["metadata"]["resourceVersion"] = live["metadata"].get("resourceVersion")
    return Acquired(kube.replace_lease(wanted), None if current is None else current)


def renew(
    kube: Kube,
    *,
    target_key: str,
    run_namespace: str,
    holder: Holder,
    now: datetime,
    duration_s: int,
) -> None:
    """Restart a Lease this holder has for `duration_s` from now (a resourceVersion
    precondition: one taken over meanwhile is left alone, and a 409 is retried next tick)."""
    ns, name = lease_namespace(target_key, run_namespace), lease_name(target_key)
    live = kube.lease(ns, name)
    if live is None or parse_holder((live.get("spec") or {}).get("holderIdentity")) != holder:
        return
    wanted = lease_object(ns, name, target_key, holder, now, duration_s)
    wanted["metadata"]["resourceVersion"] = live["metadata"].get("resourceVersion")
    kube.replace_lease(wanted)


def release(kube: Kube, *, target_key: str, run_namespace: str, holder: Holder) -> None:
    """Give the Lease back if this holder still has it (a resourceVersion precondition keeps
    a Lease someone took over in the meantime)."""
    ns, name = lease_namespace(target_key, run_namespace), lease_name(target_key)
    live = kube.lease(ns, name)
    if live is None:
        return
    if parse_holder((live.get("spec") or {}).get("holderIdentity")) == holder:
        kube.delete_lease(ns, name, str(live["metadata"].get("resourceVersion") or ""))


def holder_alive(kube: Kube, other: Holder) -> bool:
    """Does `other` still run: its object exists with that uid (and, for a LoadTest, that
    run) and has not finished?"""
    read = kube.loadtest if other.kind == "LoadTest" else kube.experiment
    obj = read(other.namespace, other.name)
    if obj is None or obj["metadata"].get("uid") != other.uid:
        return False
    st = obj.get("status") or {}
    if other.kind == "LoadTest" and st.get("runId") != other.run_id:
        return False
    return st.get("phase") not in TERMINAL
