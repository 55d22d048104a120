"""Reading the certificate chain a TLS endpoint serves, and checking it."""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
from pathlib import Path

import attrs
from cryptography import x509

from certobs.x509 import CertificateError, CertificateInfo, Reason

__all__ = ["Endpoint", "ProbeResult", "parse_endpoint", "probe", "trust_context"]


@attrs.frozen(kw_only=True, slots=True)
class Endpoint:
    """A TLS endpoint to probe."""

    host: str
    port: int
    server_name: str | None
    """SNI and the name the chain is verified for; None for an IP address without a name."""

    @property
    def name(self) -> str:
        """``host:port`` (IPv6 hosts in brackets), the endpoint's id."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_endpoint(text: str, *, server_name: str | None = None) -> Endpoint:
    """Parse ``host:port`` or ``[v6]:port``.

    Raises:
        ValueError: If there is no port, or the port is not 1-65535.
    """
    text = text.strip()
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
    else:
        host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{text!r} is not an endpoint: expected HOST:PORT, e.g. example.com:443")
    if server_name is None:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            server_name = host
    return Endpoint(host=host, port=int(port_text), server_name=server_name)


@attrs.frozen(kw_only=True, slots=True)
class ProbeResult:
    """What one probe of one endpoint found."""

    endpoint: Endpoint
    chain: tuple[CertificateInfo, ...] = ()
    """The chain as served, leaf first."""
    tls_version: str | None = None
    """``1.2``, ``1.3``..."""
    chain_valid: bool | None = None
    """Whether the chain verifies against the trust bundle; None when not checked."""
    verify_error: str | None = None
    drift: bool | None = None
    """Whether the leaf differs from the expected fingerprint; None when none was expected."""
    reason: Reason | None = None
    """Why the chain could not be read at all."""
    message: str | None = None


def trust_context(path: str | os.PathLike[str] | None) -> ssl.SSLContext:
    """An SSL context that verifies chains against ``path`` (PEM file or directory).

    None: the system's trust store. Verification is OpenSSL's, as most clients do it.

    Raises:
        CertificateError: When the bundle cannot be read or holds no certificate.
    """
    if path is None:
        return ssl.create_default_context()
    target = Path(path)
    try:
        if target.is_dir():
            context = ssl.create_default_context(capath=str(target))
        else:
            context = ssl.create_default_context(cafile=str(target))
    except FileNotFoundError:
        raise CertificateError(Reason.NOT_FOUND, f"trust bundle {target} not found") from None
    except OSError as exc:
        raise CertificateError(Reason.UNREADABLE, f"trust bundle {target}: {exc}") from None
    except ssl.SSLError as exc:
        raise CertificateError(Reason.BAD_FORMAT, f"trust bundle {target}: {exc}") from None
    if not target.is_dir() and not context.get_ca_certs():
        raise CertificateError(Reason.BAD_FORMAT, f"trust bundle {target} holds no certificate")
    return context


def _served_chain(tls: ssl.SSLSocket) -> list[bytes]:
    # Python 3.13 made the unverified chain public; 3.10 to 3.12 have it on the C object.
    getter = getattr(tls, "get_unverified_chain", None)
    if getter is None:
        getter = getattr(getattr(tls, "_sslobj", None), "get_unverified_chain", None)
    if getter is not None:
        chain = getter() or []
        return [c if isinstance(c, bytes) else c.public_bytes(ssl._ssl.ENCODING_DER) for c in chain]  # type: ignore[attr-defined]
    leaf = tls.getpeercert(binary_form=True)
    return [leaf] if leaf else []


def _handshake(
    endpoint: Endpoint, timeout: float, context: ssl.SSLContext
) -> tuple[str, list[bytes]]:
    with socket.create_connection((endpoint.host, endpoint.port), timeout=timeout) as sock:
        hostname = endpoint.server_name or endpoint.host
        with context.wrap_socket(sock, server_hostname=hostname) as tls:
            return tls.version() or "", _served_chain(tls)


_READ_ANY = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
# Reads whatever is served, even an invalid chain: verification is a separate handshake.
_READ_ANY.check_hostname = False
_READ_ANY.verify_mode = ssl.CERT_NONE


def probe(
    endpoint: Endpoint,
    *,
    timeout: float,
    verify: ssl.SSLContext | None = None,
    expected_fingerprint: str | None = None,
) -> ProbeResult:
    """Connect, complete a TLS handshake, read the served chain and check it.

    With ``verify``, the first handshake verifies the chain and the name as a client would; only
    when that fails is a second, non-verifying handshake made to read the chain anyway. Never
    raises for a failing endpoint: the result carries the reason.
    """
    chain_valid = verify_error = None
    try:
        if verify is not None:
            try:
                version, der_chain = _handshake(endpoint, timeout, verify)
                chain_valid = True
            except ssl.SSLCertVerificationError as exc:
                chain_valid = False
                verify_error = exc.verify_message or str(exc)
                version, der_chain = _handshake(endpoint, timeout, _READ_ANY)
        else:
            version, der_chain = _handshake(endpoint, timeout, _READ_ANY)
    except (socket.gaierror, UnicodeError) as exc:  # UnicodeError: not a valid host name
        return ProbeResult(endpoint=endpoint, reason=Reason.UNRESOLVABLE, message=str(exc))
    except TimeoutError:
        return ProbeResult(
            endpoint=endpoint, reason=Reason.TIMEOUT, message="no TLS handshake within the timeout"
        )
    except (ssl.SSLError, ConnectionResetError, ConnectionAbortedError) as exc:
        return ProbeResult(endpoint=endpoint, reason=Reason.HANDSHAKE_FAILED, message=str(exc))
    except OSError as exc:
        return ProbeResult(endpoint=endpoint, reason=Reason.UNREACHABLE, message=str(exc))
    try:
        certs = [x509.load_der_x509_certificate(der) for der in der_chain]
        infos = tuple(CertificateInfo.from_certificate(c) for c in certs)
    except CertificateError as exc:  # a field that cannot be decoded
        return ProbeResult(endpoint=endpoint, reason=exc.reason, message=str(exc))
    except (ValueError, x509.InvalidVersion) as exc:  # InvalidVersion is not a ValueError
        return ProbeResult(endpoint=endpoint, reason=Reason.BAD_FORMAT, message=str(exc))
    if not infos:
        return ProbeResult(
            endpoint=endpoint, reason=Reason.HANDSHAKE_FAILED, message="no certificate served"
        )
    drift = None
    if expected_fingerprint is not None:
        wanted = expected_fingerprint.replace(":", "").upper()
        drift = infos[0].fingerprint_sha256 != wanted
    return ProbeResult(
        endpoint=endpoint,
        chain=infos,
        tls_version=version.removeprefix("TLSv") or None,
        chain_valid=chain_valid,
        verify_error=verify_error,
        drift=drift,
    )
