"""Red team: two spellings of another namespace's Service take two target locks."""

from __future__ import annotations

from surge.operator.policy.target import target_key

NS = "team-a"


def test_the_two_label_form_of_another_namespaces_service_shares_its_lock() -> None:
    """Attack: with targets.hosts allowing team-b's Services, one LoadTest on
    http://alice.team-b:80 and another on http://alice.team-b.svc:80 (the same Service for a
    pod's resolver, through the search path) hold two Leases and load it at once."""
    short = target_key({"target": {"url": "http://alice.team-b:80"}}, NS)
    full = target_key({"target": {"url": "http://alice.team-b.svc:80"}}, NS)
    assert short == full
