"""Write the seed corpora of the fuzz targets under fuzz/corpus/ (run once; output committed).

The files named after a bug (``unsupported-curve.der``, ``x400-general-name.der``, ...) are
not written here: the fuzzer found them, and they stay as regression seeds.

The keys and dates are fixed and the signatures deterministic (Ed25519, RFC 6979 ECDSA), so
the certificates come out byte for byte the same on every run; only the PKCS#12 bundles differ,
by their random salts. Run with ``python fuzz/make_seeds.py``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

HERE = Path(__file__).parent
PASSWORD = b"seed-password"
"""The password of the encrypted bundle; fuzz_x509.py tries it on every input."""
START = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _chain() -> tuple[x509.Certificate, x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("seed root"))
        .issuer_name(_name("seed root"))
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(START)
        .not_valid_after(START + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, None)
    )
    leaf_key = ec.derive_private_key(0x5EED, ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("www.example.com"))
        .issuer_name(ca.subject)
        .public_key(leaf_key.public_key())
        .serial_number(0x1234ABCD)
        .not_valid_before(START)
        .not_valid_after(START + dt.timedelta(days=90))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("www.example.com"), x509.IPAddress(ipaddress.ip_address("192.0.2.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, None)
    )
    return ca, leaf, leaf_key


def _self_signed_ec() -> x509.Certificate:
    key = ec.derive_private_key(0xC0FFEE, ec.SECP256R1())
    return (
        x509.CertificateBuilder()
        .subject_name(_name("self"))
        .issuer_name(_name("self"))
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(START)
        .not_valid_after(START + dt.timedelta(days=30))
        .sign(key, hashes.SHA256(), ecdsa_deterministic=True)
    )


def seeds() -> dict[str, bytes]:
    """Return the seed files of fuzz_x509.py by name."""
    pem = serialization.Encoding.PEM
    der = serialization.Encoding.DER
    ca, leaf, leaf_key = _chain()
    # One PBKDF2 round: the seeds stay cheap to parse, so the fuzzer spends its time mutating.
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder().kdf_rounds(1).build(PASSWORD)
    )
    return {
        "leaf.pem": leaf.public_bytes(pem),
        "chain.pem": leaf.public_bytes(pem) + ca.public_bytes(pem),
        "leaf.der": leaf.public_bytes(der),
        "self-signed-ec.der": _self_signed_ec().public_bytes(der),
        "no-password.p12": pkcs12.serialize_key_and_certificates(
            None, None, leaf, [ca], serialization.NoEncryption()
        ),
        "password.p12": pkcs12.serialize_key_and_certificates(
            b"leaf", leaf_key, leaf, None, encryption
        ),
    }


def attribute_seeds() -> dict[str, bytes]:
    """Return the seed files of fuzz_attributes.py: byte strings its data provider reads."""
    leaf = _chain()[1].public_bytes(serialization.Encoding.PEM)
    return {
        "counting": bytes(range(256)),
        "ones": b"\x01" * 128,
        "high": bytes(range(255, -1, -1)),
        "with-pem": b"\x00\x03\x01\x00" + leaf[:200],
    }


def main() -> None:
    """Write the seeds."""
    for target, files in (("fuzz_x509", seeds()), ("fuzz_attributes", attribute_seeds())):
        out = HERE / "corpus" / target
        out.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (out / name).write_bytes(data)
            print(f"{out / name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
