"""Fault injection against real components: collector outages, exits, forks, threads.

The collector is a real rotel-agent (see ``otlp_pipeline``) that is stopped and started again
on the same ports while a service records under steady load. Every workload runs in a fresh
interpreter; what counts is what reached the sink behind the collector.

The default run injects short outages (``CERTOBS_OUTAGE_SECONDS``, default 3 s); the
``reliability`` nox session runs the same scenarios with 30 s outages.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import certobs
from certobs.testing import capture
from otlp_pipeline import (
    HOST,
    Collector,
    OtlpSink,
    attributes_of,
    clean_env,
    free_ports,
    new_collector,
    run_workload,
)

pytestmark = pytest.mark.collector

OUTAGE_SECONDS = float(os.environ.get("CERTOBS_OUTAGE_SECONDS", "3"))
"""How long the collector stays down in the outage scenarios."""
CALL_BUDGET = 0.25
"""Seconds an instrumented call may take at worst, outage or not (docs/reliability.md). The
exporters' timeouts are 10 s: a call that waited on the network would take seconds."""
RSS_BUDGET = 32 * 1024 * 1024
"""Bytes the service's memory may grow from before the outage to its end (docs/reliability.md)."""
DELIVERY_TIMEOUT = 30.0
"""Seconds the sink is polled for the final totals after the service exited."""


@pytest.fixture
def agent(otlp_sink: OtlpSink, tmp_path: Path) -> Iterator[Collector]:
    """A rotel-agent on fixed free ports, not started: each test starts and stops it."""
    collector = new_collector(otlp_sink, tmp_path)
    try:
        yield collector
    finally:
        collector.stop()


# What the sink received, per process (service.instance.id) and attribute set.


def latest_points(sink: OtlpSink, metric: str) -> dict[tuple[str, frozenset[Any]], Any]:
    """The newest point of each (service.instance.id, attribute set) series of ``metric``."""
    latest: dict[tuple[str, frozenset[Any]], Any] = {}
    for request in sink.metrics():
        for resource_metrics in request.resource_metrics:
            instance = str(
                attributes_of(resource_metrics.resource.attributes).get("service.instance.id", "")
            )
            for scope_metrics in resource_metrics.scope_metrics:
                for found in scope_metrics.metrics:
                    if found.name != metric:
                        continue
                    data = getattr(found, found.WhichOneof("data"))
                    for point in data.data_points:
                        key = (instance, frozenset(attributes_of(point.attributes).items()))
                        if key not in latest or point.time_unix_nano >= latest[key].time_unix_nano:
                            latest[key] = point
    return latest


def one_process(points: dict[tuple[str, frozenset[Any]], Any], attrs: frozenset[Any]) -> Any:
    """The point of series ``attrs`` from a one-process workload (None if it has not arrived)."""
    found = [point for (_, key), point in points.items() if key == attrs]
    assert len(found) <= 1, f"{len(found)} processes sent {set(attrs)}"
    return found[0] if found else None


def delta_total(sink: OtlpSink, metric: str) -> tuple[int, float]:
    """Count and sum over every delta point of a histogram ``metric`` the sink received."""
    count, total = 0, 0.0
    for request in sink.metrics():
        for resource_metrics in request.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for found in scope_metrics.metrics:
                    if found.name == metric:
                        for point in found.histogram.data_points:
                            count += point.count
                            total += point.sum
    return count, total


def span_count(sink: OtlpSink, name: str) -> int:
    """How many spans named ``name`` arrived."""
    return sum(
        1
        for request in sink.traces()
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
        if span.name == name
    )


def wait_for(condition: Any, timeout: float) -> bool:
    """Poll ``condition`` every 0.2 s until true or ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


# Collector outages.

LOAD_WORKLOAD = """
import json, os, sys, time
import certobs
from certobs import _runtime

class RenewalFailed(Exception):
    pass

