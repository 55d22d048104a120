"""The Prometheus scrape endpoint: valid exposition, with the names the design promises.

Every test that calls ``certobs.configure()`` does so in a subprocess, so the global
OpenTelemetry providers and prometheus_client's default registry of this test process stay
untouched.
"""

from __future__ import annotations

import json
import math
import os
import queue
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from certobs.semconv import prometheus_name
from certobs.semconv.metrics import (
    CERTIFICATE_BUNDLE_REQUESTS,
    CERTIFICATE_OPERATION_ACTIVE,
    CERTIFICATE_OPERATION_DURATION,
    METRICS,
)

STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0

# The workload the scrape subprocess runs; the assertions below count against these.
RENEW_OK = 3
RENEW_FAILED = 2
DEPLOYMENTS = 1
BUNDLE_PEM = 4
BUNDLE_FAILED = 1
# Run with ``python -c``, the workload's exception class lives in ``__main__``.
RENEW_ERROR_TYPE = "__main__.IssuerUnavailable"

SERVE_SCRIPT = textwrap.dedent(
    f"""
    import json
    import sys

    import certobs
    from certobs import _export

    certobs.configure(
        exporter="prometheus",
        prometheus_host="127.0.0.1",
        prometheus_port=0,
        service_name="prom-test",
    )


    class IssuerUnavailable(Exception):
        pass


    @certobs.renewal(issuer="letsencrypt")
    def renew(fail):
        if fail:
            raise IssuerUnavailable("ACME directory unreachable")


    for _ in range({RENEW_OK}):
        renew(False)
    for _ in range({RENEW_FAILED}):
        try:
            renew(True)
        except IssuerUnavailable:
            pass
    for _ in range({DEPLOYMENTS}):
        with certobs.deployment(target_type="nginx", environment="prod"):
            pass
    for _ in range({BUNDLE_PEM}):
        certobs.record_bundle_request("public-roots", format="pem")
    for _ in range({BUNDLE_FAILED}):
        certobs.record_bundle_request("public-roots", format="der", error_type="TimeoutError")

    # One operation stays open while the test scrapes, so the active gauge has a 1 to show.
    with certobs.bundle_build():
        host, port = _export.prometheus_address()
        print(json.dumps({{"host": host, "port": port}}), flush=True)
        sys.stdin.readline()
    certobs.shutdown()
    print(json.dumps({{"stopped": _export.prometheus_address() is None}}), flush=True)
    """
)

PORT_IN_USE_SCRIPT = textwrap.dedent(
    """
    import json
    import sys

    import certobs
    from certobs import _export

    result = {}
    try:
        certobs.configure(
            exporter="prometheus", prometheus_host="127.0.0.1", prometheus_port=int(sys.argv[1])
        )
    except certobs.ConfigurationError as exc:
        result["error"] = str(exc)
    else:
        result["error"] = None
        certobs.shutdown()
    result["address_after_failure"] = _export.prometheus_address()
    certobs.configure(exporter="none")
    result["reconfigured"] = True
    certobs.shutdown()
    print(json.dumps(result), flush=True)
    """
)


def child_env() -> dict[str, str]:
    """Return this process's environment without OpenTelemetry or certobs settings."""
    return {
        key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "CERTOBS_"))
    }


class ScrapeTarget:
    """A subprocess serving certobs' Prometheus endpoint after running the workload."""

    def __init__(self, proc: subprocess.Popen[str], host: str, port: int) -> None:
        self.proc = proc
        self.host = host
        self.port = port

    def scrape(self) -> str:
        """Fetch ``/metrics`` once and return the exposition text."""
        url = f"http://{self.host}:{self.port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
            return str(response.read().decode("utf-8"))


