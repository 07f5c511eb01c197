"""Errors of the Kubernetes API as the operator sees them: what was attempted, the HTTP
status, the API server's own message, and whether retrying can help."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import urllib3
from kubernetes.client.exceptions import ApiException


class KubeError(Exception):
    """An API call that failed: `action` ("create Job ns/name"), the HTTP status (None when
    no answer came) and the API server's message."""

    def __init__(self, action: str, status: int | None, message: str) -> None:
        super().__init__(f"{action}: {message}")
        self.action = action
        self.status = status
        self.message = message

    @property
    def permanent(self) -> bool:
        return (
            self.status is not None
            and 400 <= self.status < 500
            and self.status
            not in (
                409,
                429,
            )
        )


def server_message(exc: ApiException) -> str:
    """The `message` of the API server's Status body, else the HTTP reason."""
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        body = None
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return f"{exc.status} {exc.reason}"


@contextlib.contextmanager
def call(action: str) -> Iterator[None]:
    try:
        yield
    except ApiException as exc:
        raise KubeError(action, exc.status, server_message(exc)) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise KubeError(action, None, f"no answer from the API server ({exc})") from exc


def absent(exc: ApiException) -> bool:
    return bool(exc.status == 404)
