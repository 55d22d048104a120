"""Hostile input never crashes certobs, never hangs it, and never makes it record a secret.

Property tests (hypothesis) over what certobs is handed by files, endpoints and users:
certificate bytes for ``load_certificates()`` and ``set_certificate()``, attribute keys and
values, and the exceptions of the code it wraps. The coverage-guided counterparts are the
atheris targets under ``fuzz/``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import math
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
import trustme
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import certobs
from certobs import _x509
from certobs._operation import METRIC_KEYS, secret_reason
from certobs.semconv import attributes as a
from certobs.semconv.metrics import CERTIFICATE_OPERATION_DURATION
from certobs.testing import capture
from certobs.x509 import CertificateError, CertificateInfo, Reason, load_certificates

# Derandomized, no example database: the same examples on every run and no .hypothesis/ in the
# checkout. Sized so that the whole file runs in a few seconds.
PROPERTY = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
FEW = settings(PROPERTY, max_examples=60)

T = TypeVar("T")
MARKERS = ("-----BEGIN", "PRIVATE KEY")
PASSWORD = b"correct horse"
DOCUMENTED = frozenset({Reason.BAD_FORMAT, Reason.BAD_PASSWORD})


@functools.cache
def seeds() -> dict[str, bytes]:
    """Real certificates in every form certobs reads: trustme's chain, DER, PKCS#12 bundles."""
    ca = trustme.CA()
    leaf = ca.issue_cert("www.example.com", "192.0.2.1")
    chain_pem = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
    leaf_cert = x509.load_pem_x509_certificate(chain_pem)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), None)
    # One KDF round: parsing stays cheap, so the examples go to the mutations.
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder().kdf_rounds(1).build(PASSWORD)
    )
    return {
        "pem": leaf.cert_chain_pems[0].bytes(),
        "chain": chain_pem,
        "der": leaf_cert.public_bytes(serialization.Encoding.DER),
        "p12": pkcs12.serialize_key_and_certificates(
            b"leaf",
            key,  # type: ignore[arg-type]
            leaf_cert,
            [ca_cert],
            encryption,
        ),
        "p12-open": pkcs12.serialize_key_and_certificates(
            None, None, leaf_cert, [ca_cert], serialization.NoEncryption()
        ),
        "key": leaf.private_key_pem.bytes(),
        "key+cert": leaf.private_key_and_cert_chain_pem.bytes(),
    }


CERT_SEEDS = ("pem", "chain", "der", "p12", "p12-open")


@st.composite
def mutated(draw: st.DrawFn, names: tuple[str, ...] = CERT_SEEDS) -> bytes:
    """A real certificate or bundle with bytes flipped, inserted, deleted, or cut short."""
    data = bytearray(seeds()[draw(st.sampled_from(names))])
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        if op == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and at < len(data):
            data[at] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0x81, 0x82, 0xFF]))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        elif op == "truncate":
            del data[at:]
    return bytes(data)


certificate_bytes = st.one_of(st.binary(max_size=512), mutated())
passwords = st.one_of(
    st.none(),
    st.just(PASSWORD),
    st.binary(max_size=16),
    st.text(max_size=8),
    st.text(st.characters(codec=None, categories=["Cs"]), min_size=1, max_size=2),
)


def attempt(parse: Callable[..., T], *args: object, **kwargs: object) -> T | CertificateError:
    """Return what ``parse`` returns, or the CertificateError it raised."""
    try:
        return parse(*args, **kwargs)
    except CertificateError as exc:
        return exc


def check_loaded(result: list[x509.Certificate] | CertificateError, *reasons: Reason) -> None:
    """A documented failure, or certificates that describe themselves (or fail bad_format)."""
    if isinstance(result, CertificateError):
        assert result.reason in (reasons or DOCUMENTED)
        assert str(result)
        return
    assert result, "load_certificates() returned no certificate"
    for cert in result:
        info = attempt(CertificateInfo.from_certificate, cert)
        if isinstance(info, CertificateError):
            assert info.reason == Reason.BAD_FORMAT
            continue
        attributes = info.span_attributes()
        assert attributes[a.CERTIFICATE_FINGERPRINT_SHA256] == info.fingerprint_sha256
        info.status(0.0)
        assert 0.0 <= info.fraction_left(info.not_before) <= 1.0


# load_certificates() and CertificateInfo.from_certificate()


