"""examples/alice: restricted-PSS pods, a CPU HPA, and CPU/GPU node-pool overlays."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ALICE = Path(__file__).parents[2] / "examples" / "alice"
KUBECTL = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl")


def _load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict)
    return doc


def test_pods_meet_the_restricted_pod_security_standard() -> None:
    pod = _load(ALICE / "base" / "deployment.yaml")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["runAsNonRoot"] is True
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["command"][:2] == ["surge", "demo-agent"]
    assert "--port" in container["command"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert all(e["name"].startswith("ALICE_") or e["name"] == "HOME" for e in container["env"])


def test_hpa_targets_cpu() -> None:
    hpa = _load(ALICE / "base" / "hpa.yaml")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "alice",
    }
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"


def test_overlays_pick_their_pool() -> None:
    cpu = _load(ALICE / "overlays" / "cpu" / "pool.yaml")["spec"]["template"]["spec"]
    assert cpu["nodeSelector"] == {"surge.dev/pool": "cpu"}
    gpu = _load(ALICE / "overlays" / "gpu" / "pool.yaml")["spec"]["template"]["spec"]
    assert gpu["nodeSelector"] == {"surge.dev/pool": "gpu"}
    assert {
        "key": "nvidia.com/gpu",
        "operator": "Equal",
        "value": "present",
        "effect": "NoSchedule",
    } in gpu["tolerations"]
    assert gpu["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
@pytest.mark.parametrize("pool", ["cpu", "gpu"])
def test_overlays_build_with_kustomize(pool: str) -> None:
    assert KUBECTL is not None
    out = subprocess.run(
        [KUBECTL, "kustomize", str(ALICE / "overlays" / pool)],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    docs = {d["kind"]: d for d in yaml.safe_load_all(out)}
    assert set(docs) == {"Deployment", "Service", "HorizontalPodAutoscaler"}
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"surge.dev/pool": pool}
    assert pod["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert env["ALICE_CPU_MS"] == ("20" if pool == "cpu" else "5")


def test_dockerfile_is_multi_stage_pinned_and_non_root() -> None:
    text = (ALICE / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+) AS (\w+)", text, re.M)
    assert [name for _, name in stages] == ["build", "model", "runtime", "gpu", "cpu"]
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)", text, re.M)
    assert base is not None
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base.group(1))
    assert "USER 10001:10001" in text
    assert 'ENTRYPOINT ["surge"]' in text
