"""In-process aggregation: the fast path for the metrics certobs records most.

The OpenTelemetry SDK cleans, copies and hashes the attributes of every measurement; most of a
recorded call's cost is there. certobs knows its attribute sets when a function is decorated, so
it keeps one aggregate per attribute set (count, sum, bucket counts, min, max; or a sum) and an
operation holds direct references to its own. A measurement is then a clock read, a bucket
search and a few additions under a lock.

At collection time the aggregates become ordinary SDK data points, merged into what the SDK
collected for the same reader, in that reader's temporality. This works for the readers that
certobs creates (``configure()`` and ``certobs.testing``); with an application's own
MeterProvider certobs records through SDK instruments instead.
"""

from __future__ import annotations

import functools
import gc
import itertools
import math
import os
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Mapping
from time import time_ns
from typing import TYPE_CHECKING, Any, Final

from certobs._errors import log_once
from certobs.semconv import metrics as m
from certobs.semconv.attributes import CERTOBS_METRIC_NAME

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import Metric, MetricReader, MetricsData
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanContext

__all__ = ["BOUNDS", "DEFAULT_CARDINALITY_LIMIT", "HistogramSeries", "Shard", "Store", "SumSeries"]

DEFAULT_CARDINALITY_LIMIT: Final = 2000
"""Attribute sets per metric before new ones fold into the overflow series (the SDK's default)."""

OVERFLOW: Final = {"otel.metric.overflow": True}
_OVERFLOW_KEY: Final = frozenset(OVERFLOW.items())

_DURATION = m.METRICS[m.CERTIFICATE_OPERATION_DURATION]
_ACTIVE = m.METRICS[m.CERTIFICATE_OPERATION_ACTIVE]
_BUNDLE = m.METRICS[m.CERTIFICATE_BUNDLE_REQUESTS]
_INVENTORY_ERRORS = m.METRICS[m.CERTIFICATE_INVENTORY_ERRORS]
_OVERFLOW_COUNT = m.METRICS[m.CERTOBS_METRIC_OVERFLOW]
BOUNDS: Final = tuple(_DURATION.bucket_boundaries or ())
"""The duration histogram's bucket boundaries."""
_BOUNDS = BOUNDS

_ids = itertools.count(1)


def attribute_key(attributes: Mapping[str, Any]) -> frozenset[tuple[str, Any]]:
    """Return a hashable key for an attribute set (lists become tuples)."""
    return frozenset((k, tuple(v) if isinstance(v, list) else v) for k, v in attributes.items())


class Shard:
    """One thread's part of an operation's success histogram and active count.

    Only its own thread writes to it, so the hot path takes no lock and never waits for another
    thread; under the GIL, two threads sharing one lock convoy badly. Readers (the collector) get
    a consistent copy through ``version``: a writer makes it odd for the duration of an update,
    and a reader retries until it copied between two equal, even versions (a seqlock).

    Delta readers reset the interval min and max by bumping ``reset_epoch``; the owner notices on
    its next measurement, so it is still the only writer of the interval fields.
    """

    __slots__ = (
        "active",
        "buckets",
        "count",
        "epoch",
        "interval_max",
        "interval_min",
        "max",
        "min",
        "reset_epoch",
        "sum",
        "updates",
        "version",
    )

    def __init__(self) -> None:
        self.version = 0
        self.count = 0
        self.sum = 0.0
        self.buckets = [0] * (len(_BOUNDS) + 1)
        self.min = math.inf
        self.max = -math.inf
        self.interval_min = math.inf
        self.interval_max = -math.inf
        self.epoch = 0
        self.reset_epoch = 0
        self.active = 0
        self.updates = 0

    def read(self) -> tuple[int, float, list[int], float, float, float, float, int, int]:
        """Return a consistent copy of the fields (see the class docstring)."""
        for attempt in range(1000):
            before = self.version
            # After many attempts, take the values as they are: a writer interrupted for good
            # (an exception from a signal handler mid-update) must not hang the collector.
            if before % 2 == 0 or attempt == 999:
                values = (
                    self.count,
                    self.sum,
                    list(self.buckets),
                    self.min,
                    self.max,
                    self.interval_min if self.epoch == self.reset_epoch else math.inf,
                    self.interval_max if self.epoch == self.reset_epoch else -math.inf,
                    self.active,
                    self.updates,
                )
                if self.version == before or attempt == 999:
                    return values
            time.sleep(0)  # let the writer finish its update
        raise AssertionError("unreachable")


