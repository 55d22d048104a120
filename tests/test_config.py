"""Settings follow argument > environment > default, and bad settings fail fast and clearly."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import certobs
from certobs import _config, _runtime
from certobs._config import settings

CASES = [
    # (argument kwargs, environment, attribute, expected)
    ({}, {}, "exporter", "otlp"),
    ({}, {"OTEL_METRICS_EXPORTER": "console"}, "exporter", "console"),
    (
        {},
        {"CERTOBS_EXPORTER": "prometheus", "OTEL_METRICS_EXPORTER": "console"},
        "exporter",
        "prometheus",
    ),
    ({"exporter": "none"}, {"CERTOBS_EXPORTER": "prometheus"}, "exporter", "none"),
    ({}, {"CERTOBS_EXPORTER": ""}, "exporter", "otlp"),
    ({}, {}, "export_interval", 10.0),
    ({}, {"OTEL_METRIC_EXPORT_INTERVAL": "2500"}, "export_interval", 2.5),
    ({"export_interval": 1}, {"OTEL_METRIC_EXPORT_INTERVAL": "2500"}, "export_interval", 1.0),
    ({}, {}, "protocol", "grpc"),
    ({}, {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, "protocol", "http/protobuf"),
    (
        {},
        {
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc",
        },
        "protocol",
        "grpc",
    ),
    ({"protocol": "grpc"}, {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, "protocol", "grpc"),
    ({}, {}, "endpoint", None),
    ({}, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}, "endpoint", "http://c:4317"),
    (
        {"endpoint": "https://x:443"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"},
        "endpoint",
        "https://x:443",
    ),
    ({}, {}, "traces", True),
    ({"exporter": "console"}, {}, "traces", False),
    ({}, {"CERTOBS_TRACES": "false"}, "traces", False),
    ({"traces": True}, {"CERTOBS_TRACES": "false"}, "traces", True),
    ({}, {}, "prometheus_port", 9464),
    ({}, {"OTEL_EXPORTER_PROMETHEUS_PORT": "9999"}, "prometheus_port", 9999),
    ({"prometheus_port": 0}, {"OTEL_EXPORTER_PROMETHEUS_PORT": "9999"}, "prometheus_port", 0),
    ({}, {"OTEL_EXPORTER_PROMETHEUS_HOST": "0.0.0.0"}, "prometheus_host", "0.0.0.0"),
    ({}, {}, "disabled", False),
    ({}, {"OTEL_SDK_DISABLED": "true"}, "disabled", True),
    ({}, {"OTEL_SDK_DISABLED": "TRUE"}, "disabled", True),
    # OpenTelemetry: only "true" disables; other values (even "1") do not.
    ({}, {"OTEL_SDK_DISABLED": "1"}, "disabled", False),
    ({}, {"OTEL_SDK_DISABLED": "maybe"}, "disabled", False),
    ({}, {"OTEL_TRACES_EXPORTER": "none"}, "traces", False),
    ({}, {"CERTOBS_TRACES": "true", "OTEL_TRACES_EXPORTER": "none"}, "traces", True),
    (
        {},
        {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"},
        "traces_protocol",
        "http/protobuf",
    ),
    ({}, {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, "protocol", "grpc"),
    (
        {"protocol": "grpc"},
        {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"},
        "traces_protocol",
        "grpc",
    ),
    ({}, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}, "endpoint_from_argument", False),
    ({"endpoint": "http://c:4317"}, {}, "endpoint_from_argument", True),
]


@pytest.mark.parametrize(("kwargs", "environ", "field", "expected"), CASES)
def test_precedence(kwargs, environ, field, expected):
    """Each setting resolves as argument, then environment, then default."""
    assert getattr(settings(environ=environ, **kwargs), field) == expected


BAD = [
    (
        {"exporter": "zipkin"},
        {},
        r"exporter='zipkin' is not supported; accepted values: otlp, prometheus, console, none",
    ),
    ({}, {"CERTOBS_EXPORTER": "jaeger"}, r"CERTOBS_EXPORTER='jaeger'.*accepted values"),
    ({"endpoint": "collector:4317"}, {}, r"endpoint='collector:4317' is not a valid endpoint"),
    ({"endpoint": "http://:4317"}, {}, r"endpoint=.*not a valid endpoint"),
    ({"endpoint": "http://c:99999"}, {}, r"not a valid endpoint"),
    ({}, {"OTEL_EXPORTER_OTLP_ENDPOINT": "ftp://c"}, r"OTEL_EXPORTER_OTLP_ENDPOINT='ftp://c'"),
    ({"export_interval": -1}, {}, r"export_interval=-1.0: expected a positive number of seconds"),
    ({"export_interval": 0}, {}, r"export_interval=0.0"),
    ({"export_interval": "10"}, {}, r"export_interval='10'"),
    (
        {},
        {"OTEL_METRIC_EXPORT_INTERVAL": "soon"},
        r"OTEL_METRIC_EXPORT_INTERVAL='soon' is not a number",
    ),
    ({}, {"OTEL_METRIC_EXPORT_INTERVAL": "-5"}, r"export_interval=-0.005"),
    ({"protocol": "http/json"}, {}, r"protocol='http/json'.*grpc, http/protobuf"),
    ({"prometheus_port": 70000}, {}, r"prometheus_port=70000"),
    ({}, {"OTEL_EXPORTER_PROMETHEUS_PORT": "http"}, r"OTEL_EXPORTER_PROMETHEUS_PORT='http'"),
    ({"exporter": "prometheus", "traces": True}, {}, r"Prometheus stores no spans"),
    ({"service_name": ""}, {}, r"service_name=''"),
]


@pytest.mark.parametrize(("kwargs", "environ", "message"), BAD)
def test_bad_settings_name_the_setting(kwargs, environ, message):
    """Invalid settings raise ConfigurationError naming the setting and what is accepted."""
    with pytest.raises(certobs.ConfigurationError, match=message):
        settings(environ=environ, **kwargs)


def test_configure_error_leaves_nothing_behind(monkeypatch):
    """A rejected configure() installs nothing, so a corrected call succeeds."""
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    with pytest.raises(certobs.ConfigurationError):
        certobs.configure(exporter="otlp", endpoint="not a url", set_global=False)
    assert _runtime._State.meter_provider is None
    try:
        certobs.configure(exporter="none", set_global=False)
        assert _runtime._State.meter_provider is not None
        with pytest.raises(certobs.ConfigurationError, match="already configured"):
            certobs.configure(exporter="none", set_global=False)
    finally:
        certobs.shutdown()
    assert _runtime._State.meter_provider is None
    certobs.shutdown()  # idempotent


def test_disabled_sdk_installs_nothing(monkeypatch):
    """OTEL_SDK_DISABLED=true makes configure() a no-op."""
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    resolved = certobs.configure(exporter="console", set_global=False)
    assert resolved.disabled
    assert _runtime._State.meter_provider is None
    assert not _runtime.recording()
    certobs.shutdown()


def test_console_exporter_prints_readable_lines(monkeypatch, capsys):
    """The console exporter prints one line per series, flushed by shutdown()."""
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    certobs.configure(exporter="console", export_interval=3600)
    try:

        @certobs.renewal(issuer="letsencrypt")
        def renew():
            return 1

        renew()
    finally:
        certobs.shutdown()
    out = capsys.readouterr().out
    assert "--- certobs metrics at" in out
    assert (
        "certificate.operation.duration{certificate.issuer.name=letsencrypt,"
        "certificate.operation.name=renew} count=1" in out
    )


def test_application_provider_used_without_configure():
    """An application that installs OpenTelemetry itself gets certobs telemetry, no certobs call."""
    script = textwrap.dedent(
        """
        import certobs
        from certobs import _runtime
        from opentelemetry import metrics
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader

        @certobs.renewal(issuer="le")
        def renew():
            return 1

        assert not _runtime.recording()
        renew()  # before the application sets up OpenTelemetry: nothing recorded
        reader = InMemoryMetricReader()
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        assert _runtime.recording()
        renew(); renew()
        data = reader.get_metrics_data()
        points = {
            m.name: list(m.data.data_points)
            for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
        }
        (point,) = points["certificate.operation.duration"]
        print(point.count, dict(point.attributes))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == (
        "2 {'certificate.operation.name': 'renew', 'certificate.issuer.name': 'le'}"
    )


