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

**Container mode** (``mode="container"``; process mode stays the default) runs the first
container in its ``image`` with podman (runtime ``runc``, ``--pull never``: the image must be
in podman's local storage, e.g. from ``make image``) and applies what a kubelet would:

- ``command`` replaces the image's ENTRYPOINT and ``args`` its CMD (``$(VAR)`` expanded);
  ``workingDir``; ``env``/``envFrom`` resolved as in process mode (Secrets, ConfigMaps,
  ``fieldRef``), plus ``KUBERNETES_SERVICE_HOST``/``PORT`` pointing at the API server (on
  127.0.0.1: the service IP is virtual here) and ``HOSTNAME`` = the pod's name;
- volumes: ``emptyDir`` (a per-pod directory, mode 0777; ``medium: Memory`` a tmpfs),
  ``configMap`` and ``secret`` (files written to a per-pod directory, ``items``/``defaultMode``
  honoured, bind-mounted read-only) and ``projected`` ones, which is how the ServiceAccount
  admission plugin injects ``kube-api-access-*``: a **TokenRequest token** of the pod's
  ServiceAccount bound to the pod, ``kube-root-ca.crt`` and the namespace, mounted read-only at
  ``/var/run/secrets/kubernetes.io/serviceaccount``. The process therefore talks to the API
  as its ServiceAccount through in-cluster config, not with the runner's kubeconfig;
- ``securityContext`` (container over pod): ``runAsUser``/``runAsGroup`` (``--user``),
  ``runAsNonRoot`` (refused, as by the kubelet, when the user is 0 or not numeric),
  ``fsGroup``/``supplementalGroups`` (``--group-add``), ``readOnlyRootFilesystem``
  (``--read-only`` without podman's extra tmpfs mounts: only the pod's volumes are writable),
  ``capabilities`` add/drop, ``allowPrivilegeEscalation: false`` (no-new-privileges),
  ``privileged``, ``seccompProfile`` (RuntimeDefault: podman's default profile; Unconfined);
- host networking (``--network host``), so the container reaches targets on 127.0.0.1;
- ``terminationMessagePath`` is a per-pod file bind-mounted at that path; the container's exit
  code becomes the pod's status as in process mode; a container that cannot start (missing
  image, a refused security context, an unknown executable) is reported as ``StartError``
  (exit code 128) or ``CreateContainerConfigError`` with podman's message.

Not applied: resource limits (cgroups here are hybrid v1), probes, ports (host network),
``hostPath`` and other volume types (the pod fails with StartError). A runner's mode can be
switched while it runs (``with runner.using("container"): ...``); each pod keeps the mode it was
started with.

One runner per cluster. Run it beside a cluster by hand with
``python -m tests.support.podrunner --kubeconfig .cluster/kubeconfig [--mode container]``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import json
import logging
import os
import re
import resource
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

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
PODMAN = os.environ.get("SURGE_PODMAN", "podman")
# crun 1.8 (Debian 12) fails on this machine's hybrid cgroups; runc works.
PODMAN_RUNTIME = os.environ.get("SURGE_PODMAN_RUNTIME", "runc")
SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
CONTAINER_PREFIX = "surge-pod-"
# Names podman itself reads: a container's value for them goes into argv instead.
PODMAN_OWN_ENV = frozenset(
    {"PATH", "HOME", "TMPDIR", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME",
     "CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF"}
)  # fmt: skip
Mode = Literal["process", "container"]

log = logging.getLogger("surge.podrunner")


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class PodSpecError(Exception):
    """The pod cannot be run here (no command, an unsupported env source)."""


class ContainerConfigError(PodSpecError):
    """The kubelet would refuse to create the container (CreateContainerConfigError)."""


class NotReadyYet(Exception):
    """Something the pod needs does not exist yet (kube-root-ca.crt); try again later."""


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
    mode: Mode = "process"
    container_name: str | None = None  # container mode: podman's name for it
    image_id: str = ""
    grace_s: int = 5


class PodRunner:
    """Runs the pods bound to ``node`` as local processes (or containers) until ``stop()``.

    ``poll_s`` is the period of the pod list and the process checks, in seconds. ``mode``:
    ``process`` (default) or ``container`` (see the module's doc).
    """

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        node: str = LOCAL_NODE,
        kubeconfig: str | None = None,
        poll_s: float = 0.5,
        mode: Mode = "process",
    ) -> None:
        self._core = client.CoreV1Api(api_client)
        self._api_host = str(api_client.configuration.host or "")
        self._node = node
        self._kubeconfig = kubeconfig
        self._poll_s = poll_s
        self.mode: Mode = mode
        self._not_ready_since: dict[str, float] = {}
        # Every pod that ended here, oldest first (pods of finished Jobs are deleted soon after).
        self.history: list[dict[str, Any]] = []
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

    @contextlib.contextmanager
    def using(self, mode: Mode) -> Iterator[PodRunner]:
        """Pods started inside the block run in ``mode``; the previous mode is restored after."""
        previous, self.mode = self.mode, mode
        try:
            yield self
        finally:
            self.mode = previous

    def output(self, namespace: str, name: str) -> str:
        """The stdout and stderr of the pod ``namespace/name`` so far ("" when unknown)."""
        for run in list(self._runs.values()):
            if (run.namespace, run.name) == (namespace, name) and run.output_path.is_file():
                return run.output_path.read_bytes().decode(errors="replace")
        return ""

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
            mode=self.mode,
        )
        self._runs[uid] = run  # claimed before anything can fail: never started twice
        run.message_path.touch()
        try:
            if run.mode == "container":
                argv, env, cwd = self._container_args(pod, container, run)
            else:
                argv, env, cwd = self._process_args(pod, container, run)
            output = run.output_path.open("wb")
            run.proc = subprocess.Popen(
                argv, env=env, cwd=cwd, stdout=output, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
            output.close()
        except NotReadyYet as exc:
            if uid not in self._not_ready_since:
                log.info("pod %s/%s waits: %s", namespace, name, exc)
            first = self._not_ready_since.setdefault(uid, time.monotonic())
            if time.monotonic() - first < 60:
                del self._runs[uid]  # not started: the next pass tries again
                shutil.rmtree(workdir, ignore_errors=True)
                return
            self._start_failed(run, "StartError", PodSpecError(str(exc)))
            return
        except ContainerConfigError as exc:
            self._start_failed(run, "CreateContainerConfigError", exc)
            return
        except (PodSpecError, OSError, KeyError, ApiException) as exc:
            self._start_failed(run, "StartError", exc)
            return
        self._not_ready_since.pop(uid, None)
        log.info(
            "pod %s/%s: started pid %d (%s): %s", namespace, name, run.proc.pid, run.mode, argv
        )
        self._patch(run, self._running_status(run))

    def _start_failed(self, run: _Run, reason: str, exc: Exception) -> None:
        log.warning("pod %s/%s cannot run: %s", run.namespace, run.name, exc)
        run.done = True
        self._patch(run, self._terminated_status(run, 128, reason, str(exc)))

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

    # ---- container mode ---------------------------------------------------------------------

    def _container_args(
        self, pod: client.V1Pod, container: client.V1Container, run: _Run
    ) -> tuple[list[str], dict[str, str], str]:
        """``podman run`` for ``container``, and the env that carries the values of ``-e``."""
        assert pod.spec is not None and pod.metadata is not None
        image = container.image or ""
        info = image_info(image)
        if info is None:
            raise PodSpecError(
                f"image {image!r} is not in podman's local storage (--pull never; build it "
                "with `make image`)"
            )
        run.image_id = f"sha256:{info['Id']}"
        run.container_name = f"{CONTAINER_PREFIX}{run.uid[:13]}-{container.name}"
        run.grace_s = min(int(pod.spec.termination_grace_period_seconds or 5), 5)
        user_env = container_env(pod, container, self._core)
        env = {**self._service_env(), **user_env}
        argv = [
            PODMAN, "--runtime", PODMAN_RUNTIME, "run", "--rm", "--name", run.container_name,
            "--pull", "never", "--network", "host", "--hostname", run.name,
            "--log-driver", "none", "--label", f"dev.surge.podrunner.pod={run.uid}",
            *ulimit_flags(), "--stop-timeout", str(run.grace_s),
        ]  # fmt: skip
        argv += security_flags(pod, container, info)
        argv += self._volume_flags(pod, container, run)
        message_path = container.termination_message_path or DEFAULT_TERMINATION_PATH
        run.message_path.chmod(0o666)
        argv += ["--volume", f"{run.message_path}:{message_path}:rw"]
        if container.working_dir:
            argv += ["--workdir", container.working_dir]
        for name, value in env.items():
            # A value travels in podman's environment, not in argv (Secrets), except for the
            # names podman itself reads.
            argv += ["--env", f"{name}={value}" if name in PODMAN_OWN_ENV else name]
        if container.command:
            command = [expand_vars(a, user_env) for a in container.command]
            argv += ["--entrypoint", json.dumps(command)]
        argv.append(image)
        argv += [expand_vars(a, user_env) for a in container.args or []]
        podman_env = {k: v for k, v in env.items() if k not in PODMAN_OWN_ENV}
        podman_env["PATH"] = os.environ.get("PATH", os.defpath)
        for name in PODMAN_OWN_ENV - {"PATH"}:
            if name in os.environ:
                podman_env[name] = os.environ[name]
        return argv, podman_env, str(run.workdir)

    def _service_env(self) -> dict[str, str]:
        """The kubelet's env for the ``kubernetes`` Service, at the API server's real address."""
        parts = urlsplit(self._api_host)
        host, port = parts.hostname or "127.0.0.1", str(parts.port or 443)
        return {
            "KUBERNETES_SERVICE_HOST": host,
            "KUBERNETES_SERVICE_PORT": port,
            "KUBERNETES_SERVICE_PORT_HTTPS": port,
            "KUBERNETES_PORT": f"tcp://{host}:{port}",
            "KUBERNETES_PORT_443_TCP": f"tcp://{host}:{port}",
            "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
            "KUBERNETES_PORT_443_TCP_ADDR": host,
            "KUBERNETES_PORT_443_TCP_PORT": port,
        }

    def _volume_flags(
        self, pod: client.V1Pod, container: client.V1Container, run: _Run
    ) -> list[str]:
        assert pod.spec is not None
        volumes = {v.name: v for v in pod.spec.volumes or []}
        flags: list[str] = []
        prepared: dict[str, tuple[Path | None, bool]] = {}
        for mount in container.volume_mounts or []:
            volume = volumes.get(mount.name)
            if volume is None:
                raise PodSpecError(f"volumeMount {mount.name!r}: no such volume")
            if mount.name not in prepared:
                prepared[mount.name] = self._prepare_volume(pod, volume, run)
            source, read_only = prepared[mount.name]
            ro = read_only or bool(mount.read_only)
            if source is None:  # emptyDir medium Memory
                flags += ["--tmpfs", f"{mount.mount_path}:rw,mode=1777"]
                continue
            if mount.sub_path:
                source = source / mount.sub_path
                if not source.exists():
                    source.mkdir(parents=True, mode=0o777)
            flags += ["--volume", f"{source}:{mount.mount_path}:{'ro' if ro else 'rw'}"]
        return flags

    def _prepare_volume(
        self, pod: client.V1Pod, volume: client.V1Volume, run: _Run
    ) -> tuple[Path | None, bool]:
        """The host directory of ``volume`` (None: a tmpfs) and whether it is read-only."""
        path = run.workdir / "volumes" / volume.name
        if volume.empty_dir is not None:
            if volume.empty_dir.medium == "Memory":
                return None, False
            path.mkdir(parents=True)
            path.chmod(0o777)  # as the kubelet makes it: any uid of the pod can write
            return path, False
        namespace = str(pod.metadata.namespace) if pod.metadata else "default"
        files: dict[str, tuple[bytes, int]] = {}
        if volume.config_map is not None:
            cm = volume.config_map
            data = self._config_map_data(namespace, str(cm.name), bool(cm.optional))
            files = _select(data, cm.items, cm.default_mode)
        elif volume.secret is not None:
            sec = volume.secret
            data = self._secret_data(namespace, str(sec.secret_name), bool(sec.optional))
            files = _select(data, sec.items, sec.default_mode)
        elif volume.projected is not None:
            mode = volume.projected.default_mode
            for source in volume.projected.sources or []:
                files.update(self._projection(pod, source, mode))
        else:
            raise PodSpecError(f"volume {volume.name!r}: only emptyDir, configMap, secret and "
                               "projected volumes are supported in container mode")  # fmt: skip
        path.mkdir(parents=True)
        path.chmod(0o755)
        for rel, (content, mode) in files.items():
            target = path / rel
            if not target.resolve().is_relative_to(path.resolve()):
                raise PodSpecError(f"volume {volume.name!r}: path {rel!r} leaves the volume")
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
            target.write_bytes(content)
            target.chmod(mode)
        return path, True

    def _projection(
        self, pod: client.V1Pod, source: client.V1VolumeProjection, default_mode: int | None
    ) -> dict[str, tuple[bytes, int]]:
        assert pod.metadata is not None and pod.spec is not None
        namespace = str(pod.metadata.namespace)
        mode = default_mode if default_mode is not None else 0o644
        if source.service_account_token is not None:
            sat = source.service_account_token
            token = self._token(pod, sat.audience, sat.expiration_seconds or 3607)
            return {sat.path: (token.encode(), mode)}
        if source.config_map is not None:
            cm = source.config_map
            data = self._config_map_data(namespace, str(cm.name), bool(cm.optional))
            return _select(data, cm.items, default_mode)
        if source.secret is not None:
            sec = source.secret
            data = self._secret_data(namespace, str(sec.name), bool(sec.optional))
            return _select(data, sec.items, default_mode)
        if source.downward_api is not None:
            out = {}
            for item in source.downward_api.items or []:
                if item.field_ref is None:
                    raise PodSpecError("downwardAPI: only fieldRef items are supported")
                value = field_ref_value(pod, item.field_ref.field_path)
                out[item.path] = (value.encode(), item.mode if item.mode is not None else mode)
            return out
        raise PodSpecError("projected volume: unsupported source")

    def _token(self, pod: client.V1Pod, audience: str | None, expiry_s: int) -> str:
        """A TokenRequest token of the pod's ServiceAccount, bound to the pod (the kubelet's)."""
        assert pod.metadata is not None and pod.spec is not None
        account = pod.spec.service_account_name or "default"
        request = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(
                audiences=[audience] if audience else [],
                expiration_seconds=max(expiry_s, 600),
                bound_object_ref=client.V1BoundObjectReference(
                    api_version="v1", kind="Pod", name=pod.metadata.name, uid=pod.metadata.uid
                ),
            )
        )
        namespace = str(pod.metadata.namespace)
        response = self._core.create_namespaced_service_account_token(account, namespace, request)
        assert response.status is not None
        return str(response.status.token)

    def _config_map_data(self, namespace: str, name: str, optional: bool) -> dict[str, bytes]:
        try:
            cm = self._core.read_namespaced_config_map(name, namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            if optional:
                return {}
            raise NotReadyYet(f"ConfigMap {namespace}/{name} not found") from exc
        data = {k: v.encode() for k, v in (cm.data or {}).items()}
        data.update({k: base64.b64decode(v) for k, v in (cm.binary_data or {}).items()})
        return data

    def _secret_data(self, namespace: str, name: str, optional: bool) -> dict[str, bytes]:
        try:
            secret = self._core.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            if optional:
                return {}
            raise NotReadyYet(f"Secret {namespace}/{name} not found") from exc
        return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}

    def _check(self, run: _Run) -> None:
        if run.proc is None or run.proc.poll() is None:
            return
        code = run.proc.returncode
        if code < 0:  # killed by a signal: report it as a shell would
            code = 128 - code
        run.done = True
        reason = "Completed" if code == 0 else "Error"
        log.info("pod %s/%s: exited %d", run.namespace, run.name, code)
        if run.mode == "container" and code in (125, 126, 127):
            # podman's own codes: the container could not be created or its command not run.
            tail = run.output_path.read_bytes().decode(errors="replace").strip().splitlines()
            if tail and tail[-1].startswith("Error:"):
                self._patch(run, self._terminated_status(run, 128, "StartError", tail[-1]))
                return
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
        if run.container_name:  # SIGTERM, then SIGKILL after the grace period, as a kubelet
            subprocess.run(
                [PODMAN, "stop", "--time", str(run.grace_s), run.container_name],
                capture_output=True, timeout=run.grace_s + 30, check=False,
            )  # fmt: skip
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
                "imageID": run.image_id if name == run.container else "",
                "containerID": _container_id(run, name),
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
                "imageID": run.image_id if name == run.container else "",
                "containerID": _container_id(run, name),
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
        if status["phase"] in ("Succeeded", "Failed"):
            term = status["containerStatuses"][0]["state"]["terminated"]
            self.history.append(
                {"namespace": run.namespace, "name": run.name, "mode": run.mode,
                 "image": run.image, "imageID": run.image_id,
                 "containerID": _container_id(run, run.container),
                 "exitCode": term["exitCode"], "reason": term["reason"]}
            )  # fmt: skip
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


