"""X.509 certificates as certobs sees them: parsing, and the facts the conventions need.

Parses PEM and DER certificates and chains and PKCS#12 bundles with ``cryptography`` (a
dependency of certobs, imported only when this module is). :class:`CertificateInfo` keeps what
the semantic conventions and the inventory use, and nothing else: never key material.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from typing import Any, Final

import attrs
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from certobs.semconv.attributes import CertificateKeyAlgorithmValues as KeyAlgorithm
from certobs.semconv.attributes import CertificateStatusValues as Status
from certobs.semconv.attributes import ErrorTypeValues

__all__ = [
    "CertificateError",
    "CertificateInfo",
    "ExpiryPolicy",
    "Reason",
    "load_certificates",
]

Reason = ErrorTypeValues
"""Why a source could not be read: the ``error.type`` values of ``certificate.inventory.errors``."""

_PEM_MARKER: Final = b"-----BEGIN CERTIFICATE-----"


class CertificateError(Exception):
    """A certificate source could not be read; ``reason`` says why, in the registry's terms.

    Args:
        reason: One of the inventory reasons (``bad_format``, ``bad_password``, ...).
        message: What went wrong, for people.
    """

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _key_algorithm(cert: x509.Certificate) -> tuple[KeyAlgorithm, int | None]:
    try:
        key = cert.public_key()
    # UnsupportedAlgorithm: a key type or named curve cryptography does not implement.
    except (ValueError, UnsupportedAlgorithm, x509.UnsupportedGeneralNameType):
        return KeyAlgorithm.OTHER, None
    if isinstance(key, rsa.RSAPublicKey):
        return KeyAlgorithm.RSA, key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return KeyAlgorithm.EC, key.curve.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return KeyAlgorithm.ED25519, 256
    if isinstance(key, ed448.Ed448PublicKey):
        return KeyAlgorithm.ED448, 456
    if isinstance(key, dsa.DSAPublicKey):
        return KeyAlgorithm.DSA, key.key_size
    return KeyAlgorithm.OTHER, None


def _common_name(name: x509.Name) -> str | None:
    values = name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    if not values:
        return None
    value = values[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _alternative_names(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    # UnsupportedGeneralNameType: any extension holding an x400Address or EDIPartyName makes
    # cryptography refuse all of them.
    except (x509.ExtensionNotFound, x509.UnsupportedGeneralNameType, ValueError):
        return ()
    names: list[str] = list(ext.get_values_for_type(x509.DNSName))
    names += [str(ip) for ip in ext.get_values_for_type(x509.IPAddress)]
    return tuple(names)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except (x509.ExtensionNotFound, x509.UnsupportedGeneralNameType, ValueError):
        return False


@attrs.frozen(kw_only=True, slots=True)
class ExpiryPolicy:
    """When a certificate counts as ``expiring``.

    A certificate is expiring when less than ``fraction`` of its lifetime is left (default a
    third, which matches common renewal policy: renew a 90-day certificate 30 days before it
    expires), or, with ``floor_days``, when fewer than that many days are left, whichever comes
    first.

    Raises:
        ValueError: If ``fraction`` is not between 0 and 1, or ``floor_days`` is negative.
    """

    fraction: float = attrs.field(default=1 / 3)
    floor_days: float | None = attrs.field(default=None)

    @fraction.validator
    def _check_fraction(self, _: attrs.Attribute[float], value: float) -> None:
        if not 0 <= value <= 1:
            raise ValueError(f"fraction={value!r}: expected a share of the lifetime, 0 to 1")

    @floor_days.validator
    def _check_floor(self, _: attrs.Attribute[float | None], value: float | None) -> None:
        if value is not None and (value < 0 or math.isnan(value)):
            raise ValueError(f"floor_days={value!r}: expected a number of days >= 0, or None")


@attrs.frozen(kw_only=True, slots=True)
class CertificateInfo:
    """The facts about one certificate that certobs records. Times are Unix seconds."""

    subject: str
    """The subject's distinguished name, RFC 4514."""
    subject_common_name: str | None
    """The subject's common name, if it has one."""
    issuer: str
    """The issuer's distinguished name, RFC 4514."""
    issuer_common_name: str | None
    """The issuer's common name, if it has one."""
    alternative_names: tuple[str, ...]
    """DNS names and IP addresses of the subject alternative name extension."""
    serial_number: str
    """Upper-case hexadecimal."""
    fingerprint_sha256: str
    """SHA-256 of the DER encoding, upper-case hexadecimal."""
    not_before: float
    not_after: float
    key_algorithm: str
    """A ``certificate.key.algorithm`` value: rsa, ec, ed25519, ed448, dsa or other."""
    key_size: int | None
    signature_algorithm: str | None
    """E.g. ``sha256WithRSAEncryption``; None when cryptography cannot name it."""
    is_ca: bool
    self_signed: bool
    """Subject and issuer are the same name (a root, or a self-signed leaf)."""

    @classmethod
    def from_certificate(cls, cert: x509.Certificate) -> CertificateInfo:
        """Extract the facts from a parsed ``cryptography`` certificate.

        Raises:
            CertificateError: With reason ``bad_format`` when a field cannot be decoded
                (``cryptography`` decodes names, extensions and keys only when they are read).
        """
        try:
            return cls._extract(cert)
        # TypeError: cryptography's NameAttribute refuses a value of the wrong ASN.1 type.
        except (ValueError, TypeError) as exc:
            raise CertificateError(Reason.BAD_FORMAT, f"malformed certificate: {exc}") from None

    @classmethod
    def _extract(cls, cert: x509.Certificate) -> CertificateInfo:
        algorithm, size = _key_algorithm(cert)
        try:
            signature: str | None = cert.signature_algorithm_oid._name
        except Exception:  # unknown OIDs have no name
            signature = None
        return cls(
            subject=cert.subject.rfc4514_string(),
            subject_common_name=_common_name(cert.subject),
            issuer=cert.issuer.rfc4514_string(),
            issuer_common_name=_common_name(cert.issuer),
            alternative_names=_alternative_names(cert),
            serial_number=format(cert.serial_number, "X"),
            fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex().upper(),
            not_before=cert.not_valid_before_utc.timestamp(),
            not_after=cert.not_valid_after_utc.timestamp(),
            key_algorithm=algorithm.value,
            key_size=size,
            signature_algorithm=signature,
            is_ca=_is_ca(cert),
            self_signed=cert.subject == cert.issuer,
        )

    @property
    def lifetime(self) -> float:
        """Seconds from not_before to not_after."""
        return self.not_after - self.not_before

    def seconds_left(self, now: float) -> float:
        """Seconds of validity left at ``now`` (negative once expired)."""
        return self.not_after - now

    def fraction_left(self, now: float) -> float:
        """Share of the lifetime left at ``now``: 1 at not_before, 0 at not_after."""
        if self.lifetime <= 0:
            return 0.0
        return min(max((self.not_after - now) / self.lifetime, 0.0), 1.0)

    def span_attributes(self) -> dict[str, Any]:
        """The identity as span attributes of the registry (high-cardinality: spans only)."""
        from certobs.semconv import attributes as a

        attrs_: dict[str, Any] = {
            a.CERTIFICATE_SUBJECT_DISTINGUISHED_NAME: self.subject,
            a.CERTIFICATE_ISSUER_DISTINGUISHED_NAME: self.issuer,
            a.CERTIFICATE_SERIAL_NUMBER: self.serial_number,
            a.CERTIFICATE_FINGERPRINT_SHA256: self.fingerprint_sha256,
            a.CERTIFICATE_VALIDITY_NOT_BEFORE: utc(self.not_before),
            a.CERTIFICATE_VALIDITY_NOT_AFTER: utc(self.not_after),
            a.CERTIFICATE_KEY_ALGORITHM: self.key_algorithm,
        }
        if self.subject_common_name:
            attrs_[a.CERTIFICATE_SUBJECT_COMMON_NAME] = self.subject_common_name
        if self.alternative_names:
            attrs_[a.CERTIFICATE_SUBJECT_ALTERNATIVE_NAMES] = list(self.alternative_names)
        return attrs_

    def status(self, now: float, policy: ExpiryPolicy | None = None) -> Status:
        """Return valid, expiring, expired or not_yet_valid at ``now`` under ``policy``."""
        if now < self.not_before:
            return Status.NOT_YET_VALID
        if now >= self.not_after:
            return Status.EXPIRED
        policy = policy or _DEFAULT_POLICY
        left = self.not_after - now
        if left < policy.fraction * self.lifetime:
            return Status.EXPIRING
        if policy.floor_days is not None and left < policy.floor_days * 86400:
            return Status.EXPIRING
        return Status.VALID


