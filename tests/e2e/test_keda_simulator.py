"""`surge simulate` against real KEDA (v2.21.0) and the real HPA controller on the local
control plane: a differential test (issue #30).

A seeded batch of scenarios (tests/support/keda_compare.py) runs at once in one namespace,
each one Deployment of KWOK pods on the test's own kwok nodes with a ScaledObject whose one
trigger is KEDA's metrics-api scaler, reading `{"value": v}` from a loopback HTTP server of
the test. v follows the scenario's schedule on the scenario's own clock, which starts at
KEDA's first request for it (the poll at its creation; KEDA reconciles ScaledObjects one
after another, so they start up to seconds apart), so KEDA's polls and the HPA's syncs read
what the simulator reads. 7.5 s later the test sets the scenario's pollingInterval, which
restarts KEDA's scale loop 2.5 s off the HPA's sync grid (tests/support/keda_compare.py).
The scenarios vary the target type (AverageValue, Value), the activation threshold,
minReplicaCount (0 and above), pollingInterval, cooldownPeriod and the behavior KEDA passes
on. The simulator's
replica count is compared with the Deployment's spec.replicas at every KEDA poll and HPA
sync instant; ≥ 95 % of the instants must be exactly equal.

Plain-HPA Pods metrics are not covered here: this cluster has no custom-metrics adapter
(no prometheus-adapter), so they are tested in tests/simulate only.

The seed: $SURGE_KEDA_SEED, else today's date (printed). A scenario that disagrees is
written to the output folder as a regression case (tests/simulate/differential/README.md).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.e2e import test_hpa_simulator as hpa_sim
from tests.support import cluster as support
from tests.support import hpa_driver as hd
from tests.support import keda_compare as kc
from tests.support.keda_values import Values

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]

PAUSE = "registry.k8s.io/pause:3.10"  # never pulled: kwok runs no containers
SCENARIOS = 24
REQUIRED_EXACT = 0.95
SO = ("keda.sh", "v1alpha1")


def _keda_serves(api: client.ApiClient) -> bool:
    try:
        client.ApiregistrationV1Api(api).read_api_service("v1beta1.external.metrics.k8s.io")
        client.ApiextensionsV1Api(api).read_custom_resource_definition("scaledobjects.keda.sh")
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def _deployment(s: kc.Scenario, pool: str) -> dict[str, Any]:
    toleration = {"key": hpa_sim.TAINT, "operator": "Exists", "effect": "NoSchedule"}
    return {
        "metadata": {"name": s.name},
        "spec": {
            "replicas": s.initial,
            "selector": {"matchLabels": {"app": s.name}},
            "template": {
                "metadata": {"labels": {"app": s.name}},
                "spec": {
                    "nodeSelector": {hpa_sim.POOL_LABEL: pool},
                    "tolerations": [toleration],
                    "containers": [{"name": "app", "image": PAUSE}],
                },
            },
        },
    }


def _scaled_object(s: kc.Scenario, base: str) -> dict[str, Any]:
    spec = s.spec(base + s.name)
    spec["scaleTargetRef"] = {"name": s.name}
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": s.name}, "spec": spec}  # fmt: skip


def _watch(
    apps: client.AppsV1Api, namespace: str, w0: float, record: dict[str, Any], end_s: list[float]
) -> None:
    while (at := time.monotonic() - w0) < end_s[0]:
        for dep in apps.list_namespaced_deployment(namespace).items:
            assert dep.metadata is not None and dep.spec is not None
            record[str(dep.metadata.name)].append((at, int(dep.spec.replicas or 0)))
        time.sleep(max(0.0, 0.5 - (time.monotonic() - w0 - at)))


@pytest.fixture
def batch() -> list[kc.Scenario]:
    seed = kc.seed_from_env()
    print(f"\nKEDA differential: seed {seed} (rerun with {kc.SEED_ENV}={seed})")
    return kc.random_batch(seed, SCENARIOS)


@pytest.fixture
def values(batch: list[kc.Scenario]) -> Iterator[Values]:
    # Block 0 holds until the test has placed the first change (_restart_loops).
    with Values([replace(s, first_change_s=1e9) for s in batch]) as server:
        yield server


def test_simulated_replicas_equal_real_keda(
    api_client: client.ApiClient,
    namespace: str,
    batch: list[kc.Scenario],
    values: Values,
    tmp_path: Path,
) -> None:
    if not _keda_serves(api_client):
        pytest.skip("this cluster has no KEDA (hack/cluster/keda-up.sh; SURGE_KEDA=0 skips it)")
    began = time.monotonic()
    seed = kc.seed_from_env()
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    custom = client.CustomObjectsApi(api_client)
    pool = f"keda-sim-{namespace}"
    record: dict[str, list[tuple[float, int]]] = {s.name: [] for s in batch}
    try:
        for node in hpa_sim._nodes(pool):
            core.create_node(node)  # type: ignore[arg-type]
        with ThreadPoolExecutor(8) as ex:
            create: Any = apps.create_namespaced_deployment
            list(ex.map(lambda s: create(namespace, _deployment(s, pool)), batch))
        want = sum(s.initial for s in batch)
        support.wait_until(
            lambda: sum(map(hd.ready, core.list_namespaced_pod(namespace).items)) == want,
            timeout_s=120,
            what=f"{want} pods Ready",
        )
        w0 = values.w0 = time.monotonic() + 1.0
        end_s = [kc.DURATION_S + 60.0]  # until every scenario's clock reached DURATION_S
        watcher = threading.Thread(
            target=_watch, args=(apps, namespace, w0, record, end_s), daemon=True
        )
        time.sleep(max(0.0, w0 - time.monotonic()))
        watcher.start()
        with ThreadPoolExecutor(8) as ex:
            make: Any = custom.create_namespaced_custom_object
            args = (*SO, namespace, "scaledobjects")
            list(ex.map(lambda s: make(*args, _scaled_object(s, values.base)), batch))
        batch = _restart_loops(custom, namespace, batch, values, w0)
        started = dict(values.started)
        end_s[0] = max(started.values()) - kc.CREATED_S + kc.DURATION_S
        watcher.join(timeout=kc.DURATION_S + 90)
        assert not watcher.is_alive(), "the watcher did not finish"
    finally:
        for s in batch:
            try:
                custom.delete_namespaced_custom_object(*SO, namespace, "scaledobjects", s.name)
            except ApiException as exc:
                if exc.status != 404:
                    raise
        listing: Any = custom.list_namespaced_custom_object
        support.wait_until(
            lambda: not listing(*SO, namespace, "scaledobjects")["items"],
            timeout_s=60,
            what="ScaledObjects deleted (KEDA's finalizer)",
        )
        for i in range(hpa_sim.NODES):
            try:
                core.delete_node(f"{pool}-{i}")
            except ApiException as exc:
                if exc.status != 404:
                    raise

    # Each record on its scenario's clock.
    own = {
        s.name: [(t - started[s.name] + kc.CREATED_S, r) for t, r in record[s.name]] for s in batch
    }
    results = [kc.compare(s, own[s.name]) for s in batch]
    out_dir = Path(os.environ.get("SURGE_KEDA_COMPARISON_DIR") or tmp_path)
    spread = max(started.values()) - min(started.values())
    _report(results, own, seed, out_dir, time.monotonic() - began, spread, values)
    n = sum(len(c.instants) for c in results)
    exact = sum(c.exact for c in results)
    bad = [c.scenario.name for c in results if c.exact < len(c.instants)]
    assert exact >= REQUIRED_EXACT * n, f"seed {seed}: {exact}/{n} exact; differ: {bad}"


def _restart_loops(
    custom: client.CustomObjectsApi,
    namespace: str,
    batch: list[kc.Scenario],
    values: Values,
    w0: float,
) -> list[kc.Scenario]:
    """At each scenario's RESTART_S (its clock), its pollingInterval: a new scale loop. Its
    first poll (the first request off the HPA's sync instants) is its phase; one within
    1.2 s of the sync grid (mod 5 s) is noted as racing (a poll and a sync that close have
    no fixed order). The value's first change is then placed away from every instant
    (kc.best_boundary). Returns the scenarios with both set."""
    todo = {s.name: s for s in batch}
    sent: dict[str, tuple[float, int]] = {}  # the last patch: when (own clock), to what
    out: dict[str, kc.Scenario] = {}
    deadline = time.monotonic() + 90

    def patch(name: str, polling: int, own: float) -> None:
        body = {"spec": {"pollingInterval": polling}}
        custom.patch_namespaced_custom_object(*SO, namespace, "scaledobjects", name, body)
        sent[name] = (own, polling)

    while todo:
        assert time.monotonic() < deadline, f"no settled scale loop for {sorted(todo)}"
        for name in sorted(todo):
            own = values.own_now(name)
            if own is None:
                continue
            s = todo[name]
            polling = int(s.scaled_object.get("pollingInterval", 30))
            if name not in sent:
                if own >= kc.RESTART_S:
                    patch(name, polling, own)
                continue
            at, _ = sent[name]
            if s.scaled_object.get("minReplicaCount", 0) > 0:
                phase = at  # its polls decide nothing (kc.instants leaves them out)
            else:
                polls = [t for t in values.seen[name] if t > at and not kc.near_sync(t)]
                if not polls:
                    continue
                phase = polls[0]
                off = (phase - kc.FIRST_SYNC_S) % 5.0
                if min(off, 5.0 - off) < 1.2:
                    values.racing.append(name)  # kept: the order there is a race
            first = kc.best_boundary(polling, phase, max(kc.BLOCK_START_S + kc.BLOCK_S, own + 1))
            out[name] = replace(s, poll_phase_s=round(phase, 3), first_change_s=round(first, 2))
            values.by_name[name] = out[name]
            del todo[name]
        time.sleep(0.02)
    return [out[s.name] for s in batch]


def _changes(record: list[tuple[float, int]]) -> list[tuple[float, int]]:
    return [(round(t, 2), v) for i, (t, v) in enumerate(record) if i == 0 or record[i - 1][1] != v]


def _report(
    results: list[kc.Comparison],
    record: dict[str, list[tuple[float, int]]],
    seed: int,
    out_dir: Path,
    wall_s: float,
    start_spread_s: float,
    values: Values,
) -> None:
    """The JSON of the run, a regression case per disagreeing scenario, a line each."""
    out_dir.mkdir(parents=True, exist_ok=True)
    n = sum(len(c.instants) for c in results)
    exact = sum(c.exact for c in results)
    doc = {
        "measuredAt": datetime.now().astimezone().isoformat(timespec="seconds"),
        "seed": seed,
        "wallSeconds": round(wall_s, 1),
        "firstRequestSpreadSeconds": round(start_spread_s, 2),
        "metricRequests": values.requests,
        "racingPhases": values.racing,
        "instants": n,
        "exact": exact,
        "scenarios": [c.as_json() for c in results],
        "realRecord": {k: _changes(r) for k, r in record.items()},
    }
    (out_dir / "keda-differential.json").write_text(json.dumps(doc, indent=1) + "\n")
    for c in results:
        name = c.scenario.name
        flag = "" if c.exact == len(c.instants) else "  <-- differs"
        print(f"{name}: equal at {c.exact}/{len(c.instants)}{flag}")
        if flag:
            case = {"seed": seed, **c.as_json(), "realRecord": _changes(record[name])}
            path = out_dir / "regressions" / f"keda-{seed}-{name}.json"
            path.parent.mkdir(exist_ok=True)
            path.write_text(json.dumps(case, indent=1) + "\n")
            print(f"  regression case: {path}")
    print(f"exact at {exact}/{n} instants; wall {doc['wallSeconds']} s; out: {out_dir}")
