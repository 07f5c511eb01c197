"""charts/surge/argocd/health-*.lua: the Argo CD health checks, run in a real Lua runtime.

Argo CD (util/lua/lua.go) runs a health script from argocd-cm with the global `obj` set to the
resource (JSON null becomes nil, arrays become 1-based tables) and without Lua's standard
libraries: only base, table, package and a reduced os are opened, so strings have no methods.
`sandboxed` rebuilds that environment in lupa, and the script's return value must be a table
whose `status` is one of Argo CD's health codes and whose `message` is a string.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from surge.api.experiment_status import ComparisonRow, ScalingExperimentStatus
from surge.api.status import Condition, LoadTestStatus, Phase, Summary, WorkerCounts
from tests.support.cluster import REPO_ROOT

ARGOCD = REPO_ROOT / "charts" / "surge" / "argocd"
SCRIPTS: dict[str, Path] = {
    "LoadTest": ARGOCD / "health-loadtest.lua",
    "ScalingExperiment": ARGOCD / "health-scalingexperiment.lua",
}
HEALTH_CODES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}
IN_FLIGHT = [Phase.PENDING, Phase.WAITING_FOR_TARGET, Phase.RUNNING, Phase.ANALYZING]

# gopher-lua (Argo CD's Lua) implements Lua 5.1; 5.4 guards against version-specific code.
LUA_MODULES = ["lupa.lua51", "lupa.lua54"]

# Everything Argo CD leaves closed for argocd-cm scripts (useOpenLibs unset).
CLOSED_LIBRARIES = ("string", "math", "io", "os", "debug", "coroutine", "utf8", "bit32", "jit")

Health = tuple[str, str]
Run = Callable[[str, dict[str, Any]], Health]


def sandboxed(module: str) -> Any:
    lupa = pytest.importorskip(module)
    lua = lupa.LuaRuntime(unpack_returned_tuples=False)
    lua.execute('debug.setmetatable("", nil)')  # no string methods ("x"):find(...)
    g = lua.globals()
    for name in CLOSED_LIBRARIES:
        g[name] = None
    return lua


def to_lua(lua: Any, value: Any) -> Any:
    """A JSON value as Argo CD hands it to Lua: null is nil, lists are 1-based tables."""
    if isinstance(value, dict):
        table = lua.table()
        for key, item in value.items():
            if item is not None:
                table[key] = to_lua(lua, item)
        return table
    if isinstance(value, list):
        table = lua.table()
        for index, item in enumerate(value, start=1):
            if item is not None:
                table[index] = to_lua(lua, item)
        return table
    return value


@pytest.fixture(params=LUA_MODULES)
def run(request: pytest.FixtureRequest) -> Run:
    module: str = request.param

    def health(kind: str, obj: dict[str, Any]) -> Health:
        lua = sandboxed(module)
        lua.globals().obj = to_lua(lua, json.loads(json.dumps(obj)))
        hs = lua.execute(SCRIPTS[kind].read_text())
        assert lua.eval("type")(hs) == "table", "the script must return a table"
        status, message = hs["status"], hs["message"]
        assert status in HEALTH_CODES, status
        assert isinstance(message, str), message
        return status, message

    return health


def loadtest(status: LoadTestStatus | None = None, **spec: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "surge.dev/v1alpha1",
        "kind": "LoadTest",
        "metadata": {"name": "alice-smoke", "namespace": "default"},
        "spec": {"target": {"url": "http://alice.default.svc:8080"}, **spec},
    }
    if status is not None:
        obj["status"] = status.model_dump(mode="json", by_alias=True)
    return obj


def experiment(status: ScalingExperimentStatus | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "surge.dev/v1alpha1",
        "kind": "ScalingExperiment",
        "metadata": {"name": "alice-hpa", "namespace": "default"},
        "spec": {"targetRef": {"deployment": "alice"}},
    }
    if status is not None:
        obj["status"] = status.model_dump(mode="json", by_alias=True)
    return obj


def completed(reason: str, message: str) -> Condition:
    return Condition(type="Completed", status="False", reason=reason, message=message)


@pytest.mark.parametrize("module", LUA_MODULES)
def test_the_sandbox_is_argo_cds(module: str) -> None:
    """The restricted environment really lacks string methods and libraries."""
    lua = sandboxed(module)
    with pytest.raises(Exception, match="index"):
        lua.execute('return ("x"):len()')
    assert lua.eval("string") is None
    assert lua.eval("type(ipairs)") == "function"


@pytest.mark.parametrize("kind", sorted(SCRIPTS))
def test_no_status_is_progressing(run: Run, kind: str) -> None:
    obj = loadtest() if kind == "LoadTest" else experiment()
    status, message = run(kind, obj)
    assert status == "Progressing"
    assert "waiting for the operator" in message


@pytest.mark.parametrize("kind", sorted(SCRIPTS))
def test_empty_status_and_odd_shapes_never_raise(run: Run, kind: str) -> None:
    shapes: list[dict[str, Any]] = [
        {},
        {"status": {}},
        {"status": {"phase": None}},
        {"spec": "oops", "status": {"phase": "Aborted", "conditions": "oops"}},
        {"status": {"phase": "Aborted", "conditions": [{"type": 1}, "x", {}], "message": 5}},
        {"status": {"phase": "Succeeded", "summary": "oops", "recommendation": 3}},
        {"spec": {"suspend": "yes"}, "status": {"phase": "Running", "currentVariant": {}}},
    ]
    for obj in shapes:
        status, _ = run(kind, obj)
        assert status in {"Progressing", "Degraded", "Healthy"}, obj


@pytest.mark.parametrize("phase", IN_FLIGHT)
def test_loadtest_in_flight_is_progressing(run: Run, phase: Phase) -> None:
    st = LoadTestStatus(phase=phase, run_id="1", message="waiting for Deployment alice")
    assert run("LoadTest", loadtest(st)) == (
        "Progressing",
        f"{phase.value}: waiting for Deployment alice",
    )


def test_loadtest_in_flight_without_message(run: Run) -> None:
    st = LoadTestStatus(phase=Phase.RUNNING)
    assert run("LoadTest", loadtest(st)) == ("Progressing", "Running")


def test_loadtest_succeeded_is_healthy_with_the_verdict(run: Run) -> None:
    st = LoadTestStatus(
        phase=Phase.SUCCEEDED,
        run_id="1",
        message="every threshold held",
        summary=Summary(target_rps=50, achieved_rps=49.8, p95_ms=412.0, verdict="Passed"),
        workers=WorkerCounts(expected=2, succeeded=2, reported=2),
        conditions=[
            Condition(type="ThresholdsPassed", status="True", reason="AllThresholdsPassed")
        ],
    )
    assert run("LoadTest", loadtest(st)) == (
        "Healthy",
        "Succeeded (verdict Passed): every threshold held",
    )


def test_loadtest_invalid_spec_is_degraded(run: Run) -> None:
    msg = "spec.load.stages[0].target: must be > 0"
    st = LoadTestStatus(
        phase=Phase.FAILED,
        run_id="1",
        message=msg,
        summary=Summary(verdict="Failed"),
        conditions=[Condition(type="Ready", status="False", reason="InvalidSpec", message=msg)],
    )
    assert run("LoadTest", loadtest(st)) == ("Degraded", f"Failed: {msg}")


def test_loadtest_threshold_failed_is_degraded(run: Run) -> None:
    msg = "latency.p95 = 1.2s < 800ms ✗"
    st = LoadTestStatus(
        phase=Phase.FAILED,
        run_id="1",
        message=msg,
        summary=Summary(p95_ms=1200.0, verdict="Failed"),
        conditions=[
            Condition(
                type="ThresholdsPassed", status="False", reason="ThresholdFailed", message=msg
            )
        ],
    )
    assert run("LoadTest", loadtest(st)) == ("Degraded", f"Failed: {msg}")


def test_loadtest_aborted_by_suspend_is_suspended(run: Run) -> None:
    st = LoadTestStatus(
        phase=Phase.ABORTED,
        run_id="1",
        message="spec.suspend is true",
        conditions=[completed("Suspended", "spec.suspend is true")],
    )
    status, message = run("LoadTest", loadtest(st, suspend=True))
    assert status == "Suspended"
    assert message.startswith("Aborted (suspended): spec.suspend is true")
    assert "spec.runId" in message


def test_loadtest_aborted_by_suspend_stays_suspended_after_unsuspending(run: Run) -> None:
    """Aborted is final until runId changes, so the health keeps saying why."""
    st = LoadTestStatus(phase=Phase.ABORTED, conditions=[completed("Suspended", "x")])
    assert run("LoadTest", loadtest(st, suspend=False))[0] == "Suspended"
    by_message = LoadTestStatus(phase=Phase.ABORTED, message="spec.suspend is true")
    assert run("LoadTest", loadtest(by_message))[0] == "Suspended"


@pytest.mark.parametrize(
    ("reason", "msg"),
    [
        ("Deleted", "the LoadTest was deleted during the run"),
        ("RunTimeout", "the load ran past its duration plus timeouts.runGrace"),
    ],
)
def test_loadtest_aborted_otherwise_is_degraded(run: Run, reason: str, msg: str) -> None:
    st = LoadTestStatus(phase=Phase.ABORTED, message=msg, conditions=[completed(reason, msg)])
    assert run("LoadTest", loadtest(st)) == ("Degraded", f"Aborted: {msg}")


def test_loadtest_suspended_while_pending_is_suspended(run: Run) -> None:
    st = LoadTestStatus(phase=Phase.PENDING, run_id="1", message="queued behind alice-soak")
    status, message = run("LoadTest", loadtest(st, suspend=True))
    assert status == "Suspended"
    assert "spec.suspend is true" in message
    assert "Pending" in message
    assert run("LoadTest", loadtest(None, suspend=True))[0] == "Suspended"


def test_loadtest_suspend_does_not_hide_a_terminal_phase(run: Run) -> None:
    ok = LoadTestStatus(phase=Phase.SUCCEEDED, summary=Summary(verdict="Passed"))
    assert run("LoadTest", loadtest(ok, suspend=True))[0] == "Healthy"
    failed = LoadTestStatus(phase=Phase.FAILED, message="RunTimeout")
    assert run("LoadTest", loadtest(failed, suspend=True))[0] == "Degraded"


@pytest.mark.parametrize("phase", IN_FLIGHT)
def test_experiment_in_flight_is_progressing(run: Run, phase: Phase) -> None:
    st = ScalingExperimentStatus(phase=phase, current_variant="gpu", message="rolling out gpu")
    assert run("ScalingExperiment", experiment(st)) == (
        "Progressing",
        f"{phase.value} (variant gpu): rolling out gpu",
    )
    st = ScalingExperimentStatus(phase=phase, message="all variants ran; comparing")
    assert run("ScalingExperiment", experiment(st)) == (
        "Progressing",
        f"{phase.value}: all variants ran; comparing",
    )


def test_experiment_succeeded_is_healthy_with_the_recommendation(run: Run) -> None:
    line = "gpu: passes the SLO with the best costPer1kRequests (0.0123); ahead of cpu."
    st = ScalingExperimentStatus(
        phase=Phase.SUCCEEDED,
        message=line,
        recommendation=line,
        comparison=[
            ComparisonRow(name="gpu", repetitions=2, passed=True, p95_ms=300.0),
            ComparisonRow(name="cpu", repetitions=2, passed=True, p95_ms=700.0),
        ],
    )
    assert run("ScalingExperiment", experiment(st)) == ("Healthy", f"Succeeded: {line}")


def test_experiment_dry_run_is_healthy_with_the_message(run: Run) -> None:
    msg = "dry run: the plan is in status.plan; nothing was applied"
    st = ScalingExperimentStatus(phase=Phase.SUCCEEDED, message=msg)
    assert run("ScalingExperiment", experiment(st)) == ("Healthy", f"Succeeded: {msg}")


@pytest.mark.parametrize(
    "msg",
    [
        "spec.load: invalid",
        "the experiment ran past spec.timeout (3600s); originals restored",
    ],
)
def test_experiment_failed_is_degraded(run: Run, msg: str) -> None:
    st = ScalingExperimentStatus(
        phase=Phase.FAILED,
        message=msg,
        conditions=[Condition(type="Ready", status="False", reason="InvalidSpec", message=msg)],
    )
    assert run("ScalingExperiment", experiment(st)) == ("Degraded", f"Failed: {msg}")


def test_experiment_aborted(run: Run) -> None:
    spent = ScalingExperimentStatus(
        phase=Phase.ABORTED, message="spec.budget spent; originals restored"
    )
    assert run("ScalingExperiment", experiment(spent)) == (
        "Degraded",
        "Aborted: spec.budget spent; originals restored",
    )
    paused = ScalingExperimentStatus(
        phase=Phase.ABORTED, conditions=[completed("Suspended", "spec.suspend is true")]
    )
    assert run("ScalingExperiment", experiment(paused))[0] == "Suspended"


@pytest.mark.parametrize("kind", sorted(SCRIPTS))
@pytest.mark.parametrize("phase", list(Phase))
def test_every_phase_has_a_defined_health(run: Run, kind: str, phase: Phase) -> None:
    """A new Phase without a branch in the scripts would come out as Unknown."""
    obj = {"status": {"phase": phase.value, "message": "m"}}
    status, message = run(kind, obj)
    assert status in HEALTH_CODES - {"Unknown", "Missing"}, (kind, phase)
    assert phase.value in message


@pytest.mark.parametrize("kind", sorted(SCRIPTS))
def test_an_unknown_phase_is_unknown(run: Run, kind: str) -> None:
    assert run(kind, {"status": {"phase": "Exploded"}}) == ("Unknown", "unknown phase Exploded")


def argocd_cm_data() -> dict[str, str]:
    """The argocd-cm entries, as docs/deploy.md's one-liner writes them."""
    return {
        f"resource.customizations.health.surge.dev_{kind}": path.read_text()
        for kind, path in SCRIPTS.items()
    }


def test_deploy_doc_shows_the_scripts_verbatim() -> None:
    """docs/deploy.md's argocd-cm snippet parses to exactly the two files under their keys."""
    doc = (REPO_ROOT / "docs" / "deploy.md").read_text()
    found = re.search(r"```yaml\n(apiVersion: v1\nkind: ConfigMap\n.*?)```", doc, re.S)
    assert found, "docs/deploy.md has no argocd-cm snippet"
    cm = yaml.safe_load(found.group(1))
    assert cm["metadata"]["name"] == "argocd-cm"
    assert cm["data"] == argocd_cm_data()
    for kind in SCRIPTS:
        assert f"health-{kind.lower()}.lua" in doc