@PROPERTY
@given(
    data=certificate_bytes,
    kind=st.sampled_from([None, "pem", "der", "pkcs12"]),
    password=passwords,
)
@example(data=b"", kind="pkcs12", password=b"\0").via("a NUL byte made cryptography panic")
def test_load_certificates_raises_only_certificate_error(data, kind, password):
    """Arbitrary and mutated bytes parse, or raise CertificateError with a documented reason."""
    check_loaded(attempt(load_certificates, data, password=password, kind=kind))


@PROPERTY
@given(cut=st.integers(0, 2000), name=st.sampled_from(["pem", "chain", "key+cert"]))
def test_truncated_pem_raises_only_bad_format(cut, name):
    """PEM cut anywhere parses the certificates that are whole, or fails with bad_format."""
    check_loaded(attempt(load_certificates, seeds()[name][:cut]), Reason.BAD_FORMAT)


@FEW
@given(password=st.one_of(st.none(), st.binary(max_size=32), st.text(max_size=16)))
@example(password=None)
@example(password=b"")
@example(password=PASSWORD + b"\0")
@example(password="\0")
def test_wrong_password_is_bad_password(password):
    """A wrong or missing password on an encrypted bundle is bad_password, never another error."""
    candidate = password.encode() if isinstance(password, str) else password
    if candidate == PASSWORD:
        return
    with pytest.raises(CertificateError) as info:
        load_certificates(seeds()["p12"], password=password)
    assert info.value.reason == Reason.BAD_PASSWORD
    assert PASSWORD.decode() not in str(info.value)


@pytest.mark.parametrize("password", [PASSWORD, PASSWORD.decode()])
def test_right_password_reads_leaf_first(password):
    """The right password, bytes or str, reads the bundle: its own certificate, then the CA."""
    certs = load_certificates(seeds()["p12"], password=password, kind="pkcs12")
    leaf = x509.load_pem_x509_certificate(seeds()["pem"])
    assert [c == leaf for c in certs] == [True, False]


@FEW
@given(data=mutated(("p12", "p12-open")), password=st.sampled_from([None, b"", PASSWORD]))
def test_garbage_pkcs12_raises_only_certificate_error(data, password):
    """Mutated PKCS#12 bundles, read as such, parse or raise CertificateError."""
    check_loaded(attempt(load_certificates, data, password=password, kind="pkcs12"))


def test_unknown_kind_is_value_error():
    """A kind that is not pem, der, pkcs12 or None is a programming error: ValueError."""
    with pytest.raises(ValueError, match="kind='crt'"):
        load_certificates(b"\x30\x00", kind="crt")


# Inputs the fuzzer found (fuzz/corpus/fuzz_x509/): each used to raise something other than
# CertificateError from load_certificates() or CertificateInfo.from_certificate().


def _seed_leaf() -> tuple[x509.CertificateBuilder, ec.EllipticCurvePrivateKey]:
    key = ec.derive_private_key(0x5EED, ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "seed")])
    start = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=30))
    )
    return builder, key


def _found_by_fuzzer() -> dict[str, tuple[bytes, type[Exception], str]]:
    """The fuzzer's finds, rebuilt: DER, what cryptography raises, and on reading what."""
    builder, key = _seed_leaf()
    der = builder.sign(key, hashes.SHA256(), ecdsa_deterministic=True).public_bytes(
        serialization.Encoding.DER
    )
    p256 = bytes.fromhex("06082a8648ce3d030107")  # the named curve OID, 1.2.840.10045.3.1.7
    cn = bytes.fromhex("0603550403")  # OID 2.5.4.3, commonName
    return {
        # A curve OID cryptography does not implement: UnsupportedAlgorithm from public_key().
        "unsupported curve": (
            der.replace(p256, bytes.fromhex("06082a8650ce3d030107")),
            UnsupportedAlgorithm,
            "public_key",
        ),
        # Version 6 ([0] INTEGER 5): x509.InvalidVersion, which is not a ValueError.
        "invalid version": (
            der.replace(bytes.fromhex("a003020102"), bytes.fromhex("a003020105")),
            x509.InvalidVersion,
            "",
        ),
        # The SET of a name's first RDN turned into a private-class tag: a ValueError, raised
        # only when the name is read.
        "malformed name": (
            der.replace(b"\x31\x0d\x30\x0b" + cn, b"\xf3\x0d\x30\x0b" + cn),
            ValueError,
            "subject",
        ),
        # A commonName of type BIT STRING: TypeError from cryptography's NameAttribute.
        "bit string name": (
            der.replace(cn + b"\x0c\x04seed", cn + b"\x03\x04\x00eed"),
            TypeError,
            "subject",
        ),
    }


