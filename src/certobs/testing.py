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

import asyncio
import contextlib
import inspect
import statistics
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, Metric
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from certobs import _errors, _runtime, _timing
from certobs._config import DEFAULT_CARDINALITY_LIMIT
from certobs._export import aggregate_into

__all__ = ["Overhead", "Telemetry", "capture", "certobs_telemetry", "measure_overhead"]


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
def capture(
    *, strict: bool = True, traces: bool = True, cardinality_limit: int = DEFAULT_CARDINALITY_LIMIT
) -> Iterator[Telemetry]:
    """Record certobs telemetry in memory for the duration of the block.

    Args:
        strict: Re-raise certobs' own failures instead of logging them (default True).
        traces: Record spans too (default True). Without, certobs takes its fastest path.
        cardinality_limit: Attribute sets per metric, as ``configure(cardinality_limit=)``.

    Yields:
        The :class:`Telemetry` to assert on.
    """
    reader = InMemoryMetricReader()
    resource = Resource.create({})
    meter_provider = MeterProvider(metric_readers=[reader], resource=resource)
    store = aggregate_into([reader], resource, cardinality_limit=cardinality_limit)
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    previous = (
        _runtime._State.meter_provider,
        _runtime._State.tracer_provider,
        _runtime._State.store,
    )
    was_strict = _errors.is_strict()
    _runtime.install(meter_provider, tracer_provider if traces else None, store)
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


@attrs.frozen(kw_only=True)
class Overhead:
    """What certobs adds to one call of a decorated function, from :func:`measure_overhead`.

    The ratios compare loops that ran interleaved in one process, so they are stable where the
    nanosecond figures are not: assert on the ratios.
    """

    bare_ns: float
    """Median ns per call of the undecorated function (``__wrapped__``)."""
    disabled_ns: float
    """Median ns per call, decorated, with no OpenTelemetry provider installed."""
    enabled_ns: float
    """Median ns per call, decorated, recording metrics in memory (tracing off)."""
    disabled_ratio: float
    """Median per-round ratio of ``disabled_ns`` to ``bare_ns``."""
    enabled_ratio: float
    """Median per-round ratio of ``enabled_ns`` to ``bare_ns``."""


def measure_overhead(
    func: Callable[..., Any],
    /,
    *args: Any,
    rounds: int = 9,
    number: int = 2_000,
    **kwargs: Any,
) -> Overhead:
    """Measure what certobs costs your decorated function, for a performance test in your CI.

    Calls ``func(*args, **kwargs)`` (a function, method or coroutine function decorated by
    certobs) in three interleaved loops: undecorated, decorated with certobs off, and decorated
    with certobs recording in memory. Pick arguments that make the call cheap and side-effect
    free (a stub CA, say): the cheaper the call, the larger certobs' share.

    >>> import certobs
    >>> @certobs.validation
    ... def check(n):
    ...     return sum(range(n))
    >>> result = measure_overhead(check, 2000, rounds=3, number=200)
    >>> result.enabled_ratio < 5
    True

    Args:
        func: The decorated callable.
        *args: Positional arguments for each call.
        rounds: Rounds of alternation between the three loops.
        number: Calls per timed loop.
        **kwargs: Keyword arguments for each call.

    Returns:
        The figures and their ratios.

    Raises:
        TypeError: If ``func`` was not decorated by certobs (it has no ``__wrapped__``).
        RuntimeError: If a global OpenTelemetry provider is installed.
    """
    bare = getattr(func, "__wrapped__", None)
    if bare is None:
        raise TypeError(f"{func!r} is not decorated by certobs: it has no __wrapped__")
    from opentelemetry import trace
    from opentelemetry.metrics import _internal as metrics_internal

    if metrics_internal._METER_PROVIDER is not None or trace._TRACER_PROVIDER is not None:
        raise RuntimeError(
            "measure_overhead(): an OpenTelemetry provider is installed globally, so certobs "
            "cannot be measured disabled; run it where no global provider is set"
        )
    previous = (
        _runtime._State.meter_provider,
        _runtime._State.tracer_provider,
        _runtime._State.store,
    )
    event_loop = asyncio.new_event_loop() if inspect.iscoroutinefunction(func) else None

    def loop_of(target: Callable[..., Any]) -> Callable[[int], None]:
        if event_loop is not None:

            async def drive(n: int) -> None:
                for _ in range(n):
                    await target(*args, **kwargs)

            return lambda n: event_loop.run_until_complete(drive(n))

        def run(n: int) -> None:
            for _ in range(n):
                target(*args, **kwargs)

        return run

    run_bare, run_decorated = loop_of(bare), loop_of(func)
    with capture(strict=False, traces=False):
        on = (_runtime._State.meter_provider, None, _runtime._State.store)

        def disabled(n: int) -> None:
            _runtime.install(None, None)
            run_decorated(n)

        def enabled(n: int) -> None:
            _runtime.install(*on)
            run_decorated(n)

        try:
            times = _timing.interleave(
                {"bare": run_bare, "disabled": disabled, "enabled": enabled},
                rounds=rounds,
                number=number,
            )
        finally:
            _runtime.install(*previous)
            if event_loop is not None:
                event_loop.close()
    return Overhead(
        bare_ns=statistics.median(times["bare"]),
        disabled_ns=statistics.median(times["disabled"]),
        enabled_ns=statistics.median(times["enabled"]),
        disabled_ratio=_timing.median_ratio(times["disabled"], times["bare"]),
        enabled_ratio=_timing.median_ratio(times["enabled"], times["bare"]),
    )


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
