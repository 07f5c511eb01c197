"""Red team: a labelled dataset ConfigMap whose JSONL the parser cannot read crashes admission."""

from __future__ import annotations

import pytest

from tests.operator.fake_kube import FakeKube
from tests.operator.test_lifecycle import NS, SERVICE, T0, _body, _spec, tick

LINES = {
    "a 5000-digit integer (ValueError, not JSONDecodeError)": '{"q": ' + "1" * 5000 + "}\n",
    "100000 nested lists (RecursionError)": '{"q": ' + "[" * 100_000 + "]" * 100_000 + "}\n",
}


@pytest.mark.parametrize("line", sorted(LINES))
def test_an_unreadable_dataset_line_fails_the_run_naming_the_field(line: str) -> None:
    """Attack: the tenant's own labelled ConfigMap holds one JSONL line that json.loads
    raises on with something other than JSONDecodeError: the reconcile raises every retry."""
    kube = FakeKube()
    kube.put(SERVICE)
    labels = {"surge.dev/usable": "true"}
    meta = {"name": "rows", "namespace": NS, "labels": labels}
    kube.put({"kind": "ConfigMap", "metadata": meta, "data": {"rows.jsonl": LINES[line]}})
    dataset = {"configMapRef": {"name": "rows", "key": "rows.jsonl"}}
    body = _body(_spec(scenario={"path": "/", "body": {"q": "{{q}}"}, "dataset": dataset}))
    tick(kube, body, T0)
    assert body["status"]["phase"] == "Failed"
    assert "spec.scenario.dataset.configMapRef" in body["status"]["message"]