@certobs.renewal(issuer="outage")
def renew(index):
    if index % 10 == 0:
        raise RenewalFailed(index)
    return index

protocol, endpoint, stop_file = sys.argv[1:4]
certobs.configure(
    exporter="otlp", protocol=protocol, endpoint=endpoint, service_name="outage-test",
    export_interval=0.5, traces=True,
)

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

worst = {}  # second (time.time()) -> worst call latency in it
memory = {}  # second -> RSS
calls = errors = leaked = 0
print("started", flush=True)
while True:
    if calls % 50 == 0:
        if os.path.exists(stop_file):
            break
        memory[int(time.time())] = rss()
    start = time.perf_counter()
    try:
        renew(calls)
    except RenewalFailed:
        errors += 1
    except BaseException:
        leaked += 1
    latency = time.perf_counter() - start
    second = int(time.time())
    if latency > worst.get(second, 0.0):
        worst[second] = latency
    calls += 1
    time.sleep(0.002)

store = _runtime._State.store
recorded = {}
for series in store.duration.snapshot():
    with series.lock:
        count, total = series.count, series.sum
        for shard in series.shards:
            read = shard.read()
            count += read[0]
            total += read[1]
    recorded["error" if "error.type" in series.attributes else "ok"] = [count, total]
began = time.monotonic()
certobs.shutdown(timeout=5)
print(json.dumps({
    "calls": calls, "errors": errors, "leaked": leaked, "recorded": recorded,
    "worst": worst, "memory": memory, "shutdown_seconds": time.monotonic() - began,
}))
"""


def start_load(
    tmp_path: Path, agent: Collector, protocol: str, temporality: str
) -> tuple[subprocess.Popen[str], Path]:
    """Start the steady-load service; return it and the file that stops it."""
    stop = tmp_path / "stop"
    env = clean_env("OTEL_", "CERTOBS_")
    env["OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"] = temporality
    process = subprocess.Popen(
        [sys.executable, "-c", LOAD_WORKLOAD, protocol, agent.endpoint(protocol), str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "started", process.stderr.read()
    return process, stop


def finish_load(process: subprocess.Popen[str], stop: Path) -> tuple[dict[str, Any], str]:
    """Stop the service; return its report and its log."""
    stop.touch()
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, f"service exited with {process.returncode}\n{err}"
    assert "certobs failed" not in err, err
    return json.loads(out), err


def phase_worst(report: dict[str, Any], start: float, end: float) -> float:
    """The worst call latency in whole seconds inside [start, end)."""
    return max(
        (v for k, v in report["worst"].items() if start <= int(k) < end),
        default=0.0,
    )


def check_nothing_lost(sink: OtlpSink, report: dict[str, Any], context: str) -> dict[str, Any]:
    """Cumulative: the final counts and sums at the collector equal what the service recorded."""
    ok_attrs = frozenset(
        {
            "certificate.operation.name": "renew",
            "certificate.issuer.name": "outage",
        }.items()
    )
    error_attrs = ok_attrs | {("error.type", "__main__.RenewalFailed")}
    recorded = report["recorded"]

    def arrived() -> dict[str, Any]:
        points = latest_points(sink, "certificate.operation.duration")
        return {
            "ok": one_process(points, ok_attrs),
            "error": one_process(points, error_attrs),
        }

    def complete() -> bool:
        got = arrived()
        return all(got[k] is not None and got[k].count == recorded[k][0] for k in ("ok", "error"))

    assert wait_for(complete, DELIVERY_TIMEOUT), (
        f"final totals did not arrive: recorded {recorded}, received "
        f"{ {k: (p.count, p.sum) if p else None for k, p in arrived().items()} }\n{context}"
    )
    got = arrived()
    for key in ("ok", "error"):
        assert got[key].count == recorded[key][0]
        assert got[key].sum == pytest.approx(recorded[key][1], rel=1e-9)
    assert recorded["ok"][0] + recorded["error"][0] == report["calls"]
    assert recorded["error"][0] == report["errors"]
    return {k: (p.count, p.sum) for k, p in got.items()}


@pytest.mark.parametrize(
    ("protocol", "temporality"),
    [("grpc", "cumulative"), ("http/protobuf", "cumulative"), ("grpc", "delta")],
)
def test_collector_outage_under_load(
    protocol: str, temporality: str, agent: Collector, otlp_sink: OtlpSink, tmp_path: Path
) -> None:
    """The collector goes down under load and comes back.

    Calls never wait on it, no exception reaches the service, memory stays bounded, and with
    cumulative temporality nothing is lost.
    """
    agent.start()
    process, stop = start_load(tmp_path, agent, protocol, temporality)
    try:
        time.sleep(2.0)
        down = time.time()
        agent.stop()
        time.sleep(OUTAGE_SECONDS)
        agent.start()
        up = time.time()
        time.sleep(3.0)
    finally:
        report, log = finish_load(process, stop)
    context = f"service log:\n{log[-3000:]}\ncollector log:\n{agent.output()[-3000:]}"

    assert report["leaked"] == 0
    before = phase_worst(report, 0, int(down))
    during = phase_worst(report, int(down), int(up) + 1)
    after = phase_worst(report, int(up) + 1, 2**62)
    assert max(before, during, after) < CALL_BUDGET, (before, during, after)
    rss = [v for k, v in sorted(report["memory"].items()) if int(k) >= int(down) - 1]
    growth = max(rss) - rss[0]
    assert growth < RSS_BUDGET, f"RSS grew by {growth} bytes during the outage"
    assert report["shutdown_seconds"] < 5.0 + 1.0

    if temporality == "cumulative":
        received = check_nothing_lost(otlp_sink, report, context)
    else:
        # Delta: an interval whose export failed is gone; the loss is bounded by what was
        # recorded while the collector was down, plus the export interval around it.
        assert wait_for(
            lambda: delta_total(otlp_sink, "certificate.operation.duration")[0] > 0, 10
        ), context
        time.sleep(1.0)
        count, _ = delta_total(otlp_sink, "certificate.operation.duration")
        rate = report["calls"] / max(len(report["memory"]), 1)
        lost = report["calls"] - count
        assert 0 <= lost <= rate * (OUTAGE_SECONDS + 2 * 0.5 + 2), (lost, rate, context)
        received = {"delta_count": count, "lost": lost}
    spans = span_count(otlp_sink, "certificate.renew")
    print(
        f"\n[outage {OUTAGE_SECONDS:g}s {protocol} {temporality}] calls={report['calls']} "
        f"recorded={report['recorded']} received={received} spans={spans} "
        f"worst before/during/after={before * 1e3:.2f}/{during * 1e3:.2f}/{after * 1e3:.2f} ms "
        f"rss growth={growth / 1024:.0f} KiB shutdown={report['shutdown_seconds']:.2f}s"
    )
    # Spans: the batch processor's queue (2048) is dropped from, never grown, while down.
    assert 0 < spans <= report["calls"]


def test_service_starts_while_collector_is_down(
    agent: Collector, otlp_sink: OtlpSink, tmp_path: Path
) -> None:
    """A service started before its collector: once the collector is up, totals arrive whole."""
    process, stop = start_load(tmp_path, agent, "grpc", "cumulative")
    try:
        time.sleep(OUTAGE_SECONDS)
        agent.start()
        time.sleep(3.0)
    finally:
        report, log = finish_load(process, stop)
    assert report["leaked"] == 0
    assert max(report["worst"].values()) < CALL_BUDGET
    received = check_nothing_lost(otlp_sink, report, f"service log:\n{log[-3000:]}")
    print(
        f"\n[start while down {OUTAGE_SECONDS:g}s] calls={report['calls']} "
        f"recorded={report['recorded']} received={received} "
        f"worst={max(report['worst'].values()) * 1e3:.2f} ms"
    )


# Exit.

EXIT_WORKLOAD = """
import sys, time
import certobs

