"""certobs' performance gate: measure every hot path as a ratio, compare with the budget.

Usage::

    python benchmarks/gate.py                 # the full run (`nox -s bench`)
    python benchmarks/gate.py --short         # the quick run CI does
    python benchmarks/gate.py --only disabled_vs_closure enabled_vs_sdk
    python benchmarks/gate.py --budget my-budget.toml

Prints one row per ratio (case, medians, ratio, limit, pass/fail) and exits with status 1 when
a ratio is over its limit. Timed cases alternate their loops in one process
(``certobs._timing.interleave``); import and memory cases alternate fresh interpreters.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from time import perf_counter
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

import certobs
from certobs import _runtime, _timing
from certobs._export import aggregate_into
from certobs.semconv import attributes as a
from certobs.semconv.metrics import CERTIFICATE_OPERATION_DURATION, METRICS

HERE = Path(__file__).resolve().parent
BUDGET = HERE / "budget.toml"

# The four attributes of the enabled cases, as the registry names them.
ATTRS = {
    a.CERTIFICATE_OPERATION_NAME: "renew",
    a.CERTIFICATE_ISSUER_NAME: "letsencrypt",
    a.CERTIFICATE_DEPLOYMENT_TARGET_TYPE: "nginx",
    a.DEPLOYMENT_ENVIRONMENT_NAME: "prod",
}
ACTIVE_ATTRS = {a.CERTIFICATE_OPERATION_NAME: "renew"}
BOUNDS = METRICS[CERTIFICATE_OPERATION_DURATION].bucket_boundaries
# The operation every timed case decorates: the same four attributes as ATTRS.
RENEWAL = certobs.renewal(issuer="letsencrypt", target_type="nginx", environment="prod")


@dataclass
class Row:
    """One measured ratio."""

    case: str
    subject: str
    baseline: str
    subject_value: float
    baseline_value: float
    unit: str
    ratio: float
    limit: float | None = None
    # Set when the row was measured twice: the ratio of the first (short) measurement.
    first_ratio: float | None = None

    @property
    def passed(self) -> bool:
        """Whether the ratio is within its limit (no limit: informative)."""
        return self.limit is None or self.ratio <= self.limit


@dataclass
class Settings:
    """How long to measure."""

    rounds: int
    number: int
    subprocess_runs: int
    memory_calls: int


FULL = Settings(rounds=15, number=10_000, subprocess_runs=15, memory_calls=100_000)
SHORT = Settings(rounds=7, number=4_000, subprocess_runs=7, memory_calls=100_000)


def bare(x: int) -> int:
    """The function every case instruments: as cheap as a call gets."""
    return x


async def abare(x: int) -> int:
    """The coroutine every async case instruments."""
    return x


@functools.wraps(bare)
def closure(*args: Any, **kwargs: Any) -> Any:
    """The reference for a cheap decorator: a functools.wraps passthrough."""
    return bare(*args, **kwargs)


def _loop(func: Callable[[int], Any]) -> Callable[[int], None]:
    def run(n: int) -> None:
        for _ in range(n):
            func(1)

    return run


class Pipelines:
    """The providers of the enabled cases: certobs' fast path and the raw SDK, side by side."""

    def __init__(self) -> None:
        resource = Resource.create({})
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader], resource=resource)
        self.store = aggregate_into([self.reader], resource)
        # No span processor: both sides pay for creating, starting and ending real SDK spans.
        self.tracer_provider = TracerProvider(resource=resource)
        self.tracer = self.tracer_provider.get_tracer("bench")
        sdk_reader = InMemoryMetricReader()
        meter = MeterProvider(metric_readers=[sdk_reader], resource=resource).get_meter("bench")
        self.histogram = meter.create_histogram(
            "certificate.operation.duration", unit="s", explicit_bucket_boundaries_advisory=BOUNDS
        )
        self.active = meter.create_up_down_counter("certificate.operation.active")

    def certobs_on(self, traces: bool) -> None:
        """Make certobs record through the fast path, with or without spans."""
        _runtime.install(self.meter_provider, self.tracer_provider if traces else None, self.store)

    def hand(self, x: int) -> int:
        """The raw SDK by hand: what certobs records, written out."""
        self.active.add(1, ACTIVE_ATTRS)
        start = perf_counter()
        result = bare(x)
        self.histogram.record(perf_counter() - start, ATTRS)
        self.active.add(-1, ACTIVE_ATTRS)
        return result

    def hand_span(self, x: int) -> int:
        """A hand-written span plus the same metrics by hand."""
        with self.tracer.start_as_current_span("certificate.renew", attributes=ATTRS):
            return self.hand(x)

    async def ahand(self, x: int) -> int:
        """The raw SDK by hand, in a coroutine."""
        self.active.add(1, ACTIVE_ATTRS)
        start = perf_counter()
        result = await abare(x)
        self.histogram.record(perf_counter() - start, ATTRS)
        self.active.add(-1, ACTIVE_ATTRS)
        return result

    async def ahand_span(self, x: int) -> int:
        """A hand-written span plus metrics, in a coroutine."""
        with self.tracer.start_as_current_span("certificate.renew", attributes=ATTRS):
            return await self.ahand(x)


