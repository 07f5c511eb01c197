"""The cluster policy applied to a ScalingExperiment's KEDA ScaledObject variants. Pure.

A ScaledObject's trigger makes KEDA, with KEDA's own network position and credentials, read a
metric source every pollingInterval: the trigger is a request the tenant aims. So variants
that write ScaledObjects are off until the admin opts in (scaledObjects.allow); each
trigger's type must be one the admin lists; every address a trigger names (a prometheus
serverAddress, a metrics-api url, any key naming an address or host, any value with a
scheme; each entry of a comma list) must be one of the allowed Prometheus URLs
(prometheusUrls, or the operator's own), read by the same parser as a LoadTest's; an
address taken from the Deployment's environment (`...FromEnv`) is refused, since the policy
cannot see it; so are headers and parameters that pick whose series KEDA reads
(customHeaders, cortexOrgID, queryParameters, a prometheus `namespace`) and unsafeSsl; a
trigger's `query` is custom PromQL, allowed only with allowCustomQueries (its value shows
in KEDA's HPA status); a trigger's authenticationRef must name a listed
TriggerAuthentication of the namespace (never a ClusterTriggerAuthentication); and the
replica counts stay within caps.maxExperimentReplicas, a missing maxReplicaCount counting as
the one the ScaledObject keeps (the owner's), or KEDA's default of 100 when it has none.
"""

from __future__ import annotations

from typing import Any

from surge.api.experiment import ScalingExperimentSpec
from surge.api.policy import ClusterPolicy, Violation
from surge.operator.experiment.scaled_object_fields import KEDA_DEFAULT_MAX
from surge.operator.policy.rules import _same_url

ADDRESS_KEYS = frozenset(
    {
        "serverAddress",
        "url",
        "host",
        "hosts",
        "address",
        "addresses",
        "endpoint",
        "bootstrapServers",
        "brokerList",
        "connectionString",
    }
)
"""Trigger metadata keys (of KEDA's scalers) that name where KEDA sends its requests."""
ADDRESS_PARTS = ("address", "url", "host", "endpoint", "server", "broker", "connection", "dsn")
"""A key holding one of these (any case) names an address too: KEDA's scalers have many
(natsServerMonitoringEndpoint, managementEndpoint, scalerAddress, endpoints, ...), most
given without a scheme."""
SCOPE_KEYS = frozenset({"customHeaders", "cortexOrgID", "tenantName", "queryParameters"})
"""Keys that set headers or parameters of KEDA's request (X-Scope-OrgID, a Thanos or
prom-label-proxy tenant): on an allowed server they choose whose series KEDA reads."""
QUERY_KEYS = frozenset({"query", "queries"})


def _is_address(key: str, text: str) -> bool:
    return key in ADDRESS_KEYS or any(p in key.lower() for p in ADDRESS_PARTS) or "://" in text


def _metadata_violations(
    where: str, kind: str, metadata: dict[str, Any], urls: tuple[str, ...], queries: bool
) -> list[Violation]:
    out: list[Violation] = []
    for key, value in sorted(metadata.items()):
        field = f"{where}.metadata.{key}"
        text = str(value)
        if key.endswith(("FromEnv", "FromEnvFile")):
            out.append(
                Violation(
                    field,
                    "scaledObjects.triggerTypes",
                    "a value read from the Deployment's environment is not seen by the policy; "
                    f"give {key.removesuffix('FromEnvFile').removesuffix('FromEnv')} itself",
                )
            )
        elif key in SCOPE_KEYS or (kind == "prometheus" and key == "namespace"):
            out.append(
                Violation(
                    field,
                    "prometheusUrls",
                    "sets a header or parameter of KEDA's request (a tenant, an org id): on an "
                    "allowed server it could read another tenant's series; remove it",
                )
            )
        elif key == "unsafeSsl" and text.strip().lower() != "false":
            out.append(
                Violation(
                    field,
                    "prometheusUrls",
                    "KEDA would not verify the server's certificate (and would send a "
                    "TriggerAuthentication's credentials to whoever answers); remove it",
                )
            )
        elif key in QUERY_KEYS and not queries:
            out.append(
                Violation(
                    field,
                    "allowCustomQueries",
                    "a trigger's query runs with KEDA's access and its value shows in KEDA's "
                    "HPA status (any series, other tenants' included); not allowed here: use "
                    "a cpu or memory trigger, or ask the admin to set allowCustomQueries",
                )
            )
        elif _is_address(key, text):
            # Each entry of a list (`a,b`): scalers that take several servers split on commas.
            parts = [p.strip() for p in text.split(",")]
            if not all(any(_same_url(p, u) for u in urls) for p in parts):
                allowed = ", ".join(urls) or "none configured"
                out.append(
                    Violation(
                        field,
                        "prometheusUrls",
                        f"{text[:200]!r} is not an allowed metrics URL (allowed: {allowed}); "
                        "KEDA would send its requests there",
                    )
                )
    return out


