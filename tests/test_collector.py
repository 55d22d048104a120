"""certobs' OTLP export, end to end through a real collector (rotel) to an OTLP/HTTP sink.

Path under test: a subprocess runs instrumented code with ``certobs.configure(exporter="otlp")``
-> rotel-agent (OTLP gRPC and HTTP receivers on 127.0.0.1) -> rotel's OTLP/HTTP exporter (gzip)
-> :class:`OtlpSink`, an HTTP server in the test process that decodes and keeps what it receives.
The assertions are on what the sink received, never on what the SDK believes it sent.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from certobs.semconv.metrics import METRICS
from otlp_pipeline import (
    HOST,
    Collector,
    OtlpSink,
    Received,
    attributes_of,
    free_ports,
    new_collector,
    poll,
    run_workload,
)

pytestmark = pytest.mark.collector

PROTOCOLS = ("grpc", "http/protobuf")
SERVICE_NAME = "collector-test"
DELIVERY_TIMEOUT = 20.0
"""Seconds the sink is polled for the workload's telemetry after the workload has exited."""


@pytest.fixture
def collector(otlp_sink: OtlpSink, tmp_path: Path) -> Iterator[Collector]:
    """rotel-agent receiving OTLP on free 127.0.0.1 ports and forwarding to ``otlp_sink``."""
    agent = new_collector(otlp_sink, tmp_path)
    agent.start()
    try:
        yield agent
    finally:
        agent.stop()


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
    return run_workload(script, protocol, endpoint)


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

    got = poll(otlp_sink, _complete, DELIVERY_TIMEOUT)
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
    assert attributes_of(failed[0].attributes)["error.type"] == "__main__.RenewalFailed"
    assert all(
        attributes_of(span.attributes)["certificate.issuer.name"] == "letsencrypt"
        for span in renew_spans
    )
    (deploy_span,) = [span for span, _ in got.spans if span.name == "certificate.deploy"]
    assert deploy_span.status.code != Status.STATUS_CODE_ERROR
    assert attributes_of(deploy_span.attributes).items() >= DEPLOY.items()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_unreachable_collector_does_not_affect_instrumented_code(protocol: str) -> None:
    """An unreachable collector leaves the instrumented code unaffected, over ``protocol``.

    With the OTLP endpoint refusing connections, 200 instrumented calls return their values, an
    instrumented failure propagates unchanged, nothing else escapes, and
    ``certobs.shutdown(timeout=2)`` returns: the process exits cleanly within the workload
    timeout.
    """
    (closed_port,) = free_ports(1)
    result = _run(UNREACHABLE_WORKLOAD, protocol, f"http://{HOST}:{closed_port}")
    outcome = json.loads(result.stdout)
    assert outcome["exporter"] == "otlp"
    assert outcome["protocol"] == protocol
    assert outcome["recording"] is True  # the calls really went through certobs' recording path
    assert outcome["results"] == [i * 2 for i in range(200)]
    assert outcome["failure"] == "RenewalFailed propagated"
    # The exporter reports the unreachable collector in the log, and keeps it there.
    assert re.search(r"(?i)transient error|failed to export", result.stderr), result.stderr
