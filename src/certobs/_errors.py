"""certobs' exception types and the handling of its own internal failures."""

from __future__ import annotations

import logging
import os
import threading

__all__ = ["ConfigurationError"]

logger = logging.getLogger("certobs")


class ConfigurationError(ValueError):
    """A setting given to certobs is invalid.

    The message names the setting, the value received and what is accepted. Raised by
    :func:`certobs.configure` and at decoration time, never from an instrumented call.
    """


_MAX_LOGGED = 1000
"""Distinct problems :func:`log_once` remembers (and logs) before it goes quiet."""
_OVERFLOW_KEY = "certobs:log-once-overflow"


class _Internal:
    """Whether certobs re-raises its own failures (strict mode) and which were logged."""

    strict = False
    _lock = threading.Lock()
    _logged: set[str] = set()  # noqa: RUF012 - process-wide on purpose: log each problem once


def _reinit_lock_in_child() -> None:
    # A lock held by another thread at os.fork() stays held forever in the child.
    _Internal._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_lock_in_child)


def set_strict(enabled: bool) -> None:
    """Turn strict mode on or off: in strict mode certobs re-raises its own failures.

    Only for tests; never enabled from the environment.
    """
    _Internal.strict = enabled


def is_strict() -> bool:
    """Return whether strict mode is on."""
    return _Internal.strict


def log_once(key: str, message: str, *args: object, level: int = logging.WARNING) -> None:
    """Log ``message`` on the ``certobs`` logger the first time ``key`` is seen."""
    with _Internal._lock:
        if key in _Internal._logged:
            return
        if len(_Internal._logged) >= _MAX_LOGGED:
            # Keys can come from user input (attribute names): the set must not grow forever.
            if _OVERFLOW_KEY in _Internal._logged:
                return
            _Internal._logged.add(_OVERFLOW_KEY)
            message, args = (
                "certobs: more than %d distinct problems were logged; further ones are not",
                (_MAX_LOGGED,),
            )
        else:
            _Internal._logged.add(key)
    logger.log(level, message, *args)


def reset_logged() -> None:
    """Forget which problems were logged, so that they are logged again (tests)."""
    with _Internal._lock:
        _Internal._logged.clear()


def internal_error(
    where: str, exc: BaseException, *, user_error: BaseException | None = None
) -> None:
    """Handle a failure inside certobs: log it once per place, re-raise it in strict mode.

    Must be called from an ``except`` block. With ``user_error`` (the exception the
    instrumented code raised, which is propagating), certobs' failure is only logged, strict
    mode or not: the user's exception is never replaced.
    """
    if _Internal.strict and user_error is None:
        raise exc
    with _Internal._lock:
        first = where not in _Internal._logged
        _Internal._logged.add(where)
    if first:
        logger.error(
            "certobs failed while %s; the instrumented code is unaffected, telemetry may be "
            "incomplete (logged once)",
            where,
            exc_info=exc,
        )
