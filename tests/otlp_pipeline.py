"""A real OTLP pipeline for tests: rotel-agent (the collector) forwarding to an OTLP/HTTP sink.

certobs exports to rotel-agent's OTLP gRPC and HTTP receivers on 127.0.0.1; rotel forwards over
OTLP/HTTP (gzip) to :class:`OtlpSink`, an HTTP server in the test process that decodes and keeps
what it receives. Tests assert on what the sink received, never on what the SDK believes it
sent. The collector can be stopped and restarted on the same ports to inject outages.
"""

from __future__ import annotations

import contextlib
import gzip
import http.server
import importlib.util
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
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

HOST = "127.0.0.1"
AGENT_START_TIMEOUT = 10.0
"""Seconds rotel-agent gets to open its receiver ports."""
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
    """A rotel-agent on fixed 127.0.0.1 ports: where to send OTLP, where its output goes.

    It can be stopped and started again on the same ports (a collector outage).
    """

    binary: Path
    sink: OtlpSink
    workdir: Path
    grpc_port: int
    http_port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        """Start rotel-agent and wait until both receivers accept connections."""
        self.starts += 1
        command = [
            str(self.binary),
            "start",
            f"--otlp-grpc-endpoint={HOST}:{self.grpc_port}",
            f"--otlp-http-endpoint={HOST}:{self.http_port}",
            "--exporter=otlp",
            f"--otlp-exporter-endpoint={self.sink.endpoint}",
            "--otlp-exporter-protocol=http",
            # Forward within 50 ms instead of 200 ms; retry a failed forward quickly.
            "--batch-timeout=50ms",
            "--otlp-exporter-retry-initial-backoff=100ms",
            "--otlp-exporter-retry-max-backoff=500ms",
            # Only written with --daemon; named anyway so that nothing lands in a shared /tmp.
            f"--pid-file={self.workdir / 'rotel-agent.pid'}",
            f"--log-file={self.workdir / 'rotel-agent.daemon.log'}",
        ]
        with self.log.open("ab") as out:
            self.process = process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=clean_env("ROTEL_"),
            )
        deadline = time.monotonic() + AGENT_START_TIMEOUT
        while not (accepts(self.grpc_port) and accepts(self.http_port)):
            if process.poll() is not None:
                self.stop()
                pytest.fail(
                    f"rotel-agent exited with status {process.returncode} before listening on "
                    f"{HOST}:{self.grpc_port} (gRPC) and {HOST}:{self.http_port} (HTTP).\n"
                    f"command: {' '.join(command)}\noutput:\n{self.output()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(
                    f"rotel-agent did not listen on {HOST}:{self.grpc_port} (gRPC) and "
                    f"{HOST}:{self.http_port} (HTTP) within {AGENT_START_TIMEOUT:g} s.\n"
                    f"command: {' '.join(command)}\noutput:\n{self.output()}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop rotel-agent (SIGTERM, then SIGKILL) and wait for it."""
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def endpoint(self, protocol: str) -> str:
        """The base URL certobs should export to over ``protocol``."""
        port = self.grpc_port if protocol == "grpc" else self.http_port
        return f"http://{HOST}:{port}"

    def output(self) -> str:
        """rotel-agent's stdout and stderr so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def rotel_agent() -> Path | None:
    """The rotel-agent binary of the installed ``rotel`` package, or None."""
    spec = importlib.util.find_spec("rotel")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        binary = Path(location) / "rotel-agent"
        if binary.is_file() and os.access(binary, os.X_OK):
            return binary
    return None


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 right now, all distinct (held together while chosen)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]


def accepts(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def clean_env(*prefixes: str) -> dict[str, str]:
    """This process's environment without variables that would reconfigure the child."""
    drop = (*prefixes, "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "GRPC_PROXY")
    return {k: v for k, v in os.environ.items() if not k.upper().startswith(drop)}


# Reading what the sink received.


def value_of(any_value: Any) -> Any:
    """The Python value of an OTLP ``AnyValue``."""
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def attributes_of(key_values: Any) -> dict[str, Any]:
    """OTLP key-values as a dict."""
    return {kv.key: value_of(kv.value) for kv in key_values}


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


def received(sink: OtlpSink) -> Received:
    """Decode everything ``sink`` received so far."""
    received = Received()
    for request in sink.metrics():
        for resource_metrics in request.resource_metrics:
            received.resources.append(attributes_of(resource_metrics.resource.attributes))
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    received.metrics[metric.name] = metric
                    kind = metric.WhichOneof("data")
                    latest = received.points.setdefault(metric.name, {})
                    for point in getattr(metric, kind).data_points:
                        key = frozenset(attributes_of(point.attributes).items())
                        # Cumulative points: the newest one holds the totals. Arrival order
                        # breaks ties, so a resent point does not hide a newer one.
                        if key not in latest or point.time_unix_nano >= latest[key].time_unix_nano:
                            latest[key] = point
    for request in sink.traces():
        for resource_spans in request.resource_spans:
            resource = attributes_of(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                received.spans.extend((span, resource) for span in scope_spans.spans)
    return received


def poll(sink: OtlpSink, done: Callable[[Received], bool], timeout: float) -> Received:
    """Poll ``sink`` until ``done`` holds or ``timeout`` seconds passed; return what arrived."""
    deadline = time.monotonic() + timeout
    while True:
        got = received(sink)
        if done(got) or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def new_collector(sink: OtlpSink, workdir: Path) -> Collector:
    """A rotel-agent forwarding to ``sink``, on free ports, not started yet (skips without it)."""
    binary = rotel_agent()
    if binary is None:
        pytest.skip("rotel-agent not found: install the collector with `pip install --pre rotel`")
    grpc_port, http_port = free_ports(2)
    return Collector(binary, sink, workdir, grpc_port, http_port, workdir / "rotel-agent.log")


def run_workload(
    script: str, *args: str, timeout: float = WORKLOAD_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a fresh interpreter with ``args``.

    Fails on a non-zero exit, or on a certobs failure in its log ("certobs failed while ...").
    """
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_env("OTEL_", "CERTOBS_"),
        check=False,
    )
    assert result.returncode == 0, (
        f"workload exited with {result.returncode}\nstdout:\n{result.stdout}\n"
        f"stderr:\n{result.stderr}"
    )
    assert "certobs failed" not in result.stderr, result.stderr
    return result
