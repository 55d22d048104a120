"""Lifecycle operations: one object that is both a decorator and a context manager.

Everything that can be decided when decorating is decided then (sync or async, static
attributes, which argument feeds which attribute); a call does: check, clock, call, record.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as _dt
import importlib
import inspect
import math
import os
import threading
import traceback
import weakref
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from enum import Enum
from time import perf_counter
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast, overload

import wrapt
from opentelemetry import context as otel_context
from opentelemetry import trace

from certobs import _runtime
from certobs._aggregate import BOUNDS as _BOUNDS
from certobs._aggregate import Shard, fold_shard
from certobs._errors import ConfigurationError, internal_error, log_once
from certobs._runtime import _State
from certobs.semconv import attributes as a
from certobs.semconv.attributes import CertificateOperationNameValues as OpName
from certobs.semconv.metrics import CERTIFICATE_OPERATION_DURATION, METRICS

if TYPE_CHECKING:
    from certobs._aggregate import HistogramSeries, Store, SumSeries
    from certobs._x509 import CertificateLike

F = TypeVar("F", bound=Callable[..., Any])

__all__ = [
    "Operation",
    "OperationHandle",
    "current_operation",
    "error_type",
]

AttributeValue = (
    str | bool | int | float | Sequence[str] | Sequence[bool] | Sequence[int] | Sequence[float]
)

# Attributes that go on the duration histogram as well as on the span. Everything else a user
# sets goes on the span only, so metric cardinality stays bounded by design.
METRIC_KEYS: Final = frozenset(METRICS[CERTIFICATE_OPERATION_DURATION].attributes) - {
    a.ERROR_TYPE,
    a.CERTIFICATE_OPERATION_NAME,
}

# Attributes that identify one certificate: they belong on spans. As metric labels they would
# make one series per certificate, so metric_attributes refuses them unless allowed.
IDENTITY_KEYS: Final = frozenset(
    {
        a.CERTIFICATE_ID,
        a.CERTIFICATE_SERIAL_NUMBER,
        a.CERTIFICATE_FINGERPRINT_SHA256,
        a.CERTIFICATE_SUBJECT_DISTINGUISHED_NAME,
        a.CERTIFICATE_SUBJECT_COMMON_NAME,
        a.CERTIFICATE_SUBJECT_ALTERNATIVE_NAMES,
        a.CERTIFICATE_ISSUER_DISTINGUISHED_NAME,
        a.CERTIFICATE_VALIDITY_NOT_BEFORE,
        a.CERTIFICATE_VALIDITY_NOT_AFTER,
    }
)

# The running operation: a handle, or, for a decorated call on the fast path, a one-item list
# (a cell) holding the operation's _Fast object until someone asks for a handle:
# current_operation() then puts the handle in the cell. Child contexts (tasks, to_thread) share
# the cell, so what they set reaches the call; an ended call empties its cell.
_current: contextvars.ContextVar[OperationHandle | list[Any] | None] = contextvars.ContextVar(
    "certobs_current_operation", default=None
)


def error_type(exc: BaseException) -> str:
    """Return the ``error.type`` value for an exception: its fully qualified class name.

    Built-in exceptions keep their bare name (``TimeoutError``); others are prefixed by their
    module (``acme.errors.ValidationError``).

    >>> error_type(TimeoutError())
    'TimeoutError'
    """
    cls = type(exc)
    module = cls.__module__
    if module == "builtins":
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"


def _plain(value: Any) -> Any:
    """Replace enum members (ours are ``str`` enums) by their values, in lists too."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list | tuple) and any(isinstance(v, Enum) for v in value):
        return [v.value if isinstance(v, Enum) else v for v in value]
    return value


_SECRET_NAMES: Final = ("password", "passphrase", "secret", "private_key", "privatekey", "token")
_SECRET_TEXT: Final = ("-----BEGIN", "PRIVATE KEY")


def secret_reason(key: str, value: object) -> str | None:
    """Say why ``key``/``value`` must not be recorded (a secret, key material, a PEM body).

    Returns:
        The reason, or None when the attribute may be recorded.
    """
    lowered = key.lower()
    if any(word in lowered for word in _SECRET_NAMES):
        return "its name says it holds a secret"
    if any(marker in key for marker in _SECRET_TEXT):
        return "its name holds PEM or private key material"
    texts = value if isinstance(value, list | tuple) else (value,)
    for text in texts:
        if isinstance(text, bytes | bytearray):
            text = bytes(text).decode("latin-1")
        if isinstance(text, str) and any(marker in text for marker in _SECRET_TEXT):
            return "its value holds PEM or private key material"
    return None


def _valid_value(value: object) -> bool:
    if isinstance(value, str | bool | int | float):
        return True
    if isinstance(value, list | tuple) and value:
        kinds = {type(v) for v in value}
        return len(kinds) == 1 and next(iter(kinds)) in (str, bool, int, float)
    return False