class HistogramSeries:
    """The aggregate of one attribute set of an explicit-bucket histogram."""

    __slots__ = (
        "attributes",
        "buckets",
        "count",
        "exemplars",
        "id",
        "interval_max",
        "interval_min",
        "lock",
        "max",
        "min",
        "shards",
        "start_ns",
        "sum",
    )

    def __init__(self, attributes: Mapping[str, Any]) -> None:
        self.id = next(_ids)
        self.attributes = dict(attributes)
        self.lock = threading.Lock()
        self.count = 0
        self.sum = 0.0
        self.buckets = [0] * (len(_BOUNDS) + 1)
        self.min = math.inf
        self.max = -math.inf
        # Since the last delta collection (see Store.collect).
        self.interval_min = math.inf
        self.interval_max = -math.inf
        self.exemplars: dict[int, tuple[float, int, SpanContext]] | None = None
        self.start_ns = time_ns()
        # Per-thread parts written by the fast path (see Shard); guarded by ``lock``.
        self.shards: list[Shard] = []

    def record(self, value: float, span_context: SpanContext | None = None) -> None:
        """Add one measurement; with a sampled span context, keep it as the bucket's exemplar."""
        index = bisect_left(_BOUNDS, value)
        self.lock.acquire()  # not `with`: half the cost, and this is the hot path
        try:
            self.count += 1
            self.sum += value
            self.buckets[index] += 1
            if value < self.min:
                self.min = value
            if value > self.max:
                self.max = value
            if value < self.interval_min:
                self.interval_min = value
            if value > self.interval_max:
                self.interval_max = value
            if span_context is not None:
                if self.exemplars is None:
                    self.exemplars = {}
                self.exemplars[index] = (value, time_ns(), span_context)
        finally:
            self.lock.release()


class SumSeries:
    """The aggregate of one attribute set of a counter or up-down counter."""

    __slots__ = ("attributes", "id", "lock", "shards", "start_ns", "updates", "value")

    def __init__(self, attributes: Mapping[str, Any]) -> None:
        self.id = next(_ids)
        self.attributes = dict(attributes)
        self.lock = threading.Lock()
        self.value = 0
        # Number of measurements, so a delta reader can tell "no change" from "not measured".
        self.updates = 0
        self.start_ns = time_ns()
        # Per-thread parts written by the fast path: their ``active`` and ``updates``.
        self.shards: list[Shard] = []

    def add(self, amount: int) -> None:
        """Add ``amount`` (negative for an up-down counter going down)."""
        self.lock.acquire()
        try:
            self.value += amount
            self.updates += 1
        finally:
            self.lock.release()


