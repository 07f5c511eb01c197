"""Fuzzing the admission path (#25): for any spec the generated CRD schema admits, the
operator's first reconcile (admission included) on the in-memory FakeKube never raises,
ends in a phase with a reason, keeps status under 256 KiB and spends under 1 s of CPU.

The documents come from the CRD's own structural schema (tests/operator/crd_strategy.py),
CEL rules applied; the seed is fixed (SURGE_FUZZ_SEED, default 25) and printed, so a CI
failure replays with the same examples. SURGE_FUZZ_EXAMPLES raises the count for a longer
local hunt.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, assume, example, given, seed, settings
from hypothesis import strategies as st

from surge.api.crd import experiment_crd, loadtest_crd
from surge.api.status import TERMINAL_PHASES
from surge.operator.context import Decision
from surge.operator.experiment import reconcile as experiments
from surge.operator.loadtest import lifecycle
from surge.operator.settings import Settings
from tests.operator import test_experiments as sx
from tests.operator import test_lifecycle as lt
from tests.operator.crd_strategy import cel_admits, documents, mutations
from tests.operator.fake_kube import FakeKube, merge_patch

SEED = int(os.environ.get("SURGE_FUZZ_SEED", "25"))
EXAMPLES = int(os.environ.get("SURGE_FUZZ_EXAMPLES", "120"))
STATUS_BYTES = 256 * 1024
CPU_S = 1.0
T0 = datetime(2026, 12, 6, 12, 0, 0, tzinfo=UTC)
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
print(f"fuzzing the admission path with seed {SEED}, {EXAMPLES} examples a kind")


def _spec_schema(crd: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
        "spec"
    ]
    return spec


# Half from the schema alone (most fail their first field check), half a valid spec with up
# to three fields replaced by anything the schema admits there (reaching the later checks).
_LT, _SX = _spec_schema(loadtest_crd()), _spec_schema(experiment_crd())
LOADTEST_SPECS = st.one_of(documents(_LT), mutations(lt._spec(), _LT))
EXPERIMENT_SPECS = st.one_of(documents(_SX), mutations(sx._spec(), _SX))


def _first_reconcile(run: Any, body: dict[str, Any], kube: FakeKube) -> tuple[Decision, float]:
    start = time.process_time()
    step: Decision = run(body, kube, Settings(), T0)
    return step, time.process_time() - start


def _check(step: Decision, cpu_s: float) -> None:
    status = step.status
    size = len(json.dumps(status).encode())
    assert size < STATUS_BYTES, size
    assert cpu_s < CPU_S, cpu_s
    conditions = status.get("conditions") or []
    assert conditions and all(c.get("reason") for c in conditions), status
    phase = status.get("phase")
    assert phase is not None, status
    if phase in {p.value for p in TERMINAL_PHASES}:
        assert status.get("message"), status


@seed(SEED)
@FUZZ
@given(spec=LOADTEST_SPECS)
def test_any_loadtest_the_crd_admits_gets_a_phase_and_a_reason(spec: dict[str, Any]) -> None:
    assume(cel_admits(spec))
    kube = FakeKube()
    kube.put(lt.SERVICE)
    kube.put(lt._deployment(ready=True))
    step, cpu_s = _first_reconcile(lifecycle.reconcile, lt._body(spec), kube)
    _check(step, cpu_s)


def _worst_simulation() -> dict[str, Any]:
    """The most the default policy admits to simulate: 20 variants, liveTopK, a 1h load."""
    from tests.operator.test_experiment_simulation import _spec, _variant

    spec = _spec(variants=[_variant(f"v{i}", "cpu", 1 + i % 3, 4 + i % 5) for i in range(20)])
    spec["loadTest"]["load"]["stages"] = [{"duration": "1h", "target": 50}]
    worst: dict[str, Any] = spec
    return worst


@seed(SEED)
@FUZZ
@example(spec=_worst_simulation(), target="alice")
@given(spec=EXPERIMENT_SPECS, target=st.sampled_from(["alice", "gone"]))
def test_any_experiment_the_crd_admits_gets_a_phase_and_a_reason(
    spec: dict[str, Any], target: str
) -> None:
    assume(cel_admits(spec.get("loadTest") or {}))
    spec["targetRef"] = {**spec["targetRef"], "deployment": target}
    step, cpu_s = _first_reconcile(experiments.reconcile_experiment, sx._body(spec), sx.make_kube())
    _check(step, cpu_s)
    # What was written reads back (a dry run's plan included).
    merge_patch({}, step.status)