@certobs.renewal(issuer="exit")
def renew(index):
    return index

protocol, endpoint = sys.argv[1:3]
certobs.configure(
    exporter="otlp", protocol=protocol, endpoint=endpoint, service_name="exit-test",
    export_interval=60, traces=True,
)
for i in range(7):
    renew(i)
print(time.time(), flush=True)
# No certobs.shutdown(): the exit handler flushes.
"""


def test_exit_flushes_without_shutdown(agent: Collector, otlp_sink: OtlpSink) -> None:
    """At interpreter exit, what was recorded is exported.

    The export interval is 60 s: only the exit flush can deliver it.
    """
    agent.start()
    run_workload(EXIT_WORKLOAD, "grpc", agent.endpoint("grpc"))
    attrs = frozenset(
        {"certificate.operation.name": "renew", "certificate.issuer.name": "exit"}.items()
    )

    def arrived() -> bool:
        point = one_process(latest_points(otlp_sink, "certificate.operation.duration"), attrs)
        return point is not None and point.count == 7

    assert wait_for(arrived, DELIVERY_TIMEOUT), (
        otlp_sink.describe(),
        {k: v.count for k, v in latest_points(otlp_sink, "certificate.operation.duration").items()},
    )
    assert wait_for(lambda: span_count(otlp_sink, "certificate.renew") == 7, DELIVERY_TIMEOUT)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_exit_with_collector_down_is_bounded(protocol: str) -> None:
    """With nothing listening, exit gives up after the shutdown timeout (5 s).

    The exporters would otherwise retry for longer.
    """
    (port,) = free_ports(1)
    started = time.time()
    result = run_workload(EXIT_WORKLOAD, protocol, f"http://{HOST}:{port}", timeout=60)
    recorded_at = float(result.stdout.strip())
    exit_seconds = time.time() - recorded_at
    print(f"\n[exit, collector down, {protocol}] exit took {exit_seconds:.2f} s")
    assert exit_seconds < 5.0 + 2.0, (exit_seconds, time.time() - started, result.stderr)
    assert "did not finish within" in result.stderr or exit_seconds < 5.0


# Processes.

FORK_WORKLOAD = """
import json, os, sys, time
import certobs

