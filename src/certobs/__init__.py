"""certobs: observability for the certificate lifecycle, through OpenTelemetry.

Decorate lifecycle functions (``@certobs.renewal``), wrap blocks
(``with certobs.deployment(target_type="nginx") as op:``) and export through OpenTelemetry with
:func:`certobs.configure`, or through the application's own OpenTelemetry setup.

Importing certobs has no side effects and loads neither the OpenTelemetry SDK, nor an exporter,
nor ``cryptography``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from certobs._errors import ConfigurationError
from certobs._operation import AttributeValue as _AttributeValue
from certobs._operation import (
    LifecyclePreset,
    Operation,
    OperationHandle,
    current_operation,
    error_type,
)
from certobs._recording import record_bundle_request
from certobs.semconv.attributes import CertificateOperationNameValues as _Op

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from certobs._export import configure, shutdown

__all__ = [
    "ConfigurationError",
    "LifecyclePreset",
    "Operation",
    "OperationHandle",
    "__version__",
    "bundle_build",
    "configure",
    "current_operation",
    "deployment",
    "error_type",
    "issuance",
    "operation",
    "record_bundle_request",
    "renewal",
    "revocation",
    "shutdown",
    "validation",
]


def operation(
    name: str,
    *,
    issuer: str | None = None,
    target_type: str | None = None,
    environment: str | None = None,
    attributes: Mapping[str, _AttributeValue] | None = None,
    arg_attributes: Mapping[str, str] | None = None,
    metric_attributes: Iterable[str] | None = None,
    allow_identity: bool = False,
) -> Operation:
    """Return an operation with a custom name, usable as decorator and context manager.

    Prefer the presets for the standard lifecycle steps; use this for a step of your own
    (``certobs.operation("ocsp.refresh")``). Keep names few and fixed: they are metric labels.

    Args:
        name: The value of ``certificate.operation.name``; the span is ``certificate.<name>``.
        issuer: Static ``certificate.issuer.name``.
        target_type: Static ``certificate.deployment.target.type``.
        environment: Static ``deployment.environment.name``.
        attributes: Further static attributes. Keys of the operation metric go on metric and
            span; any other key goes on the span only.
        arg_attributes: Maps parameter names of the decorated function to attribute names; the
            argument's value is set per call.
        metric_attributes: Further attribute names that go on the duration metric as labels
            (their values must be low-cardinality strings). Names that identify a certificate
            (serial number, fingerprint, subject, SANs) are refused unless ``allow_identity``.
        allow_identity: Allow identity attributes in ``metric_attributes``.

    Returns:
        The operation.

    Raises:
        ConfigurationError: On an empty name, an attribute value of an unsupported type, or
            an identity or secret attribute in ``metric_attributes``.
    """
    return Operation(
        name,
        issuer=issuer,
        target_type=target_type,
        environment=environment,
        attributes=attributes,
        arg_attributes=arg_attributes,
        metric_attributes=metric_attributes,
        allow_identity=allow_identity,
    )


issuance = LifecyclePreset(
    _Op.ISSUE.value, "Instrument certificate issuance (``certificate.operation.name=issue``)."
)
renewal = LifecyclePreset(
    _Op.RENEW.value,
    "Instrument certificate renewal (``renew``). Pass the replaced certificate to "
    "``op.set_certificate(new, previous=old)`` to record ``certificate.renewal.lead_time``.",
)
revocation = LifecyclePreset(
    _Op.REVOKE.value, "Instrument certificate revocation (``certificate.operation.name=revoke``)."
)
deployment = LifecyclePreset(
    _Op.DEPLOY.value,
    "Instrument deployment of a certificate or bundle to a target (``deploy``); set "
    "``target_type`` and ``environment``.",
)
bundle_build = LifecyclePreset(
    _Op.BUNDLE_BUILD.value,
    "Instrument building a trust or chain bundle (``certificate.operation.name=bundle.build``).",
)
validation = LifecyclePreset(
    _Op.VALIDATE.value,
    "Instrument validation of a certificate or chain (``certificate.operation.name=validate``).",
)


def __getattr__(name: str) -> Any:
    # configure() and shutdown() load on first use: their module is a fifth of the import
    # time, and an application that sets up OpenTelemetry itself never needs them.
    if name in ("configure", "shutdown"):
        from certobs import _export

        value = getattr(_export, name)
        globals()[name] = value
        return value
    # The version is read from the installed metadata on first use, not at import.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("certobs")
        except PackageNotFoundError:  # running from a source tree that is not installed
            value = "0+unknown"
        globals()["__version__"] = value
        return value
    raise AttributeError(f"module 'certobs' has no attribute {name!r}")
