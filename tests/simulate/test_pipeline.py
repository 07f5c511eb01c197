"""The metrics pipeline mirrored for the comparison with a real HPA (surge/simulate/pipeline.py):
scrape instants, which pods have a metric, and which scrape a sync reads."""

from __future__ import annotations

from collections import deque

from surge.api.experiment import HpaSpec
from surge.simulate import pipeline
from surge.simulate.capacity import Pool, Slo
from surge.simulate.plan import Pipeline, Settings, plan_hpa
from surge.simulate.replicas import Metric, PodView, Tolerances, desired_replicas
from surge.simulate.run import simulate

PIPE = Pipeline(scrape_s=15.0, scrape_offset_s=12.5, first_sync_s=20.0)
CPU_50 = [
    {
        "type": "Resource",
        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}},
    }
]


def test_scrape_instants_run_on_a_fixed_ticker() -> None:
    assert pipeline.last_scrape(PIPE, 20.0) == 12.5
    assert pipeline.last_scrape(PIPE, 27.5) == 27.5
    assert pipeline.last_scrape(PIPE, 5.0) == -2.5  # the ticker ran before the trace
    assert pipeline.scrapes_between(PIPE, 20.0, 35.0) == 1  # 27.5
    assert pipeline.scrapes_between(PIPE, 20.0, 50.0) == 2  # 27.5, 42.5
    assert pipeline.sampled_second(27.5) == 26
    assert pipeline.first_sync(15, None) == 15
    assert pipeline.first_sync(15, PIPE) == 20


def test_a_pod_has_a_metric_from_its_second_scrape_on() -> None:
    # Two old pods and two created at the sync of t = 20, Ready at 21.
    ready = deque([(-1e9, -1e9), (-1e9, -1e9), (21.0, 20.0), (21.0, 20.0)])
    at_35 = pipeline.view(PIPE, 35.0, deque(), deque(), ready, 0.1, 1.0)
    assert (at_35.ready, at_35.missing, at_35.fresh) == (2, 2, 0)
    at_50 = pipeline.view(PIPE, 50.0, deque(), deque(), ready, 0.1, 1.0)
    assert (at_50.ready, at_50.missing, at_50.fresh) == (4, 0, 0)


def test_a_metric_not_one_resolution_newer_than_readiness_is_unready() -> None:
    # Scheduled at 12, Ready only at 13: the scrapes at 12.5 and 27.5 give it a metric at
    # 27.5, earlier than Ready + 15 s, so groupPods calls it unready for CPU until 42.5.
    ready = deque([(13.0, 12.0)])
    assert pipeline.view(PIPE, 35.0, deque(), deque(), ready, 0.1, 1.0).fresh == 1
    assert pipeline.view(PIPE, 50.0, deque(), deque(), ready, 0.1, 1.0).ready == 1


def test_missing_pods_count_at_100_percent_on_a_scale_down() -> None:
    tol = Tolerances(0.1, 0.1)
    metric = Metric("cpu", "Utilization", 50)
    # 2 pods at 20 % with a metric, 2 without: (20 + 20 + 100 + 100) / 4 = 60 % > 50 %,
    # the direction flips, so the count stays; without the missing pods it would halve.
    view = PodView(0, 0, 0, 2, 4.0, 8.0, missing=2)
    assert desired_replicas(metric, 4, view, tol, cpu_per_request=0.05, pod_cpu_request=1) == 4
    alone = PodView(0, 0, 0, 2, 4.0, 8.0)
    assert desired_replicas(metric, 2, alone, tol, cpu_per_request=0.05, pod_cpu_request=1) == 1


def _pool() -> Pool:
    return Pool("cpu", 0.01, 0.2, 1e6, 0.1, 1.0, 0.0, 110, None, None)


def _replicas(pipe: Pipeline | None, rates: list[float]) -> dict[int, int]:
    settings = Settings(15, 0.1, 300.0, 2, pipe)
    hpa = HpaSpec.model_validate({"minReplicas": 2, "maxReplicas": 20, "metrics": CPU_50})
    plan = plan_hpa("x", _pool(), hpa, settings, "hpa")
    return {p.t: p.replicas for p in simulate(plan, settings, rates, Slo(None, "-")).timeline}


def test_the_sync_reads_the_last_scrape_not_the_mean_of_the_period() -> None:
    # 20 requests/s (10 per pod: 50 %) until t = 40, then 60 (150 % per pod).
    rates = [20.0] * 40 + [60.0] * 40
    mirrored = _replicas(PIPE, rates)
    # Syncs at 20, 35, 50, 65: the one at 35 reads the scrape of 27.5 (still 50 %); the one
    # at 50 reads 42.5 (150 %): 2 × 3 = 6, capped at max(2 × 2, 4) without a behavior.
    assert [mirrored[t] for t in (20, 35, 50)] == [2, 2, 4]
    # At 65 the 2 new pods still lack a metric (one scrape, at 57.5) and count as 0 %:
    # (150 + 150 + 0 + 0) / 4 = 75 % -> ceil(1.5 × 4) = 6.
    assert mirrored[65] == 6
    # Without the pipeline the HPA syncs at 15, 30, 45 and reads the mean of the last
    # period: it scales at 45 already, on (5 × 50 % + 10 × 150 %) / 15 = 117 %.
    exact = _replicas(None, rates)
    assert [exact[t] for t in (15, 30, 45)] == [2, 2, 4]
