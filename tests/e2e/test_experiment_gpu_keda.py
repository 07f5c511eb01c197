"""examples/experiment-gpu-keda.yaml, live on the control plane with real KEDA and the real HPA
(issue #30): GPU-bound Alice scaled on CPU utilization, on in-flight requests and on queue depth.

The target Deployment's pods are KWOK pods on the gpu pool; the load goes to one real Alice on
loopback in GPU-slots mode (4 slots of 200 ms per replica), whose slots follow the Deployment's
ready replicas (--replicas-file and tests/support/replica_follower.py), and whose measured CPU
the follower gives the pods (kwok's usage annotation), so a CPU-utilization scaler sees what the
work really costs. A real Prometheus scrapes Alice every second; the KEDA operator, a host
process, queries it for the prometheus triggers. An observer polls the cluster while each
variant runs, independently of what the operator reports.

The example runs as written except what this environment dictates: the URLs (Alice, the test
Prometheus; queries without the namespace label, as the test Prometheus scrapes only Alice), the
workers' placement, a shorter load (75 s, 30 s of it warm-up), a short cooldown, and the pods'
start-up in the simulation (KWOK pods are Ready at once).
"""

from __future__ import annotations

import asyncio
import copy
import json
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from surge.agent import start_agent_process, stop_agent_process
from surge.results.experiment_report import render_experiment
from tests.e2e.operator_support import GROUP, LOCAL_PLACEMENT, POLICY, VERSION, Operator, plain
from tests.support.cluster import REPO_ROOT, wait_until
from tests.support.podrunner import PodRunner
from tests.support.prometheus import prometheus_missing_reason, running_prometheus
from tests.support.replica_follower import (
    USAGE_CPU,
    ReplicaFollower,
    millicores_per_pod,
    write_replicas,
)

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]

EXAMPLE = REPO_ROOT / "examples" / "experiment-gpu-keda.yaml"
SX = "scalingexperiments"
SO = ("keda.sh", "v1alpha1")
CPU, INFLIGHT, QUEUE = "cpu-utilization", "in-flight", "queue-depth"


def test_follower_helpers(tmp_path: Path) -> None:
    path = tmp_path / "replicas"
    write_replicas(path, 3)
    write_replicas(path, 0)
    assert path.read_text() == "0\n"
    assert not (tmp_path / "replicas.tmp").exists()
    # 0.3 s of CPU over 2 s of wall clock, shared by 3 pods: 50m each; never below kwok's 1m.
    assert millicores_per_pod(0.3, 2.0, 3) == 50
    assert millicores_per_pod(0.0, 2.0, 3) == 1
    assert millicores_per_pod(0.3, 2.0, 0) == 1


def events_of(api: client.ApiClient, ns: str) -> list[dict[str, Any]]:
    """Every Event of the namespace, as plain dicts (who scaled what, and why)."""
    return plain(api, client.CoreV1Api(api).list_namespaced_event(ns).items)


def keda_serves(api: client.ApiClient) -> bool:
    try:
        client.ApiregistrationV1Api(api).read_api_service("v1beta1.external.metrics.k8s.io")
        client.ApiextensionsV1Api(api).read_custom_resource_definition("scaledobjects.keda.sh")
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def policy_with_scaled_objects(tmp_path: Path) -> Path:
    """The e2e policy, plus what an admin sets for this experiment: ScaledObjects allowed,
    with cpu and prometheus triggers, and their PromQL (allowCustomQueries: a trigger's query
    runs with KEDA's access); prometheusUrls already allows the test Prometheus."""
    policy = yaml.safe_load(POLICY.read_text())
    policy["scaledObjects"] = {"allow": True, "triggerTypes": ["cpu", "prometheus"]}
    policy["allowCustomQueries"] = True
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    return path


