"""certobs settings: the environment variables it reads and how precedence is applied.

Precedence, for every setting: the argument given to :func:`certobs.configure`, then the
environment (certobs' ``CERTOBS_*`` variable, then OpenTelemetry's ``OTEL_*`` one), then the
default.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Final, TypeVar
from urllib.parse import urlsplit

import attrs

from certobs._errors import ConfigurationError

T = TypeVar("T")

# certobs' own variables.
CERTOBS_EXPORTER: Final = "CERTOBS_EXPORTER"
"""Where telemetry goes: ``otlp``, ``prometheus``, ``console`` or ``none``."""
CERTOBS_TRACES: Final = "CERTOBS_TRACES"
"""Whether to export spans: ``true`` or ``false`` (default: true for ``otlp`` only)."""
CERTOBS_CARDINALITY_LIMIT: Final = "CERTOBS_CARDINALITY_LIMIT"
"""Attribute sets each metric keeps before new ones fold into its overflow series."""

# OpenTelemetry's variables that certobs honours.
OTEL_SDK_DISABLED: Final = "OTEL_SDK_DISABLED"
OTEL_SERVICE_NAME: Final = "OTEL_SERVICE_NAME"
OTEL_RESOURCE_ATTRIBUTES: Final = "OTEL_RESOURCE_ATTRIBUTES"
OTEL_METRICS_EXPORTER: Final = "OTEL_METRICS_EXPORTER"
OTEL_METRIC_EXPORT_INTERVAL: Final = "OTEL_METRIC_EXPORT_INTERVAL"
OTEL_EXPORTER_OTLP_ENDPOINT: Final = "OTEL_EXPORTER_OTLP_ENDPOINT"
OTEL_EXPORTER_OTLP_PROTOCOL: Final = "OTEL_EXPORTER_OTLP_PROTOCOL"
OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: Final = "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"
OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: Final = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
OTEL_TRACES_EXPORTER: Final = "OTEL_TRACES_EXPORTER"
OTEL_EXPORTER_PROMETHEUS_HOST: Final = "OTEL_EXPORTER_PROMETHEUS_HOST"
OTEL_EXPORTER_PROMETHEUS_PORT: Final = "OTEL_EXPORTER_PROMETHEUS_PORT"

EXPORTERS: Final = ("otlp", "prometheus", "console", "none")
PROTOCOLS: Final = ("grpc", "http/protobuf")

DEFAULT_EXPORTER: Final = "otlp"
DEFAULT_PROTOCOL: Final = "grpc"
DEFAULT_EXPORT_INTERVAL: Final = 10.0
"""Seconds between metric exports. OpenTelemetry's default (60 s) is too slow for alerts that
must fire within a minute of a failure; 10 s leaves room for scrape and rule evaluation."""
DEFAULT_CARDINALITY_LIMIT: Final = 2000
"""The OpenTelemetry SDK's default limit of attribute sets per metric."""
DEFAULT_PROMETHEUS_HOST: Final = "localhost"
DEFAULT_PROMETHEUS_PORT: Final = 9464

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def _one_of(name: str, choices: tuple[str, ...]) -> Callable[[str], str]:
    def convert(value: str) -> str:
        value = value.strip().lower()
        if value not in choices:
            raise ConfigurationError(
                f"{name}={value!r} is not supported; accepted values: {', '.join(choices)}"
            )
        return value

    return convert


def _boolean(name: str) -> Callable[[str], bool]:
    def convert(value: str) -> bool:
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ConfigurationError(f"{name}={value!r} is not a boolean; use true or false")

    return convert


def _interval_ms(value: str) -> float:
    try:
        millis = float(value)
    except ValueError:
        raise ConfigurationError(
            f"{OTEL_METRIC_EXPORT_INTERVAL}={value!r} is not a number of milliseconds"
        ) from None
    return millis / 1000.0


def _whole(name: str, what: str) -> Callable[[str], int]:
    """Parse a whole number from the environment; the error says what it should be."""

    def convert(value: str) -> int:
        try:
            return int(value)
        except ValueError:
            raise ConfigurationError(f"{name}={value!r} is not {what}") from None

    return convert


