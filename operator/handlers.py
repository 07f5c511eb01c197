"""kopf handlers: glue between events and the lifecycle. No decisions are made here."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import kopf
from kubernetes import config as kube_config

from surge.api.base import GROUP, VERSION
from surge.api.experiment_status import ScalingExperimentStatus
from surge.api.status import LoadTestStatus
from surge.operator import crash
from surge.operator.context import Decision
from surge.operator.experiment import reconcile as experiments
from surge.operator.kube import watch_guard
from surge.operator.kube.client import Kube
from surge.operator.loadtest import lifecycle
from surge.operator.settings import Settings, current

TERMINAL = frozenset({"Succeeded", "Failed", "Aborted"})
INTERVAL_S = current().interval_s  # kopf takes the interval at decoration time
log = logging.getLogger("surge.operator")


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING  # lifecycle posts its own Events
    # The resources are known; scanning namespaces and CRDs would need cluster-wide RBAC.
    settings.scanning.disabled = True
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 30
    try:
        kube_config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kube_config.ConfigException:
        kube_config.load_kube_config()  # type: ignore[no-untyped-call]
    watch_guard.install()  # before the first watch: no object can stop it (docs/security.md)
    memo.kube = Kube()
    memo.surge = current()
    memo.locks = {}


def _in_flight(status: kopf.Status, **_: Any) -> bool:
    """A run that has not ended: only these are polled, and only these carry the finalizer
    (kopf puts one on every object a timer matches)."""
    phase: Any = dict(status or {}).get("phase")
    return phase not in TERMINAL


Reconcile = Callable[[dict[str, Any], Kube, Settings, datetime], Decision]
Crashed = Callable[[dict[str, Any], Kube, Settings, datetime, str], Decision]


def _guarded(
    body: kopf.Body,
    memo: kopf.Memo,
    run: Reconcile,
    crashed: Crashed,
    model: type[LoadTestStatus | ScalingExperimentStatus] = LoadTestStatus,
) -> Decision:
    """One reconcile, one object at a time (the watch handler and the timer may fire together).
    Whatever it raises fails this object with reason InternalError (operator/crash.py), so
    one object cannot stop the operator nor be retried forever; only an unreachable API
    server is left to kopf's retries."""
    uid = str(body["metadata"].get("uid"))
    now = datetime.now(UTC)
    with memo.locks.setdefault(uid, threading.Lock()):
        try:
            return run(_plain(body), memo.kube, memo.surge, now)
        except crash.TRANSIENT:
            raise
        except Exception as exc:  # the point: no object stops the operator
            text = crash.message(exc)
            log.exception("%s: %s", _where(body), text)
            try:
                return crashed(_plain(body), memo.kube, memo.surge, now, text)
            except crash.TRANSIENT:
                raise  # recording the failure (a restore) needs the API server: kopf retries
            except Exception:
                log.exception("%s: the failure could not be recorded; phase only", _where(body))
                return crash.fallback(text, model)


def _where(body: kopf.Body) -> str:
    meta = body.get("metadata") or {}
    return f"{body.get('kind')} {meta.get('namespace')}/{meta.get('name')}"


def _reconcile_loadtest(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo) -> None:
    step = _guarded(body, memo, lifecycle.reconcile, crash.crashed_loadtest)
    _fault_after_verdict(step)
    _apply(body, patch, step)


@kopf.on.event(GROUP, VERSION, "loadtests")
def loadtest_event(
    type: str | None, body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any
) -> None:
    """Every watch event: a new object or a spec edit reacts at once; a run in flight takes
    its next step as soon as its last one is written (a step that changes nothing writes
    nothing, so this settles); a finished run's persisted end releases what it held. The
    timer polls what has no event of its own (target readiness, worker pods)."""
    if type == "DELETED" or body["metadata"].get("deletionTimestamp"):
        return
    status = body.get("status") or {}
    new_spec = body["metadata"].get("generation") != status.get("observedGeneration")
    in_flight = status.get("phase") not in TERMINAL
    ended = not in_flight and (status.get("lease") or status.get("workersToDelete"))
    if new_spec or in_flight or ended:
        _reconcile_loadtest(body, patch, memo)


