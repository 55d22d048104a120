"""The certificate inventory: every certificate a service holds or serves, and its health.

Sources are certificates given in code (:func:`track`), files, directories and glob patterns
(:func:`watch_files`), and TLS endpoints (:func:`watch_endpoints`). Files and endpoints are read
by a background refresher thread on an interval; collecting metrics only reads the last
snapshot, never touches a file or the network. One bad file or endpoint never stops the others:
its failure is kept with a reason and counted on ``certificate.inventory.errors``.

Through OpenTelemetry the inventory reports ``certificate.not_after`` and
``certificate.not_before`` per certificate (opt out with ``per_certificate=False``),
``certificate.count`` by status, issuer and key algorithm, and for endpoints
``certificate.endpoint.chain.valid`` and ``certificate.endpoint.drift``. "Expiring" is relative
to each certificate's lifetime (:class:`certobs.x509.ExpiryPolicy`).

The module-level functions use a default inventory; create an :class:`Inventory` for more.
"""

from __future__ import annotations

import glob
import os
import ssl
import threading
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from certobs import _errors, _runtime
from certobs._errors import ConfigurationError
from certobs.semconv.attributes import CertificateSourceKindValues as Kind
from certobs.x509 import (
    CertificateError,
    CertificateInfo,
    ExpiryPolicy,
    Reason,
    load_certificates,
)

if TYPE_CHECKING:
    from cryptography import x509

    from certobs._probe import Endpoint, ProbeResult

__all__ = [
    "Entry",
    "Inventory",
    "SourceError",
    "default",
    "track",
    "untrack",
    "watch_endpoints",
    "watch_files",
]

DEFAULT_INTERVAL = 60.0
"""Seconds between two reads of a file or endpoint source."""
CERTIFICATE_SUFFIXES = (".pem", ".crt", ".cer", ".cert", ".der", ".p12", ".pfx")
"""Files a directory walk reads; other files in watched directories (keys, notes) are skipped."""


@attrs.frozen(slots=True)
class Entry:
    """One certificate in the inventory."""

    id: str
    """``certificate.id``: the name given to ``track()``, a file path, or ``host:port``; the
    second and later certificates of a file or chain get ``#2``, ``#3``..."""
    info: CertificateInfo
    source: str
    """``certificate.source.name``: where it was found."""
    kind: str
    """``certificate.source.kind``: memory, file or endpoint."""
    issuer_name: str
    """``certificate.issuer.name``: the configured issuer name, else the issuer's common name."""
    attributes: Mapping[str, str] = attrs.field(init=False, eq=False, repr=False)
    """The per-certificate gauges' attributes, built once (collection only reads them)."""

    def __attrs_post_init__(self) -> None:
        from certobs.semconv import attributes as a

        labels = {
            a.CERTIFICATE_ID: self.id,
            a.CERTIFICATE_ISSUER_NAME: self.issuer_name,
            a.CERTIFICATE_SOURCE_NAME: self.source,
        }
        if self.info.subject_common_name:
            labels[a.CERTIFICATE_SUBJECT_COMMON_NAME] = self.info.subject_common_name
        object.__setattr__(self, "attributes", labels)


@attrs.frozen(slots=True)
class SourceError:
    """A source that could not be read in the last refresh."""

    source: str
    kind: str
    reason: Reason
    message: str


def _issuer_name(info: CertificateInfo, given: str | None) -> str:
    return given or info.issuer_common_name or info.issuer


def _entries(
    infos: Sequence[CertificateInfo], base_id: str, source: str, kind: str, issuer: str | None
) -> list[Entry]:
    return [
        Entry(
            base_id if index == 0 else f"{base_id}#{index + 1}",
            info,
            source,
            kind,
            _issuer_name(info, issuer),
        )
        for index, info in enumerate(infos)
    ]


class _Source:
    """A refreshable source: its entries and errors are replaced whole on each refresh."""

    kind: str

    def __init__(self, interval: float) -> None:
        if not interval > 0:
            raise ConfigurationError(
                f"interval={interval!r}: expected a positive number of seconds"
            )
        self.interval = interval
        self.entries: tuple[Entry, ...] = ()
        self.errors: tuple[SourceError, ...] = ()
        self.next_due = 0.0
        self.extra: tuple[ProbeResult, ...] = ()

    def refresh(self) -> None:
        raise NotImplementedError


