"""The fast path exports exactly what plain SDK instruments export for the same workload.

certobs aggregates operations and bundle requests in process (``certobs._aggregate``) instead
of calling the SDK per measurement. This test keeps that honest: one randomised workload
(operations of every preset, per-call attributes, failures, threads, coroutines, bundle
requests) runs once through the fast path and once through SDK instruments, each into its own
in-memory reader, and the exported data must be identical: names, units, descriptions,
temporality, attributes, counts, sums, bucket counts, min and max, collection after collection,
for cumulative and delta temporality.

Durations come from a fake clock that the workload advances by exact binary fractions, so that
sums are exact whatever order threads add them in.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import random
import threading
from typing import Any

import pytest
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, UpDownCounter
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    HistogramDataPoint,
    InMemoryMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

import certobs
from certobs import _operation, _runtime
from certobs._export import aggregate_into
from certobs.semconv import attributes as a
from certobs.semconv import metrics as m

COMPARED = {
    m.CERTIFICATE_OPERATION_DURATION,
    m.CERTIFICATE_OPERATION_ACTIVE,
    m.CERTIFICATE_BUNDLE_REQUESTS,
}
# Exact in binary floating point, spread over the buckets (10 ms to 10 min and beyond).
# 0.5, 1.0, 5.0 and 600.0 sit exactly on bucket boundaries (buckets are upper-inclusive).
DURATIONS = [
    1 / 256,
    1 / 64,
    3 / 64,
    1 / 8,
    3 / 8,
    0.5,
    0.75,
    1.0,
    1.5,
    4.0,
    5.0,
    7.5,
    24.0,
    96.0,
    250.0,
    600.0,
    1024.0,
]
ISSUERS = ["letsencrypt", "corp-ca", "zerossl"]
TARGETS = ["nginx", "aws_alb", "f5", "kubernetes_secret"]
ENVIRONMENTS = ["prod", "staging"]

_now: contextvars.ContextVar[float] = contextvars.ContextVar("fake_now", default=1000.0)


def fake_clock() -> float:
    """perf_counter for the workload: per context, advanced only by the workload."""
    return _now.get()


def spend(seconds: float) -> None:
    """Pretend the operation took ``seconds``."""
    _now.set(_now.get() + seconds)


class ChallengeFailed(Exception):
    pass


class RateLimited(Exception):
    pass


def make_operations() -> list[Any]:
    """Operations with static attributes, built fresh for each run."""
    ops = []
    for issuer in ISSUERS:
        ops.append(certobs.renewal(issuer=issuer))
        ops.append(certobs.issuance(issuer=issuer, environment="prod"))
    for target in TARGETS:
        ops.append(certobs.deployment(target_type=target, environment="prod"))
    ops += [certobs.revocation(), certobs.bundle_build(), certobs.validation()]
    ops.append(certobs.operation("ocsp.refresh"))
    return ops


def plan(seed: int, count: int, durations: list[float] = DURATIONS) -> list[tuple[Any, ...]]:
    """A reproducible list of calls: (operation index, duration, failure, per-call attrs)."""
    rng = random.Random(seed)
    calls = []
    for _ in range(count):
        failure = rng.choice([None] * 6 + [ChallengeFailed, RateLimited, TimeoutError])
        extra = {}
        if rng.random() < 0.3:
            extra[a.CERTIFICATE_ISSUER_NAME] = rng.choice(ISSUERS)
        if rng.random() < 0.2:
            extra[a.DEPLOYMENT_ENVIRONMENT_NAME] = rng.choice(ENVIRONMENTS)
        if rng.random() < 0.2:
            extra[a.CERTIFICATE_ID] = f"cert-{rng.randrange(50)}"  # span only
        bundle = rng.choice([None, None, ("public-roots", "pem"), ("chain", "der")])
        calls.append((rng.randrange(13), rng.choice(durations), failure, extra, bundle))
    return calls


def run_workload(seed: int, readers_collect: Any) -> None:
    """Run the planned calls: sync decorated, ``with`` blocks, threads and coroutines."""
    ops = make_operations()
    sync_funcs = []
    async_funcs = []
    for op in ops:

        def body(duration, failure, extra, bundle):
            # Ask for the handle only when needed: the fast path's inline case is the one
            # where nobody does.
            if extra:
                handle = certobs.current_operation()
                for key, value in extra.items():
                    handle.set_attribute(key, value)
            spend(duration)
            if bundle is not None:
                certobs.record_bundle_request(bundle[0], format=bundle[1])
            if failure is not None:
                raise failure("planned")
            return duration

        async def abody(duration, failure, extra, bundle):
            await asyncio.sleep(0)
            return body(duration, failure, extra, bundle)

        sync_funcs.append(op(body))
        async_funcs.append(op(abody))

    def call_sync(calls):
        for index, duration, failure, extra, bundle in calls:
            try:
                if index % 3 == 0:
                    with ops[index] as handle:
                        for key, value in extra.items():
                            handle.set_attribute(key, value)
                        spend(duration)
                        if failure is not None:
                            raise failure("planned")
                else:
                    sync_funcs[index](duration, failure, extra, bundle)
            except (ChallengeFailed, RateLimited, TimeoutError):
                pass

    async def call_async(calls):
        async def one(call):
            index, duration, failure, extra, bundle = call
            with contextlib.suppress(ChallengeFailed, RateLimited, TimeoutError):
                await async_funcs[index](duration, failure, extra, bundle)

        await asyncio.gather(*(one(c) for c in calls))

    # Phase 1: one thread. Phase 2: four threads at once. Phase 3: coroutines interleaved.
    call_sync(plan(seed, 300))
    readers_collect()
    threads = [
        threading.Thread(target=call_sync, args=(plan(seed + 1 + t, 200),)) for t in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    readers_collect()
    # Narrower durations than before: a delta's min and max must be the interval's own.
    asyncio.run(call_async(plan(seed + 10, 300, DURATIONS[4:-4])))
    readers_collect()
    # Phase 4: the first thread again, after collections, with other narrow durations.
    call_sync(plan(seed + 20, 300, DURATIONS[-8:-1]))
    readers_collect()


def canonical(data: Any) -> dict[str, Any]:
    """What must agree: everything but timestamps and exemplars."""
    out: dict[str, Any] = {}
    if data is None:
        return out
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name not in COMPARED:
                    continue
                points = {}
                for p in metric.data.data_points:
                    key = frozenset(p.attributes.items())
                    if isinstance(p, HistogramDataPoint):
                        points[key] = (
                            p.count,
                            p.sum,
                            tuple(p.bucket_counts),
                            tuple(p.explicit_bounds),
                            p.min,
                            p.max,
                        )
                    else:
                        points[key] = p.value
                assert metric.name not in out, f"{metric.name} exported twice"
                assert len(points) == len(metric.data.data_points), "duplicate attribute sets"
                out[metric.name] = {
                    "unit": metric.unit,
                    "description": metric.description,
                    "scope": sm.scope.name,
                    "temporality": getattr(metric.data, "aggregation_temporality", None),
                    "monotonic": getattr(metric.data, "is_monotonic", None),
                    "points": points,
                }
    return out


TEMPORALITIES = {
    "cumulative": {},
    "delta": {
        Counter: AggregationTemporality.DELTA,
        UpDownCounter: AggregationTemporality.DELTA,
        Histogram: AggregationTemporality.DELTA,
    },
}


def record(fast: bool, temporality: str, traces: bool, seed: int, monkeypatch) -> list[Any]:
    """Run the workload through one path; return the canonical form of every collection."""
    resource = Resource.create({})
    reader = InMemoryMetricReader(preferred_temporality=TEMPORALITIES[temporality])
    provider = MeterProvider(metric_readers=[reader], resource=resource)
    store = aggregate_into([reader], resource) if fast else None
    tracer_provider = TracerProvider(resource=resource) if traces else None
    collections: list[Any] = []
    monkeypatch.setattr(_operation, "perf_counter", fake_clock)
    _runtime.install(provider, tracer_provider, store)
    try:
        run_workload(seed, lambda: collections.append(canonical(reader.get_metrics_data())))
    finally:
        _runtime.install(None, None)
        provider.shutdown()
    return collections


@pytest.mark.parametrize("traces", [False, True], ids=["tracing-off", "tracing-on"])
@pytest.mark.parametrize("temporality", ["cumulative", "delta"])
def test_fast_path_exports_what_the_sdk_exports(monkeypatch, temporality, traces):
    """Fast path and SDK instruments export identical data for the same randomised workload."""
    fast = record(True, temporality, traces, seed=7, monkeypatch=monkeypatch)
    sdk = record(False, temporality, traces, seed=7, monkeypatch=monkeypatch)
    assert len(fast) == len(sdk) == 4
    for number, (ours, theirs) in enumerate(zip(fast, sdk, strict=True), start=1):
        assert set(ours) == COMPARED, f"collection {number}: metrics missing"
        for name in COMPARED:
            assert ours[name] == theirs[name], f"collection {number}, {name} differs"
    # The workload really exercised failures, per-call attributes and every series kind.
    final = fast[-1][m.CERTIFICATE_OPERATION_DURATION]["points"]
    assert any(dict(k).get(a.ERROR_TYPE) == "TimeoutError" for k in final)
    assert any(dict(k).get(a.DEPLOYMENT_ENVIRONMENT_NAME) == "staging" for k in final)
    assert len(final) > 40


def test_comparison_detects_a_difference(monkeypatch):
    """The comparison is not blind: one extra call on one side makes the runs differ."""
    fast = record(True, "cumulative", False, seed=7, monkeypatch=monkeypatch)
    other = record(True, "cumulative", False, seed=8, monkeypatch=monkeypatch)
    assert fast[-1][m.CERTIFICATE_OPERATION_DURATION] != other[-1][m.CERTIFICATE_OPERATION_DURATION]


def test_short_lived_threads_leave_no_shards_behind():
    """Threads that end fold their part into the series: nothing accumulates, nothing is lost."""
    import gc
    import threading

    from certobs.testing import capture

    @certobs.validation
    def check():
        return 1

    with capture(traces=False) as telemetry:
        for _ in range(30):
            workers = [
                threading.Thread(target=lambda: [check() for _ in range(10)]) for _ in range(5)
            ]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
        gc.collect()
        series = _runtime._State.store.duration.snapshot()
        assert all(len(s.shards) <= 1 for s in series)  # at most the main thread's
        point = telemetry.point(
            m.CERTIFICATE_OPERATION_DURATION, {a.CERTIFICATE_OPERATION_NAME: "validate"}
        )
        assert point.count == 30 * 5 * 10


def test_exponential_histogram_readers_get_sdk_instruments():
    """A reader asking for exponential histograms gets them: certobs does not take the fast path."""
    from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation

    reader = InMemoryMetricReader(
        preferred_aggregation={Histogram: ExponentialBucketHistogramAggregation()}
    )
    resource = Resource.create({})
    provider = MeterProvider(metric_readers=[reader], resource=resource)
    assert aggregate_into([reader], resource) is None
    _runtime.install(provider, None, None)
    try:
        certobs.renewal(lambda: 1)()
        data = reader.get_metrics_data()
    finally:
        _runtime.install(None, None)
        provider.shutdown()
    (metric,) = [
        mm
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for mm in sm.metrics
        if mm.name == m.CERTIFICATE_OPERATION_DURATION
    ]
    assert type(metric.data).__name__ == "ExponentialHistogram"


@pytest.mark.parametrize("sets", [2000, 2001])
def test_cardinality_overflow_matches_the_sdk(monkeypatch, sets):
    """The overflow series appears exactly where the SDK's does (its default limit, 2000)."""
    results = {}
    for fast in (True, False):
        resource = Resource.create({})
        reader = InMemoryMetricReader()
        provider = MeterProvider(metric_readers=[reader], resource=resource)
        store = aggregate_into([reader], resource) if fast else None
        _runtime.install(provider, None, store)
        try:
            for i in range(sets):
                certobs.record_bundle_request(f"bundle-{i}")
            results[fast] = canonical(reader.get_metrics_data())[m.CERTIFICATE_BUNDLE_REQUESTS]
        finally:
            _runtime.install(None, None)
            provider.shutdown()
    assert results[True] == results[False]
    overflow = [k for k in results[True]["points"] if dict(k).get("otel.metric.overflow")]
    assert bool(overflow) == (sets > 2000)