class _Table:
    """The series of one metric, by attribute set, with the cardinality limit applied.

    Past ``limit`` attribute sets, a measurement with a new set goes to the overflow series
    (``otel.metric.overflow=true``), as in the SDK: the metric then has ``limit`` series and
    the overflow one. ``on_overflow`` is called once, when the overflow series is created,
    outside the table's lock.
    """

    def __init__(
        self,
        factory: Callable[[Mapping[str, Any]], Any],
        limit: int,
        name: str = "",
        on_overflow: Callable[[str], None] | None = None,
    ) -> None:
        self.factory = factory
        self.limit = limit
        self.name = name
        self.on_overflow = on_overflow
        self.series: dict[frozenset[tuple[str, Any]], Any] = {}
        self.lock = threading.Lock()

    def get(self, attributes: Mapping[str, Any]) -> Any:
        key = attribute_key(attributes)
        found = self.series.get(key)
        if found is not None:
            return found
        created_overflow = False
        with self.lock:
            found = self.series.get(key)
            if found is None:
                if len(self.series) >= self.limit:
                    key = _OVERFLOW_KEY
                    found = self.series.get(key)
                    if found is None:
                        found = self.factory(OVERFLOW)
                        self.series[key] = found
                        created_overflow = True
                else:
                    found = self.factory(attributes)
                    self.series[key] = found
        if created_overflow and self.on_overflow is not None:
            self.on_overflow(self.name)
        return found

    def overflow_count(self) -> int:
        """How many measurements went to the overflow series (0 without one)."""
        series = self.series.get(_OVERFLOW_KEY)
        if series is None:
            return 0
        with series.lock:
            count = series.count if isinstance(series, HistogramSeries) else series.updates
            shards = list(series.shards)
        # A shard's count is its histogram count; its updates count active-gauge changes.
        index = 0 if isinstance(series, HistogramSeries) else 8
        return int(count) + sum(int(shard.read()[index]) for shard in shards)

    def snapshot(self) -> list[Any]:
        with self.lock:
            return list(self.series.values())


class _ReaderState:
    """What one reader has already been sent, for delta temporality."""

    def __init__(self, reader: MetricReader) -> None:
        # The SDK keys a reader's temporality by its internal instrument classes.
        from opentelemetry.sdk.metrics._internal.instrument import (
            _Counter,
            _Histogram,
            _UpDownCounter,
        )
        from opentelemetry.sdk.metrics.export import AggregationTemporality

        temporality = reader._instrument_class_temporality
        delta = AggregationTemporality.DELTA
        self.histogram_delta = temporality[_Histogram] is delta
        self.counter_delta = temporality[_Counter] is delta
        self.updown_delta = temporality[_UpDownCounter] is delta
        self.sent: dict[int, Any] = {}
        self.last_ns: dict[int, int] = {}
        # When this reader last collected (first: when it was attached); a series first seen in
        # a delta interval starts there, as the SDK's do.
        self.collected_ns = time_ns()