def test_import_loads_no_sdk_exporter_or_cryptography():
    """``import certobs`` loads neither the SDK, nor an exporter, nor cryptography."""
    script = (
        "import sys, certobs; print(sorted(m for m in sys.modules if m.startswith("
        "('opentelemetry.sdk', 'opentelemetry.exporter', 'cryptography', 'grpc', "
        "'prometheus_client'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "[]"


def test_environment_variable_constants_documented():
    """Every CERTOBS_* variable is documented in docs/configuration.md."""
    from pathlib import Path

    doc = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text()
    names = [v for k, v in vars(_config).items() if k.startswith(("CERTOBS_", "OTEL_"))]
    assert names
    missing = [n for n in names if f"`{n}`" not in doc]
    assert missing == []


def test_console_format_histogram_points():
    """The console renderer prints count, mean and bucket-bound percentiles, even for no data."""
    from opentelemetry.sdk.metrics.export import HistogramDataPoint

    from certobs._console import format_point

    def point(counts, total):
        return HistogramDataPoint(
            attributes={"certificate.operation.name": "renew"},
            start_time_unix_nano=0,
            time_unix_nano=0,
            count=sum(counts),
            sum=total,
            bucket_counts=counts,
            explicit_bounds=[1.0, 10.0],
            min=0.5,
            max=20.0,
            exemplars=[],
        )

    assert format_point("d", "s", point([1, 2, 1], 26.0)) == (
        "d{certificate.operation.name=renew} count=4 mean=6.500s p50<=10.000s p95<=20.000s"
    )
    assert "count=0 mean=0.000s p50<=- p95<=-" in format_point("d", "s", point([0, 0, 0], 0.0))


def test_signal_specific_endpoint_wins_over_general(monkeypatch):
    """OTEL_EXPORTER_OTLP_METRICS_ENDPOINT beats OTEL_EXPORTER_OTLP_ENDPOINT, as specified."""
    from certobs._export import _otlp_exporters

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://general:4318")
    monkeypatch.setenv(
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://metrics:9999/custom/v1/metrics"
    )
    resolved = settings(protocol="http/protobuf", traces=True)
    metric_exporter, span_exporter = _otlp_exporters(resolved)
    assert metric_exporter._endpoint == "http://metrics:9999/custom/v1/metrics"
    assert span_exporter._endpoint == "http://general:4318/v1/traces"
    explicit, _ = _otlp_exporters(settings(protocol="http/protobuf", endpoint="http://arg:1"))
    assert explicit._endpoint == "http://arg:1/v1/metrics"


def test_shutdown_returns_to_zero_overhead(monkeypatch):
    """After shutdown() nothing records any more, and OpenTelemetry's globals were never taken."""
    from opentelemetry.metrics import _internal as metrics_internal

    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    certobs.configure(exporter="none")
    assert _runtime.recording()
    certobs.shutdown()
    assert not _runtime.recording()
    assert metrics_internal._METER_PROVIDER is None