@pytest.mark.parametrize("name", sorted(_found_by_fuzzer()))
def test_fuzzer_finds_still_trip_cryptography(name):
    """The inputs below still make cryptography raise what certobs must handle."""
    data, raised, field = _found_by_fuzzer()[name]

    def read() -> object:
        attribute = getattr(x509.load_der_x509_certificate(data), field or "version")
        return attribute() if callable(attribute) else attribute

    with pytest.raises(raised):
        read()


@pytest.mark.parametrize("name", sorted(_found_by_fuzzer()))
def test_inputs_found_by_fuzzing(name):
    """Each certificate that once crashed the parser now gives info or CertificateError."""
    data, _, _ = _found_by_fuzzer()[name]
    check_loaded(attempt(load_certificates, data), Reason.BAD_FORMAT)
    _x509.identity_attributes(_x509.load(data) or x509.load_pem_x509_certificate(seeds()["pem"]))


def test_x400_address_degrades_to_no_alternative_names():
    """A certificate with a general name cryptography cannot read still describes itself."""
    builder, key = _seed_leaf()
    der = builder.add_extension(
        x509.SubjectAlternativeName([x509.DNSName("seed.example")]), critical=False
    ).sign(key, hashes.SHA256(), ecdsa_deterministic=True)
    data = der.public_bytes(serialization.Encoding.DER)
    # The dNSName [2] IA5String becomes an x400Address [3], constructed.
    mangled = data.replace(b"\x82\x0cseed.example", b"\xa3\x0cseed.example")
    (cert,) = load_certificates(mangled)
    with pytest.raises(x509.UnsupportedGeneralNameType):
        _ = cert.extensions
    info = CertificateInfo.from_certificate(cert)
    assert info.alternative_names == ()
    assert info.is_ca is False
    assert info.subject_common_name == "seed"


def _indefinite(p12: bytes) -> bytes:
    """``p12`` with its outer SEQUENCE in BER indefinite-length form (OpenSSL reads it)."""
    return b"\x30\x80" + b"".join(_children(p12)) + b"\x00\x00"


def _long_length(p12: bytes) -> bytes:
    """``p12`` with its outer length in 8 bytes, leading zeros (BER; OpenSSL reads it)."""
    body = b"".join(_children(p12))
    return b"\x30\x88" + len(body).to_bytes(8, "big") + body


@pytest.mark.parametrize("encoding", ["der", "ber-indefinite", "ber-long-length"])
def test_pkcs12_with_huge_iteration_count_does_not_hang(encoding):
    """A bundle whose MAC asks for 2**31-1 iterations is refused at once, not worked through.

    Also when it is BER-encoded, which the check must read as OpenSSL does.
    """
    data = _huge_mac_iterations(seeds()["p12-open"])
    data = {
        "der": data,
        "ber-indefinite": _indefinite(data),
        "ber-long-length": _long_length(data),
    }[encoding]
    code = textwrap.dedent(
        f"""
        from certobs.x509 import CertificateError, load_certificates
        data = bytes.fromhex({data.hex()!r})
        try:
            load_certificates(data)
        except CertificateError as exc:
            assert exc.reason == "bad_format", exc.reason
        else:
            raise AssertionError("loaded")
        """
    )
    try:
        subprocess.run([sys.executable, "-c", code], check=True, timeout=3)
    except subprocess.TimeoutExpired:
        pytest.fail("load_certificates() was still working after 3 s")


HOSTILE_PKCS12 = (
    # Found by review, each a way past an earlier version of the iteration check; with the
    # password b"pw" (or none) OpenSSL would work for minutes on each.
    "mac-constructed-salt.p12",  # the MAC's salt as a BER constructed OCTET STRING, 2**31-1
    "key-bag-constructed-salt.p12",  # the same in a shrouded key bag's PBKDF2 parameters
    "twenty-parts-10m-each.p12",  # twenty encrypted parts at exactly the per-part cap
    "scrypt-key-bag.p12",  # scrypt, whose cost is not an iteration count
)