@certobs.renewal(issuer="fork")
def renew(index):
    return index

protocol, endpoint = sys.argv[1:3]
certobs.configure(
    exporter="otlp", protocol=protocol, endpoint=endpoint, service_name="fork-test",
    export_interval=0.2, traces=False,
)
for i in range(5):
    renew(i)
time.sleep(0.6)  # the parent has exported its 5 before forking: children must not resend them
children = {}
for n in (3, 4, 6):
    pid = os.fork()
    if pid == 0:
        for i in range(n):
            renew(i)
        sys.exit(0)  # a normal exit: the exit handler flushes the child's own data
    children[pid] = n
for pid in children:
    _, status = os.waitpid(pid, 0)
    assert status == 0, status
for i in range(5):
    renew(i)
certobs.shutdown()
print(json.dumps(sorted(children.values())))
"""

POOL_WORKLOAD = """
import json, multiprocessing, sys, time
import certobs

@certobs.renewal(issuer="fork")
def renew(index):
    return index

if __name__ == "__main__":
    protocol, endpoint = sys.argv[1:3]
    certobs.configure(
        exporter="otlp", protocol=protocol, endpoint=endpoint, service_name="fork-test",
        export_interval=0.2, traces=False,
    )
    for i in range(3):
        renew(i)
    time.sleep(0.6)
    pool = multiprocessing.get_context("fork").Pool(2)
    results = pool.map(renew, range(20), chunksize=1)
    pool.close()
    pool.join()
    certobs.shutdown()
    print(json.dumps(sum(results)))
