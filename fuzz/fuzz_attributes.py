"""Fuzz what users hand to an operation: ``set_attribute()``, ``set_certificate()``, exceptions.

Inside ``with certobs.renewal() as op`` with certobs recording in memory and strict mode on (so
any failure of certobs' own raises here instead of being logged), the input drives a few
``set_attribute()`` calls with keys and values of every kind (text, bytes, ints of any size,
floats with nan and inf, None, mixed and nested lists, PEM and private-key markers spliced in
anywhere), a ``set_certificate()`` call, and maybe a user exception. Crashes are: any exception
from certobs, a user exception that does not come out as the same object, and a recorded span
or metric attribute holding PEM or private-key material. Run::

    python fuzz/fuzz_attributes.py -max_total_time=60 fuzz/corpus/fuzz_attributes
"""

from __future__ import annotations

import contextlib
import sys

import atheris

with atheris.instrument_imports():
    import certobs
    from certobs._operation import METRIC_KEYS
    from certobs.semconv.metrics import CERTIFICATE_OPERATION_DURATION
    from certobs.testing import capture

MARKERS = ("-----BEGIN", "PRIVATE KEY")
SPLICE = (
    "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n",
    "-----BEGIN CERTIFICATE-----\nMIIBkTCB+wIJAKH",
    "-----BEGIN RSA PRIVATE KEY-----",
    "PRIVATE KEY",
    "-----BEGIN",
)
KEYS = (*sorted(METRIC_KEYS), "certificate.id", "acme.order", "db.password", "x.token")
# Every this many inputs, the recorded metrics are checked and a fresh capture started.
RENEW_EVERY = 256


class UserError(Exception):
    """What the user's code raises inside the block."""


def _text(fdp: atheris.FuzzedDataProvider) -> str:
    text = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 64))
    if fdp.ConsumeBool():
        at = fdp.ConsumeIntInRange(0, len(text))
        text = text[:at] + fdp.PickValueInList(list(SPLICE)) + text[at:]
    return text


def _key(fdp: atheris.FuzzedDataProvider) -> object:
    choice = fdp.ConsumeIntInRange(0, 3)
    if choice == 0:
        return fdp.PickValueInList(list(KEYS))
    if choice == 1:
        # Sometimes with a PEM marker in it: such a key must be dropped like such a value.
        key = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 32))
        return fdp.PickValueInList(["", *MARKERS]) + key
    if choice == 2:
        return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 16))
    return fdp.PickValueInList([None, 0, 1.5, ("a",)])


def _value(fdp: atheris.FuzzedDataProvider, depth: int = 0) -> object:
    choice = fdp.ConsumeIntInRange(0, 9)
    if choice == 0:
        return _text(fdp)
    if choice == 1:
        return _text(fdp).encode("utf-8", "surrogatepass")
    if choice == 2:
        return fdp.ConsumeInt(fdp.ConsumeIntInRange(1, 40))  # up to 320 bits
    if choice == 3:
        return fdp.ConsumeRegularFloat() if fdp.ConsumeBool() else fdp.ConsumeFloat()
    if choice == 4:
        return fdp.ConsumeBool()
    if choice == 5:
        return None
    if choice == 6:
        return bytearray(_text(fdp).encode())
    if depth < 2:
        items = [_value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 4))]
        return tuple(items) if choice == 7 else items
    return object()


def _leaks(attributes: object) -> bool:
    for key, value in dict(attributes or {}).items():  # type: ignore[call-overload]
        for text in (key, *(value if isinstance(value, tuple | list) else (value,))):
            if isinstance(text, str) and any(m in text for m in MARKERS):
                return True
    return False


class _Run:
    """Strict in-memory capture, renewed every few inputs so the recorded series stay few."""

    def __init__(self) -> None:
        self.stack = contextlib.ExitStack()
        self.telemetry = self.stack.enter_context(capture(strict=True))
        self.count = 0

    def one(self, data: bytes) -> None:
        fdp = atheris.FuzzedDataProvider(data)
        error = UserError() if fdp.ConsumeBool() else None
        try:
            with certobs.renewal() as op:
                for _ in range(fdp.ConsumeIntInRange(0, 4)):
                    op.set_attribute(_key(fdp), _value(fdp))  # type: ignore[arg-type]
                if fdp.ConsumeBool():
                    certificate = _value(fdp)
                    op.set_certificate(certificate, previous=_value(fdp))  # type: ignore[arg-type]
                if error is not None:
                    raise error
        except UserError as exc:
            if exc is not error:
                raise AssertionError("the user's exception was replaced") from exc
        else:
            if error is not None:
                raise AssertionError("the user's exception was lost")
        # What this run put on the duration histogram, checked now so a crash is this input.
        if _leaks(op._metric_attrs):
            raise AssertionError(f"PEM material on a metric: {op._metric_attrs}")
        for span in self.telemetry.spans():
            if _leaks(span.attributes):
                raise AssertionError(f"PEM material on a span: {dict(span.attributes or {})}")
        self.telemetry.clear()
        self.count += 1
        if self.count % RENEW_EVERY == 0:
            for point in self.telemetry.points(CERTIFICATE_OPERATION_DURATION):
                if _leaks(point.attributes):
                    raise AssertionError(f"PEM material on a metric: {dict(point.attributes)}")
            self.stack.close()
            self.telemetry = self.stack.enter_context(capture(strict=True))


def main() -> None:
    """Run libFuzzer on the arguments of the command line."""
    run = _Run()
    atheris.Setup(sys.argv, run.one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