@pytest.mark.parametrize("name", HOSTILE_PKCS12)
def test_hostile_pkcs12_is_refused_at_once(name):
    """Bundles that would keep OpenSSL busy for minutes are bad_format before it starts."""
    path = Path(__file__).resolve().parent.parent / "fuzz" / "corpus" / "fuzz_x509" / name
    code = textwrap.dedent(
        f"""
        from certobs.x509 import CertificateError, load_certificates
        data = open({str(path)!r}, "rb").read()
        for password in (None, b"pw"):
            try:
                load_certificates(data, password=password)
            except CertificateError as exc:
                assert exc.reason == "bad_format", exc.reason
            else:
                raise AssertionError("loaded")
        """
    )
    try:
        subprocess.run([sys.executable, "-c", code], check=True, timeout=5)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name}: load_certificates() was still working after 5 s")


@pytest.mark.filterwarnings("ignore:PKCS#12 bundle could not be parsed as DER")
def test_pkcs12_ber_bundles_still_load():
    """A usual bundle in BER form loads: the check reads BER, it does not refuse it."""
    data = seeds()["p12-open"]
    for variant in (_indefinite(data), _long_length(data)):
        assert len(load_certificates(variant, kind="pkcs12")) >= 1


def test_pkcs12_with_a_huge_integer_is_bad_format():
    """An iteration count thousands of digits long is bad_format, not a ValueError."""
    version, auth_safe, mac_data = _children(seeds()["p12-open"])
    digest, salt, _ = _children(mac_data)
    iterations = _der(0x02, b"\x7f" + b"\xff" * 2000)
    data = _der(0x30, version + auth_safe + _der(0x30, digest + salt + iterations))
    with pytest.raises(CertificateError) as raised:
        load_certificates(data)
    assert raised.value.reason == "bad_format"


def _der(tag: int, body: bytes) -> bytes:
    size = len(body)
    length = bytes([size]) if size < 0x80 else bytes([0x82]) + size.to_bytes(2, "big")
    return bytes([tag]) + length + body


def _children(data: bytes) -> list[bytes]:
    """The encoded elements inside a DER SEQUENCE (short or two-byte lengths only)."""
    start = 4 if data[1] == 0x82 else 3 if data[1] == 0x81 else 2
    found, at = [], start
    while at < len(data):
        size, head = data[at + 1], 2
        if size & 0x80:
            head = 2 + (size & 0x7F)
            size = int.from_bytes(data[at + 2 : at + head], "big")
        found.append(data[at : at + head + size])
        at += head + size
    return found


def _huge_mac_iterations(p12: bytes) -> bytes:
    """Return ``p12`` with the iteration count of its MAC set to 2**31-1 (MAC left as it was)."""
    version, auth_safe, mac_data = _children(p12)
    digest, salt, _ = _children(mac_data)
    iterations = _der(0x02, (2**31 - 1).to_bytes(4, "big"))
    return _der(0x30, version + auth_safe + _der(0x30, digest + salt + iterations))


# certobs._x509: what set_certificate() accepts.


class Hostile:
    """An object every dunder of which raises."""

    def __str__(self) -> str:
        raise RuntimeError("__str__")

    def __repr__(self) -> str:
        raise RuntimeError("__repr__")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("__eq__")

    def __hash__(self) -> int:
        raise RuntimeError("__hash__")

    def __len__(self) -> int:
        raise RuntimeError("__len__")

    def __iter__(self):
        raise RuntimeError("__iter__")


def _as_text(data: bytes) -> st.SearchStrategy[str]:
    return st.just(data.decode("latin-1"))


certificate_like = st.one_of(
    certificate_bytes,
    mutated(("pem", "chain", "der", "key", "key+cert")),
    certificate_bytes.flatmap(_as_text),
    st.sampled_from(list(seeds().values())).flatmap(_as_text),
    st.text(max_size=64),
    st.binary(max_size=64).map(bytearray),
    st.binary(max_size=64).map(memoryview),
    st.sampled_from([None, 0, 1.5, math.nan, [], ["-----BEGIN CERTIFICATE-----"], object()]),
    st.builds(Hostile),
)


@PROPERTY
@given(value=certificate_like)
def test_x509_load_never_raises(value):
    """_x509.load() returns a certificate or None for anything; its identity never raises."""
    cert = _x509.load(value)
    if cert is None:
        return
    assert isinstance(cert, x509.Certificate)
    attributes = _x509.identity_attributes(cert)
    assert not _leaks(attributes)