"""


def by_process(sink: OtlpSink) -> dict[str, int]:
    """The final renewal count of each process, by service.instance.id."""
    attrs = frozenset(
        {"certificate.operation.name": "renew", "certificate.issuer.name": "fork"}.items()
    )
    return {
        instance: point.count
        for (instance, key), point in latest_points(sink, "certificate.operation.duration").items()
        if key == attrs
    }


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_forked_children_export_their_own_data(
    protocol: str, agent: Collector, otlp_sink: OtlpSink
) -> None:
    """Pre-fork (gunicorn style os.fork() after configure()): each child exports its own.

    Each child has a service.instance.id of its own; nothing of the parent's is sent twice,
    nothing is lost.
    """
    agent.start()
    result = run_workload(FORK_WORKLOAD, protocol, agent.endpoint(protocol))
    assert json.loads(result.stdout) == [3, 4, 6]

    def complete() -> bool:
        return sorted(by_process(otlp_sink).values()) == [3, 4, 6, 10]

    assert wait_for(complete, DELIVERY_TIMEOUT), (
        by_process(otlp_sink),
        list(latest_points(otlp_sink, "certificate.operation.duration")),
        otlp_sink.describe(),
        result.stderr,
    )
    assert len(by_process(otlp_sink)) == 4  # the parent and three children, each its own id


def test_multiprocessing_pool_workers_flush(agent: Collector, otlp_sink: OtlpSink) -> None:
    """Multiprocessing (fork start method): each worker exports what it recorded.

    Pool workers exit without running exit handlers; certobs flushes them all the same.
    """
    agent.start()
    result = run_workload(POOL_WORKLOAD, "grpc", agent.endpoint("grpc"))
    assert json.loads(result.stdout) == sum(range(20))

    def complete() -> bool:
        return sum(by_process(otlp_sink).values()) == 23

    assert wait_for(complete, DELIVERY_TIMEOUT), (by_process(otlp_sink), result.stderr)
    counts = by_process(otlp_sink)
    # The parent and each worker that got tasks (usually both), each under its own id.
    assert 2 <= len(counts) <= 3
    assert 3 in counts.values()


# Threads.


def test_eight_threads_give_exact_counts() -> None:
    """Eight threads hammering the same operations: every call counted, none twice."""
    calls = 5_000
    start = threading.Barrier(8)

    @certobs.renewal(issuer="threads")
    def renew(index: int) -> int:
        if index % 7 == 0:
            raise ValueError(index)
        return index

    def hammer() -> None:
        start.wait()
        for i in range(calls):
            with contextlib.suppress(ValueError):
                renew(i)
            with certobs.deployment(target_type="nginx"):
                pass

    with capture(traces=False) as telemetry:
        threads = [threading.Thread(target=hammer) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        failures = sum(1 for i in range(calls) if i % 7 == 0) * 8
        ok = telemetry.point(
            "certificate.operation.duration",
            {"certificate.operation.name": "renew", "certificate.issuer.name": "threads"},
        )
        failed = telemetry.point(
            "certificate.operation.duration",
            {
                "certificate.operation.name": "renew",
                "certificate.issuer.name": "threads",
                "error.type": "ValueError",
            },
        )
        deploy = telemetry.point(
            "certificate.operation.duration",
            {
                "certificate.operation.name": "deploy",
                "certificate.deployment.target.type": "nginx",
            },
        )
        assert failed.count == failures
        assert ok.count == calls * 8 - failures
        assert deploy.count == calls * 8
        assert sum(ok.bucket_counts) == ok.count
        active = telemetry.point(
            "certificate.operation.active", {"certificate.operation.name": "renew"}
        )
        assert active.value == 0


INVENTORY_FORK_WORKLOAD = """
import json, os, sys
import trustme
import certobs.inventory as inventory

