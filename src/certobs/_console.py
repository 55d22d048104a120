"""A metric exporter that prints one readable line per data point (the demo's default)."""

from __future__ import annotations

import sys
import time
from typing import IO, Any

from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    HistogramDataPoint,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    NumberDataPoint,
)

_CUMULATIVE = {
    kind: AggregationTemporality.CUMULATIVE
    for kind in (
        Counter,
        UpDownCounter,
        Histogram,
        ObservableCounter,
        ObservableUpDownCounter,
        ObservableGauge,
    )
}


def _quantile(point: HistogramDataPoint, q: float) -> float | None:
    """Estimate a quantile from bucket counts (upper bound of the bucket it falls in)."""
    if not point.count:
        return None
    rank = q * point.count
    seen = 0
    for bound, count in zip(point.explicit_bounds, point.bucket_counts, strict=False):
        seen += count
        if seen >= rank:
            return float(bound)
    return float(point.max)


def _amount(value: float | None, unit: str) -> str:
    """Render a value with its unit; long durations in hours or days."""
    if value is None:
        return "-"
    if unit == "s" and abs(value) >= 86400:
        return f"{value / 86400:.1f}d"
    if unit == "s" and abs(value) >= 3600:
        return f"{value / 3600:.1f}h"
    if unit == "s":
        return f"{value:.3f}s"
    return f"{value:g}{unit}"


def format_point(name: str, unit: str, point: Any) -> str:
    """Render one data point as ``name{attrs} value``."""
    attrs = ",".join(f"{k}={v}" for k, v in sorted((point.attributes or {}).items()))
    head = f"{name}{{{attrs}}}"
    if isinstance(point, HistogramDataPoint):
        p50 = _quantile(point, 0.5)
        p95 = _quantile(point, 0.95)
        mean = point.sum / point.count if point.count else 0.0
        return (
            f"{head} count={point.count} mean={_amount(mean, unit)} "
            f"p50<={_amount(p50, unit)} p95<={_amount(p95, unit)}"
        )
    if isinstance(point, NumberDataPoint):
        if unit == "s" and point.value > 1e9:  # a Unix time: certificate.not_after/not_before
            moment = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(point.value))
            days = (point.value - time.time()) / 86400
            return f"{head} {moment} ({days:+.1f}d)"
        return f"{head} {point.value:g}"
    return f"{head} {point!r}"


class ConsoleMetricExporter(MetricExporter):
    """Prints cumulative data points, one per line, sorted, under a timestamp."""

    def __init__(self, out: IO[str] | None = None) -> None:
        super().__init__(preferred_temporality=_CUMULATIVE)  # type: ignore[arg-type]
        self._out = out

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        """Print the data points."""
        out = self._out or sys.stdout
        lines = []
        for resource_metrics in metrics_data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    for point in metric.data.data_points:
                        lines.append(format_point(metric.name, metric.unit or "", point))
        stamp = time.strftime("%H:%M:%S")
        out.write(f"--- certobs metrics at {stamp} ({len(lines)} series) ---\n")
        out.write("".join(f"  {line}\n" for line in sorted(lines)))
        out.flush()
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        """Nothing is buffered."""
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Nothing to release."""