def make_target(api: client.ApiClient, ns: str) -> None:
    """Deployment alice (1 replica, cpu pool, 1 CPU requested) under the owner's ScaledObject
    (a cpu trigger, 1..2 replicas), as a team has it before the experiment."""
    dep: Any = {
        "metadata": {"name": "alice", "annotations": {"surge.dev/experiment-target": "true"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "alice"}},
            "template": {
                "metadata": {"labels": {"app": "alice"}},
                "spec": {
                    "nodeSelector": {"surge.dev/pool": "cpu"},
                    "containers": [
                        {
                            "name": "alice",
                            "image": "alice:1",
                            "resources": {"requests": {"cpu": "1"}},
                            "env": [{"name": "ALICE_CPU_MS", "value": "20"}],
                        }
                    ],
                },
            },
        },
    }
    so = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "alice"},
        "spec": {
            "scaleTargetRef": {"name": "alice"},
            "pollingInterval": 30,
            "minReplicaCount": 1,
            "maxReplicaCount": 2,
            "triggers": [{"type": "cpu", "metricType": "Utilization", "metadata": {"value": "80"}}],
        },
    }
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(ns, dep)
    client.CustomObjectsApi(api).create_namespaced_custom_object(*SO, ns, "scaledobjects", so)

    def ready() -> bool:
        d = plain(api, [apps.read_namespaced_deployment("alice", ns)])[0]
        hpa_made = _hpa(api, ns) is not None
        return hpa_made and int((d.get("status") or {}).get("availableReplicas") or 0) >= 1

    wait_until(ready, timeout_s=60, what="alice available under KEDA's HPA")


