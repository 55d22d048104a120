"""One-shot recordings that are not operations: bundle requests."""

from __future__ import annotations

from certobs import _runtime
from certobs._errors import internal_error, log_once
from certobs._operation import _plain
from certobs.semconv import attributes as a

__all__ = ["record_bundle_request"]


def record_bundle_request(
    bundle: str, *, format: str | None = None, error_type: str | None = None
) -> None:
    """Count one request for a certificate or trust bundle (``certificate.bundle.requests``).

    Never raises: invalid values are dropped with one warning.

    Args:
        bundle: The bundle's configured name (``certificate.bundle.name``), low-cardinality.
        format: Its encoding (``certificate.bundle.format``): ``pem``, ``der``, ``pkcs7``,
            ``pkcs12`` or ``jks``.
        error_type: Set when the request failed: a short error class, for example the value of
            :func:`certobs.error_type` for the exception.
    """
    if not _runtime.recording():
        return
    try:
        if not isinstance(bundle, str) or not bundle:
            log_once(
                "bundle-name",
                "certobs: record_bundle_request() needs a non-empty bundle name, got %r",
                bundle,
            )
            return
        attrs = {a.CERTIFICATE_BUNDLE_NAME: bundle}
        if format is not None:
            attrs[a.CERTIFICATE_BUNDLE_FORMAT] = str(_plain(format))
        if error_type is not None:
            attrs[a.ERROR_TYPE] = str(_plain(error_type))
        store = _runtime._State.store
        if store is not None:
            store.bundle_requests.get(attrs).add(1)
        else:
            _runtime.instruments().bundle_requests.add(1, attrs)
    except Exception as exc:
        internal_error("recording a bundle request", exc)
