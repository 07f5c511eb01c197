"""What a LoadTest hits: the target's URL and headers, its Deployment, and when it is ready."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator, model_validator

from surge.api.base import Model
from surge.api.bounds import MAX_ITEMS, Key, Text
from surge.api.durations import Duration
from surge.api.urls import check_url

# A Kubernetes object name (DNS subdomain), as the API server accepts it.
Name = Annotated[
    str, Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
]


class SecretKeyRef(Model):
    name: Name
    """Secret in the LoadTest's namespace."""
    key: Key


class HeaderValueFrom(Model):
    secret_key_ref: SecretKeyRef


class Header(Model):
    name: str = Field(min_length=1, max_length=256, pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
    value: Text | None = None
    value_from: HeaderValueFrom | None = None
    """Read the value from a Secret, so tokens stay out of the manifest."""

    @model_validator(mode="after")
    def _one_source(self) -> Header:
        if (self.value is None) == (self.value_from is None):
            raise ValueError("set exactly one of value or valueFrom")
        return self


class DeploymentRef(Model):
    name: Name
    namespace: Name | None = None
    """Defaults to the LoadTest's namespace."""


class HttpCheck(Model):
    url: Text | None = None
    """Absolute health URL; when unset, `path` is joined to target.url."""
    path: Text | None = None
    expect_status: int = Field(200, ge=100, le=599)

    @model_validator(mode="after")
    def _one_of(self) -> HttpCheck:
        if (self.url is None) == (self.path is None):
            raise ValueError("set exactly one of url or path")
        if self.path is not None and not self.path.startswith("/"):
            raise ValueError(f"path {self.path!r} must start with '/'")
        if self.url is not None:
            check_http_url(self.url)
        return self


class Readiness(Model):
    deployment_available: bool = True
    """Wait for target.deploymentRef to report Available (ignored without a deploymentRef)."""
    http: HttpCheck | None = None
    timeout: Duration = 300.0
    """Fail the run with TargetReady=False when the target is not ready by then."""


def check_http_url(url: str, *, allow_userinfo: bool = False) -> str:
    """url itself when it is an http(s) URL every client reads alike (surge.api.urls);
    else ValueError (for validators). Only the target URL may carry user info."""
    return check_url(url, allow_userinfo=allow_userinfo)


class Target(Model):
    url: Text
    """Base URL of the agent, e.g. http://alice.shop.svc:8080; requests go to url + path."""
    deployment_ref: DeploymentRef | None = None
    """The Deployment serving `url`: Surge waits for it and records its replicas."""
    headers: list[Header] = Field(default_factory=list, max_length=MAX_ITEMS)
    readiness: Readiness = Field(default_factory=Readiness)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return check_http_url(v, allow_userinfo=True)

    def health_url(self) -> str | None:
        """readiness.http as a full URL (its url, or url + path); None without one."""
        check = self.readiness.http
        if check is None:
            return None
        return check.url or self.url.rstrip("/") + str(check.path)
