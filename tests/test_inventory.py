"""The inventory reads real certificates from memory, files and TLS servers, and reports them."""

from __future__ import annotations

import datetime as dt
import os
import time

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

import certobs
from certobs import inventory as inv
from certobs.inventory import Inventory
from certobs.semconv import attributes as a
from certobs.semconv import metrics as m
from certobs.testing import capture
from certobs.x509 import CertificateError, CertificateInfo, ExpiryPolicy, load_certificates
from tls_servers import NOW, closed_port, leaf, serving


def parsed(cert: trustme.LeafCert | trustme.CA) -> x509.Certificate:
    """The certificate (a leaf's, not its chain's) as a cryptography object."""
    pem = cert.cert_pem.bytes() if isinstance(cert, trustme.CA) else cert.cert_chain_pems[0].bytes()
    return x509.load_pem_x509_certificate(pem)


@pytest.fixture(scope="module")
def ca():
    """A test CA."""
    return trustme.CA()


@pytest.fixture
def inventory():
    """A fresh inventory, cleared afterwards."""
    made = Inventory()
    yield made
    made.clear()


def points(telemetry, name):
    """The metric's values by attribute set."""
    return {frozenset(p.attributes.items()): p.value for p in telemetry.points(name)}


# The X.509 model.


def test_certificate_info_rsa_and_ec(ca):
    """The model holds what the conventions need, for RSA and EC keys."""
    ec_leaf = parsed(leaf(ca, "api.example.com", common_name="api.example.com"))
    rsa_leaf = parsed(leaf(ca, "rsa.example.com", key_type=trustme.KeyType.RSA))
    info = CertificateInfo.from_certificate(ec_leaf)
    assert info.subject_common_name == "api.example.com"
    assert info.alternative_names == ("api.example.com",)
    assert info.key_algorithm == "ec"
    assert info.key_size == 256
    assert not info.is_ca
    assert not info.self_signed
    assert info.signature_algorithm == "ecdsa-with-SHA256"
    assert info.not_after == ec_leaf.not_valid_after_utc.timestamp()
    assert len(info.fingerprint_sha256) == 64
    rsa_info = CertificateInfo.from_certificate(rsa_leaf)
    assert (rsa_info.key_algorithm, rsa_info.key_size) == ("rsa", 2048)
    root = CertificateInfo.from_certificate(parsed(ca))
    assert root.is_ca
    assert root.self_signed


@pytest.mark.parametrize(
    ("days_left", "lifetime", "policy", "status"),
    [
        (60, 90, ExpiryPolicy(), "valid"),
        (29, 90, ExpiryPolicy(), "expiring"),  # less than a third of 90 days
        (150, 365, ExpiryPolicy(), "valid"),  # 150 days is more than a third of a year
        (150, 365, ExpiryPolicy(floor_days=160), "expiring"),  # the absolute floor
        (-1, 90, ExpiryPolicy(), "expired"),
        (200, 90, ExpiryPolicy(), "not_yet_valid"),
        (40, 90, ExpiryPolicy(fraction=0.5), "expiring"),
    ],
)
def test_status_is_relative_to_lifetime(ca, days_left, lifetime, policy, status):
    """Expiring means little of the lifetime left (with an optional floor), not fixed days."""
    info = CertificateInfo.from_certificate(
        parsed(leaf(ca, days_left=days_left, lifetime=lifetime))
    )
    assert info.status(time.time(), policy).value == status


def test_policy_validates():
    """A policy with a fraction outside 0..1 or a negative floor is refused."""
    with pytest.raises(ValueError, match=r"fraction=1\.5"):
        ExpiryPolicy(fraction=1.5)
    with pytest.raises(ValueError, match="floor_days=-1"):
        ExpiryPolicy(floor_days=-1)