_DEFAULT_POLICY: Final = ExpiryPolicy()


def _from_pem(data: bytes) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(data)
    # InvalidVersion (not a ValueError): a version field other than v1 or v3.
    except (ValueError, x509.InvalidVersion) as exc:
        raise CertificateError(Reason.BAD_FORMAT, f"not a valid PEM certificate: {exc}") from None


MAX_PKCS12_ITERATIONS: Final = 10_000_000
"""The most key-derivation and MAC iterations, all parts added up, a PKCS#12 bundle may ask
for. Common tools use 2,048 to 600,000 per part, a few parts; OpenSSL runs whatever the file
says, and 2**31 iterations take minutes."""


_HUGE: Final = 2**63
"""Stands for an INTEGER longer than 8 bytes: more iterations than anything accepts."""
_MAX_NESTING: Final = 32
_MAX_VALUES: Final = 100_000
_OID_DATA: Final = bytes.fromhex("2a864886f70d010701")  # 1.2.840.113549.1.7.1
_OID_ENCRYPTED_DATA: Final = bytes.fromhex("2a864886f70d010706")  # 1.2.840.113549.1.7.6
_OID_SCRYPT: Final = bytes.fromhex("2b06010401da47040b")  # 1.3.6.1.4.1.11591.4.11


class _Ber:
    """A bounded BER reader (the superset of DER that PKCS#12 files use and OpenSSL accepts).

    Every method raises ValueError on anything it cannot read; the walk then fails closed.
    """

    def __init__(self, data: bytes, read: list[int] | None = None) -> None:
        self.data = data
        # Values read so far, shared by the readers of the bytes nested in these (nested()).
        self.read_count = read if read is not None else [0]

    def nested(self, data: bytes) -> _Ber:
        """A reader of bytes found inside these, under the same budget of values."""
        return _Ber(data, self.read_count)

    def read(self, pos: int, end: int, depth: int) -> tuple[int, int, int, int]:
        """One value at ``pos``: (tag, content start, content end, position after it)."""
        self.read_count[0] += 1
        if self.read_count[0] > _MAX_VALUES or depth > _MAX_NESTING:
            raise ValueError("too many or too deeply nested values")
        data = self.data
        if end - pos < 2:
            raise ValueError("truncated value")
        tag, first = data[pos], data[pos + 1]
        pos += 2
        if tag & 0x1F == 0x1F:
            raise ValueError("multi-byte tag")
        if first == 0x80:  # indefinite length: up to the end-of-contents marker
            if not tag & 0x20:
                raise ValueError("indefinite length on a primitive value")
            start = pos
            while True:
                if end - pos < 2:
                    raise ValueError("no end-of-contents marker")
                if data[pos] == 0 and data[pos + 1] == 0:
                    return tag, start, pos, pos + 2
                pos = self.read(pos, end, depth + 1)[3]
        if first < 0x80:
            size = first
        else:
            count = first & 0x7F
            if count > 8 or end - pos < count:
                raise ValueError("bad length")
            size = int.from_bytes(data[pos : pos + count], "big")
            pos += count
        if size > end - pos:
            raise ValueError("length past the end")
        return tag, pos, pos + size, pos + size

    def children(self, start: int, end: int, depth: int) -> list[tuple[int, int, int]]:
        """The values in ``[start, end)``: (tag, content start, content end) each."""
        found = []
        while start < end:
            tag, begin, stop, start = self.read(start, end, depth)
            found.append((tag, begin, stop))
        return found

    def octets(self, tag: int, start: int, end: int, depth: int) -> bytes:
        """The bytes of an OCTET STRING, primitive or (BER) constructed from pieces."""
        if tag == 0x04:
            return self.data[start:end]
        if tag == 0x24:
            return b"".join(
                self.octets(*child, depth + 1) for child in self.children(start, end, depth + 1)
            )
        raise ValueError("expected an OCTET STRING")

    def integer(self, start: int, end: int) -> int:
        if end - start > 8:
            return _HUGE
        return int.from_bytes(self.data[start:end], "big", signed=True)

    def iterations_in(self, start: int, end: int, depth: int) -> int:
        """The iteration counts under ``[start, end)``, added up.

        MacData, PBES1 and PBKDF2 parameters all hold a salt (an OCTET STRING, which BER lets
        be constructed) followed by the count (INTEGER); constructed values are searched,
        OCTET STRINGs are not.

        Raises:
            ValueError: scrypt key derivation: its cost is not an iteration count.
        """
        total = 0
        previous = 0
        for tag, begin, stop in self.children(start, end, depth):
            if tag == 0x02 and previous in (0x04, 0x24):
                total += max(self.integer(begin, stop), 0)
            elif tag == 0x06 and self.data[begin:stop] == _OID_SCRYPT:
                raise ValueError("scrypt key derivation is not supported")
            elif tag & 0x20:
                total += self.iterations_in(begin, stop, depth + 1)
            previous = tag
        return total


