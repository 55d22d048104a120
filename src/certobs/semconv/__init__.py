"""The certobs semantic conventions: attribute and metric names, generated from ``model/``.

- :mod:`certobs.semconv.attributes`: attribute names (``Final`` constants) and enum values.
- :mod:`certobs.semconv.metrics`: metric names, their definitions and one ``create_*`` helper
  per metric.
- :func:`prometheus_name`: the name Prometheus stores a metric under.
"""

from __future__ import annotations

from certobs.semconv._naming import prometheus_metric_name
from certobs.semconv.metrics import METRICS

__all__ = ["prometheus_name"]


def prometheus_name(metric: str) -> str:
    """Return the base Prometheus name of a registry metric.

    This is the one place OpenTelemetry names become Prometheus names: dashboards, rules and
    docs call it instead of spelling PromQL metric names by hand.

    Args:
        metric: A registry metric name, e.g. ``certobs.semconv.metrics.CERTIFICATE_COUNT``.

    Returns:
        The Prometheus name; histograms add ``_bucket``, ``_sum`` and ``_count`` to it.

    Raises:
        KeyError: If ``metric`` is not in the registry.

    >>> prometheus_name("certificate.operation.duration")
    'certificate_operation_duration_seconds'
    """
    definition = METRICS[metric]
    return prometheus_metric_name(definition.name, definition.unit, definition.instrument)
