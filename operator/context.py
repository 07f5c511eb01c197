"""One reconcile's context: the object, its typed status, the clients, and what the step decided.

The status is read into its pydantic model (LoadTestStatus or ScalingExperimentStatus), the
state machines change the model, and `Ctx.step()` turns the change into the status patch:
each top-level field whose dump (by alias) differs from what was read, written whole. A
nested object is dumped with every key (None included), so a JSON merge patch clears what
the model no longer holds; nothing in status is written except through the models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar, cast

from pydantic import ValidationError

from surge.api.experiment_status import ScalingExperimentStatus
from surge.api.status import ConditionStatus, LoadTestStatus, Phase, Reason
from surge.operator.conditions import checked_phase, now_rfc3339, set_condition
from surge.operator.kube.client import Kube
from surge.operator.settings import Settings

S = TypeVar("S", LoadTestStatus, ScalingExperimentStatus)


MESSAGE_CHARS = 2048
"""Status messages, condition messages and Events are cut here: status stays small whatever
a spec makes the operator say (every violation of a 100-variant experiment, say)."""


def bounded(text: str, limit: int = MESSAGE_CHARS) -> str:
    if len(text) <= limit:
        return text
    rest = len(text) - limit
    return f"{text[:limit]}… ({rest:,} more characters)"


class NotOwned(Exception):
    """An object the run would create exists already, owned by someone else."""


@dataclass
class Decision:
    """What one reconcile decided: status fields to merge, and Events to post."""

    status: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, Reason, str]] = field(default_factory=list)


def dump_status(status: LoadTestStatus | ScalingExperimentStatus) -> dict[str, Any]:
    """The wire form of a status model: camelCase, JSON-safe, every field present. Nulls stay
    in objects (a merge patch clears a key with them) but go from objects inside lists: a list
    is written whole and the API server drops them there, which kopf would report as a
    difference between what it patched and what it read back."""
    out: dict[str, Any] = _clean(status.model_dump(mode="json", by_alias=True), in_list=False)
    return out


def _clean(value: Any, *, in_list: bool) -> Any:
    if isinstance(value, dict):
        return {
            k: _clean(v, in_list=in_list) for k, v in value.items() if not (in_list and v is None)
        }
    if isinstance(value, list):
        return [_clean(v, in_list=True) for v in value]
    return value


class Ctx(Generic[S]):
    """The reconcile of one object. `status` is the typed status to change in place."""

    def __init__(
        self,
        body: dict[str, Any],
        kube: Kube,
        settings: Settings,
        now: datetime,
        model: type[S],
    ) -> None:
        self.body = body
        self.kube = kube
        self.settings = settings
        self.now = now
        try:
            self.status: S = model.model_validate(body.get("status") or {})
            self._before = dump_status(self.status.model_copy(deep=True))
        except ValidationError:
            # Written by another version: start from an empty status, written whole by the
            # first patch (nothing counts as unchanged).
            self.status = model()
            self._before = {}
        self.events: list[tuple[str, Reason, str]] = []

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.body["metadata"]["namespace"])

    @property
    def generation(self) -> int | None:
        g = self.body["metadata"].get("generation")
        return int(g) if g is not None else None

    @property
    def stamp(self) -> str:
        return now_rfc3339(self.now)

    def condition(self, type_: str, status: str, reason: Reason, message: str) -> None:
        """Set a condition (CONDITION_TYPES); status is "True", "False" or "Unknown"."""
        self.status.conditions = set_condition(
            self.status.conditions,
            type_,
            cast(ConditionStatus, status),  # Condition validates it
            reason,
            bounded(message),
            self.stamp,
            self.generation,
        )

    def event(self, type_: str, reason: Reason, message: str) -> None:
        self.events.append((type_, reason, bounded(message, 1000)))

    def goto(self, phase: Phase, reason: Reason, message: str) -> None:
        self.status.phase = checked_phase(self.status.phase, phase)
        self.status.message = bounded(message)
        warn = phase in (Phase.FAILED, Phase.ABORTED)
        self.event("Warning" if warn else "Normal", reason, f"{phase.value}: {message}")

    @property
    def uid(self) -> str:
        return str(self.body["metadata"].get("uid") or "")

    def owns(self, obj: dict[str, Any]) -> bool:
        """Whether `obj` names this object among its ownerReferences (by uid)."""
        refs = (obj.get("metadata") or {}).get("ownerReferences") or []
        return any(r.get("uid") == self.uid for r in refs)

    def create(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """Create a child; one that exists already is adopted only if this object owns it,
        and returned (None: created now). Raises NotOwned (nothing adopted) or KubeError."""
        live = self.kube.ensure(obj)
        if live is None:
            return None
        if not self.owns(live):
            meta = obj["metadata"]
            raise NotOwned(
                f"{obj['kind']} {meta['namespace']}/{meta['name']} exists already and is not "
                f"owned by {self.body.get('kind')} {self.name}; delete it or rename the resource"
            )
        return live

    def step(self) -> Decision:
        """The status patch (changed top-level fields) and the Events to post."""
        after = dump_status(self.status)
        # Absent from what was read means the default (None, [], ""), so it is unchanged.
        patch = {k: v for k, v in after.items() if k not in self._before or self._before[k] != v}
        return Decision(status=patch, events=list(self.events))
