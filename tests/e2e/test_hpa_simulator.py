"""`surge simulate` against the real HPA controller on the local control plane: a
differential test (issues #18, #26).

One batch of scenarios (tests/support/hpa_scenarios.py) runs at once in one namespace: three
fixed ones (10 replicas whose load needs 4, with and without a behavior; an AverageValue
exactly at target while new pods have no metric) and a seeded random batch, each one
Deployment of KWOK pods with an HPA on CPU (Utilization or AverageValue).
The pods sit on the test's own kwok nodes, so no other test scrapes them or competes for
room. The test is the load: before every metrics-server scrape it writes each pod's
`kwok.x-k8s.io/usage-cpu` annotation with its Deployment's even share of the scenario's load
(λ × cpu per request / Ready pods); kwok reports it, and kube-controller-manager's HPA
controller scales for real. The simulator replays each scenario through the same metrics
pipeline (tests/support/hpa_compare.py), and the two replica counts are compared at every
sync instant: exactly equal at ≥ 98 % and within ±1 at all of them over the random
scenarios, equal at ≥ 95 % of each fixed one's.

A second seeded batch (issue #30) scales on Pods metrics served by hack/cluster/podmetrics:
before every HPA sync the test writes each Ready pod's `metrics.surge.dev/<metric>` with its
even share of the scenario's in-flight requests or request rate (tests/support/hpa_driver.py
says which pods get one, and when); equal at ≥ 95 % of its sync instants.

The seed: $SURGE_HPA_SEED, else today's date (printed). A scenario that disagrees is written
to the output folder as a regression case (tests/simulate/differential/README.md).
SURGE_HPA_COMPARISON_DIR=docs/simulator writes the comparison (JSON) and the plots there.
"""

from __future__ import annotations

import copy
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support import cluster as support
from tests.support import hpa_compare as hc
from tests.support import hpa_driver as hd
from tests.support import hpa_scenarios as hs

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]

PAUSE = "registry.k8s.io/pause:3.10"  # never pulled: kwok runs no containers
POOL_LABEL, TAINT = "surge.dev/pool", "surge.dev/hpa-simulator"
RANDOM_SCENARIOS, PODS_SCENARIOS = 32, 16
NODES, PODS_PER_NODE = 4, 150
REQUIRED_EXACT_RANDOM, REQUIRED_EXACT_FIXED, REQUIRED_EXACT_PODS = 0.98, 0.95, 0.95


def _nodes(pool: str) -> list[dict[str, Any]]:
    """Copies of hack/cluster's cpu-0 (kwok, metrics on 127.0.0.1), in a pool of their own."""
    docs = yaml.safe_load_all((support.REPO_ROOT / "hack/cluster/nodes.yaml").read_text())
    base = next(d for d in docs if d and d["metadata"]["name"] == "cpu-0")
    out = []
    for i in range(NODES):
        node = copy.deepcopy(base)
        name = f"{pool}-{i}"
        meta = node["metadata"]
        meta["name"] = name
        meta["labels"] |= {"kubernetes.io/hostname": name, POOL_LABEL: pool}
        meta["annotations"]["metrics.k8s.io/resource-metrics-path"] = (
            f"/metrics/nodes/{name}/metrics/resource"
        )
        node["spec"] = {"taints": [{"key": TAINT, "value": "true", "effect": "NoSchedule"}]}
        node["status"]["addresses"][1]["address"] = name
        info = ["bootID", "containerRuntimeVersion", "kernelVersion", "kubeProxyVersion"]
        info += ["kubeletVersion", "machineID", "osImage", "systemUUID"]
        node["status"]["nodeInfo"] |= dict.fromkeys(info, "")  # the client requires them
        for key in ("allocatable", "capacity"):
            node["status"][key] |= {"cpu": "1000", "pods": str(PODS_PER_NODE)}
        out.append(node)
    return out


def _deployment(s: hc.Scenario, pool: str) -> dict[str, Any]:
    resources = {"requests": {"cpu": f"{hc.POD_REQUEST_M}m"}}
    toleration = {"key": TAINT, "operator": "Exists", "effect": "NoSchedule"}
    return {
        "metadata": {"name": s.name},
        "spec": {
            "replicas": s.initial,
            "selector": {"matchLabels": {"app": s.name}},
            "template": {
                "metadata": {"labels": {"app": s.name}},
                "spec": {
                    "nodeSelector": {POOL_LABEL: pool},
                    "tolerations": [toleration],
                    "containers": [{"name": "app", "image": PAUSE, "resources": resources}],
                },
            },
        },
    }