# secret_reason() and OperationHandle.set_attribute().


def _leaks(attributes: object) -> list[tuple[str, object]]:
    """The attributes whose key or value holds a PEM or private-key marker."""
    found = []
    for key, value in dict(attributes or {}).items():  # type: ignore[call-overload]
        texts = value if isinstance(value, list | tuple) else (value,)
        for text in (key, *texts):
            if isinstance(text, str) and any(marker in text for marker in MARKERS):
                found.append((key, value))
    return found


SECRETS = (
    "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n",
    "-----BEGIN EC PRIVATE KEY-----",
    "-----BEGIN CERTIFICATE-----\nMIIB",
    "-----BEGIN ENCRYPTED PRIVATE KEY-----",
    "PRIVATE KEY",
    "-----BEGIN",
)


@st.composite
def with_secret(draw: st.DrawFn) -> str:
    """Text with PEM or private-key material spliced in anywhere."""
    text = draw(st.text(max_size=40))
    at = draw(st.integers(0, len(text)))
    return text[:at] + draw(st.sampled_from(SECRETS)) + text[at:]


scalars = st.one_of(
    st.text(max_size=40),
    with_secret(),
    st.binary(max_size=40),
    with_secret().map(str.encode),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63, max_value=2**200),
    st.floats(),  # nan and both infinities included
    st.none(),
)
values = st.recursive(
    scalars | st.builds(Hostile) | st.builds(object),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner),
    max_leaves=8,
)
# Keys: names from the registry (metric keys too), arbitrary text, names that say "secret".
# Keys holding PEM markers are left out: see test_pem_in_attribute_key_is_not_recorded.
keys = st.one_of(
    st.sampled_from(sorted(METRIC_KEYS)),
    st.sampled_from([a.CERTIFICATE_ID, "acme.order", "db.password", "x.Token", "PrivateKey"]),
    st.text(min_size=1, max_size=20),
).filter(lambda key: not any(marker in key for marker in MARKERS))


def _holds_marker(value: object) -> bool:
    for text in value if isinstance(value, list | tuple) else (value,):
        if isinstance(text, bytes):
            text = text.decode("latin-1")
        if isinstance(text, str) and any(marker in text for marker in MARKERS):
            return True
    return False


@PROPERTY
@given(key=st.text(max_size=30), value=values)
def test_secret_reason_flags_every_marker(key, value):
    """secret_reason() never raises, and flags a marker in a value or any item of a list."""
    reason = secret_reason(key, value)
    assert reason is None or isinstance(reason, str)
    if _holds_marker(value):
        assert reason is not None


def _recordable(value: object) -> bool:
    kinds = (str, bool, int, float)
    if isinstance(value, list | tuple):
        return bool(value) and len({type(v) for v in value}) == 1 and type(value[0]) in kinds
    return type(value) in kinds


def _same(recorded: object, value: object) -> bool:
    if isinstance(value, list | tuple):
        return list(recorded) == list(value) or repr(list(recorded)) == repr(list(value))  # type: ignore[call-overload]
    return recorded == value or repr(recorded) == repr(value)  # nan


@PROPERTY
@given(attributes=st.lists(st.tuples(keys, values), max_size=5))
def test_set_attribute_never_raises_and_never_records_secrets(attributes):
    """Whatever is set: strict mode stays silent, no marker is recorded, valid values are."""
    with capture(strict=True) as telemetry:
        with certobs.renewal(issuer="corp-ca") as op:
            for key, value in attributes:
                op.set_attribute(key, value)
        (span,) = telemetry.spans()
        points = telemetry.points(CERTIFICATE_OPERATION_DURATION)
    assert _leaks(span.attributes) == []
    for point in points:
        assert _leaks(point.attributes) == []
    expected = {a.CERTIFICATE_OPERATION_NAME: "renew", a.CERTIFICATE_ISSUER_NAME: "corp-ca"}
    for key, value in attributes:
        if _recordable(value) and secret_reason(key, value) is None:
            expected[key] = value
    assert set(span.attributes) == set(expected)
    for key, value in expected.items():
        assert _same(span.attributes[key], value)