class FileSource(_Source):
    """Files, directories (walked recursively) and glob patterns, re-read when they change."""

    kind = Kind.FILE.value

    def __init__(
        self,
        patterns: Sequence[str | os.PathLike[str]],
        *,
        password: bytes | str | None,
        issuer: str | None,
        interval: float,
    ) -> None:
        super().__init__(interval)
        if not patterns:
            raise ConfigurationError("watch_files(): give at least one path or pattern")
        self.patterns = [os.fspath(p) for p in patterns]
        self.password = password
        self.issuer = issuer
        # path -> (stat signature, entries or error): unchanged files are not parsed again.
        self._cache: dict[str, tuple[tuple[int, int, int], list[Entry] | SourceError]] = {}
        self._walked: set[str] = set()

    def _files(self, errors: list[SourceError]) -> list[str]:
        found: list[str] = []
        self._walked = set()
        for pattern in self.patterns:
            if glob.has_magic(pattern):
                matches = sorted(glob.glob(pattern, recursive=True))
                if not matches:
                    errors.append(self._error(pattern, Reason.NOT_FOUND, "pattern matches nothing"))
                for match in matches:
                    if os.path.isdir(match):
                        walked = self._walk(match, errors)
                        self._walked.update(walked)
                        found += walked
                    else:
                        found.append(match)
            elif os.path.isdir(pattern):
                walked = self._walk(pattern, errors)
                self._walked.update(walked)
                found += walked
            elif os.path.exists(pattern):
                found.append(pattern)
            else:
                errors.append(self._error(pattern, Reason.NOT_FOUND, "no such file or directory"))
        # One file reached by several names (links, a ** glob through a symlink) counts once.
        unique: dict[tuple[int, int] | str, str] = {}
        for path in found:
            try:
                st = os.stat(path)
                key: tuple[int, int] | str = (st.st_dev, st.st_ino)
            except OSError:
                key = path
            unique.setdefault(key, path)
        return list(unique.values())

    def _walk(self, top: str, errors: list[SourceError]) -> list[str]:
        found = []
        seen: set[str] = set()
        for directory, subdirs, files in os.walk(top, followlinks=True):
            real = os.path.realpath(directory)
            if real in seen:
                parent = os.path.realpath(os.path.dirname(directory))
                if os.path.commonpath([real, parent]) == real:  # points back up: a loop
                    errors.append(
                        self._error(directory, Reason.LOOP, f"symlink loop back to {real}")
                    )
                subdirs[:] = []  # otherwise an alias of a directory already read
                continue
            seen.add(real)
            # Kubernetes secret volumes keep their versions in ..data/..<timestamp> and link
            # the visible names to them: read the visible names only.
            subdirs[:] = sorted(d for d in subdirs if not d.startswith(".."))
            for name in sorted(files):
                if name.lower().endswith(CERTIFICATE_SUFFIXES):
                    found.append(os.path.join(directory, name))
        return found

    def _error(self, source: str, reason: Reason, message: str) -> SourceError:
        return SourceError(source, self.kind, reason, message)

    def _read(self, path: str) -> list[Entry] | SourceError:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            return self._error(path, Reason.UNREADABLE, exc.strerror or str(exc))
        if path in self._walked and b"-----BEGIN" in data and b"CERTIFICATE-----" not in data:
            return []  # a key or CSR next to the certificates of a watched directory
        suffix = Path(path).suffix.lower()
        kind = "pkcs12" if suffix in (".p12", ".pfx") else None
        try:
            certs = load_certificates(data, password=self.password, kind=kind)
            infos = [CertificateInfo.from_certificate(c) for c in certs]
        except CertificateError as exc:
            return self._error(path, exc.reason, str(exc))
        except Exception as exc:  # anything cryptography cannot handle: this file only
            return self._error(path, Reason.BAD_FORMAT, f"{type(exc).__name__}: {exc}")
        return _entries(infos, path, path, self.kind, self.issuer)

    def refresh(self) -> None:
        """Re-read the files that changed; keep the others' last result."""
        errors: list[SourceError] = []
        entries: list[Entry] = []
        cache: dict[str, tuple[tuple[int, int, int], list[Entry] | SourceError]] = {}
        for path in self._files(errors):
            try:
                st = os.stat(path)
                signature = (st.st_mtime_ns, st.st_size, st.st_ino)
            except OSError as exc:
                errors.append(self._error(path, Reason.UNREADABLE, exc.strerror or str(exc)))
                continue
            cached = self._cache.get(path)
            result = cached[1] if cached and cached[0] == signature else self._read(path)
            cache[path] = (signature, result)
            if isinstance(result, SourceError):
                errors.append(result)
            else:
                entries += result
        self._cache = cache
        self.entries = tuple(entries)
        self.errors = tuple(errors)