# The first tick waits one interval: a new object is handled by its watch event first.
@kopf.timer(
    GROUP, VERSION, "loadtests", interval=INTERVAL_S, initial_delay=INTERVAL_S, when=_in_flight
)
def reconcile(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    _reconcile_loadtest(body, patch, memo)


def _fault_after_verdict(step: Decision) -> None:
    """Tests only (SURGE_TEST_FAULT=exit-after-verdict): die after a verdict is computed and
    before it is written, as a crash at the worst moment would."""
    if (
        os.environ.get("SURGE_TEST_FAULT") == "exit-after-verdict"
        and step.status.get("phase") in TERMINAL
    ):
        log.warning("SURGE_TEST_FAULT: exiting after the verdict, before writing it")
        os._exit(3)


def _apply(body: kopf.Body, patch: kopf.Patch, step: Decision) -> None:
    for key, value in step.status.items():
        patch.status[key] = _integral(value)
    for type_, reason, message in step.events:
        kopf.event(body, type=type_, reason=reason, message=message)
        meta = body["metadata"]
        log.info(
            "%s/%s %s %s: %s",
            meta.get("namespace"),
            meta.get("name"),
            body.get("kind"),
            reason,
            message,
            extra={
                "object": {
                    "kind": body.get("kind"),
                    "namespace": meta.get("namespace"),
                    "name": meta.get("name"),
                }
            },
        )


@kopf.on.event(GROUP, VERSION, "scalingexperiments")
def experiment_event(
    type: str | None, body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any
) -> None:
    if type == "DELETED" or body["metadata"].get("deletionTimestamp"):
        return
    status = body.get("status") or {}
    # A new experiment starts at once and a finished one gives its target back; the stages
    # of one in flight follow the timer (their replica samples change every tick).
    held = status.get("lease") or status.get("deploymentLease")
    ended = status.get("phase") in TERMINAL and held
    if not status or ended:
        _reconcile_experiment(body, patch, memo)


@kopf.timer(
    GROUP,
    VERSION,
    "scalingexperiments",
    interval=INTERVAL_S,
    initial_delay=INTERVAL_S,
    when=_in_flight,
)
def reconcile_experiment(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    _reconcile_experiment(body, patch, memo)


def _reconcile_experiment(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo) -> None:
    step = _guarded(
        body, memo, experiments.reconcile_experiment, crash.crashed_experiment,
        ScalingExperimentStatus,
    )  # fmt: skip
    _apply(body, patch, step)


# Only an experiment in flight has the target changed: only then is there anything to undo.
@kopf.on.delete(GROUP, VERSION, "scalingexperiments", when=_in_flight)
def restore_on_delete(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    restore_or_let_go(body, memo, logger)


def restore_or_let_go(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger) -> None:
    """The experiment's originals restored as it is deleted; a permanent failure is reported
    and lets the deletion go (only an unreachable API server keeps the finalizer)."""
    try:
        experiments.restore_on_delete(_plain(body), memo.kube, memo.surge, datetime.now(UTC))
    except crash.TRANSIENT:
        raise  # the API server did not answer: kopf retries, the finalizer stays
    except Exception as exc:  # a permanent failure must not hold the deletion forever
        text = crash.message(exc)
        log.exception("%s: %s", _where(body), text)
        # kopf posts an error from this logger as a Warning Event on the object.
        logger.error(f"restore on delete failed, the target may keep the variant's fields: {text}")
        return
    logger.info("ScalingExperiment deleted mid-run: originals restored, child LoadTests deleted")


def _integral(value: Any) -> Any:
    """1.0 -> 1: the API server stores JSON numbers, and kopf warns when what it reads back
    differs from what it patched."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


def _plain(body: kopf.Body) -> dict[str, Any]:
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": dict(body["metadata"]),
        "spec": dict(body.get("spec") or {}),
        "status": dict(body.get("status") or {}),
    }