def _pkcs12_iterations(data: bytes) -> int:
    """Return the iterations opening a PKCS#12 bundle costs, all added up (0 if none).

    Walks the places the counts are: the MAC (PFX.macData; counted twice, as OpenSSL tries
    both no password and the empty one), and the algorithm parameters of every encrypted part
    (encryptedData contents and the bags of plain data contents, shrouded key bags among
    them). They are outside the encrypted bytes, so no password is needed; what an encrypted
    part holds (a key bag inside encryptedData) is out of reach.

    Raises:
        ValueError: The bundle's structure cannot be read: it cannot be checked, so it must not
            be opened.
    """
    ber = _Ber(data)
    tag, start, end, _ = ber.read(0, len(data), 0)
    if tag != 0x30:
        raise ValueError("not a SEQUENCE")
    pfx = ber.children(start, end, 1)
    if len(pfx) < 2 or pfx[1][0] != 0x30:
        raise ValueError("no authSafe")
    total = 0
    if len(pfx) > 2 and pfx[2][0] == 0x30:
        total = 2 * ber.iterations_in(pfx[2][1], pfx[2][2], 2)
    content = _data_content(ber, pfx[1], 2)
    if content:
        safe = ber.nested(content)
        tag, start, end, _ = safe.read(0, len(content), 3)
        if tag != 0x30:
            raise ValueError("authenticated safe is not a SEQUENCE")
        for info in safe.children(start, end, 4):
            kind, parts = _content_info(safe, info, 5)
            if kind == _OID_DATA:
                bags = safe.nested(safe.octets(*parts, 6))
                total += bags.iterations_in(0, len(bags.data), 7)
            elif kind == _OID_ENCRYPTED_DATA:
                # EncryptedData: version, EncryptedContentInfo (type, algorithm, [0] bytes)
                encrypted = safe.children(parts[1], parts[2], 6)
                if len(encrypted) < 2 or encrypted[1][0] != 0x30:
                    raise ValueError("bad EncryptedData")
                info_parts = safe.children(encrypted[1][1], encrypted[1][2], 7)
                if len(info_parts) < 2 or info_parts[1][0] != 0x30:
                    raise ValueError("bad EncryptedContentInfo")
                algorithm = info_parts[1]
                total += safe.iterations_in(algorithm[1], algorithm[2], 8)
    return total