class Store:
    """Aggregates for the fast path, one per certobs-owned MeterProvider."""

    def __init__(self, *, cardinality_limit: int = DEFAULT_CARDINALITY_LIMIT) -> None:
        self.cardinality_limit = cardinality_limit
        # A forked child has a copy: it must not take the copy's locks (see Operation).
        self.pid = os.getpid()
        self.duration = _Table(HistogramSeries, cardinality_limit, _DURATION.name, self._overflowed)
        self.active = _Table(SumSeries, cardinality_limit, _ACTIVE.name, self._overflowed)
        self.bundle_requests = _Table(SumSeries, cardinality_limit, _BUNDLE.name, self._overflowed)
        self.inventory_errors = _Table(
            SumSeries, cardinality_limit, _INVENTORY_ERRORS.name, self._overflowed
        )
        # certobs.metric.overflow, by metric: one series per metric above, never more. Set
        # from the overflow series' counts at each collection (see _count_overflow).
        self.overflow = _Table(SumSeries, 64)
        self._readers: dict[int, _ReaderState] = {}
        self._lock = threading.Lock()

    def _overflowed(self, metric: str) -> None:
        """``metric`` reached its limit: warn, once."""
        log_once(
            f"overflow:{metric}",
            "certobs: %s reached its limit of %d attribute sets; measurements with new sets "
            "now go to the series otel.metric.overflow=true and are counted by "
            "certobs.metric.overflow. An attribute of this metric takes unbounded values (an "
            "identifier, a serial number?): put it on the span instead, or raise the limit "
            "(CERTOBS_CARDINALITY_LIMIT or configure(cardinality_limit=...)). Warned once.",
            metric,
            self.cardinality_limit,
        )

    def _count_overflow(self) -> None:
        """Make certobs.metric.overflow the measurement count of each overflow series."""
        for table in (self.duration, self.active, self.bundle_requests, self.inventory_errors):
            count = table.overflow_count()
            if count:
                series = self.overflow.get({CERTOBS_METRIC_NAME: table.name})
                with series.lock:
                    # Readers collect concurrently: a count never goes back.
                    series.value = series.updates = max(series.value, count)

    # Hooking into readers.

    def attach(self, reader: MetricReader, resource: Resource, scope: InstrumentationScope) -> None:
        """Make ``reader`` receive this store's aggregates with everything the SDK collects.

        Must be called after the reader is registered on its MeterProvider. It wraps the
        collect callback the provider gave the reader (an SDK-internal hook): the merged data
        then reaches the reader's exporter, scrape endpoint or in-memory buffer unchanged.
        """
        inner: Any = reader._collect
        if not explicit_buckets(reader):
            raise ValueError("reader does not aggregate histograms into explicit buckets")
        if inner is None:
            raise RuntimeError("reader is not registered on a MeterProvider yet")
        state = _ReaderState(reader)
        with self._lock:
            self._readers[id(reader)] = state

        def collect(reader_: MetricReader, timeout_millis: float = 10_000) -> MetricsData | None:
            collected = inner(reader_, timeout_millis=timeout_millis)
            # See _inventory_gauges: a large inventory makes the GC thrash while data points
            # are built; none of them form cycles.
            paused = gc.isenabled()
            gc.disable()
            try:
                return self.merge(collected, state, resource, scope)
            finally:
                if paused:
                    gc.enable()

        reader._collect = collect  # type: ignore[assignment]

    def merge(
        self,
        collected: MetricsData | None,
        state: _ReaderState,
        resource: Resource,
        scope: InstrumentationScope,
    ) -> MetricsData | None:
        """Add this store's metrics to what the SDK collected for one reader."""
        from opentelemetry.sdk.metrics.export import (
            MetricsData,
            ResourceMetrics,
            ScopeMetrics,
        )

        ours = self.collect(state)
        if not ours:
            return collected
        if collected is None or not collected.resource_metrics:
            return MetricsData(
                resource_metrics=[
                    ResourceMetrics(
                        resource=resource,
                        scope_metrics=[
                            ScopeMetrics(
                                scope=scope, metrics=ours, schema_url=scope.schema_url or ""
                            )
                        ],
                        schema_url=resource.schema_url,
                    )
                ]
            )
        first = collected.resource_metrics[0]
        for scope_metrics in first.scope_metrics:
            if scope_metrics.scope.name == scope.name:
                scope_metrics.metrics.extend(ours)  # type: ignore[attr-defined]  # a list
                return collected
        first.scope_metrics.append(  # type: ignore[attr-defined]  # a list
            ScopeMetrics(scope=scope, metrics=ours, schema_url=scope.schema_url or "")
        )
        return collected

    # Turning aggregates into SDK data.

    def collect(self, state: _ReaderState) -> list[Metric]:
        """Return the store's metrics in the reader's temporality (empty ones omitted)."""
        from opentelemetry.sdk.metrics.export import Histogram, Sum

        now = time_ns()
        metrics: list[Metric] = []
        histogram_points = [
            p
            for p in (self._histogram_point(s, state, now) for s in self.duration.snapshot())
            if p is not None
        ]
        if histogram_points:
            metrics.append(
                _metric(
                    _DURATION,
                    Histogram(
                        data_points=histogram_points,
                        aggregation_temporality=_temporality(state.histogram_delta),
                    ),
                )
            )
        self._count_overflow()
        for definition, table, delta, monotonic in (
            (_ACTIVE, self.active, state.updown_delta, False),
            (_BUNDLE, self.bundle_requests, state.counter_delta, True),
            (_INVENTORY_ERRORS, self.inventory_errors, state.counter_delta, True),
            (_OVERFLOW_COUNT, self.overflow, state.counter_delta, True),
        ):
            points = [
                p
                for p in (self._sum_point(s, state, now, delta) for s in table.snapshot())
                if p is not None
            ]
            if points:
                metrics.append(
                    _metric(
                        definition,
                        Sum(
                            data_points=points,
                            aggregation_temporality=_temporality(delta),
                            is_monotonic=monotonic,
                        ),
                    )
                )
        metrics += _inventory_gauges(now)
        state.collected_ns = now
        return metrics

    def _histogram_point(self, series: HistogramSeries, state: _ReaderState, now: int) -> Any:
        from opentelemetry.sdk.metrics import Exemplar
        from opentelemetry.sdk.metrics.export import HistogramDataPoint

        with series.lock:
            count, total = series.count, series.sum
            summed = list(series.buckets)
            low, high = series.min, series.max
            interval_low, interval_high = series.interval_min, series.interval_max
            taken = series.exemplars
            series.exemplars = None
            if state.histogram_delta:
                series.interval_min, series.interval_max = math.inf, -math.inf
            shards = list(series.shards)
        for shard in shards:
            s_count, s_sum, s_buckets, s_min, s_max, s_imin, s_imax, _, _ = shard.read()
            if state.histogram_delta:
                shard.reset_epoch += 1  # only the collector writes reset_epoch
            count += s_count
            total += s_sum
            summed = [x + y for x, y in zip(summed, s_buckets, strict=True)]
            low, high = min(low, s_min), max(high, s_max)
            interval_low, interval_high = min(interval_low, s_imin), max(interval_high, s_imax)
        buckets = tuple(summed)
        exemplars = [
            Exemplar(
                filtered_attributes=None,
                value=value,
                time_unix_nano=at,
                span_id=context.span_id,
                trace_id=context.trace_id,
            )
            for value, at, context in (taken or {}).values()
        ]
        start = series.start_ns
        if state.histogram_delta:
            previous = state.sent.get(series.id)
            start = state.last_ns.get(series.id, state.collected_ns)
            state.sent[series.id] = (count, total, buckets)
            state.last_ns[series.id] = now
            if previous is not None:
                count -= previous[0]
                total -= previous[1]
                buckets = tuple(b - p for b, p in zip(buckets, previous[2], strict=True))
            if count == 0:
                return None
            low, high = interval_low, interval_high
        elif count == 0:
            return None
        return HistogramDataPoint(
            attributes=series.attributes,
            start_time_unix_nano=start,
            time_unix_nano=now,
            count=count,
            sum=total,
            bucket_counts=buckets,
            explicit_bounds=_BOUNDS,
            min=low,
            max=high,
            exemplars=exemplars,
        )

    def _sum_point(self, series: SumSeries, state: _ReaderState, now: int, delta: bool) -> Any:
        from opentelemetry.sdk.metrics.export import NumberDataPoint

        with series.lock:
            value, updates = series.value, series.updates
            shards = list(series.shards)
        for shard in shards:
            part = shard.read()
            value += part[7]
            updates += part[8]
        start = series.start_ns
        if delta:
            previous = state.sent.get(series.id, (0, 0))
            start = state.last_ns.get(series.id, state.collected_ns)
            state.sent[series.id] = (value, updates)
            state.last_ns[series.id] = now
            if updates == previous[1]:
                return None
            value -= previous[0]
        elif updates == 0:
            return None
        return NumberDataPoint(
            attributes=series.attributes,
            start_time_unix_nano=start,
            time_unix_nano=now,
            value=value,
        )