def _hpa(s: hc.Scenario) -> dict[str, Any]:
    spec = s.hpa_spec()
    spec["scaleTargetRef"] = {"apiVersion": "apps/v1", "kind": "Deployment", "name": s.name}
    return {"metadata": {"name": s.name}, "spec": spec}


def _next_scrape(custom: client.CustomObjectsApi, namespace: str, pods: int) -> float:
    """The monotonic instant of a metrics-server scrape, once every pod has a metric."""

    def stamp() -> str | None:
        found: Any = custom.list_namespaced_custom_object(
            "metrics.k8s.io", "v1beta1", namespace, "pods"
        )
        if len(found["items"]) < pods:
            return None
        return " ".join(sorted(f"{m['metadata']['name']}@{m['timestamp']}" for m in found["items"]))

    first = support.wait_until(stamp, timeout_s=90, what=f"metrics of {pods} pods")
    changed = support.wait_until(
        lambda: time.monotonic() if stamp() not in (None, first) else None,
        timeout_s=40,
        interval_s=0.1,
        what="a metrics-server scrape",
    )
    return changed - 0.05  # polled every 0.1 s


def _changes(record: list[tuple[float, Any]]) -> list[tuple[float, Any]]:
    return [(round(t, 2), v) for i, (t, v) in enumerate(record) if i == 0 or record[i - 1][1] != v]


def _start(api: client.ApiClient, namespace: str, batch: list[hc.Scenario], pool: str) -> float:
    """Nodes, Deployments, every pod Ready and scraped: the trace's t = 0 (monotonic)."""
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    for node in _nodes(pool):
        core.create_node(node)  # type: ignore[arg-type]
    with ThreadPoolExecutor(8) as ex:  # list(): an error is raised here, not dropped
        create: Any = apps.create_namespaced_deployment
        list(ex.map(lambda s: create(namespace, _deployment(s, pool)), batch))
    want = sum(s.initial for s in batch)
    support.wait_until(
        lambda: sum(map(hd.ready, core.list_namespaced_pod(namespace).items)) == want,
        timeout_s=120,
        what=f"{want} pods Ready",
    )
    # Align the trace with metrics-server's ticker: a scrape at SCRAPE_OFFSET_S.
    scrape = _next_scrape(client.CustomObjectsApi(api), namespace, want)
    w0 = scrape - hc.SCRAPE_OFFSET_S
    while w0 < time.monotonic() + 0.5:
        w0 += hc.SCRAPE_S
    return w0


