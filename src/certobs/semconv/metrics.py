# Generated from model/ by model/generate.py; do not edit. Run `nox -s generate`.
"""Metric names of the certobs semantic conventions, and one helper per metric.

Each ``create_*`` helper creates its instrument on a given meter with the registry's name, unit,
description and, for histograms, bucket boundaries, so none of them can drift.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, NamedTuple

from opentelemetry.metrics import (
    CallbackT,
    Counter,
    Histogram,
    Meter,
    ObservableGauge,
    UpDownCounter,
)

__all__ = [
    "CERTIFICATE_BUNDLE_REQUESTS",
    "CERTIFICATE_COUNT",
    "CERTIFICATE_ENDPOINT_CHAIN_VALID",
    "CERTIFICATE_ENDPOINT_DRIFT",
    "CERTIFICATE_INVENTORY_ERRORS",
    "CERTIFICATE_NOT_AFTER",
    "CERTIFICATE_NOT_BEFORE",
    "CERTIFICATE_OPERATION_ACTIVE",
    "CERTIFICATE_OPERATION_DURATION",
    "CERTIFICATE_RENEWAL_LEAD_TIME",
    "CERTOBS_METRIC_OVERFLOW",
    "METRICS",
    "MetricDefinition",
    "create_certificate_bundle_requests",
    "create_certificate_count",
    "create_certificate_endpoint_chain_valid",
    "create_certificate_endpoint_drift",
    "create_certificate_inventory_errors",
    "create_certificate_not_after",
    "create_certificate_not_before",
    "create_certificate_operation_active",
    "create_certificate_operation_duration",
    "create_certificate_renewal_lead_time",
    "create_certobs_metric_overflow",
]


class MetricDefinition(NamedTuple):
    """A metric as the registry defines it."""

    name: str
    """The OpenTelemetry metric name."""
    instrument: str
    """One of ``counter``, ``updowncounter``, ``histogram``, ``gauge``."""
    unit: str
    """The UCUM unit."""
    description: str
    """The registry's brief."""
    attributes: tuple[str, ...]
    """The attribute keys the metric may carry."""
    bucket_boundaries: tuple[float, ...] | None
    """Explicit histogram bucket boundaries, for histograms."""
    prometheus_name: str
    """The base name Prometheus stores the metric under."""


CERTIFICATE_BUNDLE_REQUESTS: Final = "certificate.bundle.requests"
"""Number of requests for a certificate or trust bundle.

Instrument: counter. Unit: ``{request}``. Prometheus: ``certificate_bundle_requests_total``.
"""


CERTIFICATE_COUNT: Final = "certificate.count"
"""Number of certificates in the inventory.

Instrument: gauge. Unit: ``{certificate}``. Prometheus: ``certificate_count``.
"""


CERTIFICATE_ENDPOINT_CHAIN_VALID: Final = "certificate.endpoint.chain.valid"
"""Whether the chain a TLS endpoint serves verifies against the trust bundle (1) or not (0).

Instrument: gauge. Unit: ``{endpoint}``. Prometheus: ``certificate_endpoint_chain_valid``.
"""


CERTIFICATE_ENDPOINT_DRIFT: Final = "certificate.endpoint.drift"
"""Whether the leaf a TLS endpoint serves differs from the certificate expected there (1) or matches it (0).

Instrument: gauge. Unit: ``{endpoint}``. Prometheus: ``certificate_endpoint_drift``.
"""


CERTIFICATE_INVENTORY_ERRORS: Final = "certificate.inventory.errors"
"""Number of failures to read certificates from an inventory source.

Instrument: counter. Unit: ``{error}``. Prometheus: ``certificate_inventory_errors_total``.
"""


CERTIFICATE_NOT_AFTER: Final = "certificate.not_after"
"""End of a certificate's validity period, as Unix time.

Instrument: gauge. Unit: ``s``. Prometheus: ``certificate_not_after_seconds``.
"""


CERTIFICATE_NOT_BEFORE: Final = "certificate.not_before"
"""Start of a certificate's validity period, as Unix time.

Instrument: gauge. Unit: ``s``. Prometheus: ``certificate_not_before_seconds``.
"""