def _container_id(run: _Run, name: str) -> str:
    if run.container_name and name == run.container:
        return f"podman://{run.container_name}"
    return f"podrunner://{run.uid}/{name}"


def _select(
    data: Mapping[str, bytes], items: list[Any] | None, default_mode: int | None
) -> dict[str, tuple[bytes, int]]:
    """The files of a configMap/secret volume: every key, or only ``items`` (key -> path)."""
    mode = default_mode if default_mode is not None else 0o644
    if not items:
        return {key: (value, mode) for key, value in data.items()}
    out = {}
    for item in items:
        if item.key not in data:
            raise NotReadyYet(f"key {item.key!r} not found")
        out[item.path] = (data[item.key], item.mode if item.mode is not None else mode)
    return out


def podman_available() -> str | None:
    """Why podman cannot run containers here, or None when it can."""
    if shutil.which(PODMAN) is None:
        return f"{PODMAN} is not installed (apt-get install podman runc)"
    if shutil.which(PODMAN_RUNTIME) is None and not Path(PODMAN_RUNTIME).is_file():
        return f"the OCI runtime {PODMAN_RUNTIME} is not installed (apt-get install runc)"
    out = subprocess.run([PODMAN, "info", "--format", "{{.Store.GraphDriverName}}"],
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    if out.returncode != 0:
        return f"podman info failed: {out.stderr.strip()[-300:]}"
    return None


def image_info(image: str) -> dict[str, Any] | None:
    """``podman image inspect`` of a local image (Id, Config.User, ...), or None when absent."""
    out = subprocess.run([PODMAN, "image", "inspect", image],
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    info: dict[str, Any] | None = json.loads(out.stdout)[0] if out.returncode == 0 else None
    return info


def ulimit_flags() -> list[str]:
    """Limits podman may set here: its own defaults exceed what this machine allows."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    nofile = hard if hard != resource.RLIM_INFINITY else 65536
    return ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", "nproc=4096:4096"]


def security_flags(
    pod: client.V1Pod, container: client.V1Container, image: Mapping[str, Any]
) -> list[str]:
    """podman flags for the pod's and the container's securityContext (container wins)."""
    assert pod.spec is not None
    psc = pod.spec.security_context or client.V1PodSecurityContext()
    csc = container.security_context or client.V1SecurityContext()

    def pick(name: str) -> Any:
        value = getattr(csc, name, None)
        return value if value is not None else getattr(psc, name, None)

    flags: list[str] = []
    uid, gid = pick("run_as_user"), pick("run_as_group")
    if uid is not None:
        flags += ["--user", f"{uid}:{gid}" if gid is not None else str(uid)]
    elif gid is not None:
        raise ContainerConfigError("runAsGroup without runAsUser is not supported here")
    if pick("run_as_non_root"):
        user = str(uid) if uid is not None else str((image.get("Config") or {}).get("User") or "")
        name = user.split(":")[0]
        if not name.isdigit():
            raise ContainerConfigError(
                f"container has runAsNonRoot and image has non-numeric user ({name or 'root'}), "
                "cannot verify user is non-root"
            )
        if int(name) == 0:
            raise ContainerConfigError("container's runAsUser breaks non-root policy")
    for group in [psc.fs_group, *(psc.supplemental_groups or [])]:
        if group is not None:
            flags += ["--group-add", str(group)]
    if csc.read_only_root_filesystem:
        flags += ["--read-only", "--read-only-tmpfs=false"]
    if csc.privileged:
        flags.append("--privileged")
    caps = csc.capabilities
    if caps is not None:
        flags += [f"--cap-drop={c.lower()}" for c in caps.drop or []]
        flags += [f"--cap-add={c.lower()}" for c in caps.add or []]
    if csc.allow_privilege_escalation is False:
        flags += ["--security-opt", "no-new-privileges"]
    seccomp = pick("seccomp_profile")
    if seccomp is not None and seccomp.type == "Unconfined":
        flags += ["--security-opt", "seccomp=unconfined"]
    elif seccomp is not None and seccomp.type == "Localhost":
        raise ContainerConfigError("seccompProfile Localhost is not supported here")
    return flags


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
    parser.add_argument("--mode", choices=["process", "container"], default="process")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    api_client = api_client_for(Path(args.kubeconfig))
    with PodRunner(api_client, node=args.node, kubeconfig=args.kubeconfig, mode=args.mode):
        deadline = time.monotonic() + args.duration_s
        with contextlib.suppress(KeyboardInterrupt):
            while time.monotonic() < deadline:
                time.sleep(1)


if __name__ == "__main__":
    main()
