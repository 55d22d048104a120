"""certobs' OTLP export, end to end through a real collector (rotel) to an OTLP/HTTP sink.

Path under test: a subprocess runs instrumented code with ``certobs.configure(exporter="otlp")``
-> rotel-agent (OTLP gRPC and HTTP receivers on 127.0.0.1) -> rotel's OTLP/HTTP exporter (gzip)
-> :class:`OtlpSink`, an HTTP server in the test process that decodes and keeps what it receives.
The assertions are on what the sink received, never on what the SDK believes it sent.
"""

from __future__ import annotations

import contextlib
import gzip
import http.server
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from certobs.semconv.metrics import METRICS

pytestmark = pytest.mark.collector

HOST = "127.0.0.1"
PROTOCOLS = ("grpc", "http/protobuf")
SERVICE_NAME = "collector-test"
AGENT_START_TIMEOUT = 10.0
"""Seconds rotel-agent gets to open its receiver ports."""
DELIVERY_TIMEOUT = 20.0
"""Seconds the sink is polled for the workload's telemetry after the workload has exited."""
WORKLOAD_TIMEOUT = 30.0
"""Seconds a workload subprocess may run, ``certobs.shutdown()`` included."""


# The OTLP/HTTP sink.

_DECODERS: dict[str, tuple[Any, Any]] = {
    "/v1/metrics": (ExportMetricsServiceRequest, ExportMetricsServiceResponse),
    "/v1/traces": (ExportTraceServiceRequest, ExportTraceServiceResponse),
}


class _SinkServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # teardown must not wait for a client that keeps a connection open

    sink: OtlpSink


class _SinkHandler(http.server.BaseHTTPRequestHandler):
    server: _SinkServer

    def do_POST(self) -> None:
        body = self._read_body()
        codec = _DECODERS.get(self.path.split("?", 1)[0])
        if codec is None:
            self.server.sink.record_error(f"POST to unknown path {self.path}")
            self._reply(404, b"unknown path\n", "text/plain")
            return
        request_type, response_type = codec
        encoding = self.headers.get("Content-Encoding", "").strip().lower()
        try:
            if encoding == "gzip":
                body = gzip.decompress(body)
            request = request_type.FromString(body)
        except Exception as exc:
            self.server.sink.record_error(f"{self.path}: cannot decode ({encoding=}): {exc!r}")
            self._reply(400, f"cannot decode: {exc}\n".encode(), "text/plain")
            return
        self.server.sink.record(self.path, request, encoding)
        self._reply(200, response_type().SerializeToString(), "application/x-protobuf")

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").strip().lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline().strip():  # trailers, then the blank line
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest's output clean; errors are kept by the sink


class OtlpSink:
    """An OTLP/HTTP receiver on 127.0.0.1 that keeps every decoded export request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._metrics: list[ExportMetricsServiceRequest] = []
        self._traces: list[ExportTraceServiceRequest] = []
        self._errors: list[str] = []
        self._encodings: list[str] = []
        self._server = _SinkServer((HOST, 0), _SinkHandler)
        self._server.sink = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="otlp-sink", daemon=True
        )

    @property
    def endpoint(self) -> str:
        """The sink's base URL, for an OTLP/HTTP exporter."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def record(self, path: str, request: Any, encoding: str) -> None:
        """Keep one decoded request."""
        with self._lock:
            (self._metrics if path == "/v1/metrics" else self._traces).append(request)
            self._encodings.append(encoding or "identity")

    def record_error(self, message: str) -> None:
        """Keep a request the sink could not accept."""
        with self._lock:
            self._errors.append(message)

    def metrics(self) -> list[ExportMetricsServiceRequest]:
        """Metric export requests received so far, in arrival order."""
        with self._lock:
            return list(self._metrics)

    def traces(self) -> list[ExportTraceServiceRequest]:
        """Trace export requests received so far, in arrival order."""
        with self._lock:
            return list(self._traces)

    def describe(self) -> str:
        """What arrived, for failure messages."""
        with self._lock:
            return (
                f"sink {self.endpoint}: {len(self._metrics)} metrics and {len(self._traces)} "
                f"trace requests (encodings {sorted(set(self._encodings))}), "
                f"errors: {self._errors or 'none'}"
            )


# The collector.