@contextmanager
def restored() -> Iterator[None]:
    """Put certobs' providers back as they were."""
    state = _runtime._State
    previous = (state.meter_provider, state.tracer_provider, state.store)
    try:
        yield
    finally:
        _runtime.install(*previous)


def _row(
    case: str, times: dict[str, list[float]], subject: str, baseline: str, minus: str | None = None
) -> Row:
    return Row(
        case=case,
        subject=subject,
        baseline=baseline,
        subject_value=statistics.median(times[subject]),
        baseline_value=statistics.median(times[baseline]),
        unit="ns/call",
        ratio=_timing.median_ratio(
            times[subject], times[baseline], minus=times[minus] if minus else None
        ),
    )


def bench_disabled(s: Settings) -> list[Row]:
    """A decorated call with no provider: against a bare call and a closure passthrough."""
    decorated = RENEWAL(bare)
    with restored():
        _runtime.install(None, None)
        if _runtime.recording():
            raise SystemExit("an OpenTelemetry provider is installed: cannot measure 'disabled'")
        times = _timing.interleave(
            {"bare": _loop(bare), "closure": _loop(closure), "certobs": _loop(decorated)},
            # The cheapest case and the tightest limit: three times the rounds (under a
            # second) so that one disturbed round cannot move the median.
            rounds=s.rounds * 3,
            number=s.number * 5,
        )
    return [
        _row("disabled_vs_closure", times, "certobs", "closure", minus="bare"),
        _row("disabled_vs_bare", times, "certobs", "bare"),
    ]


def bench_enabled(s: Settings, pipes: Pipelines) -> list[Row]:
    """Enabled, tracing off and on, sync: certobs against the same recorded by hand."""
    decorated = RENEWAL(bare)
    run = _loop(decorated)

    def off(n: int) -> None:
        pipes.certobs_on(traces=False)
        run(n)

    def on(n: int) -> None:
        pipes.certobs_on(traces=True)
        run(n)

    with restored():
        times = _timing.interleave(
            {
                "certobs": off,
                "raw SDK": _loop(pipes.hand),
                "certobs+span": on,
                "hand span+SDK": _loop(pipes.hand_span),
            },
            rounds=s.rounds,
            number=s.number,
        )
    _check_recorded(pipes, s.rounds * s.number)
    return [
        _row("enabled_vs_sdk", times, "certobs", "raw SDK"),
        _row("tracing_vs_hand_span", times, "certobs+span", "hand span+SDK"),
    ]


def _check_recorded(pipes: Pipelines, at_least: int) -> None:
    """A fast loop that records nothing would pass any budget: check that it recorded."""
    data = pipes.reader.get_metrics_data()
    counts = [
        point.count
        for rm in (data.resource_metrics if data else [])
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == CERTIFICATE_OPERATION_DURATION
        for point in metric.data.data_points
    ]
    if sum(counts) < at_least:
        raise SystemExit(
            f"certobs recorded {sum(counts)} operations, expected at least {at_least}: the "
            "measured path is not recording"
        )