CERTIFICATE_OPERATION_ACTIVE: Final = "certificate.operation.active"
"""Number of certificate lifecycle operations in progress.

Instrument: updowncounter. Unit: ``{operation}``. Prometheus: ``certificate_operation_active``.
"""


CERTIFICATE_OPERATION_DURATION: Final = "certificate.operation.duration"
"""Duration of certificate lifecycle operations.

Instrument: histogram. Unit: ``s``. Prometheus: ``certificate_operation_duration_seconds``.
"""


CERTIFICATE_RENEWAL_LEAD_TIME: Final = "certificate.renewal.lead_time"
"""Validity left on the old certificate when it was successfully renewed.

Instrument: histogram. Unit: ``s``. Prometheus: ``certificate_renewal_lead_time_seconds``.
"""


CERTOBS_METRIC_OVERFLOW: Final = "certobs.metric.overflow"
"""Measurements folded into a metric's overflow series because it reached its limit of attribute sets.

Instrument: counter. Unit: ``{measurement}``. Prometheus: ``certobs_metric_overflow_total``.
"""


METRICS: Final[dict[str, MetricDefinition]] = {
    CERTIFICATE_BUNDLE_REQUESTS: MetricDefinition(
        name=CERTIFICATE_BUNDLE_REQUESTS,
        instrument="counter",
        unit="{request}",
        description="Number of requests for a certificate or trust bundle.",
        attributes=(
            "certificate.bundle.name",
            "certificate.bundle.format",
            "error.type",
        ),
        bucket_boundaries=None,
        prometheus_name="certificate_bundle_requests_total",
    ),
    CERTIFICATE_COUNT: MetricDefinition(
        name=CERTIFICATE_COUNT,
        instrument="gauge",
        unit="{certificate}",
        description="Number of certificates in the inventory.",
        attributes=(
            "certificate.status",
            "certificate.issuer.name",
            "certificate.key.algorithm",
        ),
        bucket_boundaries=None,
        prometheus_name="certificate_count",
    ),
    CERTIFICATE_ENDPOINT_CHAIN_VALID: MetricDefinition(
        name=CERTIFICATE_ENDPOINT_CHAIN_VALID,
        instrument="gauge",
        unit="{endpoint}",
        description="Whether the chain a TLS endpoint serves verifies against the trust bundle (1) or not (0).",
        attributes=(
            "certificate.id",
            "server.address",
            "server.port",
            "tls.protocol.version",
        ),
        bucket_boundaries=None,
        prometheus_name="certificate_endpoint_chain_valid",
    ),
    CERTIFICATE_ENDPOINT_DRIFT: MetricDefinition(
        name=CERTIFICATE_ENDPOINT_DRIFT,
        instrument="gauge",
        unit="{endpoint}",
        description="Whether the leaf a TLS endpoint serves differs from the certificate expected there (1) or matches it (0).",
        attributes=(
            "certificate.id",
            "server.address",
            "server.port",
        ),
        bucket_boundaries=None,
        prometheus_name="certificate_endpoint_drift",
    ),
    CERTIFICATE_INVENTORY_ERRORS: MetricDefinition(
        name=CERTIFICATE_INVENTORY_ERRORS,
        instrument="counter",
        unit="{error}",
        description="Number of failures to read certificates from an inventory source.",
        attributes=(
            "certificate.source.kind",
            "error.type",
            "certificate.source.name",
        ),
        bucket_boundaries=None,
        prometheus_name="certificate_inventory_errors_total",
    ),
    CERTIFICATE_NOT_AFTER: MetricDefinition(
        name=CERTIFICATE_NOT_AFTER,
        instrument="gauge",
        unit="s",
        description="End of a certificate's validity period, as Unix time.",
        attributes=(
            "certificate.id",
            "certificate.subject.common_name",
            "certificate.issuer.name",
            "certificate.source.name",
        ),
        bucket_boundaries=None,
        prometheus_name="certificate_not_after_seconds",
    ),
    CERTIFICATE_NOT_BEFORE: MetricDefinition(
        name=CERTIFICATE_NOT_BEFORE,
        instrument="gauge",
        unit="s",
        description="Start of a certificate's validity period, as Unix time.",
        attributes=(
            "certificate.id",
            "certificate.subject.common_name",
            "certificate.issuer.name",
            "certificate.source.name",
        ),
        bucket_boundaries=None,
        prometheus_name="certificate_not_before_seconds",
    ),
    CERTIFICATE_OPERATION_ACTIVE: MetricDefinition(
        name=CERTIFICATE_OPERATION_ACTIVE,
        instrument="updowncounter",
        unit="{operation}",
        description="Number of certificate lifecycle operations in progress.",
        attributes=("certificate.operation.name",),
        bucket_boundaries=None,
        prometheus_name="certificate_operation_active",
    ),
    CERTIFICATE_OPERATION_DURATION: MetricDefinition(
        name=CERTIFICATE_OPERATION_DURATION,
        instrument="histogram",
        unit="s",
        description="Duration of certificate lifecycle operations.",
        attributes=(
            "certificate.operation.name",
            "certificate.issuer.name",
            "certificate.deployment.target.type",
            "deployment.environment.name",
            "certificate.operation.trigger",
            "error.type",
        ),
        bucket_boundaries=(
            0.01,
            0.025,
            0.05,
            0.1,
            0.25,
            0.5,
            1.0,
            2.5,
            5.0,
            10.0,
            30.0,
            60.0,
            120.0,
            300.0,
            600.0,
        ),
        prometheus_name="certificate_operation_duration_seconds",
    ),
    CERTIFICATE_RENEWAL_LEAD_TIME: MetricDefinition(
        name=CERTIFICATE_RENEWAL_LEAD_TIME,
        instrument="histogram",
        unit="s",
        description="Validity left on the old certificate when it was successfully renewed.",
        attributes=("certificate.issuer.name",),
        bucket_boundaries=(
            3600.0,
            21600.0,
            43200.0,
            86400.0,
            172800.0,
            259200.0,
            604800.0,
            1209600.0,
            1814400.0,
            2592000.0,
            3888000.0,
            5184000.0,
            7776000.0,
        ),
        prometheus_name="certificate_renewal_lead_time_seconds",
    ),
    CERTOBS_METRIC_OVERFLOW: MetricDefinition(
        name=CERTOBS_METRIC_OVERFLOW,
        instrument="counter",
        unit="{measurement}",
        description="Measurements folded into a metric's overflow series because it reached its limit of attribute sets.",
        attributes=("certobs.metric.name",),
        bucket_boundaries=None,
        prometheus_name="certobs_metric_overflow_total",
    ),
}
"""Every metric of the registry, by name."""