def _content_info(
    ber: _Ber, value: tuple[int, int, int], depth: int
) -> tuple[bytes, tuple[int, int, int]]:
    """A ContentInfo: its content type (OID bytes) and the value inside its [0] wrapper."""
    if value[0] != 0x30:
        raise ValueError("ContentInfo is not a SEQUENCE")
    parts = ber.children(value[1], value[2], depth)
    if len(parts) < 2 or parts[0][0] != 0x06 or parts[1][0] != 0xA0:
        raise ValueError("bad ContentInfo")
    wrapped = ber.children(parts[1][1], parts[1][2], depth + 1)
    if len(wrapped) != 1:
        raise ValueError("bad ContentInfo content")
    return ber.data[parts[0][1] : parts[0][2]], wrapped[0]


def _data_content(ber: _Ber, auth_safe: tuple[int, int, int], depth: int) -> bytes:
    """The authenticated safe: the bytes of the PFX's data ContentInfo."""
    kind, inner = _content_info(ber, auth_safe, depth)
    if kind != _OID_DATA:
        raise ValueError("only password-integrity bundles (a data authSafe) are read")
    return ber.octets(*inner, depth + 2)


def _from_pkcs12(data: bytes, password: bytes | str | None) -> list[x509.Certificate]:
    try:
        iterations = _pkcs12_iterations(data)
    except ValueError as exc:
        raise CertificateError(
            Reason.BAD_FORMAT, f"not a valid PKCS#12 bundle: its structure cannot be read ({exc})"
        ) from None
    if iterations > MAX_PKCS12_ITERATIONS:
        raise CertificateError(
            Reason.BAD_FORMAT,
            "PKCS#12 bundle asks for more key-derivation and MAC iterations, all its parts "
            f"together, than the {MAX_PKCS12_ITERATIONS:,} certobs accepts (opening it could "
            "take minutes); re-export it with a usual count",
        )
    if isinstance(password, str):
        try:
            password = os.fsencode(password)  # keeps bytes that came from the command line
        except UnicodeEncodeError:  # a lone surrogate: no bundle can have this password
            raise CertificateError(
                Reason.BAD_PASSWORD, "PKCS#12: the password cannot be encoded; pass it as bytes"
            ) from None
    if password is not None:
        # cryptography hands the password to OpenSSL as a UTF-8 C string: on a NUL it panics
        # (a BaseException), on other bytes it raises a TypeError. No bundle it reads has such
        # a password.
        try:
            password.decode("utf-8")
        except UnicodeDecodeError:
            raise CertificateError(
                Reason.BAD_PASSWORD, "PKCS#12: the password is not UTF-8, as cryptography needs"
            ) from None
        if b"\0" in password:
            raise CertificateError(Reason.BAD_PASSWORD, "PKCS#12: the password holds a NUL byte")
    try:
        key_and_certs = pkcs12.load_pkcs12(data, password)
    except ValueError as exc:
        text = str(exc).lower()
        if "password" in text or "mac" in text or "decrypt" in text:
            hint = "no password given" if password is None else "wrong password"
            raise CertificateError(Reason.BAD_PASSWORD, f"PKCS#12: {hint}") from None
        raise CertificateError(Reason.BAD_FORMAT, f"not a valid PKCS#12 bundle: {exc}") from None
    except x509.InvalidVersion as exc:
        raise CertificateError(Reason.BAD_FORMAT, f"PKCS#12 bundle: {exc}") from None
    certs = []
    if key_and_certs.cert is not None:
        certs.append(key_and_certs.cert.certificate)
    certs += [c.certificate for c in key_and_certs.additional_certs]
    if not certs:
        raise CertificateError(Reason.BAD_FORMAT, "PKCS#12 bundle holds no certificate")
    return certs