def resolve(
    argument: T | None,
    environ: Mapping[str, str],
    variables: tuple[tuple[str, Callable[[str], T]], ...],
    default: T,
) -> T:
    """Apply the precedence: the argument, then the first variable set, then the default.

    Empty environment variables count as unset, as OpenTelemetry specifies.
    """
    if argument is not None:
        return argument
    for name, convert in variables:
        raw = environ.get(name, "").strip()
        if raw:
            return convert(raw)
    return default


def check_endpoint(name: str, value: str) -> str:
    """Return ``value`` if it is an http(s) URL with a host, else raise ConfigurationError."""
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or port == -1:
        raise ConfigurationError(
            f"{name}={value!r} is not a valid endpoint; expected a URL such as "
            "http://localhost:4317 (scheme http or https, a host, an optional port)"
        )
    return value


@attrs.frozen(kw_only=True)
class Settings:
    """The resolved settings of :func:`certobs.configure`."""

    disabled: bool
    exporter: str = attrs.field(validator=attrs.validators.in_(EXPORTERS))
    protocol: str = attrs.field(validator=attrs.validators.in_(PROTOCOLS))
    traces_protocol: str = attrs.field(validator=attrs.validators.in_(PROTOCOLS))
    endpoint: str | None
    endpoint_from_argument: bool
    headers: Mapping[str, str] | None
    export_interval: float = attrs.field()
    traces: bool
    service_name: str | None
    resource_attributes: Mapping[str, str | bool | int | float]
    prometheus_host: str
    prometheus_port: int = attrs.field()
    cardinality_limit: int = attrs.field(default=DEFAULT_CARDINALITY_LIMIT)

    @cardinality_limit.validator
    def _check_limit(self, attribute: attrs.Attribute[int], value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigurationError(
                f"cardinality_limit={value!r}: expected a whole number of attribute sets, 1 or "
                f"more (default {DEFAULT_CARDINALITY_LIMIT}; in the environment: "
                f"{CERTOBS_CARDINALITY_LIMIT})"
            )

    @export_interval.validator
    def _check_interval(self, attribute: attrs.Attribute[float], value: float) -> None:
        if not value > 0 or value == float("inf"):
            raise ConfigurationError(
                f"export_interval={value!r}: expected a positive number of seconds "
                f"(default {DEFAULT_EXPORT_INTERVAL:g}; {OTEL_METRIC_EXPORT_INTERVAL} is in ms)"
            )

    @prometheus_port.validator
    def _check_port(self, attribute: attrs.Attribute[int], value: int) -> None:
        if not 0 <= value <= 65535:
            raise ConfigurationError(
                f"prometheus_port={value!r}: expected 0-65535 (0 picks a free port)"
            )


def settings(
    *,
    environ: Mapping[str, str] | None = None,
    exporter: str | None = None,
    protocol: str | None = None,
    endpoint: str | None = None,
    headers: Mapping[str, str] | None = None,
    export_interval: float | None = None,
    traces: bool | None = None,
    service_name: str | None = None,
    resource_attributes: Mapping[str, str | bool | int | float] | None = None,
    prometheus_host: str | None = None,
    prometheus_port: int | None = None,
    cardinality_limit: int | None = None,
) -> Settings:
    """Resolve every setting from arguments, environment and defaults.

    Raises:
        ConfigurationError: Naming the setting, the value and what is accepted.
    """
    env = os.environ if environ is None else environ
    # As OpenTelemetry specifies: only "true" (any case) disables; anything else does not.
    disabled = env.get(OTEL_SDK_DISABLED, "").strip().lower() == "true"
    if exporter is not None:
        exporter = _one_of("exporter", EXPORTERS)(exporter)
    exporter = resolve(
        exporter,
        env,
        (
            (CERTOBS_EXPORTER, _one_of(CERTOBS_EXPORTER, EXPORTERS)),
            (OTEL_METRICS_EXPORTER, _one_of(OTEL_METRICS_EXPORTER, EXPORTERS)),
        ),
        DEFAULT_EXPORTER,
    )
    if protocol is not None:
        protocol = _one_of("protocol", PROTOCOLS)(protocol)
    general = (OTEL_EXPORTER_OTLP_PROTOCOL, _one_of(OTEL_EXPORTER_OTLP_PROTOCOL, PROTOCOLS))
    metrics_protocol = resolve(
        protocol,
        env,
        (
            (
                OTEL_EXPORTER_OTLP_METRICS_PROTOCOL,
                _one_of(OTEL_EXPORTER_OTLP_METRICS_PROTOCOL, PROTOCOLS),
            ),
            general,
        ),
        DEFAULT_PROTOCOL,
    )
    traces_protocol = resolve(
        protocol,
        env,
        (
            (
                OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
                _one_of(OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, PROTOCOLS),
            ),
            general,
        ),
        DEFAULT_PROTOCOL,
    )
    # An endpoint given as an argument is passed to the exporters; one from the environment is
    # only checked here and left to the exporters, which also honour the signal-specific
    # OTEL_EXPORTER_OTLP_{METRICS,TRACES}_ENDPOINT over it, as the specification says.
    from_argument = endpoint is not None
    if endpoint is not None:
        endpoint = check_endpoint("endpoint", endpoint)
    endpoint = resolve(
        endpoint,
        env,
        ((OTEL_EXPORTER_OTLP_ENDPOINT, lambda v: check_endpoint(OTEL_EXPORTER_OTLP_ENDPOINT, v)),),
        None,
    )
    if export_interval is not None and (
        isinstance(export_interval, bool) or not isinstance(export_interval, int | float)
    ):
        raise ConfigurationError(
            f"export_interval={export_interval!r}: expected a positive number of seconds"
        )
    interval = resolve(
        None if export_interval is None else float(export_interval),
        env,
        ((OTEL_METRIC_EXPORT_INTERVAL, _interval_ms),),
        DEFAULT_EXPORT_INTERVAL,
    )
    traces = resolve(
        traces,
        env,
        (
            (CERTOBS_TRACES, _boolean(CERTOBS_TRACES)),
            (OTEL_TRACES_EXPORTER, lambda v: v.strip().lower() != "none"),
        ),
        exporter == "otlp",
    )
    if traces and exporter == "prometheus":
        raise ConfigurationError(
            "traces=True with exporter='prometheus': Prometheus stores no spans; use "
            "exporter='otlp' for traces, or traces=False"
        )
    host = resolve(
        prometheus_host, env, ((OTEL_EXPORTER_PROMETHEUS_HOST, str),), DEFAULT_PROMETHEUS_HOST
    )
    port = resolve(
        prometheus_port,
        env,
        ((OTEL_EXPORTER_PROMETHEUS_PORT, _whole(OTEL_EXPORTER_PROMETHEUS_PORT, "a port number")),),
        DEFAULT_PROMETHEUS_PORT,
    )
    limit = resolve(
        cardinality_limit,
        env,
        (
            (
                CERTOBS_CARDINALITY_LIMIT,
                _whole(
                    CERTOBS_CARDINALITY_LIMIT,
                    f"a whole number of attribute sets (default {DEFAULT_CARDINALITY_LIMIT})",
                ),
            ),
        ),
        DEFAULT_CARDINALITY_LIMIT,
    )
    if service_name is not None and (not isinstance(service_name, str) or not service_name):
        raise ConfigurationError(f"service_name={service_name!r}: expected a non-empty string")
    return Settings(
        disabled=disabled,
        exporter=exporter,
        protocol=metrics_protocol,
        traces_protocol=traces_protocol,
        endpoint=endpoint,
        endpoint_from_argument=from_argument,
        headers=headers,
        export_interval=interval,
        traces=traces,
        service_name=service_name,
        resource_attributes=dict(resource_attributes or {}),
        prometheus_host=host,
        prometheus_port=port,
        cardinality_limit=limit,
    )