class OperationHandle:
    """One run of an operation: set per-call attributes and the certificate it produced.

    Obtained from ``with certobs.renewal(...) as op`` or, inside a decorated function, from
    :func:`certobs.current_operation`. Its methods never raise into the caller: bad values are
    dropped with one warning per attribute key.
    """

    __slots__ = (
        "_closed",
        "_ctx_token",
        "_fast",
        "_inst",
        "_metric_attrs",
        "_previous",
        "_previous_not_after",
        "_recording",
        "_span",
        "_start",
        "operation",
    )

    def __init__(self, operation: Operation) -> None:
        self.operation = operation
        self._metric_attrs = operation._metric_attrs if operation is not None else {}
        self._span: trace.Span | None = None
        self._start = 0.0
        self._previous: OperationHandle | list[Any] | None = None
        self._ctx_token: object | None = None
        self._inst: _runtime._Instruments | None = None
        self._fast: _Fast | None = None
        self._recording = False
        self._closed = False
        self._previous_not_after: float | None = None

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        """Set an attribute on this run of the operation.

        The low-cardinality attributes of ``certificate.operation.duration``
        (``certificate.issuer.name``, ``certificate.deployment.target.type``,
        ``deployment.environment.name``) go on the metric and the span; any other key goes on
        the span only.

        Args:
            key: The attribute name, preferably a constant from ``certobs.semconv.attributes``.
            value: A string, bool, int or float, or a non-empty list of one of those. Other
                values (``None`` included) are dropped with one warning per key.
        """
        try:
            if not isinstance(key, str) or not key:
                # The key itself is never logged: it could be key material.
                kind = type(key).__name__
                log_once(
                    f"attr-key:{kind}",
                    "certobs: dropped an attribute whose key is not a non-empty str (a %s)",
                    kind,
                )
                return
            value = _plain(value)
            secret = secret_reason(key, value)
            if secret is not None:
                log_once(
                    f"attr-secret:{key}",
                    "certobs: dropped attribute %r: %s; certobs never records secrets "
                    "(warned once per key)",
                    key,
                    secret,
                )
                return
            if not _valid_value(value):
                # The value itself is never logged: it could be key material.
                log_once(
                    f"attr-value:{key}",
                    "certobs: dropped attribute %r: a value of type %s is not a str, bool, int, "
                    "float or a non-empty list of one of those (warned once per key)",
                    key,
                    type(value).__name__,
                )
                return
            if key in self.operation._metric_keys:
                if isinstance(value, str) and value:
                    if self._metric_attrs is self.operation._metric_attrs:
                        self._metric_attrs = dict(self._metric_attrs)
                    self._metric_attrs[key] = value
                else:
                    # A metric label is a non-empty string: a float (nan is never equal to
                    # itself) or a list would make series nobody can query, or one per call.
                    log_once(
                        f"attr-label:{key}",
                        "certobs: %r is a label of certificate.operation.duration and takes a "
                        "non-empty str; a %s was set on the span only (warned once per key)",
                        key,
                        type(value).__name__,
                    )
            if self._span is not None:
                self._span.set_attribute(key, value)
        except Exception as exc:
            internal_error("setting an operation attribute", exc)

    def set_certificate(
        self, certificate: CertificateLike, *, previous: CertificateLike | None = None
    ) -> None:
        """Record the certificate this operation produced or acted on.

        Its identity (subject, issuer, serial, SHA-256 fingerprint, SANs, validity) goes on the
        span. For a renewal, pass the certificate being replaced as ``previous``: when the
        renewal succeeds, its remaining validity is recorded as
        ``certificate.renewal.lead_time``.

        Args:
            certificate: A ``cryptography.x509.Certificate``, or its PEM or DER bytes.
            previous: The certificate being replaced, same forms.
        """
        try:
            from certobs import _x509

            if previous is not None and self.operation.name == OpName.RENEW.value:
                old = _x509.load(previous)
                if old is not None:
                    self._previous_not_after = old.not_valid_after_utc.timestamp()
            if self._span is not None and self._span.is_recording():
                cert = _x509.load(certificate)
                if cert is not None:
                    self._span.set_attributes(_x509.identity_attributes(cert))
        except Exception as exc:
            internal_error("reading a certificate for set_certificate()", exc)

    # Lifecycle, driven by Operation. Every step that _begin completed is undone by _end, even
    # when another step fails, so a certobs failure never leaves a stale current operation, an
    # attached span context, an unended span or a leaked active count behind.

    def _begin(self) -> None:
        self._start = perf_counter()
        op = self.operation
        self._previous = _current.get()
        _current.set(self)
        store = _runtime._State.store
        if store is not None:
            fast = op._fast
            if fast is None or fast.store is not store:
                fast = op._bind_store(store)
            fast.active.add(1)
            self._fast = fast
        else:
            inst = _runtime.instruments()
            inst.active.add(1, op._active_attrs)
            self._inst = inst
        tracer = _runtime.tracer()
        if tracer is not None:
            span = tracer.start_span(op.span_name, attributes=op._span_attrs)
            self._span = span
            self._ctx_token = otel_context.get_current()
            otel_context.attach(trace.set_span_in_context(span))
        self._recording = True
        self._start = perf_counter()

    def _end(self, exc: BaseException | None) -> None:
        duration = perf_counter() - self._start
        fast = self._fast
        inst = self._inst
        if fast is not None and fast.store.pid != os.getpid():
            # Began before os.fork(), ends in the child: the parent's store, whose locks
            # another thread may have held at the fork, is left alone.
            self._recording = False
            self._fast = fast = None
        try:
            # Only a fully started run has a meaningful duration.
            if self._recording:
                if fast is not None:
                    self._record_fast(fast, duration, exc)
                elif inst is not None:
                    self._record(inst, duration, exc)
        finally:
            try:
                if fast is not None:
                    self._fast = None
                    fast.active.add(-1)
                elif inst is not None:
                    self._inst = None
                    inst.active.add(-1, self.operation._active_attrs)
            finally:
                self._leave()
                if self._span is not None:
                    self._close_span(exc)

    def _leave(self) -> None:
        """Stop being the current operation, restoring the nearest enclosing open one."""
        self._closed = True
        if _current.get() is self:
            previous = self._previous
            # An enclosing entry may have ended first (generators suspended inside blocks).
            while isinstance(previous, OperationHandle) and previous._closed:
                previous = previous._previous
            _current.set(previous)

    def _record_fast(self, fast: _Fast, duration: float, exc: BaseException | None) -> None:
        attrs = self._metric_attrs
        if exc is None and attrs is self.operation._metric_attrs:
            series = fast.ok
        else:
            if exc is not None:
                attrs = {**attrs, a.ERROR_TYPE: error_type(exc)}
            series = fast.store.duration.get(attrs)
        span = self._span
        context = None
        if span is not None:
            # Exemplars follow the SDK's default, trace-based filter: sampled spans only.
            context = span.get_span_context()
            if not context.trace_flags.sampled:
                context = None
        series.record(duration, context)
        if exc is None and self._previous_not_after is not None:
            self._record_lead_time(_runtime.instruments(), attrs)

    def _record_lead_time(self, inst: _runtime._Instruments, attrs: Mapping[str, Any]) -> None:
        assert self._previous_not_after is not None
        lead = self._previous_not_after - _dt.datetime.now(_dt.timezone.utc).timestamp()
        issuer = attrs.get(a.CERTIFICATE_ISSUER_NAME)
        inst.lead_time.record(max(lead, 0.0), {a.CERTIFICATE_ISSUER_NAME: issuer} if issuer else {})

    def _record(
        self, inst: _runtime._Instruments, duration: float, exc: BaseException | None
    ) -> None:
        attrs = self._metric_attrs
        if exc is not None:
            attrs = {**attrs, a.ERROR_TYPE: error_type(exc)}
        # Recorded while the span is still current, so exemplars link to it.
        inst.duration.record(duration, attrs)
        if exc is None and self._previous_not_after is not None:
            self._record_lead_time(inst, attrs)

    def _close_span(self, exc: BaseException | None) -> None:
        span = self._span
        assert span is not None
        self._span = None
        previous, self._ctx_token = self._ctx_token, None
        try:
            if exc is not None:
                _record_error(span, exc)
        finally:
            # Restore the context we replaced, and only where our span is still current: a
            # generator finalised in another context must not clobber what runs there now.
            # (Setting it back, rather than detaching a token, cannot fail in another context.)
            if previous is not None and trace.get_current_span() is span:
                otel_context.attach(previous)  # type: ignore[arg-type]
            span.end()

    def _abort(self) -> None:
        """Undo a partly started run, after certobs failed while starting it."""
        self._recording = False
        # Already failing: the first error is the one reported, not a second from cleanup.
        with contextlib.suppress(Exception):
            self._end(None)