def test_load_pem_chain_der_and_pkcs12(ca):
    """PEM chains keep their order; DER and PKCS#12 (with password) parse."""
    intermediate = ca.create_child_ca()
    cert = leaf(intermediate, "chain.example.com")
    chain_pem = b"".join(p.bytes() for p in cert.cert_chain_pems)
    chain = load_certificates(chain_pem)
    assert [c.subject for c in chain] == [parsed(cert).subject, parsed(intermediate).subject]
    der = parsed(cert).public_bytes(serialization.Encoding.DER)
    assert load_certificates(der)[0] == parsed(cert)
    key = serialization.load_pem_private_key(cert.private_key_pem.bytes(), None)
    bundle = pkcs12.serialize_key_and_certificates(
        b"x",
        key,
        parsed(cert),
        [parsed(intermediate)],
        serialization.BestAvailableEncryption(b"s3cret"),
    )
    assert load_certificates(bundle, password="s3cret")[0] == parsed(cert)
    with pytest.raises(CertificateError, match="wrong password") as info:
        load_certificates(bundle, password="nope")
    assert info.value.reason.value == "bad_password"
    with pytest.raises(CertificateError) as info:
        load_certificates(bundle)
    assert info.value.reason.value == "bad_password"


@pytest.mark.parametrize(
    "data",
    [
        b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",  # truncated
        b"-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n",  # no certificate
        b"\x30\x82\x01\x00" + bytes(200),  # DER-looking garbage
        os.urandom(64),
        b"",
    ],
)
def test_garbage_is_bad_format(data):
    """Truncated PEM, a key file, garbage DER and empty input are bad_format, not a crash."""
    with pytest.raises(CertificateError) as info:
        load_certificates(data)
    assert info.value.reason.value == "bad_format"


# Certificates given in code, and the metrics.


def test_tracked_certificates_reported(ca, inventory):
    """track() reports not_after/not_before per certificate and the count by status."""
    good = parsed(leaf(ca, common_name="good.example.com", days_left=60))
    soon = parsed(leaf(ca, common_name="soon.example.com", days_left=5))
    old = parsed(leaf(ca, common_name="old.example.com", days_left=-3))
    with capture() as telemetry:
        inventory.track(good, id="good", issuer="corp-ca")
        inventory.track(soon, id="soon", issuer="corp-ca")
        inventory.track(old, id="old", issuer="corp-ca")
        after = points(telemetry, m.CERTIFICATE_NOT_AFTER)
        metrics = telemetry.metrics()
    assert metrics[m.CERTIFICATE_NOT_AFTER].unit == "s"
    assert metrics[m.CERTIFICATE_COUNT].unit == "{certificate}"
    key = frozenset(
        {
            a.CERTIFICATE_ID: "good",
            a.CERTIFICATE_SUBJECT_COMMON_NAME: "good.example.com",
            a.CERTIFICATE_ISSUER_NAME: "corp-ca",
            a.CERTIFICATE_SOURCE_NAME: "good",
        }.items()
    )
    assert after[key] == good.not_valid_after_utc.timestamp()
    with capture() as telemetry:
        counts = points(telemetry, m.CERTIFICATE_COUNT)
    by_status = {dict(k)[a.CERTIFICATE_STATUS]: v for k, v in counts.items()}
    assert by_status == {"valid": 1, "expiring": 1, "expired": 1}
    assert all(dict(k)[a.CERTIFICATE_KEY_ALGORITHM] == "ec" for k in counts)
    inventory.untrack("old")
    with capture() as telemetry:
        assert len(telemetry.points(m.CERTIFICATE_NOT_AFTER)) == 2


def test_per_certificate_gauges_opt_out(ca):
    """per_certificate=False keeps the counts and drops the per-certificate series."""
    quiet = Inventory(per_certificate=False)
    try:
        quiet.track(parsed(leaf(ca)), id="x")
        with capture() as telemetry:
            assert telemetry.points(m.CERTIFICATE_NOT_AFTER) == []
            assert telemetry.points(m.CERTIFICATE_COUNT)
    finally:
        quiet.clear()


def test_module_functions_use_default_inventory(ca):
    """certobs.inventory.track/untrack work on the default inventory."""
    inv.track(parsed(leaf(ca)), id="default-one")
    assert [e.id for e in inv.default().entries()] == ["default-one"]
    assert inv.untrack("default-one")
    assert not inv.untrack("default-one")