@dataclass
class Collector:
    """A running rotel-agent: where to send OTLP, and where its output goes."""

    process: subprocess.Popen[bytes]
    grpc_port: int
    http_port: int
    log: Path

    def endpoint(self, protocol: str) -> str:
        """The base URL certobs should export to over ``protocol``."""
        port = self.grpc_port if protocol == "grpc" else self.http_port
        return f"http://{HOST}:{port}"

    def output(self) -> str:
        """rotel-agent's stdout and stderr so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _rotel_agent() -> Path | None:
    spec = importlib.util.find_spec("rotel")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        binary = Path(location) / "rotel-agent"
        if binary.is_file() and os.access(binary, os.X_OK):
            return binary
    return None


def _free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 right now, all distinct (held together while chosen)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _clean_env(*prefixes: str) -> dict[str, str]:
    """This process's environment without variables that would reconfigure the child."""
    drop = (*prefixes, "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "GRPC_PROXY")
    return {k: v for k, v in os.environ.items() if not k.upper().startswith(drop)}


@pytest.fixture
def otlp_sink() -> Iterator[OtlpSink]:
    """An OTLP/HTTP sink on a free 127.0.0.1 port, stopped at teardown."""
    sink = OtlpSink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def collector(otlp_sink: OtlpSink, tmp_path: Path) -> Iterator[Collector]:
    """rotel-agent receiving OTLP on free 127.0.0.1 ports and forwarding to ``otlp_sink``."""
    binary = _rotel_agent()
    if binary is None:
        pytest.skip("rotel-agent not found: install the collector with `pip install --pre rotel`")
    grpc_port, http_port = _free_ports(2)
    log = tmp_path / "rotel-agent.log"
    command = [
        str(binary),
        "start",
        f"--otlp-grpc-endpoint={HOST}:{grpc_port}",
        f"--otlp-http-endpoint={HOST}:{http_port}",
        "--exporter=otlp",
        f"--otlp-exporter-endpoint={otlp_sink.endpoint}",
        "--otlp-exporter-protocol=http",
        # Forward within 50 ms instead of 200 ms; retry a failed forward quickly.
        "--batch-timeout=50ms",
        "--otlp-exporter-retry-initial-backoff=100ms",
        "--otlp-exporter-retry-max-backoff=500ms",
        # Only written with --daemon; named anyway so that nothing lands in a shared /tmp.
        f"--pid-file={tmp_path / 'rotel-agent.pid'}",
        f"--log-file={tmp_path / 'rotel-agent.daemon.log'}",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            env=_clean_env("ROTEL_"),
        )
    agent = Collector(process, grpc_port, http_port, log)
    try:
        deadline = time.monotonic() + AGENT_START_TIMEOUT
        while not (_accepts(grpc_port) and _accepts(http_port)):
            if process.poll() is not None:
                pytest.fail(
                    f"rotel-agent exited with status {process.returncode} before listening on "
                    f"{HOST}:{grpc_port} (gRPC) and {HOST}:{http_port} (HTTP).\n"
                    f"command: {' '.join(command)}\noutput:\n{agent.output()}"
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"rotel-agent did not listen on {HOST}:{grpc_port} (gRPC) and "
                    f"{HOST}:{http_port} (HTTP) within {AGENT_START_TIMEOUT:g} s.\n"
                    f"command: {' '.join(command)}\noutput:\n{agent.output()}"
                )
            time.sleep(0.05)
        yield agent
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


# Workloads, each run in a fresh interpreter so no OpenTelemetry global state leaks.

LIFECYCLE_WORKLOAD = """
import json, sys, time
import certobs

class RenewalFailed(Exception):
    pass

@certobs.renewal(issuer="letsencrypt")
def renew(name, fail=False):
    time.sleep(0.01)
    if fail:
        raise RenewalFailed(f"order for {name} refused")
    return f"renewed {name}"

protocol, endpoint = sys.argv[1:3]
certobs.configure(
    exporter="otlp", protocol=protocol, endpoint=endpoint, service_name="collector-test",
    export_interval=0.5, traces=True,
)
results = [renew(name) for name in ("a", "b", "c")]
try:
    renew("d", fail=True)
except RenewalFailed as exc:
    results.append(f"raised {type(exc).__name__}")
with certobs.deployment(target_type="nginx", environment="prod"):
    time.sleep(0.01)
certobs.record_bundle_request("public-roots", format="pem")
certobs.record_bundle_request("public-roots", format="pem")
certobs.shutdown()
print(json.dumps(results))
"""

UNREACHABLE_WORKLOAD = """
import json, sys
import certobs
from certobs import _runtime

class RenewalFailed(Exception):
    pass

@certobs.renewal(issuer="letsencrypt")
def renew(index):
    if index < 0:
        raise RenewalFailed(index)
    return index * 2

protocol, endpoint = sys.argv[1:3]
settings = certobs.configure(
    exporter="otlp", protocol=protocol, endpoint=endpoint, service_name="collector-test",
    export_interval=0.5, traces=True,
)
recording = bool(_runtime.recording())
results = [renew(i) for i in range(200)]
try:
    renew(-1)
except RenewalFailed:
    failure = "RenewalFailed propagated"
import time
time.sleep(1.2)  # let the periodic reader try, and fail, to export at least once
certobs.shutdown(timeout=2)
print(json.dumps({
    "exporter": settings.exporter, "protocol": settings.protocol, "recording": recording,
    "results": results, "failure": failure,
}))
"""


def _run(script: str, protocol: str, endpoint: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-c", script, protocol, endpoint],
        capture_output=True,
        text=True,
        timeout=WORKLOAD_TIMEOUT,
        env=_clean_env("OTEL_", "CERTOBS_"),
        check=False,
    )
    assert result.returncode == 0, (
        f"workload exited with {result.returncode}\nstdout:\n{result.stdout}\n"
        f"stderr:\n{result.stderr}"
    )
    # certobs logs its own failures as "certobs failed while ...": there must be none.
    assert "certobs failed" not in result.stderr, result.stderr
    return result


# Reading what the sink received.


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def _attributes(key_values: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in key_values}


@dataclass
class Received:
    """Metrics and spans the sink received, with the latest data point of each series."""

    metrics: dict[str, Any] = field(default_factory=dict)
    """Metric name -> the last received ``Metric`` message (for unit and data kind)."""
    points: dict[str, dict[frozenset[tuple[str, Any]], Any]] = field(default_factory=dict)
    """Metric name -> attribute set -> the data point with the latest timestamp."""
    spans: list[tuple[Any, dict[str, Any]]] = field(default_factory=list)
    """Every span with its resource attributes."""
    resources: list[dict[str, Any]] = field(default_factory=list)
    """Resource attributes of every received ``ResourceMetrics``."""

    def point(self, name: str, attributes: dict[str, Any]) -> Any:
        """The latest point of ``name`` whose attributes are exactly ``attributes``."""
        return self.points.get(name, {}).get(frozenset(attributes.items()))

    def series(self, name: str) -> list[dict[str, Any]]:
        """The attribute sets of every series of ``name``, for failure messages."""
        return [dict(key) for key in self.points.get(name, {})]


def _received(sink: OtlpSink) -> Received:
    received = Received()
    for request in sink.metrics():
        for resource_metrics in request.resource_metrics:
            received.resources.append(_attributes(resource_metrics.resource.attributes))
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    received.metrics[metric.name] = metric
                    kind = metric.WhichOneof("data")
                    latest = received.points.setdefault(metric.name, {})
                    for point in getattr(metric, kind).data_points:
                        key = frozenset(_attributes(point.attributes).items())
                        # Cumulative points: the newest one holds the totals. Arrival order
                        # breaks ties, so a resent point does not hide a newer one.
                        if key not in latest or point.time_unix_nano >= latest[key].time_unix_nano:
                            latest[key] = point
    for request in sink.traces():
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                received.spans.extend((span, resource) for span in scope_spans.spans)
    return received


def _poll(sink: OtlpSink, done: Callable[[Received], bool], timeout: float) -> Received:
    deadline = time.monotonic() + timeout
    while True:
        received = _received(sink)
        if done(received) or time.monotonic() > deadline:
            return received
        time.sleep(0.1)


RENEW = {"certificate.operation.name": "renew", "certificate.issuer.name": "letsencrypt"}
FAILED_RENEW = {**RENEW, "error.type": "__main__.RenewalFailed"}
DEPLOY = {
    "certificate.operation.name": "deploy",
    "certificate.deployment.target.type": "nginx",
    "deployment.environment.name": "prod",
}
BUNDLE = {"certificate.bundle.name": "public-roots", "certificate.bundle.format": "pem"}


def _complete(received: Received) -> bool:
    """Whether the final state of the lifecycle workload has arrived."""

    def count(name: str, attributes: dict[str, str]) -> Any:
        point = received.point(name, attributes)
        return None if point is None else point.count

    bundle = received.point("certificate.bundle.requests", BUNDLE)
    return (
        count("certificate.operation.duration", RENEW) == 3
        and count("certificate.operation.duration", FAILED_RENEW) == 1
        and count("certificate.operation.duration", DEPLOY) == 1
        and bundle is not None
        and bundle.as_int == 2
        and len(received.spans) >= 5
    )


# Tests.


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_operations_reach_collector(
    protocol: str, collector: Collector, otlp_sink: OtlpSink
) -> None:
    """Operations exported over ``protocol`` reach a real OTLP collector's output intact.

    Renewals, a failed renewal, a deployment and bundle requests arrive with their metric names,
    units, attributes, final counts, bucket bounds and resource, and as spans with the right
    status.
    """
    result = _run(LIFECYCLE_WORKLOAD, protocol, collector.endpoint(protocol))
    assert json.loads(result.stdout) == [
        "renewed a",
        "renewed b",
        "renewed c",
        "raised RenewalFailed",
    ]

    got = _poll(otlp_sink, _complete, DELIVERY_TIMEOUT)
    context = (
        f"\n{otlp_sink.describe()}\nmetrics: {sorted(got.metrics)}\n"
        f"rotel-agent output:\n{collector.output()}\nworkload stderr:\n{result.stderr}"
    )

    assert got.resources, f"no metrics arrived{context}"
    assert {r.get("service.name") for r in got.resources} == {SERVICE_NAME}, context
    assert set(got.metrics) >= {
        "certificate.operation.duration",
        "certificate.operation.active",
        "certificate.bundle.requests",
    }, context

    duration = got.metrics["certificate.operation.duration"]
    assert duration.WhichOneof("data") == "histogram"
    assert duration.unit == "s"
    renewals = got.point("certificate.operation.duration", RENEW)
    failures = got.point("certificate.operation.duration", FAILED_RENEW)
    deploys = got.point("certificate.operation.duration", DEPLOY)
    series = got.series("certificate.operation.duration")
    assert renewals is not None, f"no renew series among {series}{context}"
    assert failures is not None, f"no failed renew series among {series}{context}"
    assert deploys is not None, f"no deploy series among {series}{context}"
    assert (renewals.count, failures.count, deploys.count) == (3, 1, 1), context
    # Each renewal sleeps 10 ms: at least 0.03 s in seconds, far below what milliseconds give.
    assert 0.03 <= renewals.sum < 10
    bounds = METRICS["certificate.operation.duration"].bucket_boundaries
    assert bounds
    for point in (renewals, failures, deploys):
        assert tuple(point.explicit_bounds) == bounds
        assert len(point.bucket_counts) == len(bounds) + 1
        assert sum(point.bucket_counts) == point.count

    active = got.metrics["certificate.operation.active"]
    assert active.WhichOneof("data") == "sum"
    assert active.unit == "{operation}"
    assert not active.sum.is_monotonic
    for name in ("renew", "deploy"):
        point = got.point("certificate.operation.active", {"certificate.operation.name": name})
        assert point is not None, f"{got.series('certificate.operation.active')}{context}"
        assert point.as_int == 0  # every operation ended

    bundles = got.metrics["certificate.bundle.requests"]
    assert bundles.WhichOneof("data") == "sum"
    assert bundles.unit == "{request}"
    assert bundles.sum.is_monotonic
    requests = got.point("certificate.bundle.requests", BUNDLE)
    assert requests is not None, f"{got.series('certificate.bundle.requests')}{context}"
    assert requests.as_int == 2

    names = sorted(span.name for span, _ in got.spans)
    assert names == ["certificate.deploy"] + ["certificate.renew"] * 4, context
    assert all(resource.get("service.name") == SERVICE_NAME for _, resource in got.spans)
    renew_spans = [span for span, _ in got.spans if span.name == "certificate.renew"]
    failed = [span for span in renew_spans if span.status.code == Status.STATUS_CODE_ERROR]
    assert len(failed) == 1, context
    assert _attributes(failed[0].attributes)["error.type"] == "__main__.RenewalFailed"
    assert all(
        _attributes(span.attributes)["certificate.issuer.name"] == "letsencrypt"
        for span in renew_spans
    )
    (deploy_span,) = [span for span, _ in got.spans if span.name == "certificate.deploy"]
    assert deploy_span.status.code != Status.STATUS_CODE_ERROR
    assert _attributes(deploy_span.attributes).items() >= DEPLOY.items()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_unreachable_collector_does_not_affect_instrumented_code(protocol: str) -> None:
    """An unreachable collector leaves the instrumented code unaffected, over ``protocol``.

    With the OTLP endpoint refusing connections, 200 instrumented calls return their values, an
    instrumented failure propagates unchanged, nothing else escapes, and
    ``certobs.shutdown(timeout=2)`` returns: the process exits cleanly within the workload
    timeout.
    """
    (closed_port,) = _free_ports(1)
    result = _run(UNREACHABLE_WORKLOAD, protocol, f"http://{HOST}:{closed_port}")
    outcome = json.loads(result.stdout)
    assert outcome["exporter"] == "otlp"
    assert outcome["protocol"] == protocol
    assert outcome["recording"] is True  # the calls really went through certobs' recording path
    assert outcome["results"] == [i * 2 for i in range(200)]
    assert outcome["failure"] == "RenewalFailed propagated"
    # The exporter reports the unreachable collector in the log, and keeps it there.
    assert re.search(r"(?i)transient error|failed to export", result.stderr), result.stderr