class _Fast:
    """An operation's series in the current store: resolved once, used by every call."""

    __slots__ = ("active", "local", "ok", "operation", "store")

    def __init__(
        self, operation: Operation, store: Store, ok: HistogramSeries, active: SumSeries
    ) -> None:
        self.operation = operation
        self.store = store
        self.ok = ok
        self.active = active
        # Each thread's Shard of ``ok`` and ``active``.
        self.local = threading.local()

    def new_shard(self) -> Shard:
        """Create and register this thread's shard, folded back when the thread ends."""
        shard = Shard()
        with self.ok.lock:
            self.ok.shards.append(shard)
        with self.active.lock:
            self.active.shards.append(shard)
        # The thread's locals are dropped when it ends, and the sentinel with them: that is the
        # moment to fold the shard into the series, so short-lived threads leave nothing behind.
        sentinel = _ThreadEnd()
        weakref.finalize(sentinel, fold_shard, self.ok, self.active, shard)
        self.local.sentinel = sentinel
        self.local.shard = shard
        return shard


class _ThreadEnd:
    """Lives in a thread's locals; its finalizer runs when the thread ends."""

    __slots__ = ("__weakref__",)


def _message(exc: BaseException) -> tuple[str | None, bool]:
    """Return the exception's message that may be recorded, and whether the SDK may record it.

    The message is None when ``__str__`` fails, and a placeholder when it holds key material.
    The SDK's exception event holds the whole chain (causes, context, notes): it may be used
    only when none of it holds key material either.
    """
    try:
        text = str(exc)
    except Exception:
        return None, False
    if secret_reason("exception.message", text) is not None:
        return "[redacted by certobs: the message holds PEM or private key material]", False
    try:
        chain = "".join(traceback.format_exception(exc))
    except Exception:
        return text, False
    return text, secret_reason("exception.stacktrace", chain) is None