def _inventory_gauges(now: int) -> list[Metric]:
    """The inventory's gauges as data points (nothing when no inventory was ever imported)."""
    from certobs._inventory_metrics import observations

    # Building hundreds of thousands of small objects while as many long-lived ones exist makes
    # the cyclic GC run over and over for nothing (it was 75% of a 100,000-certificate
    # collection). None of these objects form cycles, so it is paused meanwhile.
    paused = gc.isenabled()
    gc.disable()
    try:
        return _inventory_metrics(observations(), now)
    finally:
        if paused:
            gc.enable()


def _inventory_metrics(observed: dict[str, list[tuple[Any, float]]], now: int) -> list[Metric]:
    from opentelemetry.sdk.metrics.export import Gauge, NumberDataPoint

    metrics = []
    for name, points in observed.items():
        if not points:
            continue
        definition = m.METRICS[name]
        data = _number_points(NumberDataPoint, points, now)
        metrics.append(_metric(definition, Gauge(data_points=data)))
    return metrics


def _metric(definition: m.MetricDefinition, data: Any) -> Metric:
    """An SDK Metric with the registry's name, description and unit."""
    from opentelemetry.sdk.metrics.export import Metric

    return Metric(
        name=definition.name, description=definition.description, unit=definition.unit, data=data
    )