hostile_keys = st.one_of(
    keys,
    st.builds(Hostile),
    st.binary(max_size=8),
    st.sampled_from([None, "", 0, 1.5, ("a",), object()]),
)


@FEW
@given(key=hostile_keys, value=values, certificate=certificate_like)
def test_lenient_mode_never_raises_into_user_code(key, value, certificate):
    """Outside strict mode no key, value or certificate makes certobs raise into the caller."""
    with capture(strict=False) as telemetry:
        with certobs.renewal() as op:
            op.set_attribute(key, value)
            op.set_certificate(certificate, previous=certificate)
            certobs.current_operation().set_attribute(key, value)
        (span,) = telemetry.spans()
    assert _leaks(span.attributes) == []


@PROPERTY
@given(certificate=certificate_like, previous=certificate_like)
def test_set_certificate_never_raises_and_never_records_key_material(certificate, previous):
    """set_certificate() takes anything in strict mode; only a certificate's identity is kept."""
    with capture(strict=True) as telemetry:
        with certobs.renewal() as op:
            op.set_certificate(certificate, previous=previous)
        (span,) = telemetry.spans()
    assert _leaks(span.attributes) == []


@pytest.mark.parametrize("name", ["pem", "chain", "der", "key+cert"])
def test_set_certificate_records_identity(name):
    """Real certificates do put their identity on the span: the property above is not vacuous."""
    with capture(strict=True) as telemetry:
        with certobs.issuance() as op:
            op.set_certificate(seeds()[name])
        (span,) = telemetry.spans()
    leaf = x509.load_pem_x509_certificate(seeds()["pem"])
    fingerprint = leaf.fingerprint(hashes.SHA256()).hex().upper()
    assert span.attributes[a.CERTIFICATE_FINGERPRINT_SHA256] == fingerprint
    assert _leaks(span.attributes) == []


# The user's exceptions.


class UserError(Exception):
    """An exception of the user's code."""


class UnprintableError(Exception):
    """An exception whose message cannot be rendered."""

    def __str__(self) -> str:
        raise RuntimeError("no message")


errors = st.one_of(
    st.builds(UserError, st.text(max_size=20)),
    st.builds(ValueError, with_secret()),
    st.builds(UnprintableError),
    st.sampled_from([KeyboardInterrupt(), SystemExit(3), TimeoutError(), Exception()]),
)


@FEW
@given(error=errors, attributes=st.lists(st.tuples(hostile_keys, values), max_size=3))
def test_user_exception_is_never_lost_or_replaced(error, attributes):
    """The exception of the block or function comes out as itself, whatever certobs was given."""

    @certobs.renewal
    def renew():
        for key, value in attributes:
            certobs.current_operation().set_attribute(key, value)
        raise error

    @certobs.deployment
    async def deploy():
        renew()

    def block() -> None:
        with certobs.issuance() as op:
            for key, value in attributes:
                op.set_attribute(key, value)
            raise error

    calls = [block, renew]
    if isinstance(error, Exception):  # asyncio itself handles KeyboardInterrupt and SystemExit
        calls.append(lambda: asyncio.run(deploy()))
    with capture(strict=False):
        for call in calls:
            # Any type: what matters is that it is the very object raised.
            with pytest.raises(BaseException) as raised:  # noqa: PT011
                call()
            assert raised.value is error


@FEW
@given(
    error=st.builds(UserError, st.text(max_size=20)),
    attributes=st.lists(st.tuples(keys, values), max_size=3),
)
def test_user_exception_survives_strict_mode(error, attributes):
    """In strict mode too, bad attributes do not replace the exception of the user's code."""

    def block() -> None:
        with certobs.renewal() as op:
            for key, value in attributes:
                op.set_attribute(key, value)
            raise error

    with capture(strict=True), pytest.raises(UserError) as raised:
        block()
    assert raised.value is error


# Bugs in the attribute and exception handling that these properties found (now fixed).


@pytest.mark.parametrize("key", [SECRETS[0], "x.PRIVATE KEY", "-----BEGIN CERTIFICATE-----"])
def test_pem_in_attribute_key_is_not_recorded(key):
    """A key holding PEM or private-key material is dropped like such a value."""
    with capture(strict=True) as telemetry:
        with certobs.renewal() as op:
            op.set_attribute(key, "x")
        (span,) = telemetry.spans()
    assert _leaks(span.attributes) == []
    assert secret_reason(key, "x") is not None