def test_simulated_replicas_equal_the_real_hpa(
    api_client: client.ApiClient, namespace: str, cluster: support.Cluster, tmp_path: Path
) -> None:
    started = time.monotonic()
    seed = hs.seed_from_env()
    print(f"\nHPA differential: seed {seed} (rerun with {hs.SEED_ENV}={seed})")
    fixed, randoms = hs.fixed(), hs.random_batch(seed, RANDOM_SCENARIOS)
    pods = hs.pods_batch(seed, PODS_SCENARIOS)
    batch = fixed + randoms + pods
    pool = f"hpa-sim-{namespace}"
    api = support.api_client_for(cluster.kubeconfig)
    try:
        w0 = _start(api_client, namespace, batch, pool)
        driver = hd.Driver(api, namespace, w0, batch)
        jobs = (driver.load, driver.pods_load, driver.watch)
        threads = [threading.Thread(target=f, daemon=True) for f in jobs]
        time.sleep(max(0.0, w0 - time.monotonic()))
        for th in threads:
            th.start()
        # The controller first syncs an HPA one sync period after it sees it: at FIRST_SYNC_S.
        time.sleep(max(0.0, w0 + hc.HPA_CREATED_S - time.monotonic()))
        autoscaling: Any = client.AutoscalingV2Api(api_client)
        with ThreadPoolExecutor(8) as ex:
            create = autoscaling.create_namespaced_horizontal_pod_autoscaler
            list(ex.map(lambda s: create(namespace, _hpa(s)), batch))
        created_late_s = time.monotonic() - w0 - hc.HPA_CREATED_S
        for th in threads:
            th.join(timeout=hc.DURATION_S + 60)
        driver.pool.shutdown()
        assert not any(th.is_alive() for th in threads), "the load driver did not finish"
        if driver.errors:
            raise driver.errors[0]
    finally:
        api.close()  # type: ignore[no-untyped-call]
        for i in range(NODES):
            try:
                client.CoreV1Api(api_client).delete_node(f"{pool}-{i}")
            except ApiException as exc:
                if exc.status != 404:
                    raise

    results = [hc.compare(s, driver.record[s.name]) for s in batch]
    out_dir = Path(os.environ.get("SURGE_HPA_COMPARISON_DIR") or tmp_path)
    _report(results, driver, seed, out_dir, time.monotonic() - started, created_late_s)

    offsets = [x for s in batch for x in hc.scale_offsets(driver.record[s.name])]
    # The premise of the mirror: the real controller changed the count at the sync instants
    # the simulator uses (within the drift of its 15 s queue), not between them.
    assert offsets and all(-1.0 <= x <= 5.0 for x in offsets), sorted(offsets)
    for c in results[: len(fixed)]:
        assert c.exact >= REQUIRED_EXACT_FIXED * len(c.instants), c.as_json()
    on_pods = results[len(fixed) + len(randoms) :]
    n_pods = sum(len(c.instants) for c in on_pods)
    bad_pods = [c.scenario.name for c in on_pods if c.exact < len(c.instants)]
    exact_pods = sum(c.exact for c in on_pods)
    assert exact_pods >= REQUIRED_EXACT_PODS * n_pods, f"seed {seed}: Pods {bad_pods}"
    rand = results[len(fixed) : len(fixed) + len(randoms)]
    n = sum(len(c.instants) for c in rand)
    bad = [c.scenario.name for c in rand if c.exact < len(c.instants)]
    assert sum(c.within_one for c in rand) == n, f"seed {seed}: beyond ±1 in {bad}"
    assert sum(c.exact for c in rand) >= REQUIRED_EXACT_RANDOM * n, f"seed {seed}: {bad}"


def _report(
    results: list[hc.Comparison],
    driver: hd.Driver,
    seed: int,
    out_dir: Path,
    wall_s: float,
    created_late_s: float,
) -> None:
    """The JSON of the whole run, a regression case per disagreeing scenario, the plots of
    the fixed and the disagreeing ones, and a line per scenario on stdout."""
    out_dir.mkdir(parents=True, exist_ok=True)
    metric = {k: _changes(r) for k, r in driver.metric.items()}
    doc = {
        "measuredAt": datetime.now().astimezone().isoformat(timespec="seconds"),
        "seed": seed,
        "wallSeconds": round(wall_s, 1),
        "hpasCreatedLateSeconds": round(created_late_s, 2),
        "annotationPatches": driver.patches,
        "podsMetricPatches": driver.pods_patches,
        "scenarios": [c.as_json() for c in results],
        "realRecord": {k: _changes(r) for k, r in driver.record.items()},
        "realMetric": metric,
    }
    (out_dir / "hpa-differential.json").write_text(json.dumps(doc, indent=1) + "\n")
    for c in results:
        name = c.scenario.name
        flag = "" if c.exact == len(c.instants) else "  <-- differs"
        print(f"{name}: equal at {c.exact}/{len(c.instants)}, ±1 at {c.within_one}{flag}")
        if flag:
            case = {"seed": seed, **c.as_json(), "realMetric": metric[name]}
            path = out_dir / "regressions" / f"{seed}-{name}.json"
            path.parent.mkdir(exist_ok=True)
            path.write_text(json.dumps(case, indent=1) + "\n")
            print(f"  regression case: {path}")
        if flag or name[0] not in "rp" or not name[1:].isdigit():
            hc.plot(c, driver.record[name], str(out_dir / f"hpa-{name}.png"))
    for label, part in (("CPU random", "r"), ("Pods", "p")):
        mine = [c for c in results if c.scenario.name[0] == part and c.scenario.name[1:].isdigit()]
        n, exact = sum(len(c.instants) for c in mine), sum(c.exact for c in mine)
        print(f"seed {seed}, {label}: equal at {exact}/{n} sync instants ({100 * exact / n:.1f} %)")
    patches = f"{driver.patches} + {driver.pods_patches} patches"
    print(f"wall {doc['wallSeconds']} s, {patches}, out: {out_dir}")
