"""set_certificate() puts a real certificate's identity on the span and lead time on renewals."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

import certobs
from certobs.semconv import attributes as a
from certobs.semconv.metrics import CERTIFICATE_RENEWAL_LEAD_TIME, METRICS
from certobs.testing import capture

NOW = dt.datetime.now(dt.timezone.utc)


def make_cert(
    cn="www.example.com", *, days_left=60, lifetime=90, key=None, sans=("www.example.com",)
):
    """A real self-signed certificate that expires ``days_left`` days from now."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    not_after = NOW + dt.timedelta(days=days_left)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(0x1234ABCD)
        .not_valid_before(not_after - dt.timedelta(days=lifetime))
        .not_valid_after(not_after)
    )
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False
        )
    return builder.sign(key, hashes.SHA256())


def test_identity_on_span_not_on_metric(certobs_telemetry):
    """The certificate's identity goes on the span; the metric keeps low-cardinality labels."""
    cert = make_cert(sans=("www.example.com", "example.com"))
    with certobs.issuance(issuer="corp-ca") as op:
        op.set_certificate(cert)
    (span,) = certobs_telemetry.spans()
    attrs = span.attributes
    assert attrs[a.CERTIFICATE_SUBJECT_COMMON_NAME] == "www.example.com"
    assert attrs[a.CERTIFICATE_SUBJECT_DISTINGUISHED_NAME] == "CN=www.example.com"
    assert attrs[a.CERTIFICATE_ISSUER_DISTINGUISHED_NAME] == "CN=www.example.com"
    assert attrs[a.CERTIFICATE_SERIAL_NUMBER] == "1234ABCD"
    assert (
        attrs[a.CERTIFICATE_FINGERPRINT_SHA256] == cert.fingerprint(hashes.SHA256()).hex().upper()
    )
    assert tuple(attrs[a.CERTIFICATE_SUBJECT_ALTERNATIVE_NAMES]) == (
        "www.example.com",
        "example.com",
    )
    assert attrs[a.CERTIFICATE_KEY_ALGORITHM] == "ec"
    assert attrs[a.CERTIFICATE_VALIDITY_NOT_AFTER] == cert.not_valid_after_utc.strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    (point,) = certobs_telemetry.points("certificate.operation.duration")
    assert dict(point.attributes) == {
        a.CERTIFICATE_OPERATION_NAME: "issue",
        a.CERTIFICATE_ISSUER_NAME: "corp-ca",
    }


def test_pem_and_der_accepted(certobs_telemetry):
    """PEM and DER encodings are parsed like certificate objects."""
    cert = make_cert(key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    with certobs.validation() as op:
        op.set_certificate(cert.public_bytes(serialization.Encoding.PEM))
    with certobs.validation() as op:
        op.set_certificate(cert.public_bytes(serialization.Encoding.DER))
    spans = certobs_telemetry.spans()
    assert [s.attributes[a.CERTIFICATE_KEY_ALGORITHM] for s in spans] == ["rsa", "rsa"]


def test_renewal_lead_time(certobs_telemetry):
    """A successful renewal records the validity left on the replaced certificate."""
    old = make_cert(days_left=10)
    new = make_cert(days_left=90)

    @certobs.renewal(issuer="letsencrypt")
    def renew():
        certobs.current_operation().set_certificate(new, previous=old)
        return new

    renew()
    point = certobs_telemetry.point(
        CERTIFICATE_RENEWAL_LEAD_TIME, {a.CERTIFICATE_ISSUER_NAME: "letsencrypt"}
    )
    assert point.count == 1
    assert 10 * 86400 - 120 <= point.sum <= 10 * 86400
    assert tuple(point.explicit_bounds) == METRICS[CERTIFICATE_RENEWAL_LEAD_TIME].bucket_boundaries


def test_failed_renewal_records_no_lead_time(certobs_telemetry):
    """A renewal that failed replaced nothing, so no lead time is recorded."""
    new, old = make_cert(), make_cert(days_left=3)

    def renew():
        with certobs.renewal() as op:
            op.set_certificate(new, previous=old)
            raise RuntimeError

    with pytest.raises(RuntimeError):
        renew()
    assert certobs_telemetry.points(CERTIFICATE_RENEWAL_LEAD_TIME) == []


def test_garbage_certificate_dropped(caplog):
    """Garbage instead of a certificate is ignored with a warning, never raised."""
    with (
        capture(strict=False) as telemetry,
        caplog.at_level(logging.WARNING, "certobs"),
        certobs.issuance() as op,
    ):
        op.set_certificate(b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
        op.set_certificate(12345)  # type: ignore[arg-type]
    assert "could not be parsed" in caplog.text
    assert "type int" in caplog.text
    (span,) = telemetry.spans()
    assert a.CERTIFICATE_SERIAL_NUMBER not in span.attributes
