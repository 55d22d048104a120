"""The monitoring mixin: valid rules, every alert unit-tested, committed files up to date."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import certobs
from certobs.mixin import ALERT_NAMES, MixinConfig, render
from certobs.semconv.metrics import METRICS

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "monitoring"
ALERT_TESTS = ROOT / "tests" / "rules" / "certobs-alerts.test.yaml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian prometheus) missing")


def test_committed_examples_match_the_build():
    """examples/monitoring is exactly what `certobs mixin build` writes with the defaults."""
    for relative, text in render().items():
        committed = EXAMPLES / relative
        assert committed.exists(), (
            f"{relative} missing: run certobs mixin build --output examples/monitoring"
        )
        assert committed.read_text() == text, f"{relative} is stale: run certobs mixin build"


@needs_promtool
@pytest.mark.promtool
def test_promtool_check_rules():
    """`promtool check rules` accepts both rule files."""
    files = [
        str(EXAMPLES / "rules" / name) for name in ("certobs-recording.yaml", "certobs-alerts.yaml")
    ]
    result = subprocess.run([PROMTOOL, "check", "rules", *files], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
@pytest.mark.promtool
def test_promtool_check_config():
    """`promtool check config` accepts the Prometheus configuration and the rules it loads."""
    result = subprocess.run(
        [PROMTOOL, "check", "config", "prometheus.yml"],
        capture_output=True,
        text=True,
        cwd=EXAMPLES / "prometheus",
    )
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
@pytest.mark.promtool
def test_promtool_unit_tests_pass():
    """Every alert's unit tests pass: fires when it should, silent when it should not."""
    result = subprocess.run(
        [PROMTOOL, "test", "rules", str(ALERT_TESTS)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_both_ways():
    """Each alert has a test where it fires (labels and annotations) and one where it does not."""
    document = yaml.safe_load(ALERT_TESTS.read_text())
    fires, silent = set(), set()
    for case in document["tests"]:
        for check in case["alert_rule_test"]:
            alerts = check.get("exp_alerts") or []
            (fires if alerts else silent).add(check["alertname"])
            for alert in alerts:
                assert alert["exp_annotations"]["runbook_url"].endswith(check["alertname"].lower())
    generated = {
        rule["alert"]
        for rule in yaml.safe_load(render()["rules/certobs-alerts.yaml"])["groups"][0]["rules"]
    }
    assert generated == set(ALERT_NAMES)
    assert fires == set(ALERT_NAMES), f"never seen firing: {set(ALERT_NAMES) - fires}"
    assert silent == set(ALERT_NAMES), f"never checked silent: {set(ALERT_NAMES) - silent}"


def test_every_alert_has_a_runbook():
    """docs/runbooks.md has a section for every alert, which its runbook_url points at."""
    runbooks = (ROOT / "docs" / "runbooks.md").read_text()
    headings = {line[3:].strip() for line in runbooks.splitlines() if line.startswith("## ")}
    assert set(ALERT_NAMES) <= headings


def test_metric_names_come_from_the_registry():
    """Every certobs metric name in the rules is a registry metric's Prometheus name."""
    known = set()
    for definition in METRICS.values():
        base = definition.prometheus_name
        known |= {base, f"{base}_bucket", f"{base}_sum", f"{base}_count"}
    rules = render()["rules/certobs-recording.yaml"] + render()["rules/certobs-alerts.yaml"]
    used = set(re.findall(r"\b(certificate_[a-z_]+?)(?=[{\s)\[]|$)", rules, re.MULTILINE))
    used = {
        name
        for name in used
        if not name.endswith(
            (
                "_name",
                "_type",
                "_id",
                "_kind",
                "_status",
                "_algorithm",
                "_address",
                "_port",
                "_version",
            )
        )
    }
    assert used
    assert used <= known, f"not registry names: {used - known}"


def test_selector_reaches_every_metric_selector():
    """A selector is added to every raw metric selector of the rules."""
    text = render(MixinConfig(selector='job="renewer"'))["rules/certobs-alerts.yaml"]
    for expr in re.findall(r"expr: (.*)", text):
        for name in re.findall(
            r"\b(certificate_[a-z_]+_(?:seconds|total|count|active|drift|valid))\b(?!_)", expr
        ):
            assert f'{name}{{job="renewer"' in expr, expr


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"evaluation_interval": "soon"}, "evaluation_interval='soon'"),
        ({"expiring_fraction": 2}, "expiring_fraction=2"),
        ({"renewal_slo": 1}, "renewal_slo=1"),
    ],
)
def test_bad_config_named(kwargs, message):
    """Bad mixin settings raise ConfigurationError naming the setting."""
    with pytest.raises(certobs.ConfigurationError, match=re.escape(message)):
        MixinConfig(**kwargs)


def test_cli_build(tmp_path):
    """`certobs mixin build --output DIR` writes every file."""
    result = subprocess.run(
        [sys.executable, "-m", "certobs", "mixin", "build", "--output", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for relative in render():
        assert (tmp_path / relative).exists()


def test_dashboards_pinned_and_complete():
    """Both dashboards use the pinned Grafana schema and every panel has a Prometheus query."""
    import json

    for name in ("certobs-operations.json", "certobs-executive.json"):
        dashboard = json.loads((EXAMPLES / "dashboards" / name).read_text())
        assert dashboard["schemaVersion"] == 41  # Grafana 11.6
        assert dashboard["uid"].startswith("certobs-")
        assert dashboard["panels"]
        for panel in dashboard["panels"]:
            assert panel["title"]
            assert panel["targets"], panel["title"]
            assert all(target["expr"] for target in panel["targets"])


def test_datasource_configurable():
    """With a data source UID, every panel query names it; without, Grafana's default is used."""
    import json

    for text in (
        v for k, v in render(MixinConfig(datasource_uid="prom-main")).items() if k.endswith(".json")
    ):
        for panel in json.loads(text)["panels"]:
            for target in panel["targets"]:
                assert target["datasource"] == {"type": "prometheus", "uid": "prom-main"}
    for text in (v for k, v in render().items() if k.endswith(".json")):
        assert '"datasource"' not in text
