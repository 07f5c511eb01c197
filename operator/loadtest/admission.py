"""Admission of a LoadTest run: the spec checks only the operator can make, and the plan's storage.

The CRD schema and `parse_spec` check the spec itself; here come the cluster policy
(operator/policy/rules.py: images, targets, placement, Secrets, caps), the dataset read from a
ConfigMap, a trace's rate curve read from a ConfigMap or Prometheus (so the plan carries it),
and the plan ConfigMap every worker reads, with the SHA-256 the operator and the workers
check it against. Raises ManifestError or PolicyViolation with field-named messages.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from surge.api.loadtest import ConfigMapKeyRef, LoadTestSpec
from surge.api.manifests import FieldError, ManifestError, parse_spec
from surge.api.policy import USABLE_SECRET_LABEL, PolicyViolation, Violation
from surge.loadgen.plan import build_plan, plan_json, plan_sha256, with_inline_rows
from surge.loadgen.trace import TraceError
from surge.loadgen.trace_resolve import TraceUnavailable, resolve_trace
from surge.operator.context import Ctx
from surge.operator.kube.client import Kube, KubeError
from surge.operator.loadtest import builders
from surge.operator.loadtest.prometheus_access import prometheus_headers
from surge.operator.policy import target as policy_target
from surge.operator.policy.facts import Resolver, gather, resolve
from surge.operator.policy.rules import Allowed, loadtest_violations, worker_networks
from surge.operator.settings import Settings
from surge.results.prometheus import RangeQuerier, connect

TRACE_QUERY_TIMEOUT_S = 30.0


def _refuse(field: str, message: str) -> ManifestError:
    return ManifestError([FieldError(field, message)])


@dataclass(frozen=True)
class Admitted:
    spec: LoadTestSpec
    """The validated spec with its dataset inlined and its trace's curve resolved."""
    networks: list[str]
    """Where the workers may find the target (they check again: worker_networks)."""


def accepted_spec(
    body: dict[str, Any],
    kube: Kube,
    settings: Settings,
    resolver: Resolver = resolve,
    prometheus: Callable[..., RangeQuerier] | None = None,
) -> Admitted:
    """The validated spec, admitted by the cluster policy, its dataset and trace curve read.
    Raises ManifestError (the spec itself, a curve it cannot replay) or PolicyViolation
    (what the policy forbids). `prometheus`: makes the trace's client (default: connect)."""
    namespace = body["metadata"]["namespace"]
    spec: LoadTestSpec = parse_spec("LoadTest", body.get("spec") or {})
    if spec.load.trace is not None and spec.load.trace.resolved_from is not None:
        # Surge writes it into the plan when it reads a curve; from a spec it would let
        # status and results name a source the curve never came from.
        raise _refuse(
            "spec.load.trace.resolvedFrom", "set by Surge when it reads a curve; remove it"
        )
    policy = settings.policy
    allowed = Allowed(
        images=settings.allowed_images, prometheus_urls=settings.allowed_prometheus_urls
    )
    facts = gather(spec, body, policy, kube, resolver)
    violations = loadtest_violations(spec, namespace, policy, allowed, facts)
    if violations:
        raise PolicyViolation(violations)
    networks = worker_networks(spec, namespace, policy, facts)
    ds = spec.scenario.dataset
    if ds is not None and ds.file is not None:
        raise _refuse(
            "spec.scenario.dataset.file",
            "files are read on the local machine only; in a cluster use configMapRef or inline",
        )
    if ds is not None and ds.config_map_ref is not None:
        rows = _dataset_rows(kube, namespace, ds.config_map_ref, policy.require_secret_label)
        spec = with_inline_rows(spec, rows)
    if spec.load.trace is not None and not spec.load.trace.resolved:
        spec = _with_curve(spec, namespace, kube, settings, prometheus or connect)
        # Caps on the resolved curve: its peak rate and length are known only now.
        violations = loadtest_violations(spec, namespace, policy, allowed, facts)
        if violations:
            raise PolicyViolation(violations)
    return Admitted(spec, networks)