class EndpointSource(_Source):
    """TLS endpoints: the served chain, TLS version, trust and drift checks."""

    kind = Kind.ENDPOINT.value

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        timeout: float,
        concurrency: int,
        trust: str | os.PathLike[str] | None,
        verify: bool,
        expected: Mapping[str, str] | None,
        server_name: str | None,
        issuer: str | None,
        interval: float,
    ) -> None:
        from certobs._probe import parse_endpoint, trust_context

        super().__init__(interval)
        if not endpoints:
            raise ConfigurationError("watch_endpoints(): give at least one HOST:PORT")
        if not (isinstance(timeout, int | float) and 0 < timeout <= 3600):
            raise ConfigurationError(
                f"timeout={timeout!r}: expected a positive number of seconds, at most 3600"
            )
        if not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigurationError(f"concurrency={concurrency!r}: expected an integer >= 1")
        try:
            self.endpoints = [parse_endpoint(e, server_name=server_name) for e in endpoints]
        except ValueError as exc:
            raise ConfigurationError(f"watch_endpoints(): {exc}") from None
        self.timeout = timeout
        self.concurrency = concurrency
        self.issuer = issuer
        self.expected = {k: v for k, v in (expected or {}).items()}
        known = {e.name for e in self.endpoints}
        unknown = set(self.expected) - known
        if unknown:
            raise ConfigurationError(
                f"expected: {sorted(unknown)} are not among the endpoints {sorted(known)}"
            )
        self.verify: ssl.SSLContext | None = None
        if verify or trust is not None:
            try:
                self.verify = trust_context(trust)
            except CertificateError as exc:
                raise ConfigurationError(f"trust={os.fspath(trust or '')!r}: {exc}") from None

    def _probe(self, endpoint: Endpoint) -> ProbeResult:
        from certobs._probe import ProbeResult, probe

        try:
            return probe(
                endpoint,
                timeout=self.timeout,
                verify=self.verify,
                expected_fingerprint=self.expected.get(endpoint.name),
            )
        except Exception as exc:  # whatever it is, it concerns this endpoint only
            return ProbeResult(
                endpoint=endpoint,
                reason=Reason.HANDSHAKE_FAILED,
                message=f"{type(exc).__name__}: {exc}",
            )

    def refresh(self) -> None:
        """Probe every endpoint, ``concurrency`` at a time."""
        workers = min(self.concurrency, len(self.endpoints))
        with ThreadPoolExecutor(workers, thread_name_prefix="certobs-probe") as pool:
            results = list(pool.map(self._probe, self.endpoints))
        entries: list[Entry] = []
        errors: list[SourceError] = []
        for result in results:
            name = result.endpoint.name
            if result.reason is not None:
                errors.append(SourceError(name, self.kind, result.reason, result.message or ""))
                continue
            entries += _entries(result.chain, name, name, self.kind, self.issuer)
            if result.chain_valid is False:
                message = f"chain does not verify: {result.verify_error}"
                errors.append(SourceError(name, self.kind, Reason.CHAIN_INVALID, message))
        self.extra = tuple(results)
        self.entries = tuple(entries)
        self.errors = tuple(errors)