def _record_error(span: trace.Span, exc: BaseException) -> None:
    """Put a failure on the span: ``error.type``, the error status and an exception event.

    The event is the SDK's (``record_exception``) when the exception and its chain can be
    recorded; else one written here with the message or its placeholder and the exception's
    own stack trace, without the chain.
    """
    etype = error_type(exc)
    span.set_attribute(a.ERROR_TYPE, etype)
    message, genuine = _message(exc)
    span.set_status(trace.StatusCode.ERROR, f"{etype}: {message}" if message else etype)
    if genuine:
        span.record_exception(exc, escaped=True)
        return
    # This exception's own frames, without their source lines (a line may hold what was
    # flagged), no message that holds key material, no chain.
    frames = "".join(
        f'  File "{frame.filename}", line {frame.lineno}, in {frame.name}\n'
        for frame in traceback.extract_tb(exc.__traceback__)
    )
    last = f"{etype}: {message}" if message else etype
    attributes: dict[str, AttributeValue] = {
        "exception.type": etype,
        "exception.stacktrace": f"Traceback (most recent call last):\n{frames}{last}",
        "exception.escaped": "True",
    }
    if message is not None:
        attributes["exception.message"] = message
    span.add_event("exception", attributes)


class _NoopHandle(OperationHandle):
    """What :func:`current_operation` returns outside an operation: accepts and drops."""

    __slots__ = ()

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        return None

    def set_certificate(
        self, certificate: CertificateLike, *, previous: CertificateLike | None = None
    ) -> None:
        return None


def current_operation() -> OperationHandle:
    """Return the handle of the operation running in this context.

    Inside a function decorated with a certobs operation this is that call's handle; outside
    any operation (or while certobs records nothing) it is a handle that ignores what it is
    given, so the call is always safe.

    >>> current_operation().set_attribute("certificate.id", "api")  # no operation: ignored
    """
    current = _current.get()
    if current is None:
        return _NOOP
    if isinstance(current, list):
        inside = current[0]
        if isinstance(inside, _Fast):
            # A decorated call on the fast path: make its handle only now that it is wanted.
            handle = OperationHandle(inside.operation)
            handle._fast = inside
            handle._recording = True
            current[0] = handle
            return handle
        return inside if inside is not None else _NOOP
    return current


def _metric_keys(extra: Iterable[str] | None, allow_identity: bool) -> frozenset[str]:
    """Validate ``metric_attributes``; return every key the operation's metric takes."""
    if extra is None:
        return METRIC_KEYS
    if isinstance(extra, str):
        raise ConfigurationError(
            f"metric_attributes={extra!r}: expected a list of attribute names, not one string "
            f"(write metric_attributes=[{extra!r}])"
        )
    keys = set(METRIC_KEYS)
    for key in extra:
        if not isinstance(key, str) or not key:
            raise ConfigurationError(f"metric_attributes: {key!r} is not a non-empty string")
        if key in (a.ERROR_TYPE, a.CERTIFICATE_OPERATION_NAME):
            raise ConfigurationError(
                f"metric_attributes: {key!r} is set by certobs itself; leave it out"
            )
        if secret_reason(key, "") is not None:
            raise ConfigurationError(
                f"metric_attributes: {key!r} names a secret; certobs never records secrets"
            )
        if key in IDENTITY_KEYS and not allow_identity:
            raise ConfigurationError(
                f"metric_attributes: {key!r} identifies one certificate; as a metric label it "
                "makes a series per certificate (it is on the span already). Pass "
                "allow_identity=True to put it on the metric anyway; the cardinality limit "
                "still applies"
            )
        keys.add(key)
    return frozenset(keys)


