"""kopf handlers: glue between events and the lifecycle. No decisions are made here."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import kopf
from kubernetes import config as kube_config

from surge.api.base import GROUP, VERSION
from surge.operator import builders, experiments, lifecycle
from surge.operator.context import Step
from surge.operator.kube import Kube
from surge.operator.settings import current

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
    memo.kube = Kube()
    memo.surge = current()


# backoff: a failed step (API conflict, Prometheus hiccup) is retried soon, not in kopf's 60 s.
@kopf.timer(GROUP, VERSION, "loadtests", interval=INTERVAL_S, backoff=5)
def reconcile(
    body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    step = lifecycle.reconcile(_plain(body), memo.kube, memo.surge, datetime.now(UTC))
    _apply(body, patch, logger, step)


def _apply(body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, step: Step) -> None:
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


@kopf.timer(GROUP, VERSION, "scalingexperiments", interval=INTERVAL_S, backoff=5)
def reconcile_experiment(
    body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    step = experiments.reconcile_experiment(_plain(body), memo.kube, memo.surge, datetime.now(UTC))
    _apply(body, patch, logger, step)


@kopf.on.delete(GROUP, VERSION, "scalingexperiments")
def restore_on_delete(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    experiments.restore_on_delete(_plain(body), memo.kube, memo.surge, datetime.now(UTC))
    logger.info("ScalingExperiment deleted: originals restored, child LoadTests deleted")


@kopf.on.delete(GROUP, VERSION, "loadtests")
def stop_on_delete(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    name, ns = body["metadata"]["name"], body["metadata"]["namespace"]
    removed = memo.kube.delete_jobs(ns, builders.selector(name))
    memo.kube.delete_pods(ns, builders.selector(name))
    logger.info("LoadTest deleted: stopped %d worker Jobs", removed)


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
