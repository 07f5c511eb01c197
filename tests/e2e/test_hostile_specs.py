"""Hostile specs on the real control plane (#25, items 3-5): a tenant bound only to the
chart's `surge-edit` role, under the chart's admission policy and the operator's policy file
(tests/e2e/test_tenancy.py's harness), applies the specs that crash-looped or starved the
operator: a sweep of trillions of steps, a body nested as deep as the API server stores
(its JSON decoder's limit: 10,000 levels for the whole object), 2,000 dry-run variants.
Each is refused at apply or ends Failed with a reason; the operator process stays up, its
watch goes on, and the same tenant's next valid LoadTest succeeds.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.e2e.operator_support import GROUP, PLURAL, VERSION, Operator, get, wait_phase
from tests.e2e.test_tenancy import (  # noqa: F401 - the tenancy fixtures, shared
    SX,
    _create,
    _experiment,
    _lt,
    admin_objects,
    alice_at,
    policed_operator,
    tenant,
)
from tests.support.cluster import wait_until
from tests.support.podrunner import PodRunner

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(420)]

DEEPEST = 9_996
"""Body levels of the deepest LoadTest the API server stores: the object, spec and scenario
make 3 more, and its JSON decoder refuses more than 10,000 (kubectl too, client-side)."""


@pytest.fixture
def deep_json() -> Iterator[None]:
    """This process, too, must encode and decode 10,000 levels (the client uses json)."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(30_000)
    yield
    sys.setrecursionlimit(limit)


def _nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


def _refused_or_failed(
    api: client.ApiClient,
    who: client.ApiClient,
    ns: str,
    obj: dict[str, Any],
    op: Operator,
    plural: str = PLURAL,
) -> str:
    """Why the API server refused it, else the reason it Failed with."""
    try:
        _create(who, ns, obj, plural)
    except ApiException as exc:
        if exc.status not in (400, 403, 413, 422):
            raise
        return f"refused at apply: {json.loads(exc.body or '{}').get('message', '')[:300]}"
    name = obj["metadata"]["name"]
    if plural == PLURAL:
        done = wait_phase(api, ns, name, {"Failed", "Succeeded"}, op, timeout_s=60)
    else:
        done = _wait_experiment(api, ns, name)
    status = done["status"]
    assert status["phase"] == "Failed", status
    completed = next(c for c in status["conditions"] if c["type"] == "Completed")
    assert completed["reason"] in ("InvalidSpec", "PolicyViolation"), completed
    assert len(str(status)) < 64 * 1024, len(str(status))
    return str(completed["reason"])


def _policy_refuses(who: client.ApiClient, ns: str, obj: dict[str, Any]) -> bool:
    """A server-side dry run (nothing stored) refused by the policy, not by RBAC."""
    try:
        client.CustomObjectsApi(who).create_namespaced_custom_object(
            GROUP, VERSION, ns, SX, obj, dry_run="All"
        )
    except ApiException as exc:
        return "policy.caps.maxVariants" in (exc.body or "")
    return False


def _wait_experiment(api: client.ApiClient, ns: str, name: str) -> dict[str, Any]:
    from tests.e2e.test_tenancy import _wait_sx

    return _wait_sx(api, ns, name)


def test_hostile_specs_are_refused_or_harmless_and_the_operator_stays_up(
    api_client: client.ApiClient,
    namespace: str,
    pod_runner: PodRunner,
    deep_json: None,
    request: pytest.FixtureRequest,
) -> None:
    # The tenancy fixtures (imported above), by name: a parameter would shadow the import.
    who: client.ApiClient = request.getfixturevalue("tenant")
    op: Operator = request.getfixturevalue("policed_operator")
    url: str = request.getfixturevalue("alice_at")
    ns = namespace
    outcomes: dict[str, str] = {}
    # The fixture's admission policy takes effect within seconds ("over" below needs it).
    over = _experiment("over", "alice", url)
    over["spec"]["variants"] = [{"name": f"v{i}", "replicas": 1} for i in range(21)]
    wait_until(lambda: _policy_refuses(who, ns, over), timeout_s=30, what="the policy in effect")

    # Item 3: a sweep of ~10^13 steps (1e-300 is below the schema's minimum; 0.001 is not).
    for name, start in (("sweep-tiny", 1e-300), ("sweep-slow", 0.001)):
        sweep = {"startRate": start, "factor": 1.000000000001, "maxRate": 40, "stepDuration": "1s"}
        obj = _lt(name, url, **{"load": {"model": "sweep", "sweep": sweep, "workers": 1}})
        obj["spec"]["load"]["placement"] = _lt("x", url)["spec"]["load"]["placement"]
        outcomes[name] = _refused_or_failed(api_client, who, ns, obj, op)

    # Item 4: the deepest body the API server stores, and one just past the policy's cap.
    for name, depth in (("deep", DEEPEST), ("deep-33", 33)):
        obj = _lt(name, url, **{"scenario.body": _nested(depth)})
        outcomes[name] = _refused_or_failed(api_client, who, ns, obj, op)
    # Stored: CEL cannot bound the depth of a free-form value.
    assert not outcomes["deep"].startswith("refused")

    # Item 5: 2,000 dry-run variants (a 66 KiB spec that made an 8 MiB status).
    many = _experiment("many", "alice", url)
    many["spec"]["dryRun"] = True
    many["spec"]["variants"] = [{"name": f"v{i}", "replicas": 1 + i % 3} for i in range(2000)]
    outcomes["many"] = _refused_or_failed(api_client, who, ns, many, op, SX)
    # Within the CRD's 100, above the policy's caps: the admission policy's CEL refuses them.
    outcomes["over"] = _refused_or_failed(api_client, who, ns, over, op, SX)
    assert "policy.caps.maxVariants" in outcomes["over"], outcomes["over"]
    slow = _experiment("slow", "alice", url)
    slow["spec"]["timeout"] = "25h"
    outcomes["slow"] = _refused_or_failed(api_client, who, ns, slow, op, SX)
    assert "policy.caps.maxExperimentTimeout" in outcomes["slow"], outcomes["slow"]

    for name, outcome in outcomes.items():
        print(f"hostile spec {name}: {outcome}")
    assert op.proc is not None and op.proc.poll() is None, op.tail()
    log = op.log.read_text(errors="replace")
    assert "RecursionError" not in log and "unrecoverable error" not in log, op.tail()

    # A restarted operator lists them all again (the deep one included) and goes on: the
    # same tenant's valid LoadTest runs to the end.
    op.stop()
    op.start()
    valid = _lt("valid", url)
    # Its latency on this shared machine is not the point here (20 ms Alice took 2.2 s once).
    valid["spec"]["thresholds"] = ["latency.p95 < 10s", "errors.rate < 5%"]
    _create(who, ns, valid)
    done = wait_phase(api_client, ns, "valid", {"Succeeded", "Failed"}, op, timeout_s=120)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert op.proc.poll() is None, op.tail()
    assert "RecursionError" not in op.log.read_text(errors="replace"), op.tail()
    # And the deep one was answered (Failed with its reason), not skipped.
    assert get(api_client, ns, "deep")["status"]["phase"] == "Failed"
