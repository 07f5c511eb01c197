"""`make bench-operator`: what the operator costs at rest and how fast it reacts, on the local
control plane (docs/operator.md, "Cost at scale"). Printed, not asserted: a benchmark.

1. The operator runs cluster-wide as its own ServiceAccount (surge-bench/surge-operator); the
   API server's audit log records that identity's requests and nobody else's
   (hack/cluster/up.sh), so API requests are counted where they are served.
2. 500 finished LoadTests in 10 namespaces (created, then their status written Succeeded, as
   a run that completed leaves it): idle for IDLE_S; operator CPU seconds per minute from
   /proc, API requests per second from the audit log, RSS.
3. 20 runs in flight (waiting for targets that never get ready): the same, for IDLE_S.
4. 20 more LoadTests whose targets are ready (no readiness check; the workers are KWOK pods):
   time from each create to its Job appearing, p50 and p95.

Goals (docs/operator.md): idle with 500 finished, <= 1.2 CPU-s/min and <= 0.2 req/s;
create -> Job p50 <= 1 s, p95 <= 2 s with 20 in flight; RSS <= 150 MiB.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kubernetes import client

from tests.support import cluster as support

BENCH_NS = "surge-bench"
NAMESPACES = [f"surge-bench-{i}" for i in range(10)]
FINISHED, IN_FLIGHT, REACTION = 500, 20, 20
IDLE_S = float(os.environ.get("SURGE_BENCH_IDLE_S", "60"))
BIN = support.REPO_ROOT / ".venv" / "bin"
GROUP, VERSION = "surge.dev", "v1alpha1"
CLK = os.sysconf("SC_CLK_TCK")


def _lt(name: str, url: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "target": {"url": url},
        "load": {
            "model": "constant",
            "stages": [{"duration": "5s", "target": 1}],
            "workers": 1,
            "placement": {"nodeSelector": {"surge.dev/pool": "cpu"}},
        },
        **spec,
    }
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "LoadTest",
        "metadata": {"name": name},
        "spec": body,
    }


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK  # utime + stime


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _audit_count(path: Path) -> int:
    """Requests the operator made: the audit policy logs its identity alone, one line each."""
    if not path.exists():
        return 0
    with path.open() as lines:
        return sum(1 for _ in lines)


def _operator_kubeconfig(api: client.ApiClient, tmp: Path) -> Path:
    core: Any = client.CoreV1Api(api)
    rbac: Any = client.RbacAuthorizationV1Api(api)
    core.create_namespace({"metadata": {"name": BENCH_NS}})
    core.create_namespaced_service_account(BENCH_NS, {"metadata": {"name": "surge-operator"}})
    rbac.create_cluster_role_binding(
        {
            "metadata": {"name": "surge-bench-operator"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": [
                {"kind": "ServiceAccount", "name": "surge-operator", "namespace": BENCH_NS}
            ],
        }
    )
    token = core.create_namespaced_service_account_token(
        "surge-operator", BENCH_NS, {"spec": {"expirationSeconds": 7200}}
    ).status.token
    cfg = json.loads(
        subprocess.run(
            [
                str(BIN / "kubectl"),
                "--kubeconfig",
                str(support.LOCAL_KUBECONFIG),
                "config",
                "view",
                "--raw",
                "-o",
                "json",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    cfg["users"] = [{"name": "surge-operator", "user": {"token": token}}]
    for ctx in cfg["contexts"]:
        ctx["context"]["user"] = "surge-operator"
    path = tmp / "operator.kubeconfig"
    path.write_text(json.dumps(cfg))
    return path


def _measure(pid: int, audit: Path, seconds: float) -> tuple[float, float, float]:
    cpu0, req0, t0 = _cpu_s(pid), _audit_count(audit), time.monotonic()
    time.sleep(seconds)
    dt = time.monotonic() - t0
    return (_cpu_s(pid) - cpu0) / dt * 60, (_audit_count(audit) - req0) / dt, _rss_mib(pid)


def main() -> None:
    """Raises on a cluster that cannot be reached; prints the figures."""
    if not (support.answers(support.LOCAL_KUBECONFIG) and support.read_state()):
        support.cluster_up()
    api = support.api_client_for(support.LOCAL_KUBECONFIG)
    support.apply_crds(api, sorted((support.REPO_ROOT / "crds").glob("*.yaml")))
    audit = support.STATE_DIR / "logs" / "audit.log"
    custom: Any = client.CustomObjectsApi(api)
    core: Any = client.CoreV1Api(api)
    with tempfile.TemporaryDirectory(prefix="surge-bench-operator-") as tmp:
        kubeconfig = _operator_kubeconfig(api, Path(tmp))
        for ns in NAMESPACES:
            core.create_namespace({"metadata": {"name": ns}})
        print(f"creating {FINISHED} finished LoadTests in {len(NAMESPACES)} namespaces ...")
        for i in range(FINISHED):
            ns = NAMESPACES[i % len(NAMESPACES)]
            custom.create_namespaced_custom_object(
                GROUP, VERSION, ns, "loadtests", _lt(f"done-{i:03d}", "http://127.0.0.1:9")
            )
            custom.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                ns,
                "loadtests",
                f"done-{i:03d}",
                {
                    "status": {
                        "phase": "Succeeded",
                        "runId": "1",
                        "observedGeneration": 1,
                        "loadStartTime": "2026-01-01T00:00:00Z",
                    }
                },
            )
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "SURGE_WORKER_METRICS_PORT": "0",
            "SURGE_POLICY_FILE": str(support.REPO_ROOT / "tests" / "e2e" / "policy.yaml"),
        }
        log = open(Path(tmp) / "operator.log", "wb")  # noqa: SIM115 (closed at the end)
        proc = subprocess.Popen(
            [str(BIN / "surge"), "operator"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            time.sleep(15)  # start-up: the first listing of every object
            idle = _measure(proc.pid, audit, IDLE_S)
            for i in range(IN_FLIGHT):
                ns = NAMESPACES[i % len(NAMESPACES)]
                lt = _lt(
                    f"wait-{i:02d}",
                    f"http://127.0.0.1:{20000 + i}",
                    target={
                        "url": f"http://127.0.0.1:{20000 + i}",
                        "readiness": {"http": {"path": "/"}, "timeout": "30m"},
                    },
                )
                custom.create_namespaced_custom_object(GROUP, VERSION, ns, "loadtests", lt)
            time.sleep(10)
            busy = _measure(proc.pid, audit, IDLE_S)
            batch = client.BatchV1Api(api)
            delays: list[float] = []
            for i in range(REACTION):
                ns = NAMESPACES[i % len(NAMESPACES)]
                name = f"go-{i:02d}"
                t0 = time.monotonic()
                custom.create_namespaced_custom_object(
                    GROUP, VERSION, ns, "loadtests", _lt(name, f"http://127.0.0.1:{21000 + i}")
                )
                while time.monotonic() - t0 < 30:
                    if batch.list_namespaced_job(
                        ns, label_selector=f"surge.dev/loadtest={name}"
                    ).items:
                        delays.append(time.monotonic() - t0)
                        break
                    time.sleep(0.02)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
            log.close()
        cores = os.cpu_count()
        q = statistics.quantiles(delays, n=20) if len(delays) >= 2 else [float("nan")] * 19
        print(f"\nOperator cost ({cores} cores, {FINISHED} finished LoadTests, {IDLE_S:g} s each):")
        for label, (cpu, rate, rss) in (("idle", idle), (f"{IN_FLIGHT} in flight", busy)):
            print(
                f"  {label + ':':16} {cpu:.2f} CPU-s/min, {rate:.3f} API req/s, RSS {rss:.0f} MiB"
            )
        print("  (goals idle: <= 1.2 CPU-s/min, <= 0.2 API req/s, RSS <= 150 MiB)")
        print(
            f"  create -> Job:   p50 {statistics.median(delays):.2f} s, p95 {q[18]:.2f} s "
            f"over {len(delays)} of {REACTION} runs   (goals: <= 1, <= 2)"
        )
    for ns in [*NAMESPACES, BENCH_NS]:
        core.delete_namespace(ns)
    client.RbacAuthorizationV1Api(api).delete_cluster_role_binding("surge-bench-operator")


if __name__ == "__main__":
    main()
    sys.exit(0)