@functools.cache
def _plain_fields(cls: Any) -> bool:
    """Whether ``cls`` keeps exactly the expected fields in an instance __dict__."""
    probe = cls(attributes={}, start_time_unix_nano=0, time_unix_nano=0, value=0.0)
    return hasattr(probe, "__dict__") and set(vars(probe)) == {
        "attributes",
        "start_time_unix_nano",
        "time_unix_nano",
        "value",
        "exemplars",
    }


def _number_points(cls: Any, points: list[tuple[Any, float]], now: int) -> list[Any]:
    """Build gauge data points in bulk.

    NumberDataPoint is a frozen dataclass whose __init__ costs about 2 us; an inventory of
    100,000 certificates needs 200,000 points per collection. When the class keeps its fields
    in an instance __dict__ (it does in the SDK), the same objects are built directly.
    """
    if not _plain_fields(cls):
        return [
            cls(attributes=labels, start_time_unix_nano=now, time_unix_nano=now, value=value)
            for labels, value in points
        ]
    new = object.__new__
    set_dict = object.__setattr__  # the class is a frozen dataclass
    made: list[Any] = []
    append = made.append
    no_exemplars = ()  # shared: gauges carry none, and one object is 200,000 fewer for the GC
    for labels, value in points:
        point = new(cls)
        set_dict(
            point,
            "__dict__",
            {
                "attributes": labels,
                "start_time_unix_nano": now,
                "time_unix_nano": now,
                "value": value,
                "exemplars": no_exemplars,
            },
        )
        append(point)
    return made


def fold_shard(histogram: HistogramSeries, active: SumSeries, shard: Shard) -> None:
    """Move a finished thread's shard into its series (called when the thread ends)."""
    count, total, buckets, low, high, ilow, ihigh, running, updates = shard.read()
    with histogram.lock:
        histogram.count += count
        histogram.sum += total
        histogram.buckets = [x + y for x, y in zip(histogram.buckets, buckets, strict=True)]
        histogram.min, histogram.max = min(histogram.min, low), max(histogram.max, high)
        histogram.interval_min = min(histogram.interval_min, ilow)
        histogram.interval_max = max(histogram.interval_max, ihigh)
        if shard in histogram.shards:
            histogram.shards.remove(shard)
    with active.lock:
        active.value += running
        active.updates += updates
        if shard in active.shards:
            active.shards.remove(shard)


def explicit_buckets(reader: MetricReader) -> bool:
    """Whether ``reader`` aggregates histograms as the fast path does (explicit buckets).

    A reader configured for exponential histograms (for instance through
    OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION) must get SDK instruments.
    """
    from opentelemetry.sdk.metrics._internal.instrument import _Histogram
    from opentelemetry.sdk.metrics.view import (
        DefaultAggregation,
        ExplicitBucketHistogramAggregation,
    )

    aggregation = reader._instrument_class_aggregation.get(_Histogram)
    if isinstance(aggregation, DefaultAggregation):
        return True
    return isinstance(aggregation, ExplicitBucketHistogramAggregation) and (
        aggregation._boundaries is None or tuple(aggregation._boundaries) == BOUNDS
    )


def _temporality(delta: bool) -> Any:
    from opentelemetry.sdk.metrics.export import AggregationTemporality

    return AggregationTemporality.DELTA if delta else AggregationTemporality.CUMULATIVE
