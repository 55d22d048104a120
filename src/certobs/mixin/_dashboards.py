"""Grafana dashboards, built with grafana-foundation-sdk from the registry's names.

Pinned to the SDK build for Grafana 11.6 (``grafana-foundation-sdk==1769699379!11.6.0``): the
SDK's versions carry a timestamp epoch, so an unpinned install picks the Grafana 10.1 build.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from certobs.mixin._rules import (
    ACTIVE,
    COUNT,
    DURATION,
    ERROR,
    FAILED,
    INVENTORY_ERRORS,
    IS_DEPLOY,
    ISSUER,
    NOT_AFTER,
    OP,
    TARGET,
    _label,
    _sel,
)
from certobs.semconv import attributes as a
from certobs.semconv import metrics as m
from certobs.semconv import prometheus_name

if TYPE_CHECKING:
    from certobs.mixin import MixinConfig

__all__ = ["dashboards"]

BUNDLES = prometheus_name(m.CERTIFICATE_BUNDLE_REQUESTS)
STATUS = _label(a.CERTIFICATE_STATUS)
REASON = ERROR
LE_7D = 'le="604800.0"'


def _sdk() -> Any:
    try:
        from grafana_foundation_sdk.builders import dashboard, prometheus, stat, table, timeseries
        from grafana_foundation_sdk.cog.encoder import JSONEncoder
    except ImportError:
        from certobs._errors import ConfigurationError

        raise ConfigurationError(
            "dashboards need grafana-foundation-sdk: pip install 'certobs[mixin]'"
        ) from None
    return dashboard, prometheus, stat, table, timeseries, JSONEncoder


_DATASOURCE: dict[str, str] = {}


def _query(
    prometheus: Any, expr: str, legend: str = "", *, instant: bool = False, exemplars: bool = False
) -> Any:
    query = prometheus.Dataquery().expr(expr)
    if _DATASOURCE:
        from grafana_foundation_sdk.models.dashboard import DataSourceRef

        query = query.datasource(DataSourceRef(type_val="prometheus", uid=_DATASOURCE["uid"]))
    if exemplars:
        # Exemplars link latency points to the traces of the operations behind them.
        query = query.exemplar(True)
    if instant:
        # A table of the current state: one evaluation, not one per step of the time range
        # (over 100,000 certificates, that is the difference between milliseconds and seconds).
        query = query.instant()
    if legend:
        query = query.legend_format(legend)
    return query


def operations(config: MixinConfig) -> Any:
    """The SRE view: what the service does, how well, how fast, and what it holds."""
    dashboard, prometheus, stat, table, timeseries, _ = _sdk()
    s = config
    ok = f"sum by ({OP}) (rate({DURATION}_count{_sel(s)}[5m]))"
    bad = f"sum by ({OP}) (rate({DURATION}_count{_sel(s, FAILED)}[5m]))"
    panels = [
        timeseries.Panel()
        .title("Operations per second, by operation")
        .unit("ops")
        .with_target(_query(prometheus, ok, f"{{{{{OP}}}}}")),
        timeseries.Panel()
        .title("Success ratio, by operation")
        .unit("percentunit")
        .min(0)
        .max(1)
        .with_target(_query(prometheus, f"1 - ((({bad}) or ({ok}) * 0) / {ok})", f"{{{{{OP}}}}}")),
        timeseries.Panel()
        .title("p95 latency, by operation and issuer")
        .unit("s")
        .with_target(
            _query(
                prometheus,
                f"histogram_quantile(0.95, sum by (le, {OP}, {ISSUER}) "
                f"(rate({DURATION}_bucket{_sel(s)}[5m])))",
                f"{{{{{OP}}}}} {{{{{ISSUER}}}}}",
                exemplars=True,
            )
        ),
        timeseries.Panel()
        .title("p50 latency of deployments, by target")
        .unit("s")
        .with_target(
            _query(
                prometheus,
                f"histogram_quantile(0.5, sum by (le, {TARGET}) "
                f"(rate({DURATION}_bucket{_sel(s, IS_DEPLOY)}[5m])))",
                f"{{{{{TARGET}}}}}",
            )
        ),
        timeseries.Panel()
        .title("Failures in the last hour, by error type")
        .with_target(
            _query(
                prometheus,
                f"sum by ({ERROR}) (increase({DURATION}_count{_sel(s, FAILED)}[1h])) or vector(0)",
                f"{{{{{ERROR}}}}}",
            )
        ),
        timeseries.Panel()
        .title("Operations in progress")
        .with_target(_query(prometheus, f"sum by ({OP}) ({ACTIVE}{_sel(s)})", f"{{{{{OP}}}}}")),
        timeseries.Panel()
        .title("Bundle requests per second")
        .unit("reqps")
        .with_target(
            _query(
                prometheus,
                f"sum by ({_label(a.CERTIFICATE_BUNDLE_NAME)}) (rate({BUNDLES}{_sel(s)}[5m]))",
                f"{{{{{_label(a.CERTIFICATE_BUNDLE_NAME)}}}}}",
            )
        ),
        table.Panel()
        .title("Soonest expiries (days left)")
        .with_target(
            _query(
                prometheus, f"bottomk(20, ({NOT_AFTER}{_sel(s)} - time()) / 86400)", instant=True
            )
        ),
        stat.Panel()
        .title("Certificates by status")
        .with_target(
            _query(prometheus, f"sum by ({STATUS}) ({COUNT}{_sel(s)})", f"{{{{{STATUS}}}}}")
        ),
        timeseries.Panel()
        .title("Expiry wall: certificates expiring within 7, 30, 90 days")
        .with_target(_query(prometheus, "certobs:certificates_expiring_within:7d", "7 days"))
        .with_target(_query(prometheus, "certobs:certificates_expiring_within:30d", "30 days"))
        .with_target(_query(prometheus, "certobs:certificates_expiring_within:90d", "90 days")),
        timeseries.Panel()
        .title("Inventory errors in the last hour, by reason")
        .with_target(
            _query(
                prometheus,
                f"sum by ({REASON}) (increase({INVENTORY_ERRORS}{_sel(s)}[1h])) or vector(0)",
                f"{{{{{REASON}}}}}",
            )
        ),
    ]
    builder = (
        dashboard.Dashboard(f"{config.dashboard_title_prefix} operations")
        .uid("certobs-operations")
        .tags(["certobs", "certificates"])
        .refresh("30s")
        .time("now-6h", "now")
    )
    for panel in panels:
        builder = builder.with_panel(panel)
    return builder


def executive(config: MixinConfig) -> Any:
    """The leaders' view, on recording rules so it stays fast over months of data."""
    dashboard, prometheus, stat, _table, timeseries, _ = _sdk()

    def success(operation: str) -> str:
        errors = f'sum(certobs:operation_errors:rate1d{{{OP}="{operation}"}}) or vector(0)'
        return f'1 - ({errors}) / sum(certobs:operation_rate:rate1d{{{OP}="{operation}"}})'

    panels = [
        stat.Panel()
        .title("Certificates under management")
        .with_target(_query(prometheus, "sum(certobs:certificates:count)")),
        stat.Panel()
        .title(f"Renewal success (objective {config.renewal_slo:.0%})")
        .unit("percentunit")
        .with_target(_query(prometheus, success("renew"))),
        stat.Panel()
        .title("Automation rate: renewals nobody started by hand")
        .unit("percentunit")
        .with_target(_query(prometheus, "certobs:renewal_automation_ratio:rate1d")),
        stat.Panel()
        .title("Deployment success")
        .unit("percentunit")
        .with_target(_query(prometheus, success("deploy"))),
        stat.Panel()
        .title("Mean validity left at renewal")
        .unit("s")
        .with_target(_query(prometheus, "certobs:renewal_lead_time_seconds:avg_1d")),
        stat.Panel()
        .title("Near misses: renewed with under 7 days left (30 days)")
        .with_target(
            _query(
                prometheus,
                f"sum(increase({prometheus_name(m.CERTIFICATE_RENEWAL_LEAD_TIME)}_bucket"
                f"{_sel(config, LE_7D)}[30d])) or vector(0)",
            )
        ),
        stat.Panel()
        .title("Expiry risk ahead: within 7 / 30 / 90 days")
        .with_target(_query(prometheus, "certobs:certificates_expiring_within:7d", "7 days"))
        .with_target(_query(prometheus, "certobs:certificates_expiring_within:30d", "30 days"))
        .with_target(_query(prometheus, "certobs:certificates_expiring_within:90d", "90 days")),
        timeseries.Panel()
        .title("Operations per day, month over month")
        .with_target(
            _query(
                prometheus, f"sum by ({OP}) (certobs:operation_rate:rate1d) * 86400", "{{%s}}" % OP
            )
        ),
        timeseries.Panel()
        .title("Expiring within 7 days: forecast a week ahead")
        .with_target(
            _query(prometheus, "certobs:certificates_expiring_within:7d_predicted_7d", "forecast")
        ),
    ]
    builder = (
        dashboard.Dashboard(f"{config.dashboard_title_prefix} executive view")
        .uid("certobs-executive")
        .tags(["certobs", "certificates", "executive"])
        .refresh("5m")
        .time("now-30d", "now")
    )
    for panel in panels:
        builder = builder.with_panel(panel)
    return builder


def dashboards(config: MixinConfig) -> dict[str, str]:
    """Both dashboards as JSON text, by file name."""
    *_, encoder = _sdk()
    _DATASOURCE.clear()
    if config.datasource_uid:
        _DATASOURCE["uid"] = config.datasource_uid
    out = {}
    for name, build in (
        ("certobs-operations.json", operations),
        ("certobs-executive.json", executive),
    ):
        built = build(config).build()
        text = json.dumps(json.loads(json.dumps(built, cls=encoder)), indent=2, sort_keys=True)
        out[name] = text + "\n"
    return out
