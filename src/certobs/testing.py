"""Assert on what your code records through certobs.

With pytest, the ``certobs_telemetry`` fixture is available as soon as certobs is installed::

    def test_renew_records(certobs_telemetry):
        renew("api")
        point = certobs_telemetry.point(
            "certificate.operation.duration", {"certificate.operation.name": "renew"}
        )
        assert point.count == 1

Without pytest, use :func:`capture` as a context manager. Both install in-memory metric and span
readers for certobs only (OpenTelemetry's global providers are left alone), turn on strict mode
(certobs' own failures raise instead of being logged), and restore everything afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, Metric
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from certobs import _errors, _runtime
from certobs._export import aggregate_into

__all__ = ["Telemetry", "capture", "certobs_telemetry"]


class Telemetry:
    """What certobs recorded while a :func:`capture` block (or the fixture) was active."""

    def __init__(self, reader: InMemoryMetricReader, exporter: InMemorySpanExporter) -> None:
        self.reader = reader
        """The in-memory metric reader; collects on every call of :meth:`metrics`."""
        self.exporter = exporter
        """The in-memory span exporter."""

    def metrics(self) -> dict[str, Metric]:
        """Collect now and return every metric recorded so far, by name."""
        data = self.reader.get_metrics_data()
        found: dict[str, Metric] = {}
        if data is None:
            return found
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    found[metric.name] = metric
        return found

    def points(self, name: str) -> list[Any]:
        """Return the data points of metric ``name`` (empty when it recorded nothing)."""
        metric = self.metrics().get(name)
        return list(metric.data.data_points) if metric is not None else []

    def point(self, name: str, attributes: Mapping[str, Any] | None = None) -> Any:
        """Return the one data point of ``name`` whose attributes are exactly ``attributes``.

        Raises:
            AssertionError: If there is no such point; the message lists the points there are.
        """
        wanted = dict(attributes or {})
        points = self.points(name)
        for candidate in points:
            if dict(candidate.attributes or {}) == wanted:
                return candidate
        seen = [dict(p.attributes or {}) for p in points]
        raise AssertionError(f"no {name} point with attributes {wanted}; recorded: {seen}")

    def spans(self) -> list[ReadableSpan]:
        """Return the finished spans, oldest first."""
        return list(self.exporter.get_finished_spans())

    def clear(self) -> None:
        """Forget the finished spans (metrics are cumulative and keep their totals)."""
        self.exporter.clear()


@contextlib.contextmanager
def capture(*, strict: bool = True) -> Iterator[Telemetry]:
    """Record certobs telemetry in memory for the duration of the block.

    Args:
        strict: Re-raise certobs' own failures instead of logging them (default True).

    Yields:
        The :class:`Telemetry` to assert on.
    """
    reader = InMemoryMetricReader()
    resource = Resource.create({})
    meter_provider = MeterProvider(metric_readers=[reader], resource=resource)
    store = aggregate_into([reader], resource)
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    previous = (
        _runtime._State.meter_provider,
        _runtime._State.tracer_provider,
        _runtime._State.store,
    )
    was_strict = _errors.is_strict()
    _runtime.install(meter_provider, tracer_provider, store)
    _errors.set_strict(strict)
    _errors.reset_logged()
    try:
        yield Telemetry(reader, exporter)
    finally:
        _runtime.install(*previous)
        _errors.set_strict(was_strict)
        _errors.reset_logged()
        meter_provider.shutdown()
        tracer_provider.shutdown()


try:
    import pytest
except ImportError:  # pragma: no cover - the fixture only matters under pytest
    pass
else:

    @pytest.fixture
    def certobs_telemetry() -> Iterator[Telemetry]:
        """Pytest fixture: certobs telemetry recorded in memory, strict mode on."""
        with capture() as telemetry:
            yield telemetry