def bench_async(s: Settings, pipes: Pipelines) -> list[Row]:
    """The enabled cases for a coroutine, awaited from a running event loop."""
    decorated = RENEWAL(abare)
    event_loop = asyncio.new_event_loop()

    def drive(func: Callable[[int], Any], traces: bool | None = None) -> Callable[[int], None]:
        async def many(n: int) -> None:
            for _ in range(n):
                await func(1)

        def run(n: int) -> None:
            if traces is not None:
                pipes.certobs_on(traces=traces)
            event_loop.run_until_complete(many(n))

        return run

    try:
        with restored():
            times = _timing.interleave(
                {
                    "certobs": drive(decorated, traces=False),
                    "raw SDK": drive(pipes.ahand),
                    "certobs+span": drive(decorated, traces=True),
                    "hand span+SDK": drive(pipes.ahand_span),
                },
                rounds=s.rounds,
                number=s.number,
            )
    finally:
        event_loop.close()
    return [
        _row("async_enabled_vs_sdk", times, "certobs", "raw SDK"),
        _row("async_tracing_vs_hand_span", times, "certobs+span", "hand span+SDK"),
    ]


def bench_threads(s: Settings, pipes: Pipelines) -> list[Row]:
    """The enabled path from two threads at once, against one thread: cost per call."""
    decorated = RENEWAL(bare)
    run = _loop(decorated)

    def one(n: int) -> None:
        pipes.certobs_on(traces=False)
        run(n)

    def two(n: int) -> None:
        pipes.certobs_on(traces=False)
        barrier = threading.Barrier(2)

        def worker() -> None:
            barrier.wait()
            run(n // 2)

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    with restored():
        # Long enough runs (tens of ms) for the interpreter to switch threads many times
        # (every 5 ms): shorter ones could finish one thread before the other starts.
        times = _timing.interleave(
            {"one thread": one, "two threads": two},
            rounds=s.rounds,
            number=max(s.number * 4, 40_000),
            repeat=1,
        )
    return [_row("two_threads_vs_one", times, "two threads", "one thread")]


IMPORT_TIMER = "import time; t = time.perf_counter(); import {0}; print(time.perf_counter() - t)"
DEPENDENCIES = "wrapt, attrs, opentelemetry.metrics, opentelemetry.trace"
FORBIDDEN = (
    "opentelemetry.sdk",
    "opentelemetry.exporter",
    "grpc",
    "prometheus_client",
    "cryptography",
)


def _python(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CERTOBS_"))}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout.strip()


def bench_import(s: Settings) -> list[Row]:
    """``import certobs`` in fresh interpreters, against importing its dependencies."""
    times: dict[str, list[float]] = {"certobs": [], "dependencies": []}
    for _ in range(s.subprocess_runs):
        times["certobs"].append(float(_python(IMPORT_TIMER.format("certobs"))) * 1e3)
        times["dependencies"].append(float(_python(IMPORT_TIMER.format(DEPENDENCIES))) * 1e3)
    loaded = _python(
        f"import sys, certobs; print(sum(1 for m in sys.modules if m.startswith({FORBIDDEN!r})))"
    )
    row = _row("import_vs_dependencies", times, "certobs", "dependencies")
    row.unit = "ms"
    forbidden = int(loaded)
    return [
        row,
        Row(
            case="import_forbidden_modules",
            subject="modules loaded",
            baseline="-",
            subject_value=forbidden,
            baseline_value=0,
            unit="count",
            ratio=forbidden,
        ),
    ]


MEMORY_SCRIPT = """
import gc, sys
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
import certobs
from certobs import _runtime
from certobs._export import aggregate_into

def rss_kib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])

side, calls = sys.argv[1], int(sys.argv[2])
combos = [(f"issuer-{i % 10}", f"target-{i // 10 % 10}", f"env-{i // 100}") for i in range(1000)]
resource = Resource.create({})
reader = InMemoryMetricReader()
provider = MeterProvider(metric_readers=[reader], resource=resource)
if side == "certobs":
    _runtime.install(provider, None, aggregate_into([reader], resource))

    @certobs.renewal
    def renew(issuer, target, env):
        op = certobs.current_operation()
        op.set_attribute("certificate.issuer.name", issuer)
        op.set_attribute("certificate.deployment.target.type", target)
        op.set_attribute("deployment.environment.name", env)
else:
    import time
    meter = provider.get_meter("bench")
    histogram = meter.create_histogram("certificate.operation.duration", unit="s")
    active = meter.create_up_down_counter("certificate.operation.active")
    name = {"certificate.operation.name": "renew"}

    def renew(issuer, target, env):
        active.add(1, name)
        start = time.perf_counter()
        histogram.record(time.perf_counter() - start, {
            "certificate.operation.name": "renew", "certificate.issuer.name": issuer,
            "certificate.deployment.target.type": target, "deployment.environment.name": env,
        })
        active.add(-1, name)

renew(*combos[0])
gc.collect()
before = rss_kib()
for i in range(calls):
    renew(*combos[i % 1000])
gc.collect()
reader.collect()
print(rss_kib() - before)
"""


def bench_memory(s: Settings) -> list[Row]:
    """Resident memory growth over many enabled calls and 1,000 attribute sets."""
    growth: dict[str, list[float]] = {"certobs": [], "raw SDK": []}
    runs = max(3, s.subprocess_runs // 3)
    for _ in range(runs):
        for side, key in (("certobs", "certobs"), ("sdk", "raw SDK")):
            out = _python_args(MEMORY_SCRIPT, side, str(s.memory_calls))
            growth[key].append(max(float(out), 1.0))
    row = Row(
        case="memory_vs_sdk",
        subject="certobs",
        baseline="raw SDK",
        subject_value=statistics.median(growth["certobs"]),
        baseline_value=statistics.median(growth["raw SDK"]),
        unit="KiB",
        ratio=statistics.median(growth["certobs"]) / statistics.median(growth["raw SDK"]),
    )
    return [row]


def _python_args(code: str, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CERTOBS_"))}
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True, env=env
    ).stdout.strip()


def _make_infos(count: int) -> list[Any]:
    """``count`` distinct CertificateInfo objects (parsed once, then varied), as if parsed."""
    import datetime as dt

    import attrs
    import trustme

    from certobs.x509 import CertificateInfo

    ca = trustme.CA()
    now = dt.datetime.now(dt.timezone.utc)
    base = CertificateInfo.from_certificate(
        __import__("cryptography.x509", fromlist=["x"]).load_pem_x509_certificate(
            ca.issue_cert(
                "bench.example.com", not_before=now, not_after=now + dt.timedelta(days=90)
            )
            .cert_chain_pems[0]
            .bytes()
        )
    )
    return [
        attrs.evolve(
            base,
            subject_common_name=f"host-{i}.example.com",
            serial_number=format(i, "X"),
            not_after=base.not_after + (i % 1000) * 3600.0,
        )
        for i in range(count)
    ]


def bench_inventory(s: Settings) -> list[Row]:
    """100,000 tracked certificates: one collection, and the inventory's own memory."""
    import tracemalloc

    from opentelemetry.sdk.metrics import MeterProvider as SDKMeterProvider

    from certobs.inventory import Inventory

    count = 100_000
    infos = _make_infos(count)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    inventory = Inventory()
    for i, info in enumerate(infos):
        inventory.track(info, id=f"cert-{i}", issuer=f"issuer-{i % 5}")
    per_certificate = (tracemalloc.get_traced_memory()[0] - before) / count
    tracemalloc.stop()

    resource = Resource.create({})
    fast_reader = InMemoryMetricReader()
    fast_provider = SDKMeterProvider(metric_readers=[fast_reader], resource=resource)
    store = aggregate_into([fast_reader], resource)
    sdk_reader = InMemoryMetricReader()
    sdk_provider = SDKMeterProvider(metric_readers=[sdk_reader], resource=resource)
    times: dict[str, list[float]] = {"certobs": [], "SDK observable gauges": []}
    with restored():
        for _ in range(max(3, s.subprocess_runs // 3)):
            _runtime.install(fast_provider, None, store)
            start = perf_counter()
            data = fast_reader.get_metrics_data()
            times["certobs"].append(perf_counter() - start)
            _runtime.install(sdk_provider, None, None)
            _runtime.instruments()  # the SDK route: observable gauges with callbacks
            start = perf_counter()
            sdk_reader.get_metrics_data()
            times["SDK observable gauges"].append(perf_counter() - start)
    points = sum(
        len(mm.data.data_points)
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for mm in sm.metrics
        if mm.name == "certificate.not_after"
    )
    if points != count:
        raise SystemExit(f"inventory benchmark: {points} not_after points, expected {count}")
    inventory.clear()
    fast_provider.shutdown()
    sdk_provider.shutdown()
    collect = _row("inventory_collection_vs_sdk", times, "certobs", "SDK observable gauges")
    collect.unit = "s"
    return [
        collect,
        Row(
            case="inventory_collection_seconds",
            subject="100k certificates",
            baseline="0.5 s budget",
            subject_value=statistics.median(times["certobs"]),
            baseline_value=0.5,
            unit="s",
            ratio=statistics.median(times["certobs"]) / 0.5,
        ),
        Row(
            case="inventory_bytes_per_certificate",
            subject="bookkeeping",
            baseline="1 KiB budget",
            subject_value=per_certificate,
            baseline_value=1024,
            unit="B",
            ratio=per_certificate / 1024,
        ),
    ]


def bench_endpoints(s: Settings) -> list[Row]:
    """200 TLS endpoints on 127.0.0.1, 3 of which hang, probed 50 at a time."""
    import socket
    import ssl
    import tempfile

    import trustme

    from certobs.inventory import Inventory

    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context)
    timeout = 1.0
    loop = asyncio.new_event_loop()
    servers: list[Any] = []
    hung: list[socket.socket] = []

    async def answer(reader: Any, writer: Any) -> None:
        writer.close()

    async def start() -> list[str]:
        addresses = []
        for _ in range(197):
            server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context, backlog=64)
            servers.append(server)
            addresses.append(f"127.0.0.1:{server.sockets[0].getsockname()[1]}")
        return addresses

    def hang() -> str:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)  # accepted by the kernel, never answered
        hung.append(listener)
        return f"127.0.0.1:{listener.getsockname()[1]}"

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    addresses = asyncio.run_coroutine_threadsafe(start(), loop).result()
    addresses += [hang() for _ in range(3)]
    directory = tempfile.TemporaryDirectory()
    ca_file = os.path.join(directory.name, "ca.pem")
    ca.cert_pem.write_to_path(ca_file)
    rounds: list[float] = []
    try:
        inventory = Inventory()
        source = inventory.watch_endpoints(
            addresses, timeout=timeout, concurrency=50, trust=ca_file, start=False
        )
        for _ in range(max(2, s.subprocess_runs // 4)):
            start_time = perf_counter()
            inventory.refresh()
            rounds.append(perf_counter() - start_time)
        good = len({e.source for e in source.entries})
        if good != 197 or len(source.errors) != 3:
            raise SystemExit(f"endpoint benchmark: {good} endpoints read, {source.errors[:3]}")
        inventory.clear()
    finally:
        for server in servers:
            server.close()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        for listener in hung:
            listener.close()
        directory.cleanup()
    median = statistics.median(rounds)
    return [
        Row(
            case="endpoint_round_vs_timeout",
            subject="200 endpoints, 3 hang",
            baseline="handshake timeout",
            subject_value=median,
            baseline_value=timeout,
            unit="s",
            ratio=median / timeout,
        )
    ]


def _openmetrics_history(path: Path, end: int) -> None:
    """A day of operation history, one sample a minute, as OpenMetrics for promtool."""
    lines = []
    ops = [("renew", "letsencrypt"), ("renew", "corp-ca"), ("issue", "corp-ca"), ("deploy", "")]
    name = "certificate_operation_duration_seconds"
    lines.append(f"# TYPE {name} histogram")
    bounds = ["0.1", "1.0", "10.0", "60.0", "+Inf"]
    for minute in range(24 * 60):
        at = end - (24 * 60 - minute) * 60
        for op, issuer in ops:
            for failed in (False, True):
                labels = f'certificate_operation_name="{op}",certificate_issuer_name="{issuer}"'
                if failed:
                    labels += ',error_type="acme.Timeout"'
                count = (minute + 1) * (1 if failed else 20)
                for index, bound in enumerate(bounds):
                    cumulative = count * (index + 1) // len(bounds) if bound != "+Inf" else count
                    lines.append(f'{name}_bucket{{{labels},le="{bound}"}} {cumulative} {at}')
                lines.append(f"{name}_count{{{labels}}} {count} {at}")
                lines.append(f"{name}_sum{{{labels}}} {count * 2.5} {at}")
    lines.append("# EOF")
    path.write_text("\n".join(lines) + "\n")


def bench_dashboards(s: Settings) -> list[Row]:
    """Every dashboard query against Prometheus holding 100,000 certificates and a day of history.

    The inventory's series are scraped from an exposition of 100,000 certificates; a day of
    operation history is backfilled with promtool. Each panel query runs as Grafana would run
    it over the dashboard's time range, and its latency is measured.
    """
    import http.server
    import shutil
    import socket
    import tempfile
    import urllib.parse
    import urllib.request

    from certobs.mixin import MixinConfig, build

    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if not prometheus or not promtool:
        raise SystemExit("dashboards benchmark: prometheus and promtool (Debian) are needed")
    count = 100_000
    now = int(time.time())
    exposition = ["# TYPE certificate_not_after_seconds gauge"]
    for i in range(count):
        labels = (
            f'certificate_id="cert-{i}",certificate_issuer_name="issuer-{i % 5}",'
            f'certificate_source_name="/etc/ssl/{i}.pem"'
        )
        exposition.append(f"certificate_not_after_seconds{{{labels}}} {now + (i % 365) * 86400}")
    exposition.append("# TYPE certificate_not_before_seconds gauge")
    for i in range(count):
        labels = (
            f'certificate_id="cert-{i}",certificate_issuer_name="issuer-{i % 5}",'
            f'certificate_source_name="/etc/ssl/{i}.pem"'
        )
        exposition.append(f"certificate_not_before_seconds{{{labels}}} {now - 30 * 86400}")
    exposition.append("# TYPE certificate_count gauge")
    for status in ("valid", "expiring", "expired"):
        exposition.append(
            f'certificate_count{{certificate_status="{status}",certificate_issuer_name="corp",'
            f'certificate_key_algorithm="ec"}} {count // 3}'
        )
    body = ("\n".join(exposition) + "\n").encode()

    class Exposition(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    def free() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Exposition)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    work = Path(tempfile.mkdtemp(prefix="certobs-dash-"))
    process = None
    timings: dict[str, list[float]] = {}
    slowest: dict[str, list[tuple[float, str]]] = {}
    try:
        build(work, MixinConfig(evaluation_interval="15s"))
        _openmetrics_history(work / "history.om", now - 120)
        subprocess.run(
            [
                promtool,
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                "-q",
                str(work / "history.om"),
                str(work / "data"),
            ],
            check=True,
            capture_output=True,
        )
        port = free()
        (work / "prometheus.yml").write_text(
            json.dumps(
                {
                    "global": {"scrape_interval": "15s", "evaluation_interval": "15s"},
                    "rule_files": [str(work / "rules" / "certobs-recording.yaml")],
                    "scrape_configs": [
                        {
                            "job_name": "inventory",
                            "static_configs": [
                                {"targets": [f"127.0.0.1:{server.server_address[1]}"]}
                            ],
                        }
                    ],
                }
            )
        )
        process = subprocess.Popen(
            [
                prometheus,
                f"--config.file={work / 'prometheus.yml'}",
                f"--storage.tsdb.path={work / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def ask(path: str, params: dict[str, Any]) -> Any:
            url = f"http://127.0.0.1:{port}{path}?" + urllib.parse.urlencode(params)
            with urllib.request.urlopen(url, timeout=60) as response:
                return json.load(response)

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                found = ask("/api/v1/query", {"query": "count(certificate_not_after_seconds)"})
                if (
                    found["data"]["result"]
                    and float(found["data"]["result"][0]["value"][1]) == count
                ):
                    break
            except OSError:
                pass
            time.sleep(1)
        else:
            raise SystemExit("dashboards benchmark: Prometheus never held the inventory")
        time.sleep(20)  # a rule evaluation or two
        for name, span in (
            ("certobs-operations.json", 6 * 3600),
            ("certobs-executive.json", 30 * 86400),
        ):
            dashboard = json.loads((work / "dashboards" / name).read_text())
            end = time.time()
            for panel in dashboard["panels"]:
                for target in panel["targets"]:
                    # Each query three times, as dashboard refreshes would; its median counts.
                    runs = []
                    for _ in range(3):
                        started = perf_counter()
                        if target.get("instant"):
                            answer = ask("/api/v1/query", {"query": target["expr"], "time": end})
                        else:
                            answer = ask(
                                "/api/v1/query_range",
                                {
                                    "query": target["expr"],
                                    "start": end - span,
                                    "end": end,
                                    "step": max(span // 1000, 15),
                                },
                            )
                        runs.append(perf_counter() - started)
                    took = statistics.median(runs)
                    timings.setdefault(name, []).append(took)
                    slowest.setdefault(name, []).append((took, panel["title"]))
                    if answer["status"] != "success":
                        raise SystemExit(f"{name}: {target['expr']}: {answer}")
    finally:
        if process is not None:
            process.terminate()
            process.wait(30)
        server.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    rows = []
    for name, values in timings.items():
        short = name.removesuffix(".json").removeprefix("certobs-")
        rows.append(
            Row(
                case=f"dashboard_{short}_query_max_seconds",
                subject=f"max of {len(values)}: {max(slowest[name])[1][:32]}",
                baseline="2 s budget",
                subject_value=max(values),
                baseline_value=2.0,
                unit="s",
                ratio=max(values) / 2.0,
            )
        )
        rows.append(
            Row(
                case=f"dashboard_{short}_query_p50_seconds",
                subject=f"p50 of {len(values)} queries",
                baseline="2 s budget",
                subject_value=statistics.median(values),
                baseline_value=2.0,
                unit="s",
                ratio=statistics.median(values) / 2.0,
            )
        )
    return rows


GROUPS: dict[str, tuple[tuple[str, ...], Callable[..., list[Row]]]] = {
    "disabled": (("disabled_vs_closure", "disabled_vs_bare"), bench_disabled),
    "enabled": (("enabled_vs_sdk", "tracing_vs_hand_span"), bench_enabled),
    "async": (("async_enabled_vs_sdk", "async_tracing_vs_hand_span"), bench_async),
    "threads": (("two_threads_vs_one",), bench_threads),
    "import": (("import_vs_dependencies", "import_forbidden_modules"), bench_import),
    "memory": (("memory_vs_sdk",), bench_memory),
    "inventory": (
        (
            "inventory_collection_vs_sdk",
            "inventory_collection_seconds",
            "inventory_bytes_per_certificate",
        ),
        bench_inventory,
    ),
    "endpoints": (("endpoint_round_vs_timeout",), bench_endpoints),
    "dashboards": (
        (
            "dashboard_operations_query_max_seconds",
            "dashboard_operations_query_p50_seconds",
            "dashboard_executive_query_max_seconds",
            "dashboard_executive_query_p50_seconds",
        ),
        bench_dashboards,
    ),
}


def run_group(name: str, settings: Settings) -> list[Row]:
    """Run one group in this process."""
    _, bench = GROUPS[name]
    if bench in (bench_enabled, bench_async, bench_threads):
        return bench(settings, Pipelines())
    return bench(settings)


def run_isolated(name: str, *, short: bool) -> list[Row]:
    """Run one group in a fresh interpreter and return its rows.

    A fresh interpreter per group means that what one group leaves behind (objects for the
    garbage collector, warmed caches, threads) cannot skew the next one's ratios.
    """
    command = [sys.executable, str(Path(__file__).resolve()), "--group", name]
    if short:
        command.append("--short")
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"benchmark group {name!r} failed:\n{result.stderr}")
    return [Row(**fields) for fields in json.loads(result.stdout)]


def run(
    settings: Settings,
    only: set[str] | None = None,
    *,
    short: bool = False,
    budget: dict[str, float] | None = None,
) -> list[Row]:
    """Run the groups that contain a selected case (all without ``only``).

    With a ``budget``, a group with a ratio over its limit is measured once more, in a fresh
    interpreter with the full settings, and that second measurement is the verdict. A short
    run on a busy machine can land one noisy median over a limit; a real regression is over
    it both times. The table says which rows were measured twice.
    """
    rows: list[Row] = []
    for name, (cases, _) in GROUPS.items():
        if only and not only.intersection(cases):
            continue
        found = run_isolated(name, short=short)
        if budget and any(r.ratio > budget[r.case] for r in found if not only or r.case in only):
            first = {r.case: r.ratio for r in found}
            found = run_isolated(name, short=False)
            for r in found:
                r.first_ratio = first.get(r.case)
        rows += found
    if only:
        rows = [r for r in rows if r.case in only]
    return rows


def load_budget(path: Path) -> dict[str, float]:
    """Read the limits; every case must have one."""
    with path.open("rb") as f:
        data = tomllib.load(f)
    return {case: float(entry["limit"]) for case, entry in data.items()}


def table(rows: list[Row]) -> str:
    """Format the rows as the table the gate prints."""
    header = ("case", "subject", "median", "baseline", "median", "ratio", "limit", "result")
    lines = [header]
    for r in rows:
        lines.append(
            (
                r.case,
                r.subject,
                f"{r.subject_value:,.1f} {r.unit}",
                r.baseline,
                f"{r.baseline_value:,.1f} {r.unit}",
                f"{r.ratio:.3f}",
                "-" if r.limit is None else f"{r.limit:g}",
                ("pass" if r.passed else "FAIL")
                + ("" if r.first_ratio is None else f" (re-measured; first {r.first_ratio:.3f})"),
            )
        )
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    out = []
    for index, line in enumerate(lines):
        out.append("  ".join(str(cell).ljust(w) for cell, w in zip(line, widths, strict=True)))
        if index == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Measure, print the table, and return 1 if any ratio is over its limit."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="fewer rounds (CI)")
    parser.add_argument("--budget", type=Path, default=BUDGET, help="budget file (TOML)")
    parser.add_argument("--only", nargs="+", metavar="CASE", help="measure only these cases")
    parser.add_argument("--group", choices=sorted(GROUPS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.group:  # one group, in a process of its own (see run())
        found = run_group(args.group, SHORT if args.short else FULL)
        print(json.dumps([dataclasses.asdict(row) for row in found]))
        return 0
    budget = load_budget(args.budget)
    known = {case for cases, _ in GROUPS.values() for case in cases}
    unknown = set(args.only or ()) - known
    if unknown:
        parser.error(f"unknown case(s) {sorted(unknown)}; known: {sorted(known)}")
    missing = known - set(budget)
    if missing:
        parser.error(f"{args.budget} has no limit for {sorted(missing)}")
    rows = run(
        SHORT if args.short else FULL,
        set(args.only) if args.only else None,
        short=args.short,
        budget=budget,
    )
    for row in rows:
        row.limit = budget[row.case]
    print(table(rows))
    failed = [r.case for r in rows if not r.passed]
    if failed:
        print(f"\nbudget exceeded: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"\nall {len(rows)} ratios within budget ({args.budget.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