def test_application_provider_gets_inventory_gauges(ca, inventory):
    """With the application's own MeterProvider, observable gauges report the inventory."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from certobs import _runtime

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    inventory.track(parsed(leaf(ca)), id="sdk-route")
    _runtime.install(provider, None)  # no store: the SDK instruments route
    try:
        inventory.track(parsed(leaf(ca)), id="sdk-route-2")  # creates the gauges
        data = reader.get_metrics_data()
    finally:
        _runtime.install(None, None)
        provider.shutdown()
    names = {
        mm.name for rm in data.resource_metrics for sm in rm.scope_metrics for mm in sm.metrics
    }
    assert {m.CERTIFICATE_NOT_AFTER, m.CERTIFICATE_NOT_BEFORE, m.CERTIFICATE_COUNT} <= names


# Files.


def test_files_directories_and_errors(ca, inventory, tmp_path):
    """A directory walk reads good files and names each bad one with its reason."""
    good = leaf(ca, common_name="file.example.com")
    good.cert_chain_pems[0].write_to_path(str(tmp_path / "good.pem"))
    (tmp_path / "truncated.pem").write_bytes(good.cert_chain_pems[0].bytes()[:120])
    (tmp_path / "notes.txt").write_text("not a certificate, and not read")
    (tmp_path / "server.key").write_bytes(good.private_key_pem.bytes())
    der = parsed(good).public_bytes(serialization.Encoding.DER)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "leaf.der").write_bytes(der)
    (tmp_path / "sub" / "loop").symlink_to(tmp_path)  # a directory loop
    (tmp_path / "broken.pem").symlink_to("/proc/self/mem")  # exists, cannot be read
    source = inventory.watch_files(tmp_path, tmp_path / "missing.pem", start=False)
    with capture() as telemetry:
        inventory.refresh()
        errors = points(telemetry, m.CERTIFICATE_INVENTORY_ERRORS)
    ids = sorted(e.id for e in source.entries)
    assert ids == [str(tmp_path / "good.pem"), str(tmp_path / "sub" / "leaf.der")]
    reasons = {e.source.replace(str(tmp_path), "T"): e.reason.value for e in source.errors}
    assert reasons == {
        "T/truncated.pem": "bad_format",
        "T/broken.pem": "unreadable",
        "T/sub/loop": "loop",
        "T/missing.pem": "not_found",
    }
    assert sum(errors.values()) == 4
    key = frozenset(
        {
            a.CERTIFICATE_SOURCE_KIND: "file",
            a.ERROR_TYPE: "bad_format",
            a.CERTIFICATE_SOURCE_NAME: str(tmp_path / "truncated.pem"),
        }.items()
    )
    assert errors[key] == 1


def test_pkcs12_files_and_glob(ca, inventory, tmp_path):
    """PKCS#12 files are read with the password; a wrong one is bad_password."""
    cert = leaf(ca)
    key = serialization.load_pem_private_key(cert.private_key_pem.bytes(), None)
    bundle = pkcs12.serialize_key_and_certificates(
        b"x", key, parsed(cert), None, serialization.BestAvailableEncryption(b"pw")
    )
    (tmp_path / "a.p12").write_bytes(bundle)
    good = inventory.watch_files(str(tmp_path / "*.p12"), password="pw", start=False)
    bad = inventory.watch_files(str(tmp_path / "*.p12"), password="wrong", start=False)
    nothing = inventory.watch_files(str(tmp_path / "*.none"), start=False)
    inventory.refresh()
    assert [e.info.fingerprint_sha256 for e in good.entries] == [
        CertificateInfo.from_certificate(parsed(cert)).fingerprint_sha256
    ]
    assert [e.reason.value for e in bad.errors] == ["bad_password"]
    assert [e.reason.value for e in nothing.errors] == ["not_found"]