ca = trustme.CA()
leaf = ca.issue_cert("api.example.test")
inventory.track(leaf.cert_chain_pems[0].bytes(), id="api")
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    os.write(write, json.dumps(len(inventory.default().entries())).encode())
    os._exit(0)
os.waitpid(pid, 0)
child = json.loads(os.read(read, 100))
print(json.dumps({"parent": len(inventory.default().entries()), "child": child}))
"""


def test_forked_child_starts_with_an_empty_inventory() -> None:
    """The parent keeps reporting its inventory; children do not report copies of it."""
    result = run_workload(INVENTORY_FORK_WORKLOAD)
    assert json.loads(result.stdout) == {"parent": 1, "child": 0}


# Cardinality.


def test_unbounded_attribute_is_folded_counted_and_warned_once(caplog) -> None:
    """An identifier put into a metric label cannot grow memory without bound."""
    limit, calls = 50, 2_000
    with capture(traces=False, cardinality_limit=limit) as telemetry, caplog.at_level("WARNING"):
        renew = certobs.renewal(metric_attributes=["request.id"])
        for i in range(calls):
            with renew as op:
                op.set_attribute("request.id", f"req-{i}")
        points = telemetry.points("certificate.operation.duration")
        overflow = telemetry.point("certificate.operation.duration", {"otel.metric.overflow": True})
        folded = telemetry.point(
            "certobs.metric.overflow", {"certobs.metric.name": "certificate.operation.duration"}
        )
    # At most the limit (the operation's own series among them) and the overflow series.
    assert len(points) <= limit + 1
    assert overflow.count >= calls - limit
    assert folded.value == overflow.count  # every folded measurement counted
    assert sum(p.count for p in points) == calls  # nothing dropped
    warnings = [r for r in caplog.records if "reached its limit of 50" in r.getMessage()]
    assert len(warnings) == 1


def test_overflow_count_covers_static_label_sets() -> None:
    """Operations whose static labels arrive past the limit: every call is counted as folded."""
    with capture(traces=False, cardinality_limit=3) as telemetry:
        for issuer in ("a", "b", "c", "d", "e", "f"):
            renew = certobs.renewal(issuer=issuer)
            for _ in range(10):
                with renew:
                    pass
        overflow = telemetry.point("certificate.operation.duration", {"otel.metric.overflow": True})
        folded = telemetry.point(
            "certobs.metric.overflow", {"certobs.metric.name": "certificate.operation.duration"}
        )
    assert overflow.count == folded.value == 30  # three operations' 10 calls each


def test_cardinality_limit_setting() -> None:
    """configure(cardinality_limit=) and CERTOBS_CARDINALITY_LIMIT, validated."""
    from certobs._config import settings

    assert settings(environ={}).cardinality_limit == 2000
    assert settings(environ={"CERTOBS_CARDINALITY_LIMIT": "300"}).cardinality_limit == 300
    assert (
        settings(environ={"CERTOBS_CARDINALITY_LIMIT": "300"}, cardinality_limit=5)
    ).cardinality_limit == 5
    for bad in ("0", "-1", "many"):
        with pytest.raises(certobs.ConfigurationError, match="CERTOBS_CARDINALITY_LIMIT"):
            settings(environ={"CERTOBS_CARDINALITY_LIMIT": bad})
    with pytest.raises(certobs.ConfigurationError, match="cardinality_limit"):
        settings(environ={}, cardinality_limit=0)


@pytest.mark.parametrize(
    "key",
    [
        "certificate.serial_number",
        "certificate.fingerprint.sha256",
        "certificate.subject.distinguished_name",
        "certificate.subject.alternative_names",
    ],
)
def test_identity_attributes_are_refused_as_metric_labels(key: str) -> None:
    """Identity belongs on the span: as a metric label only when explicitly allowed."""
    with pytest.raises(certobs.ConfigurationError, match="allow_identity=True"):
        certobs.renewal(metric_attributes=[key])
    with capture() as telemetry:
        with certobs.renewal() as op:  # not declared: the span only
            op.set_attribute(key, "x")
        with certobs.renewal(metric_attributes=[key], allow_identity=True) as op:
            op.set_attribute(key, "y")
        labels = [dict(p.attributes) for p in telemetry.points("certificate.operation.duration")]
        spans = [dict(s.attributes or {}) for s in telemetry.spans()]
    assert {"certificate.operation.name": "renew"} in labels
    assert {"certificate.operation.name": "renew", key: "y"} in labels
    assert [s[key] for s in spans] == ["x", "y"]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("request.id", "not one string"),
        (["error.type"], "set by certobs itself"),
        (["api.token"], "names a secret"),
        ([""], "not a non-empty string"),
    ],
)
def test_bad_metric_attributes_are_refused(given: Any, message: str) -> None:
    """Each mistake in metric_attributes gets an error that names it, at decoration time."""
    with pytest.raises(certobs.ConfigurationError, match=message):
        certobs.operation("check", metric_attributes=given)


def test_grpc_reconnect_backoff_is_capped() -> None:
    """The reconnect backoff of gRPC (up to 120 s) is capped: exports resume soon after outages.

    Without the cap, the 30 s outage scenario (nox -s reliability) lost its final export: the
    collector was back, but the channel still waited out its backoff.
    """
    from certobs import _export

    for signal in ("metric", "trace"):
        exporter = _export._otlp_exporter(signal, "grpc", f"http://{HOST}:9", None)
        try:
            assert ("grpc.max_reconnect_backoff_ms", 5000) in exporter._channel_options
        finally:
            exporter.shutdown()


FORK_IN_CALL_WORKLOAD = """
import os, threading, time
import certobs
from certobs import _runtime

