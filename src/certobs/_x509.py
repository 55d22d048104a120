"""Reading X.509 certificates for span attributes. Imports ``cryptography`` when first used."""

from __future__ import annotations

from typing import TYPE_CHECKING, Union

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from certobs._errors import log_once
from certobs.semconv import attributes as a
from certobs.semconv.attributes import CertificateKeyAlgorithmValues as KeyAlg

if TYPE_CHECKING:
    from opentelemetry.util.types import AttributeValue

CertificateLike = Union["x509.Certificate", bytes, str]
"""What certobs accepts as a certificate: a parsed certificate, or its PEM or DER encoding."""


def load(value: CertificateLike) -> x509.Certificate | None:
    """Return ``value`` as a certificate, or None (warned once) when it is not one."""
    if isinstance(value, x509.Certificate):
        return value
    try:
        if isinstance(value, str):
            value = value.encode("ascii")
        if isinstance(value, bytes | bytearray | memoryview):
            data = bytes(value)
            if b"-----BEGIN CERTIFICATE-----" in data:
                return x509.load_pem_x509_certificate(data)
            return x509.load_der_x509_certificate(data)
    except (ValueError, UnicodeEncodeError) as exc:
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


def key_algorithm(cert: x509.Certificate) -> KeyAlg:
    """Return the registry's name for the certificate's public key algorithm."""
    try:
        key = cert.public_key()
    except (ValueError, x509.UnsupportedGeneralNameType):
        return KeyAlg.OTHER
    for kind, value in (
        (rsa.RSAPublicKey, KeyAlg.RSA),
        (ec.EllipticCurvePublicKey, KeyAlg.EC),
        (ed25519.Ed25519PublicKey, KeyAlg.ED25519),
        (ed448.Ed448PublicKey, KeyAlg.ED448),
        (dsa.DSAPublicKey, KeyAlg.DSA),
    ):
        if isinstance(key, kind):
            return value
    return KeyAlg.OTHER


def _common_name(name: x509.Name) -> str | None:
    values = name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    if not values:
        return None
    value = values[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _alternative_names(cert: x509.Certificate) -> list[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    names: list[str] = list(ext.get_values_for_type(x509.DNSName))
    names += [str(ip) for ip in ext.get_values_for_type(x509.IPAddress)]
    return names


def _iso(moment: object) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")  # type: ignore[attr-defined,no-any-return]


def identity_attributes(cert: x509.Certificate) -> dict[str, AttributeValue]:
    """Return the identity of a certificate as span attributes (never any key material)."""
    attrs: dict[str, AttributeValue] = {
        a.CERTIFICATE_SUBJECT_DISTINGUISHED_NAME: cert.subject.rfc4514_string(),
        a.CERTIFICATE_ISSUER_DISTINGUISHED_NAME: cert.issuer.rfc4514_string(),
        a.CERTIFICATE_SERIAL_NUMBER: format(cert.serial_number, "X"),
        a.CERTIFICATE_FINGERPRINT_SHA256: cert.fingerprint(hashes.SHA256()).hex().upper(),
        a.CERTIFICATE_VALIDITY_NOT_BEFORE: _iso(cert.not_valid_before_utc),
        a.CERTIFICATE_VALIDITY_NOT_AFTER: _iso(cert.not_valid_after_utc),
        a.CERTIFICATE_KEY_ALGORITHM: key_algorithm(cert).value,
    }
    cn = _common_name(cert.subject)
    if cn:
        attrs[a.CERTIFICATE_SUBJECT_COMMON_NAME] = cn
    sans = _alternative_names(cert)
    if sans:
        attrs[a.CERTIFICATE_SUBJECT_ALTERNATIVE_NAMES] = sans
    return attrs


__all__ = ["CertificateLike", "identity_attributes", "key_algorithm", "load"]
