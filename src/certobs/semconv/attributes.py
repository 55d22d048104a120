# Generated from model/ by model/generate.py; do not edit. Run `nox -s generate`.
"""Attribute names and enumerated values of the certobs semantic conventions.

Every name certobs records comes from here. Attributes marked "OpenTelemetry" are defined by the
OpenTelemetry semantic conventions and reused unchanged.
"""

from __future__ import annotations

from enum import Enum
from typing import Final

__all__ = [
    "CERTIFICATE_BUNDLE_FORMAT",
    "CERTIFICATE_BUNDLE_NAME",
    "CERTIFICATE_DEPLOYMENT_TARGET_TYPE",
    "CERTIFICATE_FINGERPRINT_SHA256",
    "CERTIFICATE_ID",
    "CERTIFICATE_ISSUER_DISTINGUISHED_NAME",
    "CERTIFICATE_ISSUER_NAME",
    "CERTIFICATE_KEY_ALGORITHM",
    "CERTIFICATE_OPERATION_NAME",
    "CERTIFICATE_OPERATION_TRIGGER",
    "CERTIFICATE_SERIAL_NUMBER",
    "CERTIFICATE_SOURCE_KIND",
    "CERTIFICATE_SOURCE_NAME",
    "CERTIFICATE_STATUS",
    "CERTIFICATE_SUBJECT_ALTERNATIVE_NAMES",
    "CERTIFICATE_SUBJECT_COMMON_NAME",
    "CERTIFICATE_SUBJECT_DISTINGUISHED_NAME",
    "CERTIFICATE_VALIDITY_NOT_AFTER",
    "CERTIFICATE_VALIDITY_NOT_BEFORE",
    "CERTOBS_METRIC_NAME",
    "DEPLOYMENT_ENVIRONMENT_NAME",
    "ERROR_TYPE",
    "SERVER_ADDRESS",
    "SERVER_PORT",
    "TLS_PROTOCOL_VERSION",
    "CertificateBundleFormatValues",
    "CertificateKeyAlgorithmValues",
    "CertificateOperationNameValues",
    "CertificateOperationTriggerValues",
    "CertificateSourceKindValues",
    "CertificateStatusValues",
    "ErrorTypeValues",
]

CERTIFICATE_BUNDLE_FORMAT: Final = "certificate.bundle.format"
"""The encoding of the bundle.

Type: ``enum``. Examples: "pem".
"""

CERTIFICATE_BUNDLE_NAME: Final = "certificate.bundle.name"
"""The name of the bundle, as configured by the service.

Type: ``string``. Examples: "public-roots", "internal-chain".
"""

CERTIFICATE_DEPLOYMENT_TARGET_TYPE: Final = "certificate.deployment.target.type"
"""The kind of system a certificate is deployed to.

Type: ``string``. Examples: "nginx", "aws_alb", "kubernetes_secret", "f5".
"""

CERTIFICATE_FINGERPRINT_SHA256: Final = "certificate.fingerprint.sha256"
"""The SHA-256 digest of the certificate's DER encoding, upper-case hexadecimal.

Type: ``string``. Examples: "0F8E2C...".
"""

CERTIFICATE_ID: Final = "certificate.id"
"""The service's own identifier for a certificate it manages.

Type: ``string``. Examples: "api-gateway", "mail.example.com".
"""

CERTIFICATE_ISSUER_DISTINGUISHED_NAME: Final = "certificate.issuer.distinguished_name"
"""The full distinguished name of the certificate's issuer, RFC 4514 string form.

Type: ``string``. Examples: "CN=R11,O=Let's Encrypt,C=US".
"""

CERTIFICATE_ISSUER_NAME: Final = "certificate.issuer.name"
"""The certificate authority or issuer configuration that issues the certificate.

Type: ``string``. Examples: "letsencrypt", "corp-ca".

A configured name (an ACME directory alias, a CA profile), not the issuer's distinguished name,
so that it stays low-cardinality.
"""

CERTIFICATE_KEY_ALGORITHM: Final = "certificate.key.algorithm"
"""The algorithm of the certificate's public key.

Type: ``enum``. Examples: "ec".
"""

