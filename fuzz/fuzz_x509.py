"""Fuzz certobs' certificate parsing: ``load_certificates`` and what reads its result.

Hostile bytes (a file in a watched directory, a PKCS#12 bundle, a value given to
``set_certificate()``) may only ever raise :class:`certobs.x509.CertificateError` with reason
``bad_format`` or ``bad_password``; whatever parses must then describe itself without raising.
Any other exception is a crash. Run::

    python fuzz/fuzz_x509.py -max_total_time=60 fuzz/corpus/fuzz_x509
    python fuzz/fuzz_x509.py -runs=100000 fuzz/corpus/fuzz_x509

(libFuzzer adds the inputs it finds to the corpus directory: pass a scratch copy to keep the
committed seeds small.)
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from certobs import _x509
    from certobs.x509 import CertificateError, CertificateInfo, Reason, load_certificates

# The password of fuzz/corpus/fuzz_x509/password.p12 (see make_seeds.py).
PASSWORD = b"seed-password"
REASONS = frozenset({Reason.BAD_FORMAT, Reason.BAD_PASSWORD})
# A fixed "now" in the seeds' validity, so status() takes every branch.
NOW = 1_740_000_000.0


def _describe(certs: list) -> None:
    for cert in certs:
        try:
            info = CertificateInfo.from_certificate(cert)
        except CertificateError as exc:  # a field that only fails to decode when read
            if exc.reason != Reason.BAD_FORMAT:
                raise AssertionError(f"undocumented reason {exc.reason!r}") from exc
            continue
        info.span_attributes()
        info.status(NOW)
        info.fraction_left(NOW)


def _load(data: bytes, **kwargs: object) -> None:
    try:
        certs = load_certificates(data, **kwargs)
    except CertificateError as exc:
        if exc.reason not in REASONS:
            raise AssertionError(f"undocumented reason {exc.reason!r}") from exc
        return
    if not certs:
        raise AssertionError("load_certificates() returned no certificate")
    _describe(certs)


def test_one_input(data: bytes) -> None:
    """Parse ``data`` every way certobs does; only documented failures are allowed."""
    _load(data)
    _load(data, password=PASSWORD, kind="pkcs12")
    # A password from the input itself (the seeds end in MAC salts and counts: NUL bytes,
    # bytes that are not UTF-8), for the bundles that need none or are read without one.
    _load(data, password=data[-8:])
    # What set_certificate() does with bytes it is given.
    cert = _x509.load(data)
    if cert is not None:
        _x509.identity_attributes(cert)


def main() -> None:
    """Run libFuzzer on the arguments of the command line."""
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
