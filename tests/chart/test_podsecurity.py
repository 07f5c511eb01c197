"""Every pod template Surge renders meets the restricted Pod Security Standard (static)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from tests.chart.podsecurity import restricted_violations
from tests.chart.workloads import pod_templates


@pytest.mark.parametrize("name", ["operator Deployment", "worker Job"])
def test_restricted(name: str) -> None:
    template = pod_templates("shop")[name]
    assert restricted_violations(template["spec"]) == []
    # Read-only root filesystem everywhere, with a writable /tmp.
    (container,) = template["spec"]["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert template["spec"]["securityContext"]["runAsUser"] == 65532


def test_the_checker_catches_each_breach() -> None:
    spec = pod_templates("shop")["worker Job"]["spec"]
    breaches: dict[str, Callable[[dict[str, Any]], Any]] = {
        "privileged": lambda s: s["containers"][0]["securityContext"].update(privileged=True),
        "escalation": lambda s: s["containers"][0]["securityContext"].pop(
            "allowPrivilegeEscalation"
        ),
        "caps": lambda s: s["containers"][0]["securityContext"].pop("capabilities"),
        "root": lambda s: s["securityContext"].update(runAsUser=0),
        "seccomp": lambda s: s["securityContext"].pop("seccompProfile"),
        "hostPath": lambda s: s["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
        "hostNetwork": lambda s: s.update(hostNetwork=True),
    }
    for why, breach in breaches.items():
        broken = copy.deepcopy(spec)
        breach(broken)
        assert restricted_violations(broken), why