CERTIFICATE_OPERATION_NAME: Final = "certificate.operation.name"
"""The lifecycle operation performed.

Type: ``enum``. Examples: "renew", "deploy".

Custom operation names are allowed; they should be short, lower-case and low-cardinality (a
fixed set chosen by the service, never an identifier).
"""

CERTIFICATE_OPERATION_TRIGGER: Final = "certificate.operation.trigger"
"""What started the operation.

Type: ``enum``. Examples: "scheduled".

Feeds the automation rate: the share of renewals that nobody had to start by hand.
"""

CERTIFICATE_SERIAL_NUMBER: Final = "certificate.serial_number"
"""The certificate's serial number, upper-case hexadecimal without separators.

Type: ``string``. Examples: "04A1B2C3D4E5F6".
"""

CERTIFICATE_SOURCE_KIND: Final = "certificate.source.kind"
"""The kind of source the inventory reads certificates from.

Type: ``enum``. Examples: "file".
"""

CERTIFICATE_SOURCE_NAME: Final = "certificate.source.name"
"""Where the inventory found the certificate (a file path, an endpoint, or a name given in code).

Type: ``string``. Examples: "/etc/ssl/certs/api.pem", "api.example.com:443".

DESIGN.md called this `certificate.source`. Renamed because OpenTelemetry names must not be both
an attribute and a namespace, and `certificate.source.kind` lives under it.
"""

CERTIFICATE_STATUS: Final = "certificate.status"
"""The health of a certificate at the time of observation.

Type: ``enum``. Examples: "expiring".
"""

CERTIFICATE_SUBJECT_ALTERNATIVE_NAMES: Final = "certificate.subject.alternative_names"
"""The DNS names and IP addresses in the certificate's subject alternative name extension.

Type: ``string[]``. Examples: ["www.example.com", "example.com"].
"""

CERTIFICATE_SUBJECT_COMMON_NAME: Final = "certificate.subject.common_name"
"""The common name (CN) of the certificate's subject.

Type: ``string``. Examples: "www.example.com".
"""

CERTIFICATE_SUBJECT_DISTINGUISHED_NAME: Final = "certificate.subject.distinguished_name"
"""The full distinguished name of the certificate's subject, RFC 4514 string form.

Type: ``string``. Examples: "CN=www.example.com,O=Example Inc,C=US".
"""

CERTIFICATE_VALIDITY_NOT_AFTER: Final = "certificate.validity.not_after"
"""The end of the certificate's validity period, ISO 8601 in UTC.

Type: ``string``. Examples: "2026-11-30T00:00:00Z".
"""

CERTIFICATE_VALIDITY_NOT_BEFORE: Final = "certificate.validity.not_before"
"""The start of the certificate's validity period, ISO 8601 in UTC.

Type: ``string``. Examples: "2026-09-01T00:00:00Z".
"""

CERTOBS_METRIC_NAME: Final = "certobs.metric.name"
"""The name of a metric certobs records, as the registry spells it.

Type: ``string``. Examples: "certificate.operation.duration", "certificate.bundle.requests".
"""

DEPLOYMENT_ENVIRONMENT_NAME: Final = "deployment.environment.name"
"""Name of the deployment environment (staging or production, for example). (OpenTelemetry)

Type: ``string``. Examples: "staging", "production".
"""

ERROR_TYPE: Final = "error.type"
"""Describes a class of error the operation ended with. (OpenTelemetry)

Type: ``enum``. Examples: "TimeoutError", "acme.errors.ValidationError".

certobs sets it to the fully qualified class name of the exception raised by the instrumented
code. It is absent when the operation succeeded.
"""

SERVER_ADDRESS: Final = "server.address"
"""Server domain name, IP address or Unix domain socket name. (OpenTelemetry)

Type: ``string``. Examples: "api.example.com", "10.1.2.80".
"""

SERVER_PORT: Final = "server.port"
"""Server port number. (OpenTelemetry)

Type: ``int``. Examples: 443, 8443.
"""