def _with_curve(
    spec: LoadTestSpec,
    namespace: str,
    kube: Kube,
    settings: Settings,
    prometheus: Callable[..., RangeQuerier],
) -> LoadTestSpec:
    """The spec with its trace's curve read (the policy admitted its source already)."""
    need_label = settings.policy.require_secret_label

    def read(name: str, key: str) -> str:
        ref = ConfigMapKeyRef(name=name, key=key)
        return _configmap_text(kube, namespace, ref, need_label, "spec.load.trace.configMapRef")

    querier: RangeQuerier | None = None
    trace = spec.load.trace
    if trace is not None and trace.prometheus is not None:
        url = spec.prometheus.url or settings.prometheus_url
        if url is None:
            raise _refuse(
                "spec.load.trace.prometheus",
                "no Prometheus: set spec.prometheus.url (or the operator's --prometheus-url)",
            )
        try:
            headers = prometheus_headers(spec, namespace, kube)
        except KubeError as err:
            if not err.permanent:
                raise
            raise _refuse("spec.prometheus.auth", f"cannot read the auth Secret: {err}") from None
        querier = prometheus(url, headers=headers, timeout_s=TRACE_QUERY_TIMEOUT_S)
    try:
        return resolve_trace(spec, read_configmap=read, querier=querier)
    except TraceUnavailable as exc:
        # No answer from Prometheus: retried with backoff until the phase's deadline, each
        # attempt shown in the Retrying condition, never an InvalidSpec for an outage.
        raise KubeError(f"query Prometheus for {exc.field}", None, exc.message) from None
    except TraceError as exc:
        raise _refuse(exc.field, exc.message) from None


def _dataset_rows(kube: Kube, namespace: str, ref: Any, need_label: bool) -> list[dict[str, Any]]:
    where = "spec.scenario.dataset.configMapRef"
    text = _configmap_text(kube, namespace, ref, need_label, where)
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except (ValueError, RecursionError):  # JSONDecodeError, an over-long int, deep nesting
            raise _refuse(where, f"line {n}: not JSON this parser reads") from None
    if not rows or not all(isinstance(r, dict) for r in rows):
        raise _refuse(where, "expected JSONL: one JSON object per line")
    return rows


def _configmap_text(kube: Kube, namespace: str, ref: Any, need_label: bool, where: str) -> str:
    """A ConfigMap key's text, where the ConfigMap is opted in (its label) if the policy asks."""
    cm = kube.configmap(namespace, ref.name)
    labels = ((cm or {}).get("metadata") or {}).get("labels") or {}
    if cm is not None and need_label and labels.get(USABLE_SECRET_LABEL) != "true":
        # Its rows go into the plan and out to the target: a ConfigMap is opted in as a
        # Secret is (another's data, e.g. an experiment's snapshot, is not a dataset).
        raise PolicyViolation(
            [
                Violation(
                    where,
                    "requireSecretLabel",
                    f'ConfigMap {ref.name} lacks the label {USABLE_SECRET_LABEL}: "true"',
                )
            ]
        )
    text = ((cm or {}).get("data") or {}).get(ref.key)
    if text is None:
        raise _refuse(where, f"ConfigMap {ref.name} has no key {ref.key!r}")
    return str(text)


PLAN_LIMIT_BYTES = 1_000_000
"""A ConfigMap holds at most 1 MiB of data; the rest of the object needs a little room."""


class PlanTooLarge(ValueError):
    """The run's plan (the spec with its dataset inlined) does not fit a ConfigMap."""


def store_plan(ctx: Ctx[Any], admitted: Admitted, run_id: str) -> str:
    """Write the run's plan ConfigMap (the spec as accepted, frozen for the run) and return
    its SHA-256. Raises PlanTooLarge before asking the API server when it cannot fit,
    NotOwned when a ConfigMap of that name exists and is someone else's, PolicyViolation
    when one that claims to be this resource's holds another plan (it was not written by
    Surge: the plan is deterministic, so a crash-and-retry finds the same text), KubeError."""
    plan = build_plan(
        admitted.spec,
        name=ctx.name,
        namespace=ctx.namespace,
        run_id=run_id,
        allowed_networks=admitted.networks,
    )
    text = plan_json(plan)
    size = len(text.encode())
    if size > PLAN_LIMIT_BYTES:
        raise PlanTooLarge(
            f"the run's plan is {size:,} bytes, over the {PLAN_LIMIT_BYTES:,} a ConfigMap holds; "
            "make spec.scenario.dataset smaller (fewer or shorter rows)"
        )
    digest = plan_sha256(text)
    live = ctx.create(builders.plan_configmap(ctx.body, run_id, text))
    if live is not None:  # always: the operator builds the Job from it (verifyPlanHash or not)
        found = ((live.get("data") or {}).get(builders.PLAN_KEY)) or ""
        if plan_sha256(found) != digest:
            raise PolicyViolation(
                [
                    Violation(
                        f"ConfigMap {ctx.namespace}/{builders.run_name(ctx.name, run_id)}",
                        "verifyPlanHash",
                        "exists already with a plan this run did not write; delete it",
                    )
                ]
            )
    return digest


def target_key(spec_raw: dict[str, Any], namespace: str) -> str:
    """What one-run-per-target compares: the Service the URL loads, else its host and port
    (operator/policy/target.py); never the deploymentRef, which must back that Service."""
    return policy_target.target_key(spec_raw, namespace)