def test_changed_files_are_reread(ca, inventory, tmp_path):
    """A file replaced on disk is read again; an unchanged one is not parsed again."""
    path = tmp_path / "rotating.pem"
    first, second = leaf(ca, days_left=5), leaf(ca, days_left=80)
    first.cert_chain_pems[0].write_to_path(str(path))
    source = inventory.watch_files(path, start=False)
    inventory.refresh()
    before = source.entries[0]
    inventory.refresh()
    assert source.entries[0] is before  # not parsed again
    second.cert_chain_pems[0].write_to_path(str(path))
    os.utime(path, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    inventory.refresh()
    assert source.entries[0].info.not_after == parsed(second).not_valid_after_utc.timestamp()


def test_background_refresher_reads_files(ca, inventory, tmp_path):
    """With start=True the refresher reads in the background; collection only reads."""
    leaf(ca).cert_chain_pems[0].write_to_path(str(tmp_path / "bg.pem"))
    source = inventory.watch_files(tmp_path, interval=0.1)
    deadline = time.monotonic() + 10
    while not source.entries and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(source.entries) == 1
    inventory.stop()


def test_bad_source_settings_fail_fast(inventory):
    """Bad settings for sources raise ConfigurationError naming the setting."""
    with pytest.raises(certobs.ConfigurationError, match="interval=0"):
        inventory.watch_files("/tmp", interval=0)
    with pytest.raises(certobs.ConfigurationError, match="at least one"):
        inventory.watch_files()
    with pytest.raises(certobs.ConfigurationError, match="not an endpoint"):
        inventory.watch_endpoints(["example.com"])
    with pytest.raises(certobs.ConfigurationError, match="concurrency=0"):
        inventory.watch_endpoints(["example.com:443"], concurrency=0)
    with pytest.raises(certobs.ConfigurationError, match="not among the endpoints"):
        inventory.watch_endpoints(["a.example:443"], expected={"b.example:443": "AB"})
    with pytest.raises(certobs.ConfigurationError, match="id="):
        inventory.track(b"", id="")


# TLS endpoints.


def test_endpoint_chain_verification_and_drift(ca, inventory, tmp_path):
    """A served chain is read, verified against the trust bundle, and checked for drift."""
    intermediate = ca.create_child_ca()
    served = leaf(intermediate, "localhost", "127.0.0.1", days_left=30)
    other_ca = trustme.CA()
    untrusted = leaf(other_ca)
    ca.cert_pem.write_to_path(str(tmp_path / "trust.pem"))
    expected = CertificateInfo.from_certificate(parsed(served)).fingerprint_sha256
    with serving(served) as good, serving(untrusted) as bad:
        source = inventory.watch_endpoints(
            [good.address, bad.address],
            trust=tmp_path / "trust.pem",
            expected={good.address: expected, bad.address: expected},
            timeout=5,
            start=False,
        )
        with capture() as telemetry:
            inventory.refresh()
            valid = points(telemetry, m.CERTIFICATE_ENDPOINT_CHAIN_VALID)
            drift = points(telemetry, m.CERTIFICATE_ENDPOINT_DRIFT)
            after = points(telemetry, m.CERTIFICATE_NOT_AFTER)
    results = {p.endpoint.name: p for p in inventory.probes()}
    assert results[good.address].chain_valid is True
    assert results[good.address].tls_version in ("1.2", "1.3")
    assert len(results[good.address].chain) == 2  # leaf and intermediate, as served
    assert results[bad.address].chain_valid is False
    assert results[good.address].drift is False
    assert results[bad.address].drift is True
    assert [(e.source, e.reason.value) for e in source.errors] == [(bad.address, "chain_invalid")]
    good_labels = {
        a.CERTIFICATE_ID: good.address,
        a.SERVER_ADDRESS: "127.0.0.1",
        a.SERVER_PORT: good.port,
    }
    assert drift[frozenset(good_labels.items())] == 0
    tls_version = results[good.address].tls_version
    assert valid[frozenset({**good_labels, a.TLS_PROTOCOL_VERSION: tls_version}.items())] == 1
    leaf_key = [k for k in after if dict(k)[a.CERTIFICATE_ID] == good.address]
    assert after[leaf_key[0]] == parsed(served).not_valid_after_utc.timestamp()


def test_endpoint_failures_have_reasons(ca, inventory):
    """Closed port, hung handshake, non-TLS server and unresolvable name: each its reason."""
    with serving(None, mode="hang") as hang, serving(None, mode="plain") as plain:
        endpoints = [
            f"127.0.0.1:{closed_port()}",
            hang.address,
            plain.address,
            "certobs-test.invalid:443",
        ]
        source = inventory.watch_endpoints(endpoints, timeout=1.0, start=False)
        started = time.monotonic()
        inventory.refresh()
        elapsed = time.monotonic() - started
    reasons = {e.source: e.reason.value for e in source.errors}
    assert reasons == {
        endpoints[0]: "unreachable",
        endpoints[1]: "timeout",
        endpoints[2]: "handshake_failed",
        endpoints[3]: "unresolvable",
    }
    assert source.entries == ()
    # Probed concurrently: the hung endpoint's timeout is paid once, not added to the others.
    assert elapsed < 10  # a hang guard, not a performance assertion (the benchmark has that)


def test_expired_self_signed_endpoint(inventory):
    """An expired self-signed certificate is reported expired and its chain invalid."""
    ca = trustme.CA()
    expired = leaf(ca, days_left=-2)
    with serving(expired) as server:
        source = inventory.watch_endpoints([server.address], verify=True, start=False)
        inventory.refresh()
    (error,) = source.errors
    assert error.reason.value == "chain_invalid"
    statuses = {e.info.status(time.time()).value for e in source.entries if e.id == server.address}
    assert statuses == {"expired"}


def test_timezone_sanity():
    """The helpers use aware UTC times (a guard for the fixtures above)."""
    assert NOW.tzinfo is dt.timezone.utc


def test_kubernetes_secret_and_certbot_layouts(ca, inventory, tmp_path):
    """Secret volumes (..data links) and key files next to certificates give no false errors."""
    cert = leaf(ca)
    version = tmp_path / "..2026_12_03_10_00_00.123"
    version.mkdir()
    cert.cert_chain_pems[0].write_to_path(str(version / "tls.crt"))
    (version / "tls.key").write_bytes(cert.private_key_pem.bytes())
    (tmp_path / "..data").symlink_to(version.name)
    (tmp_path / "tls.crt").symlink_to("..data/tls.crt")
    live = tmp_path / "live"
    live.mkdir()
    cert.cert_chain_pems[0].write_to_path(str(live / "cert.pem"))
    (live / "privkey.pem").write_bytes(cert.private_key_pem.bytes())
    source = inventory.watch_files(tmp_path, start=False)
    inventory.refresh()
    assert source.errors == ()
    assert sorted(e.id for e in source.entries) == [
        str(live / "cert.pem"),
        str(tmp_path / "tls.crt"),
    ]


def test_one_bad_endpoint_never_hides_the_others(ca, inventory):
    """An invalid host name is that endpoint's error; the good endpoint is still read."""
    with serving(leaf(ca)) as good:
        source = inventory.watch_endpoints(
            [good.address, ("a" * 64) + ".example.com:443"], timeout=2, start=False
        )
        inventory.refresh()
    assert [e.id for e in source.entries] == [good.address]
    assert [e.reason.value for e in source.errors] == ["unresolvable"]


def test_counts_summed_over_inventories(ca):
    """Two inventories report one certificate.count series per status, not one each."""
    first, second = Inventory(), Inventory()
    try:
        first.track(parsed(leaf(ca)), id="one", issuer="corp")
        second.track(parsed(leaf(ca)), id="two", issuer="corp")
        with capture() as telemetry:
            counts = telemetry.points(m.CERTIFICATE_COUNT)
        assert [p.value for p in counts] == [2]
    finally:
        first.clear()
        second.clear()


def test_refresher_restarts_after_stop(ca, inventory, tmp_path):
    """stop() then start() leaves a running refresher."""
    leaf(ca).cert_chain_pems[0].write_to_path(str(tmp_path / "a.pem"))
    inventory.watch_files(tmp_path, interval=0.1)
    inventory.stop(timeout=0)
    inventory.start()
    assert inventory._thread.is_alive()