def load_certificates(
    data: bytes, *, password: bytes | str | None = None, kind: str | None = None
) -> list[x509.Certificate]:
    """Parse every certificate in ``data``: PEM (one or many), DER, or PKCS#12.

    The leaf comes first where the source says which it is (PKCS#12); PEM keeps file order.

    Args:
        data: The bytes of a file or a response.
        password: For PKCS#12 bundles.
        kind: ``pem``, ``der`` or ``pkcs12`` to skip detection.

    Returns:
        The certificates, at least one.

    Raises:
        CertificateError: With reason ``bad_format`` or ``bad_password``.
        ValueError: If ``kind`` is not one of those above.
    """
    if kind == "pem" or (kind is None and _PEM_MARKER in data):
        return _from_pem(data)
    if kind == "pkcs12":
        return _from_pkcs12(data, password)
    if kind not in (None, "der"):
        raise ValueError(f"kind={kind!r}: expected pem, der, pkcs12 or None")
    try:
        return [x509.load_der_x509_certificate(data)]
    except x509.InvalidVersion as exc:  # a DER certificate, of a version that does not exist
        raise CertificateError(Reason.BAD_FORMAT, f"not a valid DER certificate: {exc}") from None
    except ValueError:
        if kind == "der":
            raise CertificateError(Reason.BAD_FORMAT, "not a DER certificate") from None
    if b"-----BEGIN" in data:
        raise CertificateError(Reason.BAD_FORMAT, "PEM file with no CERTIFICATE block")
    return _from_pkcs12(data, password)


def utc(timestamp: float) -> str:
    """Render a Unix time as ISO 8601 UTC."""
    return dt.datetime.fromtimestamp(timestamp, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