def _check_label(name: str, value: object) -> str | None:
    """Validate a static metric label (issuer, target type, environment): a non-empty str."""
    value = _plain(value)
    if value is not None and (not isinstance(value, str) or not value):
        raise ConfigurationError(
            f"{name}: expected a non-empty string, got a {type(value).__name__}"
        )
    return value


def _check_static(name: str, value: object) -> Any:
    """Validate a static attribute value; None is refused here, unlike in set_attribute."""
    value = _plain(value)
    secret = secret_reason(name, value)
    if secret is not None:
        raise ConfigurationError(f"{name}: refused, {secret}; certobs never records secrets")
    if not _valid_value(value):
        raise ConfigurationError(
            f"{name}: expected a str, bool, int or float (or a non-empty list of one), "
            f"got a {type(value).__name__}"
        )
    return value


class Operation:
    """A certificate lifecycle operation: decorator and context manager in one object.

    Use the presets (:data:`certobs.renewal`, :data:`certobs.deployment`, ...) or
    :func:`certobs.operation` for a custom name. As a decorator it wraps sync functions,
    coroutine functions, methods, classmethods and staticmethods, keeping their signature;
    generator functions are refused. As a context manager (``with`` or ``async with``) it yields
    an :class:`OperationHandle`. One object can be entered many times, from many threads.

    Each run records ``certificate.operation.duration`` (with ``error.type`` when it raised) and
    ``certificate.operation.active``, and opens a span named ``certificate.<operation>`` when a
    TracerProvider is installed. Exceptions from the wrapped code propagate unchanged.
    """

    __slots__ = (
        "_active_attrs",
        "_arg_offset",
        "_arg_positions",
        "_fast",
        "_metric_attrs",
        "_metric_keys",
        "_open",
        "_span_attrs",
        "arg_attributes",
        "name",
        "span_name",
    )

    def __init__(
        self,
        name: str,
        *,
        issuer: str | None = None,
        target_type: str | None = None,
        environment: str | None = None,
        attributes: Mapping[str, AttributeValue] | None = None,
        arg_attributes: Mapping[str, str] | None = None,
        metric_attributes: Iterable[str] | None = None,
        allow_identity: bool = False,
    ) -> None:
        if isinstance(name, OpName):
            name = name.value
        if not isinstance(name, str) or not name or name != name.strip():
            raise ConfigurationError(
                f"operation name {name!r}: expected a short non-empty string such as 'renew' "
                "or one of certobs.semconv.attributes.CertificateOperationNameValues"
            )
        issuer = _check_label("issuer", issuer)
        target_type = _check_label("target_type", target_type)
        environment = _check_label("environment", environment)
        self.name = name
        self.span_name = f"certificate.{name}"
        metric: dict[str, AttributeValue] = {a.CERTIFICATE_OPERATION_NAME: name}
        for key, given in (
            (a.CERTIFICATE_ISSUER_NAME, issuer),
            (a.CERTIFICATE_DEPLOYMENT_TARGET_TYPE, target_type),
            (a.DEPLOYMENT_ENVIRONMENT_NAME, environment),
        ):
            if given is not None:
                metric[key] = given
        self._metric_keys = _metric_keys(metric_attributes, allow_identity)
        span: dict[str, AttributeValue] = dict(metric)
        for key, value in (attributes or {}).items():
            if not isinstance(key, str) or not key:
                raise ConfigurationError(f"attributes: key {key!r} is not a non-empty string")
            value = _check_static(f"attributes[{key!r}]", value)
            span[key] = value
            label = (
                _check_label(f"attributes[{key!r}]", value) if key in self._metric_keys else None
            )
            if label is not None:
                metric[key] = label
        self._metric_attrs = metric
        self._span_attrs = span
        self._active_attrs = {a.CERTIFICATE_OPERATION_NAME: name}
        self.arg_attributes = dict(arg_attributes or {})
        for arg, key in self.arg_attributes.items():
            if not isinstance(arg, str) or not isinstance(key, str) or not key:
                raise ConfigurationError(
                    f"arg_attributes: {arg!r} -> {key!r}: expected parameter name -> attribute name"
                )
        self._arg_positions: tuple[tuple[str, int | None, str], ...] = ()
        self._arg_offset = 1
        self._fast: _Fast | None = None
        # Entries of this object as a context manager that have not exited yet.
        self._open: list[tuple[int, OperationHandle]] = []

    def __repr__(self) -> str:
        return f"<certobs.Operation {self.name!r} {self._span_attrs!r}>"

    def _bind_store(self, store: Store) -> _Fast:
        """Resolve this operation's static series in ``store``, once per store."""
        fast = _Fast(
            self,
            store,
            store.duration.get(self._metric_attrs),
            store.active.get(self._active_attrs),
        )
        self._fast = fast
        return fast

    # Context manager.

    def __enter__(self) -> OperationHandle:
        if _runtime.recording():
            handle = OperationHandle(self)
            try:
                handle._begin()
            except Exception as exc:
                handle._abort()
                internal_error(f"starting operation {self.name!r}", exc)
        else:
            # Made current all the same, so current_operation() inside the block is this one.
            handle = _NoopHandle(self)
            handle._previous = _current.get()
            _current.set(handle)
        self._open.append((threading.get_ident(), handle))
        return handle

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        handle = self._pop_open()
        if handle is None:
            return
        if isinstance(handle, _NoopHandle):
            handle._leave()
            return
        try:
            handle._end(exc)
        except Exception as err:
            internal_error(f"ending operation {self.name!r}", err, user_error=exc)

    def _pop_open(self) -> OperationHandle | None:
        """Find the entry this exit belongs to.

        Normally the current operation. When ``with`` blocks of one operation interleave in a
        thread (generators suspended inside them) or an async generator is finalised in another
        context, the most recent open entry of this thread.
        """
        current = _current.get()
        ident = threading.get_ident()
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index][1] is current:
                return self._open.pop(index)[1]
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index][0] == ident:
                return self._open.pop(index)[1]
        return None

    async def __aenter__(self) -> OperationHandle:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    # Decorator.

    def __call__(self, func: F) -> F:
        """Wrap ``func`` so that each call is recorded as one run of this operation.

        Raises:
            TypeError: If ``func`` is not callable, or is a generator or async generator
                function.
            ConfigurationError: If ``arg_attributes`` names a parameter ``func`` does not have.
        """
        target = func.__func__ if isinstance(func, classmethod | staticmethod) else func
        if not callable(target):
            raise TypeError(f"certobs.{self.name}: can only decorate a callable, got {func!r}")
        if inspect.isgeneratorfunction(target) or inspect.isasyncgenfunction(target):
            raise TypeError(
                f"certobs: cannot instrument generator function {target.__qualname__!r}: its "
                "body runs while it is iterated, not when it is called, so its duration would "
                "be wrong. Instrument the function that consumes it, or use "
                f"`with certobs.operation({self.name!r}):` inside it."
            )
        if self.arg_attributes:
            bound = self._bind_arguments(target)
            # Mapped arguments go on the span and metric: always the general path.
            is_async = inspect.iscoroutinefunction(target)
            wrapper = bound._async_wrapper if is_async else bound._sync_wrapper
        elif inspect.iscoroutinefunction(target):
            wrapper = self._fast_async_wrapper
        else:
            wrapper = self._fast_sync_wrapper
        # wrapt tests the truth of what `enabled` returns; recording() returns a provider.
        enabled = cast(Callable[[], bool], _runtime.recording)
        return cast(F, _Instrumented(func, wrapper, enabled=enabled))

    def _bind_arguments(self, target: Callable[..., Any]) -> Operation:
        """Return a copy of this operation that reads attributes from ``target``'s arguments."""
        try:
            params = list(inspect.signature(target).parameters.values())
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(
                f"arg_attributes: cannot read the signature of {target!r}: {exc}"
            ) from exc
        positions = []
        for arg, key in self.arg_attributes.items():
            for index, param in enumerate(params):
                if param.name == arg:
                    positional = param.kind in (
                        inspect.Parameter.POSITIONAL_ONLY,
                        inspect.Parameter.POSITIONAL_OR_KEYWORD,
                    )
                    keyword = param.kind != inspect.Parameter.POSITIONAL_ONLY
                    positions.append((arg if keyword else "", index if positional else None, key))
                    break
            else:
                names = ", ".join(p.name for p in params) or "none"
                raise ConfigurationError(
                    f"arg_attributes: {getattr(target, '__qualname__', target)!r} has no "
                    f"parameter {arg!r} (its parameters: {names})"
                )
        clone = object.__new__(Operation)
        for slot in Operation.__slots__:
            setattr(clone, slot, getattr(self, slot))
        clone._arg_positions = tuple(positions)
        # A bound method's signature has already dropped self; wrapt still passes the instance.
        clone._arg_offset = 0 if inspect.ismethod(target) else 1
        return clone

    def _start(
        self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> OperationHandle:
        handle = OperationHandle(self)
        try:
            handle._begin()
            if self._arg_positions:
                # wrapt passes a method's arguments without self/cls.
                offset = 0 if instance is None else self._arg_offset
                for name, index, key in self._arg_positions:
                    if name in kwargs:
                        handle.set_attribute(key, kwargs[name])
                    elif index is not None and 0 <= index - offset < len(args):
                        handle.set_attribute(key, args[index - offset])
        except Exception as exc:
            handle._abort()
            internal_error(f"starting operation {self.name!r}", exc)
        return handle

    def _finish(self, handle: OperationHandle, exc: BaseException | None) -> None:
        try:
            handle._end(exc)
        except Exception as err:
            internal_error(f"ending operation {self.name!r}", err, user_error=exc)

    # The fast path: certobs owns the readers (a store is installed), tracing is off and no
    # arguments are mapped. Everything is inline; a handle is made only if the call asks for
    # one. Any other case takes the general path below.

    def _fast_end(
        self,
        fast: _Fast,
        shard: Shard,
        cell: list[Any],
        token: contextvars.Token[OperationHandle | list[Any] | None],
        duration: float,
        exc: BaseException | None,
    ) -> None:
        """End a fast-path call that failed or asked for its handle."""
        try:
            inside, cell[0] = cell[0], None
            self._fast_end_slow(fast, inside, duration, exc)
        except Exception as err:
            internal_error(f"ending operation {self.name!r}", err, user_error=exc)
        finally:
            shard.version += 1
            try:
                shard.active -= 1
                shard.updates += 1
            finally:
                shard.version += 1
            try:
                _current.reset(token)
            except ValueError:  # finished in another context than it started in
                if _current.get() is cell:
                    _current.set(None)

    def _fast_end_slow(
        self,
        fast: _Fast,
        current: OperationHandle | _Fast | None,
        duration: float,
        exc: BaseException | None,
    ) -> None:
        """Record a fast-path call that failed, or whose handle was asked for."""
        attrs = self._metric_attrs
        handle = None
        if isinstance(current, OperationHandle) and current._fast is fast:
            handle = current
            attrs = handle._metric_attrs
            handle._closed = True
        if fast.store.pid != os.getpid():
            # The call began before os.fork() and ends in the child: the store it began in is
            # the parent's copy, whose locks another thread may have held at the fork.
            return
        if exc is not None:
            attrs = {**attrs, a.ERROR_TYPE: error_type(exc)}
        series = fast.ok if attrs is self._metric_attrs else fast.store.duration.get(attrs)
        series.record(duration)
        if exc is None and handle is not None and handle._previous_not_after is not None:
            handle._record_lead_time(_runtime.instruments(), attrs)

    def _fast_sync_wrapper(
        self,
        wrapped: Callable[..., Any],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        store = _State.store
        if (
            store is None
            or _State.tracer_provider is not None
            or trace._TRACER_PROVIDER is not None
        ):
            return self._sync_wrapper(wrapped, instance, args, kwargs)
        try:
            fast = self._fast
            if fast is None or fast.store is not store:
                fast = self._bind_store(store)
            try:
                shard = fast.local.shard
            except AttributeError:
                shard = fast.new_shard()
            # This thread's shard: written without a lock (see certobs._aggregate.Shard).
            shard.version += 1
            try:
                shard.active += 1
                shard.updates += 1
            finally:
                shard.version += 1
        except Exception as err:
            internal_error(f"starting operation {self.name!r}", err)
            return wrapped(*args, **kwargs)
        cell: list[Any] = [fast]
        token = _current.set(cell)
        start = perf_counter()
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            self._fast_end(fast, shard, cell, token, perf_counter() - start, exc)
            raise
        duration = perf_counter() - start
        if cell[0] is not fast:  # the call asked for its handle
            self._fast_end(fast, shard, cell, token, duration, None)
            return result
        # The common case, inline: a success that asked for no handle. Nothing here can fail
        # but through an exception from a signal handler, which must reach the caller: no
        # `except`, and the version is made even again whatever happens.
        cell[0] = None
        _current.reset(token)
        index = bisect_left(_BOUNDS, duration)
        reset = shard.reset_epoch
        shard.version += 1
        try:
            if shard.epoch != reset:  # a delta reader took the interval's min and max
                shard.interval_min = math.inf
                shard.interval_max = -math.inf
                shard.epoch = reset
            shard.count += 1
            shard.sum += duration
            shard.buckets[index] += 1
            if duration < shard.min:
                shard.min = duration
            if duration > shard.max:
                shard.max = duration
            if duration < shard.interval_min:
                shard.interval_min = duration
            if duration > shard.interval_max:
                shard.interval_max = duration
            shard.active -= 1
            shard.updates += 1
        finally:
            shard.version += 1
        return result

    async def _fast_async_wrapper(
        self,
        wrapped: Callable[..., Awaitable[Any]],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        store = _State.store
        if (
            store is None
            or _State.tracer_provider is not None
            or trace._TRACER_PROVIDER is not None
        ):
            return await self._async_wrapper(wrapped, instance, args, kwargs)
        try:
            fast = self._fast
            if fast is None or fast.store is not store:
                fast = self._bind_store(store)
            try:
                shard = fast.local.shard
            except AttributeError:
                shard = fast.new_shard()
            # This thread's shard: written without a lock (see certobs._aggregate.Shard).
            shard.version += 1
            try:
                shard.active += 1
                shard.updates += 1
            finally:
                shard.version += 1
        except Exception as err:
            internal_error(f"starting operation {self.name!r}", err)
            return await wrapped(*args, **kwargs)
        cell: list[Any] = [fast]
        token = _current.set(cell)
        start = perf_counter()
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            self._fast_end(fast, shard, cell, token, perf_counter() - start, exc)
            raise
        duration = perf_counter() - start
        if cell[0] is not fast:  # the call asked for its handle
            self._fast_end(fast, shard, cell, token, duration, None)
            return result
        # The common case, inline: a success that asked for no handle. Nothing here can fail
        # but through an exception from a signal handler, which must reach the caller: no
        # `except`, and the version is made even again whatever happens.
        cell[0] = None
        _current.reset(token)
        index = bisect_left(_BOUNDS, duration)
        reset = shard.reset_epoch
        shard.version += 1
        try:
            if shard.epoch != reset:  # a delta reader took the interval's min and max
                shard.interval_min = math.inf
                shard.interval_max = -math.inf
                shard.epoch = reset
            shard.count += 1
            shard.sum += duration
            shard.buckets[index] += 1
            if duration < shard.min:
                shard.min = duration
            if duration > shard.max:
                shard.max = duration
            if duration < shard.interval_min:
                shard.interval_min = duration
            if duration > shard.interval_max:
                shard.interval_max = duration
            shard.active -= 1
            shard.updates += 1
        finally:
            shard.version += 1
        return result

    # The general path.

    def _sync_wrapper(
        self,
        wrapped: Callable[..., Any],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        handle = self._start(instance, args, kwargs)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            self._finish(handle, exc)
            raise
        self._finish(handle, None)
        return result

    async def _async_wrapper(
        self,
        wrapped: Callable[..., Awaitable[Any]],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        handle = self._start(instance, args, kwargs)
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            self._finish(handle, exc)
            raise
        self._finish(handle, None)
        return result


_NOOP: Final = _NoopHandle(cast(Operation, None))


if TYPE_CHECKING:
    _FunctionWrapper = wrapt.FunctionWrapper[..., Any]
else:
    _FunctionWrapper = wrapt.FunctionWrapper


class _Instrumented(_FunctionWrapper):
    """The wrapper certobs puts around a function: pickles by reference, like the function."""

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        module = getattr(self.__wrapped__, "__module__", None)
        qualname = getattr(self.__wrapped__, "__qualname__", None)
        if not module or not qualname or "<locals>" in qualname:
            import pickle  # only needed here; import time is budgeted

            raise pickle.PicklingError(
                f"cannot pickle instrumented {qualname or self.__wrapped__!r}: only functions "
                "defined at module or class level can be pickled (by reference)"
            )
        return (_load_by_name, (module, qualname))


def _load_by_name(module: str, qualname: str) -> Any:
    """Import ``module`` and return the object at ``qualname`` (unpickling helper)."""
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


class LifecyclePreset:
    """A lifecycle operation with a fixed name, usable bare or with settings.

    ``@certobs.renewal`` decorates directly; ``@certobs.renewal(issuer="letsencrypt")`` and
    ``with certobs.renewal(issuer="letsencrypt") as op:`` build an :class:`Operation` first.
    """

    __slots__ = ("__dict__", "name")

    def __init__(self, name: str, doc: str) -> None:
        self.name = name
        self.__doc__ = doc

    def __repr__(self) -> str:
        return f"<certobs lifecycle preset {self.name!r}>"

    @overload
    def __call__(self, func: F, /) -> F: ...

    @overload
    def __call__(
        self,
        *,
        issuer: str | None = None,
        target_type: str | None = None,
        environment: str | None = None,
        attributes: Mapping[str, AttributeValue] | None = None,
        arg_attributes: Mapping[str, str] | None = None,
        metric_attributes: Iterable[str] | None = None,
        allow_identity: bool = False,
    ) -> Operation: ...

    def __call__(  # type: ignore[misc]  # the implementation takes func or settings, never both
        self,
        func: F | None = None,
        /,
        *,
        issuer: str | None = None,
        target_type: str | None = None,
        environment: str | None = None,
        attributes: Mapping[str, AttributeValue] | None = None,
        arg_attributes: Mapping[str, str] | None = None,
        metric_attributes: Iterable[str] | None = None,
        allow_identity: bool = False,
    ) -> F | Operation:
        operation = Operation(
            self.name,
            issuer=issuer,
            target_type=target_type,
            environment=environment,
            attributes=attributes,
            arg_attributes=arg_attributes,
            metric_attributes=metric_attributes,
            allow_identity=allow_identity,
        )
        if func is None:
            return operation
        return operation(func)
