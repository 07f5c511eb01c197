"""load.sendTick's CEL rule on the real API server against the model (#29): 300 seeded
random spellings near 1 ms and 10 ms (tests/support/durations.py), each a server-side
dry-run create of a LoadTest; the API server must admit exactly the ones `parse_spec`
admits, and say the rule's message for the others. CEL's duration() is Go's
time.ParseDuration, so this is where "0.9999999999ms" (999,999 ns to Go) must be refused
by both."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from surge.api.bounds import SEND_TICK_CHARS, SEND_TICK_NS, SEND_TICK_RULE
from surge.api.durations import DURATION_RE
from surge.api.manifests import ManifestError, parse_spec
from tests.e2e.operator_support import GROUP, PLURAL, VERSION, loadtest
from tests.support.durations import spellings

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]

SEED, COUNT = 2912, 300
BASE = loadtest("tick", "http://127.0.0.1:9")


def _model_refusal(tick: str) -> list[str] | None:
    """The fields the model names when it refuses the tick, else None."""
    spec = copy.deepcopy(BASE["spec"])
    spec["load"]["sendTick"] = tick
    try:
        parse_spec("LoadTest", spec)
    except ManifestError as exc:
        return [e.path for e in exc.errors]
    return None


def _server_refusal(api: client.CustomObjectsApi, ns: str, tick: str) -> Any:
    """The API server's status code and causes when it refuses the tick, else None."""
    obj = copy.deepcopy(BASE)
    obj["spec"]["load"]["sendTick"] = tick
    try:
        api.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, obj, dry_run="All")
    except ApiException as exc:
        return exc.status, json.loads(exc.body or "{}").get("details", {}).get("causes")
    return None


def test_the_api_server_admits_exactly_the_send_ticks_the_model_admits(
    api_client: client.ApiClient, namespace: str
) -> None:
    api = client.CustomObjectsApi(api_client)
    ticks = [*spellings(SEED, COUNT, SEND_TICK_NS), "0.9999999999ms", "9ms1000us"]
    ticks += ["0" * 38 + "2ms", "0" * 37 + "2ms", " 2ms", "٥ms"]  # 41 and 40 characters
    print(f"sendTick CEL differential: seed {SEED}, {len(ticks)} spellings")
    differ = []
    admitted = 0
    for tick in ticks:
        server, model = _server_refusal(api, namespace, tick), _model_refusal(tick)
        admitted += server is None
        if (server is None) != (model is None):
            differ.append((tick, server, model))
        elif server is not None:
            status, causes = server
            assert model == ["spec.load.sendTick"], (tick, model)
            assert status == 422, (tick, server)
            # A schema error adds a note that the CEL rules were skipped (field "<nil>").
            fields = {c["field"] for c in causes if c["field"] != "<nil>"}
            assert fields == {"spec.load.sendTick"}, (tick, causes)
            # Over the field's maxLength the schema refuses it before the rule runs.
            why = str(SEND_TICK_RULE["message"])
            if len(tick) > SEND_TICK_CHARS:
                why = "Too long"
            elif not DURATION_RE.fullmatch(tick):
                why = "should match"  # the pattern (the rule, failing to parse, says so too)
            assert any(why in c["message"] for c in causes), (tick, causes)
    assert not differ, differ
    assert 0.2 * len(ticks) < admitted < 0.8 * len(ticks)  # both sides of the rule were tried