certobs.configure(exporter="none", service_name="fork-in-call")
store = _runtime._State.store
held = threading.Event()

def collector():  # as the reader thread holds it while it collects
    with store.duration.lock:
        held.set()
        time.sleep(3)

@certobs.renewal(issuer="x")
def spawn_worker(fork):
    pid = os.fork() if fork else 1
    if pid == 0:
        raise RuntimeError("the child leaves the decorated call by an exception")
    return pid

spawn_worker(False)  # the operation's series exist
threading.Thread(target=collector, daemon=True).start()
held.wait()
try:
    pid = spawn_worker(True)
except RuntimeError:
    os._exit(0)  # the child got through
deadline = time.monotonic() + 2.5
while time.monotonic() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        print("child exited", status)
        break
    time.sleep(0.05)
else:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    print("child hung")
"""


def test_fork_inside_a_call_does_not_deadlock_the_child() -> None:
    """A call that forks ends in the child without touching the parent's locks.

    Another parent thread (the collector) holds a lock of the store at the fork; in the child
    that lock stays held forever, and the call must end without waiting for it.
    """
    result = run_workload(FORK_IN_CALL_WORKLOAD)
    assert result.stdout.strip() == "child exited 0", result.stdout


FORK_WITH_CAPTURE_WORKLOAD = """
import json, os
import certobs
from certobs.testing import capture

@certobs.renewal
def renew():
    return 1

with capture(traces=True) as telemetry:
    renew()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        for _ in range(6):
            renew()
        os._exit(0)
    os.waitpid(pid, 0)
    renewals = {"certificate.operation.name": "renew"}
    active = telemetry.point("certificate.operation.active", renewals)
    duration = telemetry.point("certificate.operation.duration", renewals)
    print(json.dumps([active.value, duration.count]))
"""


def test_fork_with_a_store_installed_without_configure() -> None:
    """A child of a process recording into certobs.testing.capture() records nothing.

    Nothing into the parent's copy: no active count left behind, no lock of the parent's taken.
    """
    result = run_workload(FORK_WITH_CAPTURE_WORKLOAD)
    assert json.loads(result.stdout) == [0, 1]