class Inventory:
    """A set of certificate sources, refreshed in the background, reported through OTel.

    Args:
        policy: When a certificate counts as expiring (default: a third of its lifetime left).
        per_certificate: Report ``certificate.not_after`` / ``not_before`` per certificate.
            Turn off for very large inventories whose backend cannot take one series each.
    """

    def __init__(self, *, policy: ExpiryPolicy | None = None, per_certificate: bool = True) -> None:
        self.policy = policy or ExpiryPolicy()
        self.per_certificate = per_certificate
        self._memory: dict[str, Entry] = {}
        self._sources: list[_Source] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        _INVENTORIES.add(self)

    # Certificates given in code.

    def track(
        self,
        certificate: x509.Certificate | CertificateInfo | bytes | str,
        *,
        id: str,
        issuer: str | None = None,
    ) -> Entry:
        """Add or replace a certificate under ``id``.

        Args:
            certificate: A ``cryptography`` certificate, a :class:`CertificateInfo`, or PEM/DER
                bytes (the first certificate is used).
            id: The ``certificate.id`` to report it under.
            issuer: The ``certificate.issuer.name`` (a configured name such as
                ``letsencrypt``); default: the issuer's common name.

        Returns:
            The inventory entry.

        Raises:
            ConfigurationError: If ``id`` is empty.
            CertificateError: If bytes given are not a certificate.
        """
        if not isinstance(id, str) or not id:
            raise ConfigurationError(f"id={id!r}: expected a non-empty string")
        info = _info(certificate)
        entry = Entry(id, info, id, Kind.MEMORY.value, _issuer_name(info, issuer))
        with self._lock:
            self._memory[id] = entry
        _ensure_gauges()
        return entry

    def untrack(self, id: str) -> bool:
        """Remove the certificate tracked under ``id``; return whether there was one."""
        with self._lock:
            return self._memory.pop(id, None) is not None

    # Files and endpoints.

    def watch_files(
        self,
        *patterns: str | os.PathLike[str],
        password: bytes | str | None = None,
        issuer: str | None = None,
        interval: float = DEFAULT_INTERVAL,
        start: bool = True,
    ) -> FileSource:
        """Watch files, directories (recursively) and glob patterns (``**`` allowed).

        PEM (one certificate or a chain), DER and PKCS#12 (``.p12``/``.pfx``, with
        ``password``) are read; a directory walk reads only certificate-like file names.

        Args:
            *patterns: Paths, directories or glob patterns.
            password: For PKCS#12 files.
            issuer: ``certificate.issuer.name`` for these certificates.
            interval: Seconds between reads (unchanged files are not parsed again).
            start: Start the background refresher (default). Without, call :meth:`refresh`.

        Returns:
            The source; its ``entries`` and ``errors`` are those of the last refresh.
        """
        source = FileSource(patterns, password=password, issuer=issuer, interval=interval)
        self._add(source, start)
        return source

    def watch_endpoints(
        self,
        endpoints: Iterable[str],
        *,
        timeout: float = 5.0,
        concurrency: int = 50,
        trust: str | os.PathLike[str] | None = None,
        verify: bool = False,
        expected: Mapping[str, str] | None = None,
        server_name: str | None = None,
        issuer: str | None = None,
        interval: float = DEFAULT_INTERVAL,
        start: bool = True,
    ) -> EndpointSource:
        """Watch TLS endpoints (``host:port``): the chain they serve, and checks on it.

        Args:
            endpoints: ``host:port`` strings (``[::1]:443`` for IPv6).
            timeout: Seconds for connecting and for the handshake, each.
            concurrency: Endpoints probed at once.
            trust: A PEM bundle (or directory) the served chain must verify against. With
                ``verify=True`` and no ``trust``, the system's trust store.
            verify: Verify chains (implied by ``trust``); reported on
                ``certificate.endpoint.chain.valid``.
            expected: ``host:port`` -> the SHA-256 fingerprint that should be served there
                (hex, colons allowed); reported on ``certificate.endpoint.drift``.
            server_name: SNI to send (default: the host, unless it is an IP address).
            issuer: ``certificate.issuer.name`` for these certificates.
            interval: Seconds between probes.
            start: Start the background refresher (default).

        Returns:
            The source.

        Raises:
            ConfigurationError: On a malformed endpoint, timeout, concurrency or trust bundle.
        """
        source = EndpointSource(
            list(endpoints),
            timeout=timeout,
            concurrency=concurrency,
            trust=trust,
            verify=verify,
            expected=expected,
            server_name=server_name,
            issuer=issuer,
            interval=interval,
        )
        self._add(source, start)
        return source

    def _add(self, source: _Source, start: bool) -> None:
        with self._lock:
            self._sources.append(source)
        _ensure_gauges()
        if start:
            self.start()
            self._wake.set()

    def refresh(self) -> None:
        """Read every source now, in this thread; count the errors found."""
        with self._lock:
            sources = list(self._sources)
        for source in sources:
            self._refresh_one(source)

    def _refresh_one(self, source: _Source) -> None:
        try:
            source.refresh()
        except Exception as exc:  # a bug in a source must not stop the others
            source.errors = (
                SourceError(
                    f"{source.kind} source",
                    source.kind,
                    Reason.OTHER,
                    f"{type(exc).__name__}: {exc}",
                ),
            )
            _errors.log_once(
                f"refresh-{source.kind}",
                "certobs: refreshing a %s source failed: %r (logged once)",
                source.kind,
                exc,
            )
        source.next_due = time.monotonic() + source.interval
        for error in source.errors:
            _record_error(error)

    # The background refresher.

    def start(self) -> None:
        """Start the background refresher thread, if it is not running."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive() and not self._stop.is_set():
                return
            # A thread still stopping keeps its own stop event; the new one gets a fresh one.
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(self._stop,), name="certobs-inventory", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop the background refresher and wait for it (at most ``timeout`` seconds)."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            with self._lock:
                sources = list(self._sources)
            now = time.monotonic()
            for source in sources:
                if stop.is_set():
                    return
                if source.next_due <= now:
                    self._refresh_one(source)
            with self._lock:
                dues = [s.next_due for s in self._sources]
            wait = max(min(dues, default=now + DEFAULT_INTERVAL) - time.monotonic(), 0.0)
            self._wake.wait(min(wait, 3600.0))
            self._wake.clear()

    # What the inventory holds.

    def entries(self) -> list[Entry]:
        """Every certificate, from every source, as of the last refresh."""
        with self._lock:
            found = list(self._memory.values())
            sources = list(self._sources)
        for source in sources:
            found += source.entries
        return found

    def errors(self) -> list[SourceError]:
        """The sources that failed in their last refresh, with the reason."""
        with self._lock:
            sources = list(self._sources)
        return [error for source in sources for error in source.errors]

    def probes(self) -> list[ProbeResult]:
        """The last probe result of every endpoint."""
        with self._lock:
            sources = list(self._sources)
        return [result for source in sources for result in source.extra]

    def clear(self) -> None:
        """Stop refreshing and forget every certificate and source."""
        self.stop()
        with self._lock:
            self._memory.clear()
            self._sources.clear()


def _info(value: Any) -> CertificateInfo:
    if isinstance(value, CertificateInfo):
        return value
    if isinstance(value, str | bytes):
        data = value.encode("ascii") if isinstance(value, str) else value
        return CertificateInfo.from_certificate(load_certificates(data)[0])
    return CertificateInfo.from_certificate(value)


def _ensure_gauges() -> None:
    """With the application's own MeterProvider, create the observable gauges now."""
    if _runtime.recording() and _runtime._State.store is None:
        try:
            _runtime.instruments()
        except Exception as exc:
            _errors.internal_error("creating the inventory's gauges", exc)


