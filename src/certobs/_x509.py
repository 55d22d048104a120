"""Certificates given to ``set_certificate()``: accepted forms and span attributes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Union

from cryptography import x509

from certobs._errors import log_once
from certobs.x509 import CertificateError, CertificateInfo

if TYPE_CHECKING:
    from opentelemetry.util.types import AttributeValue

CertificateLike = Union["x509.Certificate", bytes, str]
"""What certobs accepts as a certificate: a parsed certificate, or its PEM or DER encoding."""

__all__ = ["CertificateLike", "identity_attributes", "load"]


def load(value: CertificateLike) -> x509.Certificate | None:
    """Return ``value`` as a certificate, or None (warned once) when it is not one."""
    if isinstance(value, x509.Certificate):
        return value
    try:
        if isinstance(value, str):
            value = value.encode("ascii")
        if isinstance(value, bytes | bytearray | memoryview):
            data = bytes(value)
            if b"PRIVATE KEY" in data:
                log_once(
                    "x509-private-key",
                    "certobs: a certificate was given together with a private key; only the "
                    "certificate is read, the key is dropped and never recorded. Pass the "
                    "certificate alone (warned once)",
                )
            if b"-----BEGIN CERTIFICATE-----" in data:
                return x509.load_pem_x509_certificate(data)
            return x509.load_der_x509_certificate(data)
    # InvalidVersion is not a ValueError: a version field other than v1 or v3.
    except (ValueError, UnicodeEncodeError, x509.InvalidVersion) as exc:
        log_once(
            "x509-parse",
            "certobs: ignored a certificate that could not be parsed (%s); pass a "
            "cryptography.x509.Certificate or its PEM/DER bytes (warned once)",
            exc,
        )
        return None
    log_once(
        f"x509-type:{type(value).__name__}",
        "certobs: ignored a certificate of type %s; pass a cryptography.x509.Certificate or its "
        "PEM/DER bytes (warned once per type)",
        type(value).__name__,
    )
    return None


def identity_attributes(cert: x509.Certificate) -> dict[str, AttributeValue]:
    """Return the identity of a certificate as span attributes (never any key material).

    A certificate that parsed but has a field that cannot be decoded gives no attributes
    (warned once), like one that does not parse at all.
    """
    try:
        info = CertificateInfo.from_certificate(cert)
    except CertificateError as exc:
        log_once(
            "x509-parse",
            "certobs: ignored a certificate that could not be parsed (%s); pass a "
            "cryptography.x509.Certificate or its PEM/DER bytes (warned once)",
            exc,
        )
        return {}
    return info.span_attributes()
