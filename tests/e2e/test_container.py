"""The Surge image for real: pods of node local-0 run as podman containers of the image that
`make image` built (tests/support/podrunner.py, container mode), on the real control plane.

- the workers of a LoadTest run in the image, as their own ServiceAccount (a projected
  TokenRequest token, as the kubelet mounts it), and the run Succeeds with real numbers;
- the operator itself runs in the image, from the chart's Deployment pod template, with only
  the chart's ServiceAccount token and RBAC, and takes a LoadTest to Succeeded;
- a worker container that writes outside its volumes fails visibly: the root is read-only.

The image is ``$SURGE_IMAGE`` or the one named in build/image/image.env (``make image``),
else ``localhost/surge:VERSION``. Without podman or the image these tests are skipped, except
in CI (``CI=true``), where that is a failure: `make test` builds the image first.
The pure tests at the end check the podman flags without a cluster.
"""

from __future__ import annotations

import copy
import json
import os
import re
import socket
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.chart.rendering import one, render
from tests.chart.workloads import worker_job
from tests.e2e.operator_support import (
    LOCAL_PLACEMENT,
    Operator,
    alice,
    create,
    loadtest,
    pods,
    wait_phase,
)
from tests.e2e.test_chart import RBAC_KINDS, apply_rbac, delete_cluster_rbac
from tests.support import cluster as support
from tests.support.cluster import REPO_ROOT, wait_until
from tests.support.podrunner import (
    LOCAL_NODE,
    ContainerConfigError,
    PodRunner,
    image_info,
    podman_available,
    security_flags,
)

__all__ = ["alice"]  # fixture used by the tests below

VERSION = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
IMAGE_ENV = REPO_ROOT / "build" / "image" / "image.env"
START_DELAY_S = "4"


def built_image() -> str:
    if os.environ.get("SURGE_IMAGE"):
        return os.environ["SURGE_IMAGE"]
    if IMAGE_ENV.is_file():
        for line in IMAGE_ENV.read_text().splitlines():
            if line.startswith("IMAGE="):
                return line.partition("=")[2]
    return f"localhost/surge:{VERSION}"


def _unavailable(why: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"container-mode e2e cannot run in CI: {why}")
    pytest.skip(why)


@pytest.fixture(scope="module")
def image() -> str:
    """The built image's name; skips (fails in CI) without podman or the image."""
    why = podman_available()
    if why:
        _unavailable(why)
    name = built_image()
    if image_info(name) is None:
        _unavailable(f"image {name} not in podman's storage: run `make image`")
    return name


@pytest.fixture(scope="module")
def container_runner(pod_runner: PodRunner, image: str) -> Iterator[PodRunner]:
    """The session's pod runner, starting the pods of this module as containers."""
    with pod_runner.using("container"):
        yield pod_runner


def _pod(api: client.ApiClient, ns: str, name: str) -> dict[str, Any]:
    return next(p for p in pods(api, ns) if p["metadata"]["name"] == name)


def _terminated(api: client.ApiClient, ns: str, name: str) -> dict[str, Any] | None:
    statuses = (_pod(api, ns, name).get("status") or {}).get("containerStatuses") or []
    return statuses[0]["state"].get("terminated") if statuses else None