@pytest.fixture(scope="module")
def scrape_target() -> Iterator[ScrapeTarget]:
    """Start the workload subprocess, yield its endpoint, then stop it and check it stopped."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE_SCRIPT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    try:
        lines: queue.Queue[str] = queue.Queue()
        assert proc.stdout is not None
        stdout = proc.stdout
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            first = lines.get(timeout=STARTUP_TIMEOUT)
        except queue.Empty:
            first = ""
        if not first:
            proc.kill()
            _, err = proc.communicate(timeout=STOP_TIMEOUT)
            pytest.fail(f"the scrape subprocess did not report its address; stderr:\n{err}")
        address = json.loads(first)
        yield ScrapeTarget(proc, address["host"], int(address["port"]))
        try:
            out, err = proc.communicate(input="stop\n", timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
            pytest.fail(f"the scrape subprocess did not stop within {STOP_TIMEOUT} s:\n{err}")
        assert proc.returncode == 0, f"the scrape subprocess failed; stderr:\n{err}"
        assert json.loads(out) == {"stopped": True}, f"stdout: {out!r}; stderr:\n{err}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.fixture(scope="module")
def exposition(scrape_target: ScrapeTarget) -> str:
    """One scrape of the running workload subprocess."""
    return scrape_target.scrape()


def visible_labels(labels: dict[str, str]) -> dict[str, str]:
    """Drop labels Prometheus treats as absent (empty values) and the scope labels."""
    return {
        key: value
        for key, value in labels.items()
        if value != "" and not key.startswith("otel_scope_")
    }


def certobs_samples(text: str) -> list[Any]:
    """Return every sample of a ``certificate_*`` metric family in ``text``."""
    return [
        sample
        for family in text_string_to_metric_families(text)
        if family.name.startswith("certificate_")
        for sample in family.samples
    ]


def only_sample(samples: list[Any], name: str, labels: dict[str, str]) -> Any:
    """Return the one sample called ``name`` whose visible labels are exactly ``labels``."""
    found = [s for s in samples if s.name == name and visible_labels(s.labels) == labels]
    seen = [(s.name, visible_labels(s.labels)) for s in samples if s.name == name]
    assert len(found) == 1, f"{name}{labels}: found {len(found)}; series present: {seen}"
    return found[0]


def test_endpoint_listens_on_requested_host(scrape_target: ScrapeTarget) -> None:
    """The scrape endpoint binds the host that was asked for and a real port for port 0."""
    assert scrape_target.host == "127.0.0.1"
    assert 0 < scrape_target.port <= 65535


@pytest.mark.promtool
@pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool not on PATH (install Debian's prometheus package)",
)
def test_scrape_passes_promtool_check_metrics(exposition: str) -> None:
    """What the endpoint serves is exposition text that promtool accepts without errors."""
    assert "certificate_operation_duration_seconds_bucket" in exposition
    result = subprocess.run(
        ["promtool", "check", "metrics"],
        input=exposition,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, (
        f"promtool check metrics exited {result.returncode}:\n"
        f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )


def test_scrape_has_exactly_the_design_metric_names(exposition: str) -> None:
    """The workload yields exactly the Prometheus names of DESIGN.md and prometheus_name()."""
    duration = prometheus_name(CERTIFICATE_OPERATION_DURATION)
    expected = {
        f"{duration}_bucket",
        f"{duration}_sum",
        f"{duration}_count",
        prometheus_name(CERTIFICATE_OPERATION_ACTIVE),
        prometheus_name(CERTIFICATE_BUNDLE_REQUESTS),
    }
    assert expected == {
        "certificate_operation_duration_seconds_bucket",
        "certificate_operation_duration_seconds_sum",
        "certificate_operation_duration_seconds_count",
        "certificate_operation_active",
        "certificate_bundle_requests_total",
    }
    assert {sample.name for sample in certobs_samples(exposition)} == expected
    types = {
        family.name: family.type
        for family in text_string_to_metric_families(exposition)
        if family.name.startswith("certificate_")
    }
    # prometheus_client's parser names a counter family without its _total suffix.
    assert types == {
        "certificate_operation_duration_seconds": "histogram",
        "certificate_operation_active": "gauge",
        "certificate_bundle_requests": "counter",
    }


def test_scrape_labels_are_the_registry_attributes_with_underscores(exposition: str) -> None:
    """Every certobs label is a registry attribute with dots turned into underscores."""
    allowed = {
        "certificate_operation_duration_seconds": METRICS[CERTIFICATE_OPERATION_DURATION],
        "certificate_operation_active": METRICS[CERTIFICATE_OPERATION_ACTIVE],
        "certificate_bundle_requests": METRICS[CERTIFICATE_BUNDLE_REQUESTS],
    }
    for family in text_string_to_metric_families(exposition):
        if not family.name.startswith("certificate_"):
            continue
        keys = {key.replace(".", "_") for key in allowed[family.name].attributes}
        for sample in family.samples:
            labels = set(visible_labels(sample.labels)) - {"le"}
            assert labels <= keys, f"{sample.name}: unexpected labels {labels - keys}"
            assert all("." not in key for key in sample.labels)


def test_scrape_duration_histogram_matches_workload(exposition: str) -> None:
    """Duration series carry the workload's labels and counts, on the registry's buckets."""
    samples = certobs_samples(exposition)
    name = "certificate_operation_duration_seconds"
    renew_ok = {"certificate_operation_name": "renew", "certificate_issuer_name": "letsencrypt"}
    renew_failed = {**renew_ok, "error_type": RENEW_ERROR_TYPE}
    deploy = {
        "certificate_operation_name": "deploy",
        "certificate_deployment_target_type": "nginx",
        "deployment_environment_name": "prod",
    }
    expected_counts = {
        json.dumps(renew_ok, sort_keys=True): RENEW_OK,
        json.dumps(renew_failed, sort_keys=True): RENEW_FAILED,
        json.dumps(deploy, sort_keys=True): DEPLOYMENTS,
    }
    series = {
        json.dumps(visible_labels(s.labels), sort_keys=True)
        for s in samples
        if s.name == f"{name}_count"
    }
    # The open bundle.build operation has not finished, so it has no duration yet.
    assert series == set(expected_counts)

    boundaries = METRICS[CERTIFICATE_OPERATION_DURATION].bucket_boundaries
    assert boundaries is not None
    for key, count in expected_counts.items():
        labels = json.loads(key)
        assert only_sample(samples, f"{name}_count", labels).value == count
        assert only_sample(samples, f"{name}_sum", labels).value > 0
        buckets = [
            s
            for s in samples
            if s.name == f"{name}_bucket"
            and {k: v for k, v in visible_labels(s.labels).items() if k != "le"} == labels
        ]
        bounds = sorted(float(s.labels["le"]) for s in buckets)
        assert bounds == [*boundaries, math.inf]
        by_bound = {float(s.labels["le"]): s.value for s in buckets}
        cumulative = [by_bound[bound] for bound in bounds]
        assert cumulative == sorted(cumulative), f"{labels}: buckets not cumulative"
        assert by_bound[math.inf] == count


def test_scrape_active_and_bundle_counters_match_workload(exposition: str) -> None:
    """The active gauge shows the open operation; bundle requests count per label set."""
    samples = certobs_samples(exposition)
    active = "certificate_operation_active"
    assert only_sample(samples, active, {"certificate_operation_name": "bundle.build"}).value == 1
    assert only_sample(samples, active, {"certificate_operation_name": "renew"}).value == 0
    assert only_sample(samples, active, {"certificate_operation_name": "deploy"}).value == 0

    requests = "certificate_bundle_requests_total"
    pem = {"certificate_bundle_name": "public-roots", "certificate_bundle_format": "pem"}
    failed = {
        "certificate_bundle_name": "public-roots",
        "certificate_bundle_format": "der",
        "error_type": "TimeoutError",
    }
    assert only_sample(samples, requests, pem).value == BUNDLE_PEM
    assert only_sample(samples, requests, failed).value == BUNDLE_FAILED
    assert len([s for s in samples if s.name == requests]) == 2


def test_scrape_carries_service_name(exposition: str) -> None:
    """The configured service name reaches Prometheus through the target_info metric."""
    infos = [
        sample
        for family in text_string_to_metric_families(exposition)
        if family.name == "target_info"
        for sample in family.samples
    ]
    assert len(infos) == 1
    assert infos[0].labels["service_name"] == "prom-test"


# The three names DESIGN.md section 2 spells out; the other registry metrics follow the same
# rules (unit word appended, counters end in _total) and are listed so a rename shows up here.
DESIGN_PROMETHEUS_NAMES = {
    "certificate.operation.duration": "certificate_operation_duration_seconds",
    "certificate.bundle.requests": "certificate_bundle_requests_total",
    "certificate.not_after": "certificate_not_after_seconds",
    "certificate.operation.active": "certificate_operation_active",
    "certificate.renewal.lead_time": "certificate_renewal_lead_time_seconds",
    "certificate.not_before": "certificate_not_before_seconds",
    "certificate.count": "certificate_count",
    "certificate.inventory.errors": "certificate_inventory_errors_total",
    "certificate.endpoint.chain.valid": "certificate_endpoint_chain_valid",
    "certificate.endpoint.drift": "certificate_endpoint_drift",
    "certobs.metric.overflow": "certobs_metric_overflow_total",
}


def test_prometheus_name_table_covers_the_registry() -> None:
    """The expected-name table below names every registry metric, no more, no fewer."""
    assert set(DESIGN_PROMETHEUS_NAMES) == set(METRICS)


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_prometheus_name_matches_design(metric: str) -> None:
    """prometheus_name() gives the design's name, and the generated definition agrees."""
    assert prometheus_name(metric) == DESIGN_PROMETHEUS_NAMES[metric]
    assert METRICS[metric].prometheus_name == DESIGN_PROMETHEUS_NAMES[metric]


