"""`make bench-simulate`: `surge simulate` on a 24-hour trace with 20 variants (one core).

The issue's budget is 10 s; this prints the time rather than asserting it, so a slow
shared machine never fails the suite."""

from __future__ import annotations

import math
import random
import sys
import tempfile
import time
from pathlib import Path

import yaml
from typer.testing import CliRunner

from surge.cli import app

BUDGET_S = 10.0


def _trace(path: Path) -> None:
    # A diurnal curve (night 20 rps, afternoon peak 300 rps), every 15 s, with noise.
    rng = random.Random(7)
    rows = ["t_seconds,rps"]
    for t in range(0, 24 * 3600 + 1, 15):
        day = 0.5 - 0.5 * math.cos(2 * math.pi * (t - 3 * 3600) / 86400)
        rows.append(f"{t},{max(0.0, 20 + 280 * day**2 + rng.gauss(0, 8)):.2f}")
    path.write_text("\n".join(rows) + "\n")


def _experiment(path: Path) -> None:
    variants = []
    for i in range(20):
        target = 40 + 5 * (i % 10)
        behavior = {"scaleDown": {"stabilizationWindowSeconds": 60 if i < 10 else 300}}
        variants.append(
            {
                "name": f"v{i:02d}",
                "nodeSelector": {"surge.dev/pool": "cpu"},
                "hpa": {
                    "minReplicas": 2,
                    "maxReplicas": 60,
                    "metrics": [
                        {
                            "type": "Resource",
                            "resource": {
                                "name": "cpu",
                                "target": {"type": "Utilization", "averageUtilization": target},
                            },
                        }
                    ],
                    "behavior": behavior,
                },
            }
        )
    doc = {
        "apiVersion": "surge.dev/v1alpha1",
        "kind": "ScalingExperiment",
        "metadata": {"name": "bench"},
        "spec": {
            "targetRef": {"deployment": "alice", "hpa": "alice"},
            "loadTest": {
                "target": {"url": "http://alice:8080"},
                "load": {"model": "constant", "stages": [{"duration": "1m", "target": 1}]},
                "thresholds": ["latency.p95 < 1s"],
            },
            "variants": variants,
            "cost": {"perPool": {"cpu": 0.12}},
            "simulation": {
                "capacity": {
                    "cpu": {
                        "cpuPerRequest": "50m",
                        "podCpuRequest": "1",
                        "startup": "40s",
                        "nodeProvisioning": "90s",
                        "podsPerNode": 4,
                    }
                }
            },
        },
    }
    path.write_text(yaml.safe_dump(doc))


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        trace, exp, out = Path(tmp, "trace.csv"), Path(tmp, "exp.yaml"), Path(tmp, "out.json")
        _trace(trace)
        _experiment(exp)
        started = time.perf_counter()
        result = CliRunner().invoke(
            app, ["simulate", str(exp), "--trace", str(trace), "--out", str(out)]
        )
        elapsed = time.perf_counter() - started
        if result.exit_code != 0:
            print(result.output, file=sys.stderr)
            return 1
    verdict = "within" if elapsed < BUDGET_S else "OVER"
    print(
        f"surge simulate: 24 h trace, 20 variants: {elapsed:.2f} s "
        f"({verdict} the {BUDGET_S:g} s budget)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