def _record_error(error: SourceError) -> None:
    """Count one source error on certificate.inventory.errors, where certobs records."""
    if not _runtime.recording():
        return
    try:
        from certobs.semconv import attributes as a

        attrs_ = {
            a.CERTIFICATE_SOURCE_KIND: error.kind,
            a.ERROR_TYPE: error.reason.value,
            a.CERTIFICATE_SOURCE_NAME: error.source,
        }
        store = _runtime._State.store
        if store is not None:
            store.inventory_errors.get(attrs_).add(1)
        else:
            _runtime.instruments().inventory_errors.add(1, attrs_)
    except Exception as exc:
        _errors.internal_error("counting an inventory error", exc)


_INVENTORIES: weakref.WeakSet[Inventory] = weakref.WeakSet()


def inventories() -> list[Inventory]:
    """Every live inventory (the metrics callbacks report them all)."""
    return list(_INVENTORIES)


_default: Inventory | None = None
_default_lock = threading.Lock()


def _forget_in_child() -> None:
    """After ``os.fork()``, in the child: start with empty inventories.

    The parent keeps refreshing and reporting what it tracks; a child reporting its copy too
    would multiply every certificate by the number of workers, and its copy would go stale
    (the refresher thread is not in the child). A child can track and start its own.
    """
    global _default_lock
    _default_lock = threading.Lock()
    for inventory in list(_INVENTORIES):
        inventory._lock = threading.Lock()
        inventory._memory = {}
        inventory._sources = []
        inventory._wake = threading.Event()
        inventory._stop = threading.Event()
        inventory._thread = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


def default() -> Inventory:
    """Return the default inventory that the module-level functions use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Inventory()
        return _default


def track(
    certificate: x509.Certificate | CertificateInfo | bytes | str,
    *,
    id: str,
    issuer: str | None = None,
) -> Entry:
    """Track a certificate in the default inventory (see :meth:`Inventory.track`)."""
    return default().track(certificate, id=id, issuer=issuer)


def untrack(id: str) -> bool:
    """Stop tracking a certificate in the default inventory (see :meth:`Inventory.untrack`)."""
    return default().untrack(id)


def watch_files(*patterns: str | os.PathLike[str], **kwargs: Any) -> FileSource:
    """Watch files in the default inventory (see :meth:`Inventory.watch_files`)."""
    return default().watch_files(*patterns, **kwargs)


def watch_endpoints(endpoints: Iterable[str], **kwargs: Any) -> EndpointSource:
    """Watch TLS endpoints in the default inventory (see :meth:`Inventory.watch_endpoints`)."""
    return default().watch_endpoints(endpoints, **kwargs)
