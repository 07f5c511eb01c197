"""The two Leases of a ScalingExperiment (operator/experiment/leases.py) on the fake API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from surge.api.experiment import ScalingExperimentSpec
from surge.api.experiment_status import ScalingExperimentStatus
from surge.operator.experiment import leases
from surge.operator.kube import target_lease
from tests.operator.fake_kube import FakeKube
from tests.operator.test_experiments import NS, _spec

T0 = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)
ME = target_lease.Holder("ScalingExperiment", NS, "sx", "u-sx")


def _take(
    kube: FakeKube, st: ScalingExperimentStatus, spec: ScalingExperimentSpec, now: datetime = T0
) -> bool:
    got = leases.take(kube, st, spec, namespace=NS, holder=ME, now=now, still_holds=lambda _: True)  # type: ignore[arg-type]
    return got.held


def _leases(kube: FakeKube) -> dict[str, dict[str, Any]]:
    return {
        o["metadata"]["annotations"]["surge.dev/target"]: o["spec"]
        for k, o in kube.objects.items()
        if k[0] == "Lease"
    }


def _durations(kube: FakeKube) -> dict[str, int]:
    return {t: spec["leaseDurationSeconds"] for t, spec in _leases(kube).items()}


def _busy_load(kube: FakeKube, spec: ScalingExperimentSpec) -> str:
    """The load's Lease held by a LoadTest that still runs."""
    other = target_lease.Holder("LoadTest", NS, "busy", "u-busy", "1")
    load = leases.load_key(spec, NS)
    ns, name = target_lease.lease_namespace(load, NS), target_lease.lease_name(load)
    kube.create_lease(target_lease.lease_object(ns, name, load, other, T0, 3600))
    return load


def test_the_deployments_lease_lasts_the_run_from_its_start_after_a_long_wait() -> None:
    """Taken when the wait began and renewed by nothing later: restarted at the start, for
    spec.timeout (as it reads then) and the slack."""
    kube, st = FakeKube(), ScalingExperimentStatus()
    spec = ScalingExperimentSpec.model_validate(_spec(timeout="4h"))
    load = _busy_load(kube, spec)
    assert not _take(kube, st, spec)
    dep = f"deployment/{NS}/alice"
    assert _leases(kube)[dep]["renewTime"].startswith("2026-11-29T12:00:00")
    del kube.objects[("Lease", NS, target_lease.lease_name(load))]  # the LoadTest ended
    later = T0 + timedelta(hours=3)
    assert _take(kube, st, spec, later)
    assert _leases(kube)[dep]["renewTime"].startswith("2026-11-29T15:00:00")
    slack = target_lease.LEASE_SLACK_S
    assert _durations(kube) == {dep: 4 * 3600 + slack, load: 4 * 3600 + slack}


def test_a_targetref_edited_while_queued_gives_the_old_deployments_lease_back() -> None:
    kube, st = FakeKube(), ScalingExperimentStatus()
    spec = ScalingExperimentSpec.model_validate(_spec())
    load = _busy_load(kube, spec)
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


def test_a_refused_deployment_lease_is_never_waited_for_holding_the_loads() -> None:
    """Both held, then (a transient error kept it Pending) targetRef names a Deployment
    another experiment holds: the load's Lease goes back too, so no two wait on each other."""
    kube, st = FakeKube(), ScalingExperimentStatus()
    spec = ScalingExperimentSpec.model_validate(_spec())
    assert _take(kube, st, spec)
    rival = target_lease.Holder("ScalingExperiment", NS, "rival", "u-rival")
    bob = f"deployment/{NS}/bob"
    ns, name = target_lease.lease_namespace(bob, NS), target_lease.lease_name(bob)
    kube.create_lease(target_lease.lease_object(ns, name, bob, rival, T0, 3600))
    edited = _spec()
    edited["targetRef"] = {"deployment": "bob", "hpa": "alice"}
    assert not _take(kube, st, ScalingExperimentSpec.model_validate(edited))
    assert st.lease is None and st.deployment_lease is None
    assert set(_durations(kube)) == {bob}  # only the rival's is left
