"""Translation of OpenTelemetry metric names to the names Prometheus stores.

This module has no imports from the rest of certobs so that the generator in ``model/`` can load
it on its own.
"""

from __future__ import annotations

import re

__all__ = ["prometheus_metric_name"]

# UCUM units that Prometheus spells out as a suffix. Units in curly braces are annotations
# ("{certificate}") and add no suffix; "1" is a ratio.
_UNIT_WORDS = {
    "s": "seconds",
    "ms": "milliseconds",
    "By": "bytes",
    "1": "ratio",
    "%": "percent",
}

_INVALID = re.compile(r"[^a-zA-Z0-9_:]")


def prometheus_metric_name(name: str, unit: str, instrument: str) -> str:
    """Return the Prometheus name the OpenTelemetry Prometheus exporter gives a metric.

    Dots and other invalid characters become underscores, the unit is appended as a word
    (``s`` becomes ``_seconds``; annotations such as ``{certificate}`` add nothing), and counters
    get ``_total``. Histograms are stored as ``<name>_bucket``, ``<name>_sum`` and
    ``<name>_count`` on top of the returned base name.

    Args:
        name: The OpenTelemetry metric name, for example ``certificate.operation.duration``.
        unit: Its UCUM unit, for example ``s``.
        instrument: One of ``counter``, ``updowncounter``, ``histogram``, ``gauge``.

    Returns:
        The base Prometheus metric name, for example ``certificate_operation_duration_seconds``.

    Raises:
        ValueError: If ``instrument`` is not one of the four instrument kinds.

    >>> prometheus_metric_name("certificate.bundle.requests", "{request}", "counter")
    'certificate_bundle_requests_total'
    >>> prometheus_metric_name("certificate.not_after", "s", "gauge")
    'certificate_not_after_seconds'

    """
    if instrument not in ("counter", "updowncounter", "histogram", "gauge"):
        raise ValueError(
            f"unknown instrument {instrument!r}: expected counter, updowncounter, histogram "
            "or gauge"
        )
    base = _INVALID.sub("_", name)
    word = "" if unit.startswith("{") else _UNIT_WORDS.get(unit, _INVALID.sub("_", unit))
    if word and not base.endswith("_" + word):
        base = f"{base}_{word}"
    if instrument == "counter" and not base.endswith("_total"):
        base += "_total"
    return base
