"""Plots for reports: what to draw (pure, `plot_specs`) and drawing it (`render_png`).

The x axis is seconds since the load started (warm-up shaded), so loadgen and cluster
series line up. Thresholds are horizontal lines in the plot's unit. matplotlib is an
optional dependency (the `report` extra), imported only when drawing.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from surge.api.results import RunResults, ThresholdResult
from surge.api.results.cluster import SeriesStats
from surge.api.results.sections import TimeseriesPoint, Window

Point = tuple[float, float]


class MissingMatplotlib(RuntimeError):
    """Drawing needs matplotlib."""


@dataclass(frozen=True, slots=True)
class Line:
    label: str
    points: list[Point]
    steps: bool = False
    """Draw as a step function (replicas), not a polyline."""
    markers: bool = False
    """Draw the points alone (a scatter), not joined."""
    reference: bool = False
    """A reference (the schedule's target), drawn dotted, not a measurement."""
    dashed: bool = False
    """A prediction (the simulator's), drawn dashed beside the measured line."""


@dataclass(frozen=True, slots=True)
class HLine:
    label: str
    y: float
    kind: Literal["threshold", "reference"] = "threshold"


@dataclass(frozen=True, slots=True)
class PlotSpec:
    name: str
    title: str
    ylabel: str
    lines: list[Line]
    hlines: list[HLine] = field(default_factory=list)
    warmup_s: float = 0.0
    xlabel: str = "seconds since load start (warm-up shaded)"
    percentile_x: bool = False
    """x is 1/(1 − percentile) on a log scale, ticks labelled as percentiles
    (HdrHistogram's percentile-distribution plot)."""

    @property
    def labels(self) -> list[str]:
        """Every legend entry: the series, then the threshold lines."""
        return [ln.label for ln in self.lines] + [h.label for h in self.hlines]


# threshold metric family -> (plot name, factor from the base unit to the plot's unit)
_THRESHOLD_PLOTS: dict[str, tuple[str, float]] = {
    "latency": ("latency", 1000.0),
    "throughput.rps": ("throughput", 1.0),
    "goodput.rps": ("throughput", 1.0),
    "errors.rate": ("errors", 100.0),
    "replicas.min": ("replicas", 1.0),
    "replicas.max": ("replicas", 1.0),
    "replicas.mean": ("replicas", 1.0),
    "cpu.mean": ("cpu", 1.0),
    "cpu.max": ("cpu", 1.0),
    "gpu.mean": ("gpu", 1.0),
    "gpu.max": ("gpu", 1.0),
}


def _threshold_lines(thresholds: Sequence[ThresholdResult]) -> dict[str, list[HLine]]:
    out: dict[str, list[HLine]] = {}
    for t in thresholds:
        metric = t.metric
        family = metric.split(".")[0]
        key = metric if metric in _THRESHOLD_PLOTS else family
        # latency.p95 and friends: every latency quantile threshold goes on the latency plot
        if key not in _THRESHOLD_PLOTS or (key == "latency" and metric == family):
            continue
        plot, factor = _THRESHOLD_PLOTS[key]
        label = t.expression or f"{metric} {t.op} {t.limit}"
        out.setdefault(plot, []).append(HLine(label, float(t.limit) * factor))
    return out


def _ts_line(
    timeseries: Sequence[TimeseriesPoint],
    label: str,
    value: Callable[[TimeseriesPoint], float | None],
    *,
    steps: bool = False,
) -> Line:
    points = [(float(row.t), float(v)) for row in timeseries if (v := value(row)) is not None]
    if steps:
        return Line(label, points, steps=True, reference=True)
    return Line(label, points)


def _share(part: float, whole: float) -> float | None:
    return 100.0 * part / whole if whole > 0 else None


def _cluster_line(
    part: SeriesStats | None, label: str, offset_s: float, end_s: float | None
) -> Line | None:
    """A stored cluster series on the load-start axis; the last value holds until the
    window's end, as in the metrics (timeline.py)."""
    if part is None or not part.series:
        return None
    points = [(float(t) + offset_s, float(v)) for t, v in part.series]
    if end_s is not None and points[-1][0] < end_s:
        points.append((end_s, points[-1][1]))
    return Line(label, points, steps=True)


def plot_specs(results: RunResults) -> list[PlotSpec]:
    """Every plot the results have data for, in report order: latency, throughput,
    errors, replicas, CPU, GPU. Pure: the tests read the series and thresholds here."""
    ts = results.timeseries
    window = results.window
    warmup = window.warmup_seconds
    limits = _threshold_lines(results.thresholds)
    cluster = results.cluster
    cw = cluster.window if cluster is not None else None
    end_s = warmup + cw.end - cw.start if cw is not None else None
    specs: list[PlotSpec] = []

    def add(
        name: str, title: str, ylabel: str, lines: list[Line | None], extra: list[HLine]
    ) -> None:
        drawn = [ln for ln in lines if ln is not None and ln.points]
        if drawn:
            specs.append(PlotSpec(name, title, ylabel, drawn, limits.get(name, []) + extra, warmup))

    add(
        "latency",
        "Latency percentiles (per second)",
        "ms",
        [
            _ts_line(ts, "p50", lambda r: r.p50_ms),
            _ts_line(ts, "p95", lambda r: r.p95_ms),
        ],
        [],
    )
    # A second that the load's end cuts short (and the stragglers after it) holds less
    # than a second of responses: drawn, it would read as a throughput drop.
    full = [r for r in ts if float(r.t) + 1.0 <= _load_end_s(window) + 1e-9]
    # The target is the schedule's own rate second by second (a ramp or stages draws its
    # profile), not the run's mean; older results without it draw no target line.
    add(
        "throughput",
        "Throughput",
        "responses/s",
        [
            _ts_line(full, "ok responses/s", lambda r: r.rps),
            _ts_line(ts, "target/s", lambda r: r.target_rps, steps=True),
        ],
        [],
    )
    add(
        "errors",
        "Errors and drops",
        "% of attempts",
        [
            _ts_line(
                ts,
                "errors %",
                lambda r: _share(r.errors, r.rps + r.errors),
            ),
            _ts_line(
                ts,
                "dropped %",
                lambda r: _share(r.dropped, r.rps + r.errors + r.dropped),
            ),
        ],
        [],
    )
    if cluster is not None:
        add(
            "replicas",
            "Replicas",
            "replicas",
            [
                _cluster_line(cluster.replicas, "replicas", warmup, end_s),
                _cluster_line(cluster.hpa.get("desiredReplicas"), "HPA desired", warmup, end_s),
            ],
            [],
        )
        add("cpu", "CPU", "cores", [_cluster_line(cluster.cpu, "CPU cores", warmup, end_s)], [])
        add(
            "gpu",
            "GPU utilisation",
            "%",
            [_cluster_line(cluster.gpu, "GPU util %", warmup, end_s)],
            [],
        )
    specs += spectrum_specs(results, limits.get("latency", []))
    return specs


def _load_end_s(window: Window) -> float:
    """Seconds from the load's start to the end of its real span."""
    return window.warmup_seconds + window.measured_seconds


_SPECTRA = (
    ("latency", "Latency by percentile", "latency"),
    ("ttft", "Time to first token by percentile", "TTFT"),
    ("tpot", "Time per output token by percentile", "TPOT"),
)


def percentile_x(pct: float, count: int) -> float:
    """Where percentile `pct` sits on a spectrum plot: 1/(1 − pct/100); the max (100)
    at N, the count, as the 1-in-N value it is (at least at p50's 2)."""
    # Rounded: p99.9 stored as 99.9 is 1000.0000000001, which would pass the max at N.
    return float(max(count, 2)) if pct >= 100.0 else round(1.0 / (1.0 - pct / 100.0), 6)


def spectrum_specs(results: RunResults, latency_limits: list[HLine]) -> list[PlotSpec]:
    """Latency, TTFT and TPOT by percentile (results.spectrum), each when it has data;
    latency thresholds drawn on the latency plot."""
    out: list[PlotSpec] = []
    for name, title, label in _SPECTRA:
        got = results.spectrum.get(name)
        count = got.count if got is not None else 0
        rows = got.points if got is not None else []
        points = [(percentile_x(float(p), count), float(v) * 1000) for p, v in rows]
        if not points:
            continue
        hlines = latency_limits if name == "latency" else []
        xlabel = "percentile (log scale of 1/(1 − p))"
        line = Line(label, points)
        out.append(PlotSpec(f"{name}-spectrum", title, "ms", [line], hlines, 0.0, xlabel, True))
    return out


_PERCENTILE_TICKS = (
    (1.0, "0%"), (2.0, "50%"), (10.0, "90%"), (100.0, "99%"), (1e3, "99.9%"),
    (1e4, "99.99%"), (1e5, "99.999%"), (1e6, "99.9999%"),
)  # fmt: skip


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise MissingMatplotlib(
            "plots need matplotlib; install it with: pip install 'surge[report]'"
        ) from exc
    matplotlib.use("Agg")  # no display, no GUI toolkit: files only
    from matplotlib.figure import Figure

    return Figure


def _figure(spec: PlotSpec, width_in: float, height_in: float) -> Any:
    figure_cls = _pyplot()
    fig = figure_cls(figsize=(width_in, height_in), layout="constrained")
    ax = fig.add_subplot()
    if spec.warmup_s > 0:
        ax.axvspan(0, spec.warmup_s, color="0.9", label="_warm-up")
    for line in spec.lines:
        xs = [p[0] for p in line.points]
        ys = [p[1] for p in line.points]
        if line.markers:
            ax.plot(xs, ys, label=line.label, marker="o", linestyle="none")
        else:
            ax.plot(
                xs,
                ys,
                label=line.label,
                drawstyle="steps-post" if line.steps else "default",
                linestyle=":" if line.reference else "--" if line.dashed else "-",
            )
    for h in spec.hlines:
        style = "--" if h.kind == "threshold" else ":"
        color = "tab:red" if h.kind == "threshold" else "0.4"
        ax.axhline(h.y, linestyle=style, color=color, linewidth=1.2, label=h.label)
    if spec.percentile_x:
        ax.set_xscale("log")
        top = max(p[0] for ln in spec.lines for p in ln.points)
        ticks = [t for t in _PERCENTILE_TICKS if t[0] <= top * 1.0001]
        ax.set_xticks([t[0] for t in ticks], [t[1] for t in ticks])
        ax.minorticks_off()
    ax.set_title(spec.title)
    ax.set_xlabel(spec.xlabel)
    ax.set_ylabel(spec.ylabel)
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    return fig


def drawn_labels(spec: PlotSpec) -> list[str]:
    """The legend labels matplotlib actually drew for `spec` (for tests and checks)."""
    fig = _figure(spec, 8, 3.2)
    return [str(label) for label in fig.axes[0].get_legend_handles_labels()[1]]


def render_png(
    spec: PlotSpec, *, width_in: float = 8.0, height_in: float = 3.2, dpi: int = 100
) -> bytes:
    """The plot as PNG bytes. Raises MissingMatplotlib without the `report` extra."""
    fig = _figure(spec, width_in, height_in)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
