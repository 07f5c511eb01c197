"""Pure parts of the pod runner (tests/support/podrunner.py): no cluster needed."""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.support.podrunner import PodSpecError, expand_vars, field_ref_value


def _pod() -> client.V1Pod:
    pod = client.V1Pod.from_dict(
        {
            "metadata": {
                "name": "job-0-abc",
                "namespace": "ns",
                "uid": "u-1",
                "labels": {"app": "a"},
                "annotations": {"batch.kubernetes.io/job-completion-index": "3"},
            },
            "spec": {"nodeName": "local-0", "containers": [{"name": "c", "image": "i"}]},
        }
    )
    assert pod is not None
    return pod


@pytest.mark.parametrize(
    ("path", "want"),
    [
        ("metadata.name", "job-0-abc"),
        ("metadata.namespace", "ns"),
        ("metadata.uid", "u-1"),
        ("metadata.labels['app']", "a"),
        ("metadata.annotations['batch.kubernetes.io/job-completion-index']", "3"),
        ("metadata.annotations['missing']", ""),
        ("spec.nodeName", "local-0"),
        ("status.hostIP", "127.0.0.1"),
    ],
)
def test_field_ref_value(path: str, want: str) -> None:
    assert field_ref_value(_pod(), path) == want


def test_field_ref_value_unsupported() -> None:
    with pytest.raises(PodSpecError):
        field_ref_value(_pod(), "spec.containers[0].name")


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("$(A)-$(B)", "1-two"),
        ("$(MISSING)", "$(MISSING)"),
        ("$$(A)", "$(A)"),
        ("plain $A", "plain $A"),
    ],
)
def test_expand_vars(text: str, want: str) -> None:
    assert expand_vars(text, {"A": "1", "B": "two"}) == want