def _worker_runs(runner: PodRunner, ns: str, loadtest_name: str) -> list[dict[str, Any]]:
    """The worker pods of ``loadtest_name`` that the runner ran (gone once the run ended)."""
    prefix = f"{loadtest_name}-run-"
    return [h for h in runner.history if h["namespace"] == ns and h["name"].startswith(prefix)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- the built image and its SBOM --------------------------------------------------------------


@pytest.mark.cluster  # runs after `make test` built the image (the fast tier runs before)
def test_the_built_image_and_its_sbom(image: str) -> None:
    config = (image_info(image) or {})["Config"]
    assert config["User"] == "65532:65532"
    assert config["Entrypoint"] == ["surge"] and config["Cmd"] == ["operator"]
    assert "PATH=/venv/bin:/usr/local/bin:/usr/bin:/bin" in config["Env"]
    if not IMAGE_ENV.is_file():
        pytest.skip(f"{IMAGE_ENV} missing: image built elsewhere")
    built = dict(line.partition("=")[::2] for line in IMAGE_ENV.read_text().splitlines())
    assert built["IMAGE"] == image
    assert built["IMAGE_ID"] == (image_info(image) or {})["Id"]
    bom = json.loads(Path(built["SBOM"]).read_text())
    names = {c["purl"].split("@")[0] for c in bom["components"]}
    assert {"pkg:deb/debian/python3.11", "pkg:deb/debian/libc6"} <= names
    assert {"pkg:pypi/surge", "pkg:pypi/kopf", "pkg:pypi/kubernetes", "pkg:pypi/numpy"} <= names
    assert len(bom["components"]) == int(built["SBOM_PACKAGES"])


# ---- (a) workers in the image -----------------------------------------------------------------


@pytest.mark.cluster
@pytest.mark.timeout(240)
def test_workers_run_in_the_image(
    cluster: support.Cluster,
    namespace: str,
    container_runner: PodRunner,
    image: str,
    alice: str,
    tmp_path: Path,
) -> None:
    api = cluster.api_client
    # A 4 s start-barrier lead: a container's start and imports take longer than a process's.
    env = {"SURGE_LOADGEN_IMAGE": image, "SURGE_START_DELAY_S": START_DELAY_S}
    op = Operator(namespace, tmp_path / "operator.log", env=env)
    op.start()
    try:
        create(api, namespace, loadtest("in-image", alice, load={"workers": 2}))
        obj = wait_phase(api, namespace, "in-image", {"Succeeded", "Failed"}, op, timeout_s=150)
    finally:
        op.stop()
    status = obj["status"]
    assert status["phase"] == "Succeeded", (status.get("message"), op.tail())
    assert status["workers"]["reported"] == 2
    assert status["summary"]["verdict"] == "Passed"
    assert status["summary"]["achievedRps"] > 10
    assert 15 <= status["results"]["latency"]["p50"] < 500  # Alice answers in 20 ms
    assert status["results"]["requests"]["sent"] >= 40  # 20/s for the 3 s measured
    # The workers were containers of exactly this image, and exited 0.
    image_id = "sha256:" + str((image_info(image) or {})["Id"])
    workers = _worker_runs(container_runner, namespace, "in-image")
    assert len(workers) == 2, workers
    for w in workers:
        assert w["mode"] == "container" and w["containerID"].startswith("podman://"), w
        assert w["image"] == image and w["imageID"] == image_id, w
        assert w["exitCode"] == 0, w


# ---- (b) the operator in the image, as the chart's ServiceAccount ----------------------------


@pytest.mark.cluster
@pytest.mark.timeout(240)
def test_operator_runs_in_the_image_as_the_chart_service_account(
    cluster: support.Cluster,
    namespace: str,
    container_runner: PodRunner,
    image: str,
    alice: str,
) -> None:
    api = cluster.api_client
    core: Any = client.CoreV1Api(api)
    repository, _, tag = image.rpartition(":")
    values = {
        "image": {"repository": repository, "tag": tag},
        "rbac": {"kopfScanning": True},
        # The cluster policy lets the LoadTest reach Alice on 127.0.0.1 and run on local-0.
        "policy": {
            "targets": {"cidrs": ["127.0.0.1/32"]},
            "placement": {
                "allowedNodeSelectors": {"kubernetes.io/hostname": [LOCAL_NODE]},
                "allowedTolerations": LOCAL_PLACEMENT["tolerations"],
            },
        },
    }
    docs = render(values, namespace=namespace)
    rbac = [d for d in docs if d["kind"] in RBAC_KINDS]
    apply_rbac(api, rbac)
    for doc in docs:  # what the operator's pod mounts or reads (the policy ConfigMap)
        if doc["kind"] == "ConfigMap":
            core.create_namespaced_config_map(namespace, doc)
    # The chart's Deployment's pod, bound to local-0 (the runner's node) instead of scheduled.
    template = one(docs, "Deployment")["spec"]["template"]
    spec = template["spec"]
    spec["nodeName"] = LOCAL_NODE
    spec["tolerations"] = LOCAL_PLACEMENT["tolerations"]
    (container,) = spec["containers"]
    assert container["image"] == image
    # Host network: the liveness port must be free here; the workers serve no metrics (two of
    # them would both bind 9464); the e2e pace of tests/e2e/operator_support.Operator.
    port = _free_port()
    container["args"] = [
        re.sub(r"^--liveness=.*", f"--liveness=http://127.0.0.1:{port}/healthz", a)
        for a in container["args"]
    ]
    env = [e for e in container["env"] if e["name"] != "SURGE_WORKER_METRICS_PORT"]
    container["env"] = [
        *env,
        {"name": "SURGE_WORKER_METRICS_PORT", "value": "0"},
        {"name": "SURGE_INTERVAL_S", "value": "1"},
        {"name": "SURGE_START_DELAY_S", "value": START_DELAY_S},
    ]
    pod_name = f"surge-operator-{uuid.uuid4().hex[:6]}"
    body = {"metadata": {"name": pod_name, "labels": template["metadata"]["labels"]}, "spec": spec}
    try:
        core.create_namespaced_pod(namespace, body)

        def running() -> bool:
            phase = (_pod(api, namespace, pod_name).get("status") or {}).get("phase")
            assert phase not in ("Failed", "Succeeded"), container_runner.output(
                namespace, pod_name
            )
            return phase == "Running"

        wait_until(running, timeout_s=60, what="operator pod Running")
        pod = _pod(api, namespace, pod_name)
        assert pod["spec"]["serviceAccountName"] == "surge"
        mounts = [m["mountPath"] for m in pod["spec"]["containers"][0]["volumeMounts"]]
        assert "/var/run/secrets/kubernetes.io/serviceaccount" in mounts  # the SA token

        class PodLog(Operator):  # wait_phase shows the operator's log on a timeout
            def tail(self) -> str:
                lines = container_runner.output(namespace, pod_name).splitlines()
                return "\n".join(lines[-40:])

        op = PodLog(namespace, Path("/dev/null"))
        create(api, namespace, loadtest("op-in-image", alice, load={"workers": 1}))
        obj = wait_phase(api, namespace, "op-in-image", {"Succeeded", "Failed"}, op, 150)
        assert obj["status"]["phase"] == "Succeeded", (obj["status"].get("message"), op.tail())
        assert obj["status"]["workers"]["reported"] == 1
        assert obj["status"]["results"]["requests"]["sent"] >= 40
        (worker,) = _worker_runs(container_runner, namespace, "op-in-image")
        assert worker["image"] == image and worker["containerID"].startswith("podman://")
        assert worker["exitCode"] == 0, worker
        log = container_runner.output(namespace, pod_name)
        assert not re.search(r"forbidden|not enough permissions", log, re.IGNORECASE), log[-3000:]
    finally:
        core.delete_namespaced_pod(pod_name, namespace, grace_period_seconds=0)
        delete_cluster_rbac(api, rbac)


# ---- (c) read-only root ----------------------------------------------------------------------


WRITER = """
import os
print("uid", os.getuid(), "gid", os.getgid(), flush=True)
with open("/tmp/scratch", "w") as f:  # the pod's emptyDir: allowed
    f.write("ok")
print("wrote /tmp/scratch", flush=True)
with open("/venv/surge-was-here", "w") as f:  # the image: must fail
    f.write("no")
print("wrote /venv/surge-was-here", flush=True)
"""


def _worker_pod(namespace: str, image: str, name: str) -> dict[str, Any]:
    """The operator's worker pod template, with its securityContext, running ``WRITER``."""
    # A deep copy: the builder's securityContext dicts are shared module constants.
    template = copy.deepcopy(worker_job(namespace)["spec"]["template"])
    spec = template["spec"]
    spec.pop("affinity", None)
    spec.pop("nodeSelector", None)
    spec["nodeName"] = LOCAL_NODE
    spec["tolerations"] = LOCAL_PLACEMENT["tolerations"]
    spec["serviceAccountName"] = "default"
    (container,) = spec["containers"]
    container.update(image=image, command=["python3", "-c", WRITER], args=[], env=[])
    container.pop("ports", None)
    return {"metadata": {"name": name}, "spec": spec}


@pytest.mark.cluster
@pytest.mark.timeout(120)
def test_a_worker_writing_outside_its_volumes_fails_visibly(
    cluster: support.Cluster, namespace: str, container_runner: PodRunner, image: str
) -> None:
    api = cluster.api_client
    core: Any = client.CoreV1Api(api)
    body = _worker_pod(namespace, image, "writer")
    sc = body["spec"]["containers"][0]["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["capabilities"]["drop"] == ["ALL"]
    core.create_namespaced_pod(namespace, body)
    term = wait_until(
        lambda: _terminated(api, namespace, "writer"), timeout_s=60, what="writer terminated"
    )
    pod = _pod(api, namespace, "writer")
    assert pod["status"]["phase"] == "Failed", term
    assert term["exitCode"] == 1, term
    message = term["message"]  # FallbackToLogsOnError: the output's tail
    assert "uid 65532 gid 65532" in message, message
    assert "wrote /tmp/scratch" in message, message
    assert "Read-only file system: '/venv/surge-was-here'" in message, message
    assert "wrote /venv/surge-was-here" not in message, message


@pytest.mark.cluster
@pytest.mark.timeout(120)
def test_run_as_non_root_refuses_root(
    cluster: support.Cluster, namespace: str, container_runner: PodRunner, image: str
) -> None:
    api = cluster.api_client
    core: Any = client.CoreV1Api(api)
    body = _worker_pod(namespace, image, "root")
    body["spec"]["containers"][0]["securityContext"]["runAsUser"] = 0
    core.create_namespaced_pod(namespace, body)
    term = wait_until(
        lambda: _terminated(api, namespace, "root"), timeout_s=60, what="root pod terminated"
    )
    assert term["reason"] == "CreateContainerConfigError", term
    assert "non-root" in term["message"], term


# ---- pure: the podman flags of a securityContext -----------------------------------------------


def _k8s_pod(spec: dict[str, Any]) -> client.V1Pod:
    text = json.dumps({"metadata": {"name": "p"}, "spec": spec})
    pod: client.V1Pod = client.ApiClient().deserialize(text, "V1Pod", "application/json")
    return pod


def test_security_flags_of_the_restricted_worker_pod() -> None:
    spec = worker_job("ns")["spec"]["template"]["spec"]
    pod = _k8s_pod(spec)
    assert pod.spec is not None
    flags = security_flags(pod, pod.spec.containers[0], {"Config": {"User": "65532:65532"}})
    joined = " ".join(flags)
    assert "--user 65532:65532" in joined
    assert "--read-only --read-only-tmpfs=false" in joined
    assert "--cap-drop=all" in flags
    assert "--security-opt no-new-privileges" in joined


def test_run_as_non_root_needs_a_numeric_non_root_user() -> None:
    container = {"name": "c", "image": "i", "securityContext": {"runAsNonRoot": True}}
    pod = _k8s_pod({"containers": [container]})
    assert pod.spec is not None
    c = pod.spec.containers[0]
    with pytest.raises(ContainerConfigError, match="non-numeric"):
        security_flags(pod, c, {"Config": {"User": "nonroot"}})
    with pytest.raises(ContainerConfigError, match="non-root"):
        security_flags(pod, c, {"Config": {"User": "0"}})
    assert security_flags(pod, c, {"Config": {"User": "65532"}}) == []


def test_podman_missing_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    import tests.support.podrunner as podrunner

    monkeypatch.setattr(podrunner, "PODMAN", "surge-no-such-podman")
    assert "not installed" in str(podrunner.podman_available())


def test_the_image_name_follows_make_image(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SURGE_IMAGE", "registry.example/surge:1")
    assert built_image() == "registry.example/surge:1"
    monkeypatch.delenv("SURGE_IMAGE")
    assert built_image().endswith(f":{VERSION}") or IMAGE_ENV.is_file()


def test_container_args_are_what_a_kubelet_would_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import tests.support.podrunner as podrunner

    monkeypatch.setattr(podrunner, "image_info", lambda image: {"Id": "abc", "Config": {}})
    spec = copy.deepcopy(worker_job("ns")["spec"]["template"]["spec"])
    (container,) = spec["containers"]
    container["env"] = [
        {"name": "TOKEN", "value": "s3cret"},
        {"name": "PATH", "value": "/venv/bin:/bin"},
        {"name": "GREETING", "value": "hi $(TOKEN)"},
    ]
    container["args"] = ["--say", "$(GREETING)"]
    pod = _k8s_pod(spec)
    assert pod.metadata is not None and pod.spec is not None
    pod.metadata.namespace, pod.metadata.uid = "ns", "0123456789abcdef"
    api = client.ApiClient()
    api.configuration.host = "https://127.0.0.1:16443"
    runner = PodRunner(api, mode="container")
    run = podrunner._Run(
        uid="0123456789abcdef", namespace="ns", name="p", container=container["name"],
        image=container["image"], workdir=tmp_path, message_path=tmp_path / "msg",
        output_path=tmp_path / "out", fallback_to_logs=True, started_at="",
        mode="container",
    )  # fmt: skip
    run.message_path.touch()
    try:
        argv, env, _ = runner._container_args(pod, pod.spec.containers[0], run)
    finally:
        runner.stop()
    joined = " ".join(argv)
    image_at = argv.index(container["image"])
    assert argv[image_at - 2 : image_at] == ["--entrypoint", '["surge", "worker"]']
    assert argv[image_at + 1 :] == ["--say", "hi s3cret"]
    assert "s3cret" not in " ".join(argv[:image_at])  # env values stay out of argv ...
    assert "--env TOKEN " in joined and env["TOKEN"] == "s3cret"  # ... and go via podman's env
    assert "--env PATH=/venv/bin:/bin" in joined and env["PATH"] != "/venv/bin:/bin"
    assert env["KUBERNETES_SERVICE_HOST"] == "127.0.0.1"
    assert env["KUBERNETES_SERVICE_PORT"] == "16443"
    assert f"--volume {tmp_path / 'msg'}:/dev/termination-log:rw" in joined
    assert f"--volume {tmp_path / 'volumes' / 'tmp'}:/tmp:rw" in joined
    assert "--network host" in joined and "--pull never" in joined
    assert "--read-only --read-only-tmpfs=false" in joined and "--user 65532:65532" in joined
    assert run.image_id == "sha256:abc"
