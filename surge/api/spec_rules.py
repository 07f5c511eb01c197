"""The rules the API server checks at apply for a LoadTest spec (CEL, x-kubernetes-validations
in the CRD), so `kubectl apply` refuses them before the operator sees them; `parse_spec`
checks the same (the validators of surge.api.loadtest) for `surge run`."""

from __future__ import annotations

from pydantic import JsonValue

_RATE_CAP = "(has(self.safety) && has(self.safety.maxRate) ? self.safety.maxRate : 1000.0)"
_USER_CAP = "double(has(self.safety) && has(self.safety.maxUsers) ? self.safety.maxUsers : 1000)"
SPEC_RULES: list[JsonValue] = [
    {
        "rule": "self.load.model == 'closed' || !has(self.load.stages) || "
        f"self.load.stages.all(s, s.target <= {_RATE_CAP})",
        "message": "a stage targets more req/s than spec.safety.maxRate (default 1000); "
        "raise the cap if you mean it",
        "fieldPath": ".load.stages",
    },
    {
        "rule": "self.load.model != 'closed' || !has(self.load.stages) || "
        f"self.load.stages.all(s, s.target <= {_USER_CAP})",
        "message": "a stage targets more users than spec.safety.maxUsers (default 1000); "
        "raise the cap if you mean it",
        "fieldPath": ".load.stages",
    },
    {
        "rule": f"!has(self.load.sweep) || self.load.sweep.maxRate <= {_RATE_CAP}",
        "message": "load.sweep.maxRate is above spec.safety.maxRate (default 1000); "
        "raise the cap if you mean it",
        "fieldPath": ".load.sweep.maxRate",
    },
    {
        "rule": "self.load.model == 'closed' || !has(self.load.maxInFlight) || "
        "self.load.maxInFlight >= (has(self.load.workers) ? self.load.workers : 1)",
        "message": "load.maxInFlight must be at least load.workers (it is split per worker)",
        "fieldPath": ".load.maxInFlight",
    },
]
