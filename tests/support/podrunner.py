"""Test tool: runs the pods bound to node ``local-0`` of the local e2e cluster as local processes.

kwok simulates every other pod and never runs anything. For a pod bound to ``local-0`` (the
node tolerates nothing by default: taint ``surge.dev/local=true:NoSchedule``), this runner

- starts the first container's ``command`` + ``args`` (``$(VAR)`` expanded as the kubelet does)
  in a per-pod temporary directory (or ``workingDir`` when it exists on this machine), with the
  container's ``env`` and ``envFrom`` (``fieldRef`` resolved from the pod's metadata, so the
  ``JOB_COMPLETION_INDEX`` of Indexed Jobs works) on top of ``PATH`` (the repo's venv first),
  ``HOME``, ``HOSTNAME`` and ``KUBECONFIG`` (the cluster's, so the process can call the API);
- sets the pod Running, then Succeeded (exit code 0) or Failed with the exit code;
- puts the termination message into ``state.terminated.message``. The container's
  ``terminationMessagePath`` (default ``/dev/termination-log``) is mapped to a per-pod file:
  the path is given to the process in ``SURGE_TERMINATION_MESSAGE_PATH`` and every occurrence
  of the original path in command, args and env values is rewritten to it. With policy
  ``FallbackToLogsOnError``, a failed process with an empty message gets its output's tail.

It kills the process when the pod is deleted or terminating; kwok then removes the pod.
Other containers of the pod are not run. ``restartPolicy`` is not honoured: a pod runs once.
One runner per cluster. Run it beside a cluster by hand with
``python -m tests.support.podrunner --kubeconfig .cluster/kubeconfig``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.cluster import api_client_for

LOCAL_NODE = "local-0"
TERMINATION_ENV = "SURGE_TERMINATION_MESSAGE_PATH"
DEFAULT_TERMINATION_PATH = "/dev/termination-log"
MAX_MESSAGE_BYTES = 4096  # the kubelet's limit
FALLBACK_LOG_LINES = 80  # the kubelet's tail for FallbackToLogsOnError
REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = REPO_ROOT / ".venv" / "bin"

log = logging.getLogger("surge.podrunner")


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class PodSpecError(Exception):
    """The pod cannot be run here (no command, an unsupported env source)."""


def field_ref_value(pod: client.V1Pod, field_path: str) -> str:
    """Resolves a downward-API ``fieldRef.fieldPath`` against ``pod``.

    Supports ``metadata.{name,namespace,uid}``, ``metadata.labels['k']``,
    ``metadata.annotations['k']``, ``spec.nodeName``, ``spec.serviceAccountName``,
    ``status.hostIP`` and ``status.podIP`` (both ``127.0.0.1`` here).
    Raises PodSpecError for anything else.
    """
    meta = pod.metadata or client.V1ObjectMeta()
    spec = pod.spec
    simple: dict[str, str | None] = {
        "metadata.name": meta.name,
        "metadata.namespace": meta.namespace,
        "metadata.uid": meta.uid,
        "spec.nodeName": spec.node_name if spec else None,
        "spec.serviceAccountName": spec.service_account_name if spec else None,
        "status.hostIP": "127.0.0.1",
        "status.podIP": "127.0.0.1",
    }
    if field_path in simple:
        return simple[field_path] or ""
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", field_path)
    if match:
        source = meta.labels if match.group(1) == "labels" else meta.annotations
        return (source or {}).get(match.group(2), "")
    raise PodSpecError(f"unsupported fieldRef {field_path!r}")


def expand_vars(text: str, env: Mapping[str, str]) -> str:
    """Expands ``$(NAME)`` from ``env`` and ``$$`` to ``$``, leaving unknown names as they are."""

    def repl(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", repl, text)


def container_env(
    pod: client.V1Pod,
    container: client.V1Container,
    core: client.CoreV1Api,
) -> dict[str, str]:
    """The env the kubelet would give ``container``: envFrom first, then env, in order."""
    namespace = (pod.metadata.namespace if pod.metadata else None) or "default"
    env: dict[str, str] = {}
    for source in container.env_from or []:
        data: Mapping[str, str] = {}
        if source.config_map_ref is not None and source.config_map_ref.name:
            cm = core.read_namespaced_config_map(source.config_map_ref.name, namespace)
            data = cm.data or {}
        elif source.secret_ref is not None and source.secret_ref.name:
            secret = core.read_namespaced_secret(source.secret_ref.name, namespace)
            data = {k: _b64(v) for k, v in (secret.data or {}).items()}
        for key, value in data.items():
            env[(source.prefix or "") + key] = value
    for var in container.env or []:
        env[var.name] = _env_value(pod, var, env, core, namespace)
    return env


def _b64(value: str | bytes) -> str:
    return base64.b64decode(value).decode()


def _env_value(
    pod: client.V1Pod,
    var: client.V1EnvVar,
    env: Mapping[str, str],
    core: client.CoreV1Api,
    namespace: str,
) -> str:
    if var.value_from is None:
        return expand_vars(var.value or "", env)
    ref = var.value_from
    if ref.field_ref is not None:
        return field_ref_value(pod, ref.field_ref.field_path)
    if ref.config_map_key_ref is not None and ref.config_map_key_ref.name:
        cm = core.read_namespaced_config_map(ref.config_map_key_ref.name, namespace)
        return (cm.data or {})[ref.config_map_key_ref.key]
    if ref.secret_key_ref is not None and ref.secret_key_ref.name:
        secret = core.read_namespaced_secret(ref.secret_key_ref.name, namespace)
        return _b64((secret.data or {})[ref.secret_key_ref.key])
    raise PodSpecError(f"env {var.name}: unsupported valueFrom")


@dataclass
class _Run:
    """One pod's process and files."""

    uid: str
    namespace: str
    name: str
    container: str
    image: str
    workdir: Path
    message_path: Path
    output_path: Path
    fallback_to_logs: bool
    started_at: str
    proc: subprocess.Popen[bytes] | None = None
    done: bool = False
    extra_containers: list[tuple[str, str]] = field(default_factory=list)