def create_certificate_bundle_requests(meter: Meter) -> Counter:
    """Create the ``certificate.bundle.requests`` counter: number of requests for a certificate or trust bundle.

    Args:
        meter: The meter to create the instrument on.

    Returns:
        The instrument.

    """
    return meter.create_counter(
        name=CERTIFICATE_BUNDLE_REQUESTS,
        unit="{request}",
        description="Number of requests for a certificate or trust bundle.",
    )


def create_certificate_count(meter: Meter, callbacks: Sequence[CallbackT]) -> ObservableGauge:
    """Create the ``certificate.count`` gauge: number of certificates in the inventory.

    Args:
        meter: The meter to create the instrument on.
        callbacks: Callbacks that yield the observations at collection time.

    Returns:
        The instrument.

    """
    return meter.create_observable_gauge(
        name=CERTIFICATE_COUNT,
        callbacks=callbacks,
        unit="{certificate}",
        description="Number of certificates in the inventory.",
    )


def create_certificate_endpoint_chain_valid(
    meter: Meter, callbacks: Sequence[CallbackT]
) -> ObservableGauge:
    """Create the ``certificate.endpoint.chain.valid`` gauge: whether the chain a tls endpoint serves verifies against the trust bundle (1) or not (0).

    Args:
        meter: The meter to create the instrument on.
        callbacks: Callbacks that yield the observations at collection time.

    Returns:
        The instrument.

    """
    return meter.create_observable_gauge(
        name=CERTIFICATE_ENDPOINT_CHAIN_VALID,
        callbacks=callbacks,
        unit="{endpoint}",
        description="Whether the chain a TLS endpoint serves verifies against the trust bundle (1) or not (0).",
    )


