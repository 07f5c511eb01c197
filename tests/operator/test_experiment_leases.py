"""The two Leases of a ScalingExperiment (operator/experiment/leases.py) on the fake API."""

from __future__ import annotations

from datetime import UTC, datetime

from surge.api.experiment import ScalingExperimentSpec
from surge.api.experiment_status import ScalingExperimentStatus
from surge.operator.experiment import leases
from surge.operator.kube import target_lease
from tests.operator.fake_kube import FakeKube
from tests.operator.test_experiments import NS, _spec

T0 = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)
ME = target_lease.Holder("ScalingExperiment", NS, "sx", "u-sx")


def _take(kube: FakeKube, st: ScalingExperimentStatus, spec: ScalingExperimentSpec) -> bool:
    got = leases.take(kube, st, spec, namespace=NS, holder=ME, now=T0, still_holds=lambda _: True)  # type: ignore[arg-type]
    return got.held


def _durations(kube: FakeKube) -> dict[str, int]:
    return {
        o["metadata"]["annotations"]["surge.dev/target"]: o["spec"]["leaseDurationSeconds"]
        for k, o in kube.objects.items()
        if k[0] == "Lease"
    }


def test_the_deployments_lease_outlasts_a_full_queue_wait_and_then_a_full_run() -> None:
    """Nothing renews it, and it is held while queued (up to spec.timeout from creation)
    and then through the run (up to spec.timeout from its start)."""
    kube, st = FakeKube(), ScalingExperimentStatus()
    spec = ScalingExperimentSpec.model_validate(_spec(timeout="4h"))
    assert _take(kube, st, spec)
    assert st.deployment_lease is not None and st.lease is not None
    assert _durations(kube) == {
        f"deployment/{NS}/alice": 2 * 4 * 3600 + leases.LEASE_SLACK_S,
        st.lease.target: 4 * 3600 + leases.LEASE_SLACK_S,
    }


def test_a_targetref_edited_while_queued_gives_the_old_deployments_lease_back() -> None:
    kube, st = FakeKube(), ScalingExperimentStatus()
    other = target_lease.Holder("LoadTest", NS, "busy", "u-busy", "1")
    spec = ScalingExperimentSpec.model_validate(_spec())
    load = leases.load_key(spec, NS)
    ns, name = target_lease.lease_namespace(load, NS), target_lease.lease_name(load)
    kube.create_lease(target_lease.lease_object(ns, name, load, other, T0, 3600))
    assert not _take(kube, st, spec)  # queued behind the LoadTest, holding alice's
    assert st.deployment_lease is not None and st.deployment_lease.target.endswith("/alice")
    edited = _spec()
    edited["targetRef"] = {"deployment": "bob", "hpa": "alice"}
    assert not _take(kube, st, ScalingExperimentSpec.model_validate(edited))
    assert st.deployment_lease is not None and st.deployment_lease.target.endswith("/bob")
    assert f"deployment/{NS}/alice" not in _durations(kube)  # released, not orphaned
    leases.give_back(kube, st, namespace=NS, holder=ME)  # type: ignore[arg-type]
    assert set(_durations(kube)) == {load}  # only the LoadTest's is left
    assert st.deployment_lease is None and st.lease is None