TLS_PROTOCOL_VERSION: Final = "tls.protocol.version"
"""Numeric part of the version parsed from the original string of the negotiated TLS protocol version. (OpenTelemetry)

Type: ``string``. Examples: "1.2", "1.3".
"""


class CertificateBundleFormatValues(str, Enum):
    """Values of ``certificate.bundle.format``."""

    PEM = "pem"
    """Concatenated PEM blocks."""
    DER = "der"
    """A single DER-encoded certificate."""
    PKCS7 = "pkcs7"
    """A PKCS#7 (CMS) certificate bag."""
    PKCS12 = "pkcs12"
    """A PKCS#12 archive."""
    JKS = "jks"
    """A Java key store."""


class CertificateKeyAlgorithmValues(str, Enum):
    """Values of ``certificate.key.algorithm``."""

    RSA = "rsa"
    """RSA."""
    EC = "ec"
    """Elliptic-curve (ECDSA) key."""
    ED25519 = "ed25519"
    """Ed25519."""
    ED448 = "ed448"
    """Ed448."""
    DSA = "dsa"
    """DSA."""
    OTHER = "other"
    """Any other public key algorithm."""


class CertificateOperationNameValues(str, Enum):
    """Values of ``certificate.operation.name``."""

    ISSUE = "issue"
    """A new certificate is issued."""
    RENEW = "renew"
    """An existing certificate is replaced by a new one before it expires."""
    REVOKE = "revoke"
    """A certificate is revoked."""
    DEPLOY = "deploy"
    """A certificate or bundle is pushed to where it is served."""
    BUNDLE_BUILD = "bundle.build"
    """A trust or chain bundle is assembled."""
    VALIDATE = "validate"
    """A certificate or chain is validated."""


class CertificateOperationTriggerValues(str, Enum):
    """Values of ``certificate.operation.trigger``."""

    SCHEDULED = "scheduled"
    """Started by automation (a scheduler, a controller, an expiry watcher)."""
    MANUAL = "manual"
    """Started by a person (a ticket, a command run by hand)."""


class CertificateSourceKindValues(str, Enum):
    """Values of ``certificate.source.kind``."""

    MEMORY = "memory"
    """Given to the inventory in code."""
    FILE = "file"
    """Read from a file."""
    ENDPOINT = "endpoint"
    """Served by a TLS endpoint."""


class CertificateStatusValues(str, Enum):
    """Values of ``certificate.status``."""

    VALID = "valid"
    """Within its validity period, with enough lifetime left."""
    EXPIRING = "expiring"
    """Within its validity period, but close to its end."""
    EXPIRED = "expired"
    """Past its not-after time."""
    NOT_YET_VALID = "not_yet_valid"
    """Before its not-before time."""


class ErrorTypeValues(str, Enum):
    """Values of ``error.type``."""

    OTHER = "_OTHER"
    """A fallback error value to be used when the instrumentation doesn't define a custom value."""
    NOT_FOUND = "not_found"
    """The file, directory or pattern matched nothing that exists."""
    UNREADABLE = "unreadable"
    """The file exists but could not be read (permissions, I/O error)."""
    BAD_FORMAT = "bad_format"
    """The content is not a certificate in PEM, DER or PKCS#12 form, or is truncated."""
    BAD_PASSWORD = "bad_password"
    """A PKCS#12 bundle could not be decrypted with the password given."""
    LOOP = "loop"
    """A directory walk came back to a directory it had already visited (a symlink loop)."""
    UNRESOLVABLE = "unresolvable"
    """The endpoint's host name does not resolve."""
    UNREACHABLE = "unreachable"
    """The endpoint refused or dropped the connection."""
    TIMEOUT = "timeout"
    """The endpoint did not complete the connection or TLS handshake in time."""
    HANDSHAKE_FAILED = "handshake_failed"
    """The TLS handshake failed (not a TLS server, no shared protocol or cipher)."""
    CHAIN_INVALID = "chain_invalid"
    """The chain served does not verify against the trust bundle (expired, self-signed, unknown issuer, wrong name)."""