def test_prometheus_name_agrees_with_the_exporter() -> None:
    """For every registry metric, the OTel Prometheus exporter emits prometheus_name().

    Uses a private meter provider and registry: no global state, no server.
    """
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.metrics import Observation
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import CollectorRegistry, generate_latest

    from certobs.semconv import metrics as m

    registry = CollectorRegistry()
    reader = PrometheusMetricReader(disable_target_info=True, registry=registry)
    provider = MeterProvider(metric_readers=[reader])
    try:
        meter = provider.get_meter("certobs-test")

        def observe(_options: Any) -> list[Observation]:
            return [Observation(1.0)]

        # Every metric of the registry, through its generated helper: a new metric is covered.
        for name, definition in METRICS.items():
            helper = getattr(m, "create_" + name.replace(".", "_"))
            if definition.instrument == "gauge":
                helper(meter, [observe])
            elif definition.instrument == "histogram":
                helper(meter).record(0.2)
            else:
                helper(meter).add(1)
        text = generate_latest(registry).decode("utf-8")
    finally:
        provider.shutdown()
    exported = {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }
    expected = set()
    for name, definition in METRICS.items():
        base = prometheus_name(name)
        if definition.instrument == "histogram":
            expected |= {f"{base}_bucket", f"{base}_sum", f"{base}_count"}
        else:
            expected.add(base)
    assert exported == expected


def test_prometheus_name_rejects_unknown_metric() -> None:
    """A name outside the registry is an error, not a guessed translation."""
    with pytest.raises(KeyError):
        prometheus_name("certificate.unknown")


def test_port_in_use_is_a_configuration_error() -> None:
    """A taken scrape port raises ConfigurationError naming prometheus_port, leaving no state.

    Afterwards the same process can configure certobs again.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-c", PORT_IN_USE_SCRIPT, str(port)],
            capture_output=True,
            text=True,
            timeout=STARTUP_TIMEOUT,
            env=child_env(),
            check=False,
        )
    assert result.returncode == 0, f"stderr:\n{result.stderr}"
    report = json.loads(result.stdout)
    assert report["error"] is not None, "configure() accepted a port that is in use"
    assert "prometheus_port" in report["error"]
    assert str(port) in report["error"]
    assert report["address_after_failure"] is None
    assert report["reconfigured"] is True
