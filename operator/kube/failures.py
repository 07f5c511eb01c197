"""What an API failure means for a run, pure: the reason a permanent one ends it with, and how
long to wait before retrying a transient one."""

from __future__ import annotations

from surge.api.status import Reason
from surge.operator.kube.client import KubeError

MAX_BACKOFF_S = 60.0
MAX_ATTEMPTS_WITHOUT_DEADLINE = 30
"""A step that keeps failing transiently before its phase has a deadline gives up after this
many tries (about 25 minutes with the capped backoff)."""


def failure_reason(err: KubeError) -> Reason:
    """The reason (surge.api.status.REASONS) a permanent API error ends the run with."""
    if err.status == 403:
        return Reason.FORBIDDEN
    if err.action.startswith("create Job"):
        return Reason.JOB_REJECTED
    too_long = "too long" in err.message.lower() or "too large" in err.message.lower()
    if err.action.startswith("create ConfigMap") and (err.status == 413 or too_long):
        return Reason.PLAN_TOO_LARGE
    return Reason.API_REJECTED


def backoff_s(attempts: int) -> float:
    """1 s, 2 s, 4 s, ... capped at MAX_BACKOFF_S, for the n-th consecutive failure."""
    return min(2.0 ** max(attempts - 1, 0), MAX_BACKOFF_S)