def test_invalid_key_is_not_logged(caplog):
    """A key that is not a string (here PEM bytes) is dropped without being logged."""
    with (
        capture(strict=True),
        caplog.at_level(logging.DEBUG, "certobs"),
        certobs.renewal() as op,
    ):
        op.set_attribute(SECRETS[0].encode(), "x")  # type: ignore[arg-type]
    assert "MIGHAgEA" not in caplog.text


def test_nan_metric_attribute_does_not_grow_series():
    """A nan issuer name (a label of the duration metric) adds at most one series."""
    with capture(strict=True) as telemetry:
        for _ in range(3):
            with certobs.renewal() as op:
                op.set_attribute(a.CERTIFICATE_ISSUER_NAME, float("nan"))  # a new nan each time
        points = telemetry.points(CERTIFICATE_OPERATION_DURATION)
    assert len(points) <= 1


def test_unprintable_user_exception_survives_strict_mode():
    """In strict mode, an exception whose __str__ raises still comes out as itself."""
    error = UnprintableError()

    def block() -> None:
        with certobs.renewal():
            raise error

    with capture(strict=True), pytest.raises(BaseException) as raised:  # noqa: PT011 - any type
        block()
    assert raised.value is error


def test_pem_in_user_exception_message_is_not_recorded():
    """Key material in the message of the user's exception stays out of the span."""
    with capture(strict=True) as telemetry:
        with pytest.raises(ValueError, match="cannot load"), certobs.renewal():
            raise ValueError(f"cannot load {SECRETS[0]}")
        (span,) = telemetry.spans()
    recorded = [span.status.description or ""]
    recorded += [str(v) for event in span.events for v in dict(event.attributes or {}).values()]
    assert not any(marker in text for text in recorded for marker in MARKERS)


def test_pkcs12_iteration_cap_covers_key_derivation(monkeypatch):
    """The cap applies to PBKDF2 rounds of the encrypted parts too, not only the MAC."""
    import certobs.x509 as certobs_x509

    ca = trustme.CA()
    leaf = ca.issue_cert("p12.example")
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), None)
    cert = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(123_457)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .build(b"pw")
    )
    data = pkcs12.serialize_key_and_certificates(b"n", key, cert, None, encryption)
    assert len(load_certificates(data, password=b"pw")) == 1
    monkeypatch.setattr(certobs_x509, "MAX_PKCS12_ITERATIONS", 100_000)
    with pytest.raises(CertificateError) as raised:
        load_certificates(data, password=b"pw")
    assert raised.value.reason == "bad_format"
    assert "more key-derivation and MAC iterations" in str(raised.value)


@pytest.mark.parametrize("how", ["cause", "context", "note"])
def test_pem_in_a_chained_exception_is_not_recorded(how):
    """Key material in a cause, a context or a note stays out of the span too."""

    def fail() -> None:
        if how == "cause":
            raise RuntimeError("renewal failed") from ValueError(SECRETS[0])
        if how == "context":
            try:
                raise ValueError(SECRETS[0])
            except ValueError:
                raise RuntimeError("renewal failed")  # noqa: B904 - the implicit context is the point
        error = RuntimeError("renewal failed")
        error.add_note(SECRETS[0])
        raise error

    with capture(strict=True) as telemetry:
        with pytest.raises(RuntimeError, match="renewal failed"), certobs.renewal():
            fail()
        (span,) = telemetry.spans()
    recorded = [span.status.description or ""]
    recorded += [str(v) for event in span.events for v in dict(event.attributes or {}).values()]
    assert not any(marker in text for text in recorded for marker in MARKERS)
    assert "renewal failed" in span.status.description
    assert any("Traceback" in text for text in recorded)  # the stack trace is still there


def test_pem_in_a_source_line_is_not_recorded():
    """When the stack trace is written by certobs, source lines stay out of it."""

    def fail() -> None:
        raise RuntimeError("renewal failed") from ValueError("-----BEGIN PRIVATE KEY-----M")

    with capture(strict=True) as telemetry:
        with pytest.raises(RuntimeError), certobs.renewal():
            fail()
        (span,) = telemetry.spans()
    recorded = [str(v) for event in span.events for v in dict(event.attributes or {}).values()]
    assert not any(marker in text for text in recorded for marker in MARKERS)
    assert any("in fail" in text for text in recorded)  # the frames are there, by name
