"""The registry follows OpenTelemetry's naming rules, and generated files match it."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from certobs.semconv import attributes, metrics, prometheus_name

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "model"

# UCUM units certobs may use; curly-brace annotations are counted separately.
UCUM = {"s", "ms", "By", "1"}
UNIT_WORDS = ("seconds", "second", "millis", "bytes", "total", "count_total", "percent")
NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


def _groups():
    for path in sorted(MODEL.rglob("*.yaml")):
        yield from yaml.safe_load(path.read_text())["groups"]


def _metrics():
    return [g for g in _groups() if g["type"] == "metric"]


def _attributes():
    return [attr for g in _groups() if g["type"] == "attribute_group" for attr in g["attributes"]]


def test_generated_files_match_registry():
    """Regenerating from model/ changes nothing: generated code and docs never drift."""
    result = subprocess.run(
        [sys.executable, str(MODEL / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"run `nox -s generate`:\n{result.stdout}{result.stderr}"


def test_generated_files_carry_do_not_edit_header():
    """Every generated file says it is generated and how to regenerate it."""
    spec = importlib.util.spec_from_file_location("generate", MODEL / "generate.py")
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    for path in generate.OUTPUTS.values():
        head = path.read_text().splitlines()[0]
        assert "do not edit" in head
        assert "nox -s generate" in head


@pytest.mark.parametrize("group", _metrics(), ids=lambda g: g["metric_name"])
def test_metric_names_follow_otel_rules(group):
    """Metric names: dot namespaces, snake_case, UCUM units, no _total, no unit words."""
    name = group["metric_name"]
    assert NAME.match(name), name
    assert group["id"] == f"metric.{name}"
    assert not name.endswith(("_total", ".total")), "the Prometheus exporter adds _total"
    last = name.rsplit(".", 1)[-1]
    assert not any(word in last.split("_") for word in UNIT_WORDS), f"unit word in {name}"
    unit = group["unit"]
    assert unit in UCUM or re.fullmatch(r"\{[a-z_]+\}", unit), f"{name}: {unit} is not UCUM"
    assert group["instrument"] in ("counter", "updowncounter", "histogram", "gauge")
    assert group["stability"] in ("development", "stable")
    assert group["brief"].strip().endswith(".")
    if group["instrument"] == "counter":
        assert re.fullmatch(r"\{[a-z_]+\}", unit), "counters count things: use a {annotation}"


@pytest.mark.parametrize("attr", _attributes(), ids=lambda a: a["id"])
def test_attribute_names_follow_otel_rules(attr):
    """Attribute names: dot namespaces, snake_case; each has a type, brief and examples."""
    assert NAME.match(attr["id"]), attr["id"]
    assert attr["brief"].strip()
    assert attr["examples"]
    assert attr["stability"] in ("development", "stable")
    if isinstance(attr["type"], dict):
        for member in attr["type"]["members"]:
            assert re.fullmatch(r"[a-z][a-z0-9_]*", member["id"])
            assert member["brief"].strip()
    else:
        assert attr["type"] in ("string", "int", "double", "boolean", "string[]")


def test_no_name_is_both_attribute_and_namespace():
    """No attribute name is a prefix namespace of another (OTel forbids x and x.y both)."""
    ids = {attr["id"] for attr in _attributes()}
    clashes = [(x, y) for x in ids for y in ids if y.startswith(x + ".")]
    assert clashes == []


def test_design_metrics_present():
    """Every metric of DESIGN.md section 2 is in the registry with its instrument and unit."""
    expected = {
        "certificate.operation.duration": ("histogram", "s"),
        "certificate.operation.active": ("updowncounter", "{operation}"),
        "certificate.renewal.lead_time": ("histogram", "s"),
        "certificate.bundle.requests": ("counter", "{request}"),
        "certificate.not_after": ("gauge", "s"),
        "certificate.not_before": ("gauge", "s"),
        "certificate.count": ("gauge", "{certificate}"),
        "certificate.inventory.errors": ("counter", "{error}"),
        # Added by the inventory issue for TLS endpoints.
        "certificate.endpoint.chain.valid": ("gauge", "{endpoint}"),
        "certificate.endpoint.drift": ("gauge", "{endpoint}"),
        # Added by the reliability issue: measurements folded past the cardinality limit.
        "certobs.metric.overflow": ("counter", "{measurement}"),
    }
    found = {m.name: (m.instrument, m.unit) for m in metrics.METRICS.values()}
    assert found == expected


def test_constants_and_enums():
    """Generated constants hold the registry names; enums hold its values."""
    assert attributes.CERTIFICATE_OPERATION_NAME == "certificate.operation.name"
    assert attributes.ERROR_TYPE == "error.type"
    assert [v.value for v in attributes.CertificateOperationNameValues] == [
        "issue",
        "renew",
        "revoke",
        "deploy",
        "bundle.build",
        "validate",
    ]
    assert attributes.CertificateStatusValues.NOT_YET_VALID == "not_yet_valid"
    assert sorted(attributes.__all__) == sorted(
        n for n in vars(attributes) if n.isupper() or n.endswith("Values")
    )


def test_helpers_create_instruments_with_registry_units():
    """Each create_* helper builds its instrument with the registry's name, unit and buckets."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("t")
    metrics.create_certificate_operation_duration(meter).record(0.2, {"a": "b"})
    metrics.create_certificate_bundle_requests(meter).add(1)
    metrics.create_certificate_count(meter, [lambda options: []])
    data = reader.get_metrics_data()
    got = {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    duration = got[metrics.CERTIFICATE_OPERATION_DURATION]
    assert duration.unit == "s"
    assert tuple(duration.data.data_points[0].explicit_bounds) == (
        metrics.METRICS[metrics.CERTIFICATE_OPERATION_DURATION].bucket_boundaries
    )
    assert got[metrics.CERTIFICATE_BUNDLE_REQUESTS].unit == "{request}"


def test_prometheus_names():
    """The one naming function gives the Prometheus names DESIGN.md lists."""
    assert (
        prometheus_name("certificate.operation.duration")
        == "certificate_operation_duration_seconds"
    )
    assert prometheus_name("certificate.bundle.requests") == "certificate_bundle_requests_total"
    assert prometheus_name("certificate.not_after") == "certificate_not_after_seconds"
    assert prometheus_name("certificate.count") == "certificate_count"
    assert prometheus_name("certificate.operation.active") == "certificate_operation_active"
    with pytest.raises(KeyError):
        prometheus_name("certificate.unknown")
