"""The Leases a ScalingExperiment holds: its Deployment's own, then its load's target's.

The load's key (what its runs load) is shared with the experiment's child LoadTests; the
Deployment's key keeps a second experiment whose load goes to another URL (another port,
another Service) from changing the same Deployment at once. The Deployment's is always
taken first and nothing waits for it while holding a load's, so two holders cannot wait on
each other. The API calls are target_lease's; this module decides which and in what order.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from surge.api.experiment import ScalingExperimentSpec
from surge.api.experiment_status import ScalingExperimentStatus
from surge.api.status import LeaseRef
from surge.operator.kube import target_lease
from surge.operator.kube.client import Kube
from surge.operator.policy.target import target_key


def lease_ref(key: str, run_namespace: str) -> LeaseRef:
    """Where acquire() put the Lease of `key`."""
    ns = target_lease.lease_namespace(key, run_namespace)
    return LeaseRef(namespace=ns, name=target_lease.lease_name(key), target=key)


def load_key(spec: ScalingExperimentSpec, namespace: str) -> str:
    return target_key(spec.load_test.wire(), namespace)


def take(
    kube: Kube,
    st: ScalingExperimentStatus,
    spec: ScalingExperimentSpec,
    *,
    namespace: str,
    holder: target_lease.Holder,
    now: datetime,
    still_holds: Callable[[target_lease.Holder], bool],
) -> target_lease.Acquired:
    """Both Leases, the Deployment's first; each one held is recorded in `st` at once, so
    that every end gives it back. Not held: who holds the one refused."""
    dep_key = target_lease.deployment_key(namespace, spec.target_ref.deployment)
    load = load_key(spec, namespace)

    def drop(ref: LeaseRef | None, wanted: str | None) -> LeaseRef | None:
        """`ref` kept while it is the Lease `wanted`; else released (None)."""
        if ref is not None and ref.target != wanted:
            target_lease.release(
                kube, target_key=ref.target, run_namespace=namespace, holder=holder
            )
            return None
        return ref

    # A spec edited while queued (or after a transient error past the take): give back
    # what it no longer names, so no Lease is left behind and none is held while waiting.
    st.deployment_lease, st.lease = drop(st.deployment_lease, dep_key), drop(st.lease, load)
    duration_s = int(spec.timeout) + target_lease.LEASE_SLACK_S
    got = target_lease.Acquired(False)
    for key in (dep_key, load):
        got = target_lease.acquire(
            kube,
            target_key=key,
            run_namespace=namespace,
            holder=holder,
            still_holds=still_holds,
            now=now,
            duration_s=duration_s,
        )
        if not got.held:
            if key == dep_key:  # never wait holding a load's
                st.lease = drop(st.lease, None)
            return got
        if key == dep_key:
            st.deployment_lease = lease_ref(key, namespace)
        else:
            st.lease = lease_ref(key, namespace)
    # The Deployment's was taken when the wait began (and its spec.timeout then): from
    # now it must last the run, spec.timeout from its start; nothing renews it later.
    target_lease.renew(
        kube,
        target_key=dep_key,
        run_namespace=namespace,
        holder=holder,
        now=now,
        duration_s=duration_s,
    )
    return got


def give_back(
    kube: Kube, st: ScalingExperimentStatus, *, namespace: str, holder: target_lease.Holder
) -> None:
    """Once the end is persisted: release what `st` records as held."""
    for held in (st.lease, st.deployment_lease):
        if held is not None:
            target_lease.release(
                kube, target_key=held.target, run_namespace=namespace, holder=holder
            )
    st.lease = st.deployment_lease = None