def create_certificate_endpoint_drift(
    meter: Meter, callbacks: Sequence[CallbackT]
) -> ObservableGauge:
    """Create the ``certificate.endpoint.drift`` gauge: whether the leaf a tls endpoint serves differs from the certificate expected there (1) or matches it (0).

    Args:
        meter: The meter to create the instrument on.
        callbacks: Callbacks that yield the observations at collection time.

    Returns:
        The instrument.

    """
    return meter.create_observable_gauge(
        name=CERTIFICATE_ENDPOINT_DRIFT,
        callbacks=callbacks,
        unit="{endpoint}",
        description="Whether the leaf a TLS endpoint serves differs from the certificate expected there (1) or matches it (0).",
    )


def create_certificate_inventory_errors(meter: Meter) -> Counter:
    """Create the ``certificate.inventory.errors`` counter: number of failures to read certificates from an inventory source.

    Args:
        meter: The meter to create the instrument on.

    Returns:
        The instrument.

    """
    return meter.create_counter(
        name=CERTIFICATE_INVENTORY_ERRORS,
        unit="{error}",
        description="Number of failures to read certificates from an inventory source.",
    )


def create_certificate_not_after(meter: Meter, callbacks: Sequence[CallbackT]) -> ObservableGauge:
    """Create the ``certificate.not_after`` gauge: end of a certificate's validity period, as unix time.

    Args:
        meter: The meter to create the instrument on.
        callbacks: Callbacks that yield the observations at collection time.

    Returns:
        The instrument.

    """
    return meter.create_observable_gauge(
        name=CERTIFICATE_NOT_AFTER,
        callbacks=callbacks,
        unit="s",
        description="End of a certificate's validity period, as Unix time.",
    )


def create_certificate_not_before(meter: Meter, callbacks: Sequence[CallbackT]) -> ObservableGauge:
    """Create the ``certificate.not_before`` gauge: start of a certificate's validity period, as unix time.

    Args:
        meter: The meter to create the instrument on.
        callbacks: Callbacks that yield the observations at collection time.

    Returns:
        The instrument.

    """
    return meter.create_observable_gauge(
        name=CERTIFICATE_NOT_BEFORE,
        callbacks=callbacks,
        unit="s",
        description="Start of a certificate's validity period, as Unix time.",
    )


def create_certificate_operation_active(meter: Meter) -> UpDownCounter:
    """Create the ``certificate.operation.active`` updowncounter: number of certificate lifecycle operations in progress.

    Args:
        meter: The meter to create the instrument on.

    Returns:
        The instrument.

    """
    return meter.create_up_down_counter(
        name=CERTIFICATE_OPERATION_ACTIVE,
        unit="{operation}",
        description="Number of certificate lifecycle operations in progress.",
    )


def create_certificate_operation_duration(meter: Meter) -> Histogram:
    """Create the ``certificate.operation.duration`` histogram: duration of certificate lifecycle operations.

    Args:
        meter: The meter to create the instrument on.

    Returns:
        The instrument.

    """
    return meter.create_histogram(
        name=CERTIFICATE_OPERATION_DURATION,
        unit="s",
        description="Duration of certificate lifecycle operations.",
        explicit_bucket_boundaries_advisory=METRICS[
            CERTIFICATE_OPERATION_DURATION
        ].bucket_boundaries,
    )


def create_certificate_renewal_lead_time(meter: Meter) -> Histogram:
    """Create the ``certificate.renewal.lead_time`` histogram: validity left on the old certificate when it was successfully renewed.

    Args:
        meter: The meter to create the instrument on.

    Returns:
        The instrument.

    """
    return meter.create_histogram(
        name=CERTIFICATE_RENEWAL_LEAD_TIME,
        unit="s",
        description="Validity left on the old certificate when it was successfully renewed.",
        explicit_bucket_boundaries_advisory=METRICS[
            CERTIFICATE_RENEWAL_LEAD_TIME
        ].bucket_boundaries,
    )


def create_certobs_metric_overflow(meter: Meter) -> Counter:
    """Create the ``certobs.metric.overflow`` counter: measurements folded into a metric's overflow series because it reached its limit of attribute sets.

    Args:
        meter: The meter to create the instrument on.

    Returns:
        The instrument.

    """
    return meter.create_counter(
        name=CERTOBS_METRIC_OVERFLOW,
        unit="{measurement}",
        description="Measurements folded into a metric's overflow series because it reached its limit of attribute sets.",
    )