def scaled_object_violations(
    spec: ScalingExperimentSpec,
    policy: ClusterPolicy,
    prometheus_urls: tuple[str, ...],
    live: dict[str, Any] | None = None,
) -> list[Violation]:
    """Every rule the experiment's ScaledObject variants break (empty: admitted). `live` is
    the ScaledObject spec.targetRef.scaledObject names, when it exists."""
    out: list[Violation] = []
    rules = policy.scaled_objects
    dep = spec.target_ref.deployment
    ref = ((live or {}).get("spec") or {}).get("scaleTargetRef") or {}
    if live is not None and (
        ref.get("kind") not in (None, "", "Deployment") or ref.get("name") != dep
    ):
        out.append(
            Violation(
                "spec.targetRef.scaledObject",
                "requireExperimentAnnotation",
                f"ScaledObject {spec.target_ref.scaled_object} scales "
                f"{ref.get('kind') or 'Deployment'} {ref.get('name')}, not the Deployment {dep}: "
                "variants would change that one",
            )
        )
    most = policy.caps.max_experiment_replicas
    for i, v in enumerate(spec.variants):
        so = v.scaled_object
        if so is None:
            continue
        where = f"spec.variants[{i}].scaledObject"
        if not rules.allow:
            out.append(
                Violation(
                    where,
                    "scaledObjects.allow",
                    "variants may not write KEDA ScaledObjects in this cluster; use an hpa "
                    "variant, or ask the admin to set scaledObjects.allow",
                )
            )
            continue
        for j, trigger in enumerate(so.triggers):
            at = f"{where}.triggers[{j}]"
            kind = str(trigger.get("type"))
            if kind not in rules.trigger_types:
                out.append(
                    Violation(
                        f"{at}.type",
                        "scaledObjects.triggerTypes",
                        f"trigger type {kind!r} is not allowed; use one of "
                        f"{', '.join(rules.trigger_types) or 'none'}",
                    )
                )
            meta = dict(trigger.get("metadata") or {})
            queries = policy.allow_custom_queries
            out += _metadata_violations(at, kind, meta, prometheus_urls, queries)
            auth = trigger.get("authenticationRef")
            if auth is not None:
                out += _auth_violations(
                    f"{at}.authenticationRef", auth, rules.trigger_authentications
                )
        # Unset, the ScaledObject keeps the max it has (the owner's), else KEDA's default.
        kept = ((live or {}).get("spec") or {}).get("maxReplicaCount")
        in_force = so.max_replica_count or (kept if isinstance(kept, int) else KEDA_DEFAULT_MAX)
        unset = "" if so.max_replica_count else f" (unset: the ScaledObject's {in_force})"
        counts = [
            (f"{where}.maxReplicaCount", in_force, unset),
            (f"{where}.minReplicaCount", so.min_replica_count, ""),
        ]
        for field, n, why in counts:
            if most is not None and n is not None and n > most:
                out.append(
                    Violation(
                        field,
                        "caps.maxExperimentReplicas",
                        f"{n} replicas{why} is above the cap of {most}; "
                        f"set maxReplicaCount to at most {most}",
                    )
                )
    return out


def _auth_violations(field: str, auth: Any, allowed: list[str]) -> list[Violation]:
    if not isinstance(auth, dict):
        return [Violation(field, "scaledObjects.triggerAuthentications", "must be {name: ...}")]
    kind = auth.get("kind") or "TriggerAuthentication"
    name = str(auth.get("name"))
    if kind != "TriggerAuthentication":
        return [
            Violation(
                f"{field}.kind",
                "scaledObjects.triggerAuthentications",
                f"{kind} is cluster-wide, not the namespace's; name a TriggerAuthentication",
            )
        ]
    if name not in allowed:
        return [
            Violation(
                f"{field}.name",
                "scaledObjects.triggerAuthentications",
                f"TriggerAuthentication {name!r} is not one a trigger may use "
                f"(allowed: {', '.join(allowed) or 'none'})",
            )
        ]
    return []
