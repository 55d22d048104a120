"""Prometheus recording and alerting rules, generated from the registry's names."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from certobs.semconv import attributes as a
from certobs.semconv import metrics as m
from certobs.semconv import prometheus_name

if TYPE_CHECKING:
    from certobs.mixin import MixinConfig

__all__ = ["ALERT_NAMES", "alerting_rules", "recording_rules"]


def _label(attribute: str) -> str:
    """The Prometheus label of an attribute: dots become underscores."""
    return attribute.replace(".", "_")


OP = _label(a.CERTIFICATE_OPERATION_NAME)
ISSUER = _label(a.CERTIFICATE_ISSUER_NAME)
TARGET = _label(a.CERTIFICATE_DEPLOYMENT_TARGET_TYPE)
ENV = _label(a.DEPLOYMENT_ENVIRONMENT_NAME)
ERROR = _label(a.ERROR_TYPE)
CERT_ID = _label(a.CERTIFICATE_ID)
SOURCE = _label(a.CERTIFICATE_SOURCE_NAME)
SOURCE_KIND = _label(a.CERTIFICATE_SOURCE_KIND)
CN = _label(a.CERTIFICATE_SUBJECT_COMMON_NAME)
ADDRESS = _label(a.SERVER_ADDRESS)
PORT = _label(a.SERVER_PORT)

DURATION = prometheus_name(m.CERTIFICATE_OPERATION_DURATION)
ACTIVE = prometheus_name(m.CERTIFICATE_OPERATION_ACTIVE)
NOT_AFTER = prometheus_name(m.CERTIFICATE_NOT_AFTER)
NOT_BEFORE = prometheus_name(m.CERTIFICATE_NOT_BEFORE)
COUNT = prometheus_name(m.CERTIFICATE_COUNT)
INVENTORY_ERRORS = prometheus_name(m.CERTIFICATE_INVENTORY_ERRORS)
DRIFT = prometheus_name(m.CERTIFICATE_ENDPOINT_DRIFT)
CHAIN_VALID = prometheus_name(m.CERTIFICATE_ENDPOINT_CHAIN_VALID)
LEAD_TIME = prometheus_name(m.CERTIFICATE_RENEWAL_LEAD_TIME)
OVERFLOW = prometheus_name(m.CERTOBS_METRIC_OVERFLOW)
METRIC_NAME = _label(a.CERTOBS_METRIC_NAME)

BY = f"{OP}, {ISSUER}, {TARGET}, {ENV}"
FAILED = f'{ERROR}!=""'
IS_RENEW = f'{OP}="renew"'
TRIGGER = _label(a.CERTIFICATE_OPERATION_TRIGGER)
SCHEDULED = f'{TRIGGER}="scheduled"'
IS_DEPLOY = f'{OP}="deploy"'
WINDOWS = ("5m", "30m", "1h", "6h", "1d")

ALERT_NAMES = (
    "CertificateExpired",
    "CertificateExpiring",
    "CertificateRenewalFailing",
    "CertificateDeploymentFailing",
    "CertificateServedDiffersFromIssued",
    "CertificateEndpointChainInvalid",
    "CertificateInventorySourceErrors",
    "CertificateOperationFailureAnomaly",
    "CertificateOperationLatencyAnomaly",
    "CertificateRenewalErrorBudgetBurn",
    "CertobsTelemetryAbsent",
    "CertobsCardinalityOverflow",
)
"""Every alert the mixin ships; each has a runbook section in docs/runbooks.md."""


def _sel(config: MixinConfig, *matchers: str) -> str:
    parts = [m_ for m_ in (config.selector, *matchers) if m_]
    return "{" + ", ".join(parts) + "}" if parts else ""


def recording_rules(config: MixinConfig) -> dict[str, Any]:
    """The recording rules: KPIs at several windows, burn rates, baselines and forecasts."""
    s = config
    rules: list[dict[str, Any]] = []
    for window in WINDOWS:
        rules += [
            {
                "record": f"certobs:operation_rate:rate{window}",
                "expr": f"sum by ({BY}) (rate({DURATION}_count{_sel(s)}[{window}]))",
            },
            {
                "record": f"certobs:operation_errors:rate{window}",
                "expr": f"sum by ({BY}) (rate({DURATION}_count{_sel(s, FAILED)}[{window}]))",
            },
            {
                "record": f"certobs:operation_error_ratio:rate{window}",
                "expr": (
                    f"certobs:operation_errors:rate{window} / certobs:operation_rate:rate{window}"
                ),
            },
        ]
    rules += [
        {
            "record": "certobs:operation_duration_seconds:p95_5m",
            "expr": (
                f"histogram_quantile(0.95, sum by (le, {BY}) "
                f"(rate({DURATION}_bucket{_sel(s)}[5m])))"
            ),
        },
        {
            "record": "certobs:operation_duration_seconds:p50_5m",
            "expr": (
                f"histogram_quantile(0.5, sum by (le, {BY}) (rate({DURATION}_bucket{_sel(s)}[5m])))"
            ),
        },
        # Baselines for anomaly detection: one day of the 5-minute figures.
        {
            "record": "certobs:operation_error_ratio:avg_over_time_1d",
            "expr": "avg_over_time(certobs:operation_error_ratio:rate5m[1d])",
        },
        {
            "record": "certobs:operation_error_ratio:stddev_over_time_1d",
            "expr": "stddev_over_time(certobs:operation_error_ratio:rate5m[1d])",
        },
        {
            "record": "certobs:operation_error_ratio:avg_over_time_7d",
            "expr": "avg_over_time(certobs:operation_error_ratio:rate1h[7d])",
        },
        {
            "record": "certobs:operation_error_ratio:stddev_over_time_7d",
            "expr": "stddev_over_time(certobs:operation_error_ratio:rate1h[7d])",
        },
        {
            "record": "certobs:operation_duration_seconds:p95_avg_over_time_1d",
            "expr": "avg_over_time(certobs:operation_duration_seconds:p95_5m[1d])",
        },
        {
            "record": "certobs:operation_duration_seconds:p95_stddev_over_time_1d",
            "expr": "stddev_over_time(certobs:operation_duration_seconds:p95_5m[1d])",
        },
        # Inventory: certificates under management, by status, and the expiry horizon.
        {
            "record": "certobs:certificates:count",
            "expr": f"sum by ({_label(a.CERTIFICATE_STATUS)}) ({COUNT}{_sel(s)})",
        },
    ]
    for days in (7, 30, 90):
        rules.append(
            {
                "record": f"certobs:certificates_expiring_within:{days}d",
                "expr": (f"count(({NOT_AFTER}{_sel(s)} - time()) < {days * 86400}) or vector(0)"),
            }
        )
    rules += [
        {
            "record": "certobs:certificates_expiring_within:7d_predicted_7d",
            "expr": "predict_linear(certobs:certificates_expiring_within:7d[1d], 7 * 86400)",
        },
        {
            "record": "certobs:renewal_automation_ratio:rate1d",
            "expr": (
                f"sum(rate({DURATION}_count{_sel(s, IS_RENEW, SCHEDULED)}[1d]))"
                f" / sum(rate({DURATION}_count{_sel(s, IS_RENEW)}[1d]))"
            ),
        },
        {
            "record": "certobs:renewal_lead_time_seconds:avg_1d",
            "expr": (
                f"sum(rate({LEAD_TIME}_sum{_sel(s)}[1d])) "
                f"/ sum(rate({LEAD_TIME}_count{_sel(s)}[1d]))"
            ),
        },
    ]
    group = {"name": "certobs-recording", "interval": config.evaluation_interval, "rules": rules}
    return {"groups": [group]}


def _failures(by: str, series: str, config: MixinConfig) -> str:
    """Failures in the window, including those of an error series that just appeared.

    certobs creates the series of an error type with its first failure, so the series starts
    at 1 and increase() never sees that first step. A series that did not exist one window ago
    counts with its whole value.
    """
    window = config.failure_window
    return (
        f"sum by ({by}) (({series} unless {series} offset {window})"
        f" or (increase({series}[{window}]) > 0)) > 0"
    )


def _alert(
    name: str, expr: str, *, severity: str, summary: str, description: str, for_: str = "0m"
) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": {"severity": severity},
        "annotations": {
            "summary": summary,
            "description": description,
            "runbook_url": f"{{RUNBOOK}}#{name.lower()}",
        },
    }


def alerting_rules(config: MixinConfig) -> dict[str, Any]:
    """The alerts: expiry, failures within one evaluation, drift, errors, anomalies, absence."""
    s = config
    left = f"({NOT_AFTER}{_sel(s)} - time())"
    lifetime = f"({NOT_AFTER}{_sel(s)} - {NOT_BEFORE}{_sel(s)})"
    alerts = [
        _alert(
            "CertificateExpired",
            f"{left} <= 0",
            severity="critical",
            summary="Certificate {{ $labels.%s }} has expired" % CERT_ID,
            description=(
                "Certificate {{ $labels.%s }} (CN {{ $labels.%s }}) from {{ $labels.%s }} has "
                "expired: clients reject it." % (CERT_ID, CN, SOURCE)
            ),
        ),
        _alert(
            "CertificateExpiring",
            (
                f"{left} > 0 and ({left} < {config.expiring_fraction:.6g} * {lifetime}"
                f" or {left} < {config.expiring_floor_days} * 86400)"
            ),
            severity="warning",
            summary="Certificate {{ $labels.%s }} expires soon" % CERT_ID,
            description=(
                "Certificate {{ $labels.%s }} from {{ $labels.%s }} has less than %s of its "
                "lifetime (or %s days) left: {{ $value | humanizeDuration }}."
                % (
                    CERT_ID,
                    SOURCE,
                    _fraction(config.expiring_fraction),
                    f"{config.expiring_floor_days:g}",
                )
            ),
        ),
        _alert(
            "CertificateRenewalFailing",
            _failures(
                f"{ISSUER}, {ENV}, {ERROR}", f"{DURATION}_count{_sel(s, IS_RENEW, FAILED)}", config
            ),
            severity="critical",
            summary="Certificate renewals are failing for issuer {{ $labels.%s }}" % ISSUER,
            description=(
                '{{ $value | printf "%%.0f" }} renewal(s) through {{ $labels.%s }} failed '
                "with {{ $labels.%s }} in the last %s." % (ISSUER, ERROR, config.failure_window)
            ),
        ),
        _alert(
            "CertificateDeploymentFailing",
            _failures(
                f"{TARGET}, {ENV}, {ERROR}", f"{DURATION}_count{_sel(s, IS_DEPLOY, FAILED)}", config
            ),
            severity="critical",
            summary="Certificate deployments to {{ $labels.%s }} are failing" % TARGET,
            description=(
                '{{ $value | printf "%%.0f" }} deployment(s) to {{ $labels.%s }} in '
                "{{ $labels.%s }} failed with {{ $labels.%s }} in the last %s."
                % (TARGET, ENV, ERROR, config.failure_window)
            ),
        ),
        _alert(
            "CertificateServedDiffersFromIssued",
            f"{DRIFT}{_sel(s)} == 1",
            severity="critical",
            summary="Endpoint {{ $labels.%s }} serves another certificate than issued" % CERT_ID,
            description=(
                "The leaf served at {{ $labels.%s }}:{{ $labels.%s }} does not match the "
                "expected fingerprint: a deployment did not reach it, or it was rolled back."
                % (ADDRESS, PORT)
            ),
        ),
        _alert(
            "CertificateEndpointChainInvalid",
            f"{CHAIN_VALID}{_sel(s)} == 0",
            severity="critical",
            summary="Endpoint {{ $labels.%s }} serves a chain clients reject" % CERT_ID,
            description=(
                "The chain served at {{ $labels.%s }}:{{ $labels.%s }} does not verify against "
                "the trust bundle (expired, self-signed, missing intermediate or wrong name)."
                % (ADDRESS, PORT)
            ),
        ),
        _alert(
            "CertificateInventorySourceErrors",
            (
                f"sum by ({SOURCE_KIND}, {SOURCE}, {ERROR}) "
                f"(increase({INVENTORY_ERRORS}{_sel(s)}[10m])) > 0"
            ),
            severity="warning",
            for_="5m",
            summary="certobs cannot read {{ $labels.%s }}" % SOURCE,
            description=(
                "The inventory could not read {{ $labels.%s }} ({{ $labels.%s }}): "
                "{{ $labels.%s }}. Its certificates are not being watched."
                % (SOURCE, SOURCE_KIND, ERROR)
            ),
        ),
        _alert(
            "CertificateOperationFailureAnomaly",
            (
                "(certobs:operation_error_ratio:rate5m"
                " - certobs:operation_error_ratio:avg_over_time_1d)"
                " / clamp_min(certobs:operation_error_ratio:stddev_over_time_1d, 0.01)"
                f" > {config.anomaly_z}"
                f" and certobs:operation_rate:rate5m * 300 >= {config.traffic_floor}"
            ),
            severity="warning",
            summary=("{{ $labels.%s }} failures are unusually high" % OP),
            description=(
                "The failure ratio of {{ $labels.%s }} is more than %s standard deviations "
                "above its one-day baseline." % (OP, f"{config.anomaly_z:g}")
            ),
        ),
        _alert(
            "CertificateOperationLatencyAnomaly",
            (
                "(certobs:operation_duration_seconds:p95_5m"
                " - certobs:operation_duration_seconds:p95_avg_over_time_1d)"
                " / clamp_min(certobs:operation_duration_seconds:p95_stddev_over_time_1d, 0.05)"
                f" > {config.anomaly_z}"
                f" and certobs:operation_rate:rate5m * 300 >= {config.traffic_floor}"
            ),
            severity="warning",
            for_="10m",
            summary="{{ $labels.%s }} is unusually slow" % OP,
            description=(
                "The p95 latency of {{ $labels.%s }} has been more than %s standard deviations "
                "above its one-day baseline for 10 minutes." % (OP, f"{config.anomaly_z:g}")
            ),
        ),
        _alert(
            "CertificateRenewalErrorBudgetBurn",
            (
                f'sum by ({ISSUER}) (certobs:operation_errors:rate5m{{{OP}="renew"}})'
                f' / sum by ({ISSUER}) (certobs:operation_rate:rate5m{{{OP}="renew"}})'
                f" > {14.4 * (1 - config.renewal_slo):.6g}"
                f' and sum by ({ISSUER}) (certobs:operation_errors:rate1h{{{OP}="renew"}})'
                f' / sum by ({ISSUER}) (certobs:operation_rate:rate1h{{{OP}="renew"}})'
                f" > {14.4 * (1 - config.renewal_slo):.6g}"
            ),
            severity="critical",
            summary="Renewals through {{ $labels.%s }} burn the error budget fast" % ISSUER,
            description=(
                "At this failure rate the %s renewal success objective's 30-day error budget "
                "is spent in about two days." % _fraction(config.renewal_slo)
            ),
        ),
        _alert(
            "CertobsTelemetryAbsent",
            f"absent({ACTIVE}{_sel(s)}) and absent({COUNT}{_sel(s)})",
            severity="warning",
            for_="10m",
            summary="No certobs telemetry is arriving",
            description=(
                "Neither operations nor inventory have been reported for 10 minutes: the "
                "service, its exporter, the collector or the scrape is down."
            ),
        ),
        _alert(
            "CertobsCardinalityOverflow",
            f"sum by ({METRIC_NAME}) (increase({OVERFLOW}{_sel(s)}[15m])) > 0",
            severity="warning",
            summary="{{ $labels.%s }} is past its limit of attribute sets" % METRIC_NAME,
            description=(
                "Measurements of {{ $labels.%s }} with new attribute sets are folded into its "
                "otel.metric.overflow series: an attribute takes unbounded values, and "
                "dashboards lose the breakdown of what was folded." % METRIC_NAME
            ),
        ),
    ]
    runbook = config.runbook_url
    for alert in alerts:
        alert["annotations"]["runbook_url"] = alert["annotations"]["runbook_url"].replace(
            "{RUNBOOK}", runbook
        )
    group = {"name": "certobs-alerts", "interval": config.evaluation_interval, "rules": alerts}
    return {"groups": [group]}


def _fraction(value: float) -> str:
    return f"{value:.0%}" if value >= 0.1 else f"{value:.1%}"
