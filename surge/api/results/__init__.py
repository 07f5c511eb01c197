"""RunResults, a run's typed results (run), and their sections: the load generator's
(sections), the cluster's (cluster) and a capacity sweep's (sweep)."""

from surge.api.results.run import (
    RESULTS_VERSION,
    ResultsError,
    RunResults,
    RunVerdict,
    Summary,
    ThresholdResult,
    Verdict,
    load_results,
)

__all__ = [
    "RESULTS_VERSION",
    "ResultsError",
    "RunResults",
    "RunVerdict",
    "Summary",
    "ThresholdResult",
    "Verdict",
    "load_results",
]