def _hpa(api: client.ApiClient, ns: str) -> dict[str, Any] | None:
    try:
        hpa = client.AutoscalingV2Api(api).read_namespaced_horizontal_pod_autoscaler(
            "keda-hpa-alice", ns
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return plain(api, [hpa])[0]


def specs(api: client.ApiClient, ns: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Deployment's spec less `replicas` (the scaler's to set) and the ScaledObject's."""
    dep = plain(api, [client.AppsV1Api(api).read_namespaced_deployment("alice", ns)])[0]
    so: Any = client.CustomObjectsApi(api).get_namespaced_custom_object(
        *SO, ns, "scaledobjects", "alice"
    )
    dep["spec"].pop("replicas", None)
    return dep["spec"], dict(so["spec"])


def experiment(alice_url: str, prometheus_url: str) -> dict[str, Any]:
    """The example, with what this environment dictates (the module docstring) changed."""
    obj: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    spec = obj["spec"]
    lt = spec["loadTest"]
    lt["target"] = {"url": alice_url, "deploymentRef": {"name": "alice"}}
    lt["load"].update(
        stages=[{"duration": "75s", "target": 40}],
        warmup="30s",
        workers=1,
        placement=LOCAL_PLACEMENT,
    )
    lt["timeouts"] = {"workersReady": "60s"}  # runGrace stays 2m: the CPU run ends saturated
    for v in spec["variants"]:
        for trigger in v["scaledObject"]["triggers"]:
            meta = trigger["metadata"]
            if trigger["type"] == "prometheus":
                meta["serverAddress"] = prometheus_url
                meta["query"] = meta["query"].replace('{namespace="default"}', "")
    spec.update(cooldown="5s", rolloutTimeout="60s", timeout="15m")
    spec["simulation"]["capacity"]["gpu"]["startup"] = "2s"
    return obj


def observe(
    api: client.ApiClient, ns: str, name: str, op: Operator, timeout_s: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Poll until the experiment ends, recording for each variant under test the Deployment's
    spec.replicas and the ScaledObject's triggers in force. Every sample, of every stage, goes
    to `seen["timeline"]` as [seconds, variant, stage, replicas, the HPA's desired replicas]."""
    seen: dict[str, Any] = {"timeline": []}
    apps, custom = client.AppsV1Api(api), client.CustomObjectsApi(api)
    start = time.monotonic()
    deadline = start + timeout_s
    while time.monotonic() < deadline:
        obj: Any = custom.get_namespaced_custom_object(GROUP, VERSION, ns, SX, name)
        status = obj.get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed", "Aborted"):
            return dict(obj), seen
        step = status.get("step") or {}
        scale: Any = apps.read_namespaced_deployment_scale("alice", ns)
        replicas = int(scale.spec.replicas or 0)
        hpa = _hpa(api, ns) or {}
        desired = (hpa.get("status") or {}).get("desiredReplicas")
        seen["timeline"].append(
            [round(time.monotonic() - start, 1), step.get("variant"), step.get("stage"),
             replicas, desired]
        )  # fmt: skip
        if step.get("stage") == "Test":
            so: Any = custom.get_namespaced_custom_object(*SO, ns, "scaledobjects", "alice")
            entry = seen.setdefault(step["variant"], {"replicas": [], "triggers": set()})
            entry["replicas"].append(replicas)
            entry["triggers"] |= {t["type"] for t in so["spec"]["triggers"]}
        time.sleep(0.5)
    pytest.fail(f"{name} did not finish in {timeout_s}s\n{op.tail()}")


@pytest.fixture
def gpu_alice(
    api_client: client.ApiClient, namespace: str, tmp_path: Path
) -> Iterator[tuple[str, str, ReplicaFollower]]:
    """The target, Alice following it, and Prometheus scraping Alice: (alice, prometheus URL,
    the follower)."""
    missing = prometheus_missing_reason()
    if missing:
        pytest.skip(missing)
    if not keda_serves(api_client):
        pytest.skip("this cluster has no KEDA (hack/cluster/keda-up.sh; SURGE_KEDA=0 skips it)")
    make_target(api_client, namespace)
    follower = ReplicaFollower(api_client, namespace, "alice", tmp_path / "replicas")
    args = ["--gpu-slots", "4", "--latency", "fixed:200ms", "--seed", "30"]
    proc, url = start_agent_process(
        [*args, "--replicas-file", str(follower.path)], stderr=subprocess.DEVNULL
    )
    follower.cpu_metrics_url = url + "/metrics"
    try:
        with (
            follower,
            running_prometheus(tmp_path, targets=[url.removeprefix("http://")]) as prom,
        ):
            yield url, prom.url, follower
    finally:
        stop_agent_process(proc)
        custom = client.CustomObjectsApi(api_client)
        # Before the namespace goes: KEDA's finalizer needs the operator, not the GC.
        try:
            custom.delete_namespaced_custom_object(*SO, namespace, "scaledobjects", "alice")
        except ApiException as exc:
            if exc.status != 404:
                raise


async def _open_loop(url: str, rps: float, seconds: float) -> list[int]:
    """POST /respond at `rps` for `seconds` (open loop, bounded in count and time); the
    statuses, 0 for a request that failed without one."""
    # Enough connections for every request of a saturated queue: Alice, not the client's
    # pool, decides who waits and who gets 503.
    connector = aiohttp.TCPConnector(limit=1000)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one() -> int:
            try:
                async with session.post(url + "/respond", json={"query": "order?"}) as r:
                    await r.read()
                    return r.status
            except (aiohttp.ClientError, TimeoutError):
                return 0

        tasks = []
        start = asyncio.get_running_loop().time()
        for i in range(int(rps * seconds)):
            await asyncio.sleep(max(0.0, start + i / rps - asyncio.get_running_loop().time()))
            tasks.append(asyncio.create_task(one()))
        return list(await asyncio.gather(*tasks))


def _query(prometheus_url: str, promql: str) -> float | None:
    url = f"{prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as resp:
        result = json.load(resp)["data"]["result"]
    return float(result[0]["value"][1]) if result else None


@pytest.mark.parametrize("name", [INFLIGHT, QUEUE, CPU])
def test_each_trigger_on_its_own(
    api_client: client.ApiClient,
    namespace: str,
    gpu_alice: tuple[str, str, ReplicaFollower],
    name: str,
) -> None:
    """The signal path each variant relies on, without the operator: the example's variant's
    ScaledObject fields go on the owner's ScaledObject by hand, then 40 req/s for 45 s.
    Prometheus triggers: Alice's gauge -> Prometheus -> KEDA -> the real HPA -> the Deployment
    -> the follower -> Alice's slots; 40 req/s at 4 slots of 200 ms a replica needs more than
    one. The cpu trigger: Alice's CPU -> the pods' kwok usage -> metrics-server -> the HPA,
    which reads a utilization far below its target and keeps one replica."""
    alice_url, prometheus_url, follower = gpu_alice
    (variant,) = [v for v in experiment(alice_url, prometheus_url)["spec"]["variants"]
                  if v["name"] == name]  # fmt: skip
    owned = ("triggers", "minReplicaCount", "maxReplicaCount", "pollingInterval", "cooldownPeriod")
    patch = {"spec": {k: v for k, v in variant["scaledObject"].items() if k in owned}}
    client.CustomObjectsApi(api_client).patch_namespaced_custom_object(
        *SO, namespace, "scaledobjects", "alice", patch
    )
    statuses = asyncio.run(_open_loop(alice_url, 40.0, 45.0))
    assert statuses.count(0) == 0
    assert not follower.errors, follower.errors[:3]
    hpa = _hpa(api_client, namespace)
    assert hpa is not None
    # The pods carry their share of Alice's CPU, far below the 1 CPU each requests.
    pods = client.CoreV1Api(api_client).list_namespaced_pod(namespace, label_selector="app=alice")
    usage = [((p.metadata and p.metadata.annotations) or {}).get(USAGE_CPU) for p in pods.items]
    assert usage and all(u is not None and int(u.removesuffix("m")) < 300 for u in usage), usage
    if name == CPU:
        assert [r for _, r in follower.history] == [1]
        (current,) = hpa["status"]["currentMetrics"]
        assert current["resource"]["name"] == "cpu"
        assert current["resource"]["current"]["averageUtilization"] < 60
        assert statuses.count(503) > 0  # the queue overflowed: one replica is too few
        return
    # Scaled: the follower saw more than one ready replica and Alice served with their slots.
    assert max(r for _, r in follower.history) >= 2, follower.history
    # Follower (0.5 s) -> Alice's replicas file (polled every 0.25 s) -> a scrape (1 s): wait.
    wait_until(
        lambda: (_query(prometheus_url, "max_over_time(alice_slots[2m])") or 0) >= 8,
        timeout_s=10,
        what="Prometheus has Alice at 8 slots or more (two replicas of 4)",
    )
    assert hpa["spec"]["metrics"][0]["type"] == "External"


def test_gpu_bound_alice_scales_on_in_flight_and_queue_depth_not_on_cpu(
    api_client: client.ApiClient,
    namespace: str,
    gpu_alice: tuple[str, str, ReplicaFollower],
    pod_runner: PodRunner,
    tmp_path: Path,
) -> None:
    alice_url, prometheus_url, follower = gpu_alice
    original = specs(api_client, namespace)
    op = Operator(
        namespace,
        tmp_path / "operator.log",
        env={"SURGE_POLICY_FILE": str(policy_with_scaled_objects(tmp_path))},
    )
    op.start()
    try:
        sx = experiment(alice_url, prometheus_url)
        client.CustomObjectsApi(api_client).create_namespaced_custom_object(
            GROUP, VERSION, namespace, SX, copy.deepcopy(sx)
        )
        obj, seen = observe(api_client, namespace, sx["metadata"]["name"], op, timeout_s=540)
    finally:
        op.stop()
    status = obj["status"]
    (tmp_path / "timeline.json").write_text(json.dumps(seen.pop("timeline")))
    scaling = [
        [
            str(e.get("lastTimestamp") or e.get("eventTime")),
            e["involvedObject"]["kind"],
            e.get("reason"),
            e.get("message"),
        ]
        for e in events_of(api_client, namespace)
        if e["involvedObject"]["kind"] in ("HorizontalPodAutoscaler", "Deployment", "ScaledObject")
    ]
    (tmp_path / "scaling-events.json").write_text(json.dumps(sorted(scaling), indent=1))
    assert status["phase"] == "Succeeded", (status.get("message"), op.tail())
    assert not follower.errors, follower.errors[:3]

    # What the observer saw: each variant's own trigger in force; CPU never left its minimum
    # (Alice's CPU is a few % of the pods' request), the other two scaled up.
    assert seen[CPU]["triggers"] == {"cpu"}
    assert seen[INFLIGHT]["triggers"] == seen[QUEUE]["triggers"] == {"prometheus"}
    assert set(seen[CPU]["replicas"]) == {1}, seen[CPU]["replicas"]
    # in-flight follows the CPU run (one replica) and rises under its own load. queue-depth
    # follows a scaled run: KEDA's HPA (one object for every variant) once carried the last
    # run's replicas into its start, so only its peak is asserted here.
    inflight = seen[INFLIGHT]["replicas"]
    assert inflight[0] == 1 and max(inflight) >= 2, inflight
    assert max(seen[QUEUE]["replicas"]) >= 2, seen[QUEUE]["replicas"]
    # The real HPA rescaled on KEDA's External metric (the prometheus triggers' only path).
    assert any(
        e[2] == "SuccessfulRescale" and "external metric" in e[3] and "above target" in e[3]
        for e in scaling
    ), scaling
    # Alice was told: her capacity followed the replicas up (ready replicas, in order).
    assert max(r for _, r in follower.history) >= 2

    # The operator's account agrees, and the recommendation is a variant that met the SLO.
    table = {row["name"]: row for row in status["comparison"]}
    assert set(table) == {CPU, INFLIGHT, QUEUE}
    # CPU failed on its thresholds, measured (not on a timeout): seconds of queueing, and 503s
    # once Alice's queue is full.
    assert not table[CPU]["passed"]
    assert table[CPU]["p95Ms"] > 1000 and table[CPU]["errorRate"] > 0.01, table[CPU]
    assert table[CPU]["replicasMax"] == 1
    # Each run recorded the ScaledObject it ran under, in brief.
    in_force = {r["name"]: r["scaledObjectInForce"] for r in status["runs"]}
    assert in_force[CPU]["triggers"] == ["cpu"]
    assert in_force[INFLIGHT]["triggers"] == in_force[QUEUE]["triggers"] == ["prometheus"]
    assert (in_force[QUEUE]["minReplicaCount"], in_force[QUEUE]["maxReplicaCount"]) == (0, 4)
    winner = status["comparison"][0]
    assert winner["passed"] and winner["name"] in (INFLIGHT, QUEUE), status["comparison"]
    assert status["recommendation"].startswith(winner["name"])
    cheapest = min(
        (r for r in status["comparison"] if r["passed"]), key=lambda r: r["costPer1kRequests"]
    )
    assert cheapest["name"] == winner["name"]

    # The owner's Deployment and ScaledObject are back, field for field.
    assert specs(api_client, namespace) == original

    # The simulator's prediction stands beside each live result, in status and in the report.
    predicted = {p["variant"]: p for p in status["predictions"]}
    assert set(predicted) == {CPU, INFLIGHT, QUEUE}
    assert all(p["live"] for p in predicted.values())
    for row in status["comparison"]:
        assert row["predictedRank"] == predicted[row["name"]]["rank"]
        assert row["predictedCostPer1kRequests"] > 0
        assert row["predictedSloViolationSeconds"] == predicted[row["name"]]["sloViolationSeconds"]
    # The simulator too says CPU fails, over the whole judged window (75 s of load less the
    # 30 s warm-up, as the live verdict), and that in-flight violates the SLO less; a p95 is
    # predicted where every second had a pod (KEDA may scale queue-depth to zero at its
    # first poll: then none).
    assert predicted[CPU]["sloViolationSeconds"] == 75 - 30
    assert predicted[INFLIGHT]["sloViolationSeconds"] < predicted[CPU]["sloViolationSeconds"]
    assert table[CPU]["predictedP95Ms"] > 1000 and table[INFLIGHT]["predictedP95Ms"] > 0
    md = render_experiment(obj, "md")
    assert "| predicted p95 ms |" in md and "| simulator error |" in md
    (tmp_path / "report.md").write_text(md)
    (tmp_path / "status.json").write_text(json.dumps(status, indent=1))