class PodRunner:
    """Runs the pods bound to ``node`` as local processes until ``stop()``.

    ``poll_s`` is the period of the pod list and the process checks, in seconds.
    """

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        node: str = LOCAL_NODE,
        kubeconfig: str | None = None,
        poll_s: float = 0.5,
    ) -> None:
        self._core = client.CoreV1Api(api_client)
        self._node = node
        self._kubeconfig = kubeconfig
        self._poll_s = poll_s
        self._runs: dict[str, _Run] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._root = Path(tempfile.mkdtemp(prefix="surge-podrunner-"))

    def start(self) -> PodRunner:
        self._thread = threading.Thread(target=self._loop, name="podrunner", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stops the loop and kills every process still running."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        for run in self._runs.values():
            self._kill(run)
        shutil.rmtree(self._root, ignore_errors=True)

    def __enter__(self) -> PodRunner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync_once()
            except Exception:  # keep running: one API error must not end every later pod
                log.exception("podrunner sync failed")
            self._stop.wait(self._poll_s)

    def sync_once(self) -> None:
        """One pass: start new pods, report finished processes, kill deleted pods."""
        pods = self._core.list_pod_for_all_namespaces(
            field_selector=f"spec.nodeName={self._node}"
        ).items
        seen: set[str] = set()
        for pod in pods:
            meta = pod.metadata
            if meta is None or meta.uid is None:
                continue
            seen.add(meta.uid)
            run = self._runs.get(meta.uid)
            if meta.deletion_timestamp is not None:
                if run is not None:
                    self._kill(run)
                continue
            if run is None:
                phase = pod.status.phase if pod.status else None
                if phase in (None, "Pending"):
                    self._launch(pod)
            elif not run.done:
                self._check(run)
        for uid, run in list(self._runs.items()):
            if uid not in seen:
                self._kill(run)
                del self._runs[uid]

    def _launch(self, pod: client.V1Pod) -> None:
        assert pod.metadata is not None
        assert pod.spec is not None
        uid, name = str(pod.metadata.uid), str(pod.metadata.name)
        namespace = str(pod.metadata.namespace)
        container = pod.spec.containers[0]
        workdir = self._root / uid
        workdir.mkdir(parents=True, exist_ok=True)
        run = _Run(
            uid=uid,
            namespace=namespace,
            name=name,
            container=container.name,
            image=container.image or "",
            workdir=workdir,
            message_path=workdir / "termination-log",
            output_path=workdir / "output.log",
            fallback_to_logs=container.termination_message_policy == "FallbackToLogsOnError",
            started_at=_now(),
            extra_containers=[(c.name, c.image or "") for c in pod.spec.containers[1:]],
        )
        self._runs[uid] = run  # claimed before anything can fail: never started twice
        run.message_path.touch()
        try:
            argv, env, cwd = self._process_args(pod, container, run)
            output = run.output_path.open("wb")
            run.proc = subprocess.Popen(
                argv, env=env, cwd=cwd, stdout=output, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
            output.close()
        except (PodSpecError, OSError, KeyError, ApiException) as exc:
            log.warning("pod %s/%s cannot run: %s", namespace, name, exc)
            run.done = True
            self._patch(run, self._terminated_status(run, 128, "StartError", str(exc)))
            return
        log.info("pod %s/%s: started pid %d: %s", namespace, name, run.proc.pid, argv)
        self._patch(run, self._running_status(run))

    def _process_args(
        self, pod: client.V1Pod, container: client.V1Container, run: _Run
    ) -> tuple[list[str], dict[str, str], str]:
        if not container.command:
            raise PodSpecError("container has no command (image entrypoints cannot run here)")
        original = container.termination_message_path or DEFAULT_TERMINATION_PATH
        mapped = str(run.message_path)
        env = container_env(pod, container, self._core)
        env = {k: v.replace(original, mapped) for k, v in env.items()}
        argv = [
            expand_vars(a, env).replace(original, mapped)
            for a in [*container.command, *(container.args or [])]
        ]
        base = {
            "PATH": os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", os.defpath)]),
            "HOME": os.environ.get("HOME", str(run.workdir)),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            # A test session run from another checkout (a worktree) imports its own code.
            **{k: os.environ[k] for k in ("PYTHONPATH",) if k in os.environ},
            "HOSTNAME": run.name,
            TERMINATION_ENV: mapped,
        }
        if self._kubeconfig:
            base["KUBECONFIG"] = self._kubeconfig
        cwd = container.working_dir
        if not cwd or not Path(cwd).is_dir():
            cwd = str(run.workdir)
        return argv, {**base, **env}, cwd

    def _check(self, run: _Run) -> None:
        if run.proc is None or run.proc.poll() is None:
            return
        code = run.proc.returncode
        if code < 0:  # killed by a signal: report it as a shell would
            code = 128 - code
        run.done = True
        reason = "Completed" if code == 0 else "Error"
        log.info("pod %s/%s: exited %d", run.namespace, run.name, code)
        self._patch(run, self._terminated_status(run, code, reason, self._message(run, code)))

    def _message(self, run: _Run, code: int) -> str:
        data = run.message_path.read_bytes()[:MAX_MESSAGE_BYTES]
        if not data.strip() and code != 0 and run.fallback_to_logs:
            lines = run.output_path.read_bytes().splitlines()[-FALLBACK_LOG_LINES:]
            data = b"\n".join(lines)[-MAX_MESSAGE_BYTES:]
        return data.decode(errors="replace")

    def _kill(self, run: _Run) -> None:
        proc = run.proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        run.done = True

    def _running_status(self, run: _Run) -> dict[str, Any]:
        now = _now()
        statuses = [
            {
                "name": name,
                "image": image,
                "imageID": "",
                "containerID": f"podrunner://{run.uid}/{name}",
                "ready": True,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": now}},
            }
            for name, image in [(run.container, run.image), *run.extra_containers]
        ]
        return {
            "phase": "Running",
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "startTime": run.started_at,
            "conditions": _conditions(ready=True, now=now),
            "containerStatuses": statuses,
        }

    def _terminated_status(self, run: _Run, code: int, reason: str, message: str) -> dict[str, Any]:
        now = _now()
        main: dict[str, Any] = {"exitCode": code, "reason": reason, "message": message,
                                "startedAt": run.started_at, "finishedAt": now}  # fmt: skip
        statuses = [
            {
                "name": name,
                "image": image,
                "imageID": "",
                "containerID": f"podrunner://{run.uid}/{name}",
                "ready": False,
                "started": False,
                "restartCount": 0,
                "state": {"terminated": term},
            }
            for name, image, term in [
                (run.container, run.image, main),
                *[
                    (
                        n,
                        i,
                        {
                            "exitCode": 0,
                            "reason": "NotRun",
                            "startedAt": run.started_at,
                            "finishedAt": now,
                        },
                    )
                    for n, i in run.extra_containers
                ],
            ]
        ]
        return {
            "phase": "Succeeded" if code == 0 else "Failed",
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "startTime": run.started_at,
            "conditions": _conditions(ready=False, now=now),
            "containerStatuses": statuses,
        }

    def _patch(self, run: _Run, status: dict[str, Any]) -> None:
        try:
            self._core.patch_namespaced_pod_status(
                run.name,
                run.namespace,
                {"status": status},
                _content_type="application/merge-patch+json",
            )
        except ApiException as exc:
            if exc.status != 404:  # a pod deleted meanwhile needs no status
                raise


def _conditions(*, ready: bool, now: str) -> list[dict[str, str]]:
    value = "True" if ready else "False"
    conditions = [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
        {"type": "Initialized", "status": "True", "lastTransitionTime": now},
        {"type": "ContainersReady", "status": value, "lastTransitionTime": now},
        {"type": "Ready", "status": value, "lastTransitionTime": now},
    ]
    if not ready:
        for c in conditions[2:]:
            c["reason"] = "PodCompleted"
    return conditions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    parser.add_argument("--node", default=LOCAL_NODE)
    parser.add_argument("--duration-s", type=float, default=3600.0, help="stop after this long")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    api_client = api_client_for(Path(args.kubeconfig))
    with PodRunner(api_client, node=args.node, kubeconfig=args.kubeconfig):
        deadline = time.monotonic() + args.duration_s
        with contextlib.suppress(KeyboardInterrupt):
            while time.monotonic() < deadline:
                time.sleep(1)


if __name__ == "__main__":
    main()
