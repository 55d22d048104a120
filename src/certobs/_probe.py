"""Reading the certificate chain a TLS endpoint serves, and checking it."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
import ssl
from collections.abc import Sequence
from pathlib import Path

import attrs
from cryptography import x509
from cryptography.x509 import verification

from certobs.x509 import CertificateError, CertificateInfo, Reason, load_certificates

__all__ = ["Endpoint", "ProbeResult", "load_trust", "parse_endpoint", "probe"]


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


def load_trust(path: str | os.PathLike[str] | None) -> list[x509.Certificate]:
    """Load a trust bundle (PEM file or directory of PEM files); None: the system's.

    Raises:
        CertificateError: When the bundle cannot be read or holds no certificate.
    """
    if path is None:
        paths = ssl.get_default_verify_paths()
        candidate = paths.cafile or paths.openssl_cafile
        if candidate and Path(candidate).is_file():
            path = candidate
        elif paths.capath and Path(paths.capath).is_dir():
            path = paths.capath
        else:
            return []
    target = Path(path)
    if target.is_dir():
        files = sorted(target.glob("*.pem")) + sorted(target.glob("*.crt"))
    else:
        files = [target]
    roots: list[x509.Certificate] = []
    for file in files:
        try:
            roots += load_certificates(file.read_bytes(), kind="pem")
        except OSError as exc:
            raise CertificateError(Reason.UNREADABLE, f"trust bundle {file}: {exc}") from None
        except CertificateError:
            if not target.is_dir():
                raise
    if not roots:
        raise CertificateError(Reason.BAD_FORMAT, f"trust bundle {target} holds no certificate")
    return roots


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


def _verify(
    endpoint: Endpoint, chain: Sequence[x509.Certificate], roots: Sequence[x509.Certificate]
) -> str | None:
    """Return None if the chain verifies for the endpoint's name, else why not."""
    subject: x509.DNSName | x509.IPAddress
    if endpoint.server_name:
        subject = x509.DNSName(endpoint.server_name)
    else:
        subject = x509.IPAddress(ipaddress.ip_address(endpoint.host))
    builder = verification.PolicyBuilder().store(verification.Store(list(roots)))
    verifier = builder.time(dt.datetime.now(dt.timezone.utc)).build_server_verifier(subject)
    try:
        verifier.verify(chain[0], list(chain[1:]))
    except verification.VerificationError as exc:
        return str(exc)
    return None


def probe(
    endpoint: Endpoint,
    *,
    timeout: float,
    roots: Sequence[x509.Certificate] | None = None,
    expected_fingerprint: str | None = None,
) -> ProbeResult:
    """Connect, complete a TLS handshake, read the served chain and check it.

    Never raises for a failing endpoint: the result carries the reason.
    """
    try:
        sock = socket.create_connection((endpoint.host, endpoint.port), timeout=timeout)
    except socket.gaierror as exc:
        return ProbeResult(endpoint=endpoint, reason=Reason.UNRESOLVABLE, message=str(exc))
    except TimeoutError:
        return ProbeResult(endpoint=endpoint, reason=Reason.TIMEOUT, message="connect timed out")
    except OSError as exc:
        return ProbeResult(endpoint=endpoint, reason=Reason.UNREACHABLE, message=str(exc))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # Read whatever is served, even an invalid chain: verification is done separately.
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with context.wrap_socket(sock, server_hostname=endpoint.server_name) as tls:
            version = tls.version() or ""
            der_chain = _served_chain(tls)
    except TimeoutError:
        return ProbeResult(
            endpoint=endpoint, reason=Reason.TIMEOUT, message="TLS handshake timed out"
        )
    except (ssl.SSLError, ConnectionError) as exc:
        return ProbeResult(endpoint=endpoint, reason=Reason.HANDSHAKE_FAILED, message=str(exc))
    except OSError as exc:
        return ProbeResult(endpoint=endpoint, reason=Reason.UNREACHABLE, message=str(exc))
    finally:
        sock.close()
    try:
        certs = [x509.load_der_x509_certificate(der) for der in der_chain]
    except ValueError as exc:
        return ProbeResult(endpoint=endpoint, reason=Reason.BAD_FORMAT, message=str(exc))
    if not certs:
        return ProbeResult(
            endpoint=endpoint, reason=Reason.HANDSHAKE_FAILED, message="no certificate served"
        )
    infos = tuple(CertificateInfo.from_certificate(c) for c in certs)
    chain_valid = verify_error = None
    if roots is not None:
        verify_error = _verify(endpoint, certs, roots)
        chain_valid = verify_error is None
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
