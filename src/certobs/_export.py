"""``certobs.configure()`` and ``certobs.shutdown()``: build and tear down SDK providers.

The SDK and the exporters are imported here, inside the functions, so ``import certobs`` loads
none of them.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import inspect
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from certobs import _runtime
from certobs._config import DEFAULT_CARDINALITY_LIMIT, Settings, settings
from certobs._errors import ConfigurationError

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    from certobs._aggregate import Store

logger = logging.getLogger("certobs")

GRPC_CHANNEL_OPTIONS = (("grpc.max_reconnect_backoff_ms", 5000),)
"""gRPC backs off reconnecting up to 120 s after a failure, and the channels of a target share
that backoff: after a 30 s collector outage, exports resumed only tens of seconds after the
collector was back, and a shutdown meanwhile lost its final export (tests/test_reliability.py).
Capped at 5 s: a reconnection attempt every 5 s at most while the collector is down."""

DEFAULT_SHUTDOWN_TIMEOUT = 5.0
"""Seconds :func:`shutdown` waits for the final export before giving up."""


class _Configured:
    lock = threading.Lock()
    meter_provider: MeterProvider | None = None
    tracer_provider: TracerProvider | None = None
    http_server: Any = None
    settings: Settings | None = None
    store: Store | None = None
    atexit_registered = False
    fork_hook_registered = False
    readers: list[MetricReader] = []  # noqa: RUF012 - replaced, never mutated
    # The process that built the providers: a forked child rebuilds its own (see _after_fork).
    pid = 0


def configure(
    *,
    exporter: str | None = None,
    service_name: str | None = None,
    endpoint: str | None = None,
    protocol: str | None = None,
    headers: Mapping[str, str] | None = None,
    export_interval: float | None = None,
    traces: bool | None = None,
    resource_attributes: Mapping[str, str | bool | int | float] | None = None,
    prometheus_host: str | None = None,
    prometheus_port: int | None = None,
    cardinality_limit: int | None = None,
    set_global: bool = False,
) -> Settings:
    """Set up OpenTelemetry export for certobs telemetry.

    Builds an SDK ``MeterProvider`` (and a ``TracerProvider`` when traces are on) with the chosen
    exporter. An application that configures OpenTelemetry itself does not need this: certobs
    records through the global providers.

    Every setting follows the same precedence: this argument, then the environment, then the
    default (see ``docs/configuration.md``). With ``OTEL_SDK_DISABLED=true`` nothing is
    installed.

    Args:
        exporter: ``otlp`` (default), ``prometheus`` (a scrape endpoint), ``console`` or
            ``none``. Environment: ``CERTOBS_EXPORTER``, then ``OTEL_METRICS_EXPORTER``.
        service_name: The ``service.name`` resource attribute. Environment:
            ``OTEL_SERVICE_NAME``.
        endpoint: OTLP base URL, e.g. ``http://collector:4317``. Environment:
            ``OTEL_EXPORTER_OTLP_ENDPOINT``; default: the exporter's (localhost 4317 or 4318).
        protocol: OTLP transport, ``grpc`` (default) or ``http/protobuf``. Environment:
            ``OTEL_EXPORTER_OTLP_METRICS_PROTOCOL``, then ``OTEL_EXPORTER_OTLP_PROTOCOL``.
        headers: Headers sent with OTLP requests. Environment: ``OTEL_EXPORTER_OTLP_HEADERS``.
        export_interval: Seconds between metric exports (default 10). Environment:
            ``OTEL_METRIC_EXPORT_INTERVAL``, in milliseconds.
        traces: Export spans too. Environment: ``CERTOBS_TRACES``. Default: on for ``otlp``.
        resource_attributes: Extra resource attributes, merged over
            ``OTEL_RESOURCE_ATTRIBUTES``.
        prometheus_host: Address the scrape endpoint listens on (default ``localhost``).
            Environment: ``OTEL_EXPORTER_PROMETHEUS_HOST``.
        prometheus_port: Its port (default 9464, 0 for a free one). Environment:
            ``OTEL_EXPORTER_PROMETHEUS_PORT``.
        cardinality_limit: Attribute sets each certobs metric keeps (default 2000, as the
            SDK); measurements with new sets past it go to the ``otel.metric.overflow=true``
            series and are counted by ``certobs.metric.overflow``. Environment:
            ``CERTOBS_CARDINALITY_LIMIT``.
        set_global: Also install the providers as OpenTelemetry's global ones, when the
            application has not installed its own, so other instrumentation uses them too.
            Default False: OpenTelemetry's globals can be set only once per process, so a
            global provider would outlive :func:`shutdown` and block the application's own.

    Returns:
        The resolved settings.

    Raises:
        ConfigurationError: A setting is invalid, an optional dependency is missing, or certobs
            is already configured (call :func:`certobs.shutdown` first). Nothing is left
            half-configured.
    """
    resolved = settings(
        exporter=exporter,
        protocol=protocol,
        endpoint=endpoint,
        headers=headers,
        export_interval=export_interval,
        traces=traces,
        service_name=service_name,
        resource_attributes=resource_attributes,
        prometheus_host=prometheus_host,
        prometheus_port=prometheus_port,
        cardinality_limit=cardinality_limit,
    )
    with _Configured.lock:
        if _Configured.meter_provider is not None:
            raise ConfigurationError(
                "certobs is already configured; call certobs.shutdown() before configuring again"
            )
        if resolved.disabled:
            logger.info("certobs: OTEL_SDK_DISABLED is set; no telemetry is exported")
            _Configured.settings = resolved
            return resolved
        _install(resolved, set_global=set_global)
    return resolved


def _install(resolved: Settings, *, set_global: bool) -> None:
    """Build the providers for ``resolved`` and make certobs record through them (lock held)."""
    meter_provider, tracer_provider, server = _build(resolved)
    _Configured.meter_provider = meter_provider
    _Configured.tracer_provider = tracer_provider
    _Configured.http_server = server
    _Configured.settings = resolved
    _Configured.pid = os.getpid()
    _runtime.install(meter_provider, tracer_provider, _Configured.store)
    if set_global:
        _set_global(meter_provider, tracer_provider)
    if not _Configured.atexit_registered:
        atexit.register(shutdown)
        _Configured.atexit_registered = True
    _register_fork_hook()


def _set_global(meter_provider: MeterProvider, tracer_provider: TracerProvider | None) -> None:
    from opentelemetry import metrics, trace
    from opentelemetry.metrics import _internal as metrics_internal

    if metrics_internal._METER_PROVIDER is None:
        metrics.set_meter_provider(meter_provider)
    if tracer_provider is not None and trace._TRACER_PROVIDER is None:
        trace.set_tracer_provider(tracer_provider)


def _build(s: Settings) -> tuple[MeterProvider, TracerProvider | None, Any]:
    """Create the providers, readers and exporters; nothing global is touched."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    attributes: dict[str, Any] = dict(s.resource_attributes)
    if s.service_name is not None:
        attributes["service.name"] = s.service_name
    resource = Resource.create(attributes)
    readers: list[MetricReader] = []
    server = None
    span_exporter: Any = None
    interval_ms = s.export_interval * 1000.0
    if s.exporter == "otlp":
        metric_exporter, span_exporter = _otlp_exporters(s)
        readers.append(
            PeriodicExportingMetricReader(metric_exporter, export_interval_millis=interval_ms)
        )
        if not s.traces:
            span_exporter = None
    elif s.exporter == "console":
        from certobs._console import ConsoleMetricExporter

        readers.append(
            PeriodicExportingMetricReader(
                ConsoleMetricExporter(), export_interval_millis=interval_ms
            )
        )
        if s.traces:
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            span_exporter = ConsoleSpanExporter()
    elif s.exporter == "prometheus":
        reader, server = _prometheus(s)
        readers.append(reader)
    # shutdown_on_exit=False: certobs' own exit handler flushes, with a bounded timeout.
    meter_provider = MeterProvider(
        metric_readers=readers, resource=resource, shutdown_on_exit=False
    )
    tracer_provider = None
    if span_exporter is not None:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    _Configured.store = aggregate_into(readers, resource, cardinality_limit=s.cardinality_limit)
    _Configured.readers = readers
    return meter_provider, tracer_provider, server


def aggregate_into(
    readers: list[MetricReader],
    resource: Resource,
    *,
    cardinality_limit: int = DEFAULT_CARDINALITY_LIMIT,
) -> Store | None:
    """Create the fast path's store and hook it into ``readers`` (already registered).

    Returns None, and certobs records through SDK instruments, when a reader wants histograms
    aggregated otherwise than in explicit buckets.
    """
    from certobs._aggregate import Store, explicit_buckets

    if not all(explicit_buckets(reader) for reader in readers):
        return None
    store = Store(cardinality_limit=cardinality_limit)
    for reader in readers:
        store.attach(reader, resource, _runtime.scope())
    return store


def _otlp_exporters(s: Settings) -> tuple[Any, Any]:
    headers = dict(s.headers) if s.headers is not None else None
    endpoint = s.endpoint if s.endpoint_from_argument else None
    metrics = _otlp_exporter("metric", s.protocol, endpoint, headers)
    spans = _otlp_exporter("trace", s.traces_protocol, endpoint, headers) if s.traces else None
    return metrics, spans


def _otlp_exporter(
    signal: str, protocol: str, endpoint: str | None, headers: dict[str, str] | None
) -> Any:
    """Create the OTLP exporter for ``signal`` (``metric`` or ``trace``)."""
    kind = "Metric" if signal == "metric" else "Span"
    if protocol == "grpc":
        module = importlib.import_module(
            f"opentelemetry.exporter.otlp.proto.grpc.{signal}_exporter"
        )
        exporter_class = getattr(module, f"OTLP{kind}Exporter")
        options: dict[str, Any] = {"endpoint": endpoint, "headers": headers}
        if "channel_options" in inspect.signature(exporter_class).parameters:
            options["channel_options"] = GRPC_CHANNEL_OPTIONS
        return exporter_class(**options)
    module = importlib.import_module(f"opentelemetry.exporter.otlp.proto.http.{signal}_exporter")
    # An endpoint argument is a base URL, like OTEL_EXPORTER_OTLP_ENDPOINT; the HTTP exporters
    # want the signal's full URL.
    path = "/v1/metrics" if signal == "metric" else "/v1/traces"
    full = endpoint.rstrip("/") + path if endpoint else None
    return getattr(module, f"OTLP{kind}Exporter")(endpoint=full, headers=headers)


def _prometheus(s: Settings) -> tuple[MetricReader, Any]:
    try:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import start_http_server
    except ImportError as exc:
        raise ConfigurationError(
            "exporter='prometheus' needs the prometheus extra: pip install 'certobs[prometheus]'"
        ) from exc
    reader = PrometheusMetricReader()
    try:
        server, _thread = start_http_server(s.prometheus_port, addr=s.prometheus_host)
    except OSError as exc:
        reader.shutdown()  # unregisters its collector, so a later configure() starts clean
        raise ConfigurationError(
            f"prometheus_port={s.prometheus_port}: cannot listen on "
            f"{s.prometheus_host}:{s.prometheus_port} ({exc}); choose another port "
            "(OTEL_EXPORTER_PROMETHEUS_PORT) or 0 for a free one"
        ) from exc
    return reader, server


def prometheus_address() -> tuple[str, int] | None:
    """Return the (host, port) the Prometheus scrape endpoint listens on, if one is running."""
    server = _Configured.http_server
    if server is None:
        return None
    host, port = server.server_address[:2]
    return str(host), int(port)


def shutdown(timeout: float = DEFAULT_SHUTDOWN_TIMEOUT) -> None:
    """Flush what was recorded and stop the exporters that :func:`configure` started.

    Safe to call more than once, and called at interpreter exit. Waits at most about
    ``timeout`` seconds, also when the collector cannot be reached.

    Args:
        timeout: Seconds to wait for the final export.
    """
    with _Configured.lock:
        meter_provider = _Configured.meter_provider
        tracer_provider = _Configured.tracer_provider
        server = _Configured.http_server
        _Configured.meter_provider = None
        _Configured.tracer_provider = None
        _Configured.http_server = None
        _Configured.settings = None
        if meter_provider is None:
            return
        _runtime.install(None, None)
    # Spans and metrics flush in parallel against one deadline. The SDK's span flush ignores
    # its timeout (it exports through the exporter's retry loop), so each runs in a daemon
    # thread that is abandoned, not waited for, once the deadline passes.
    timeout = max(timeout, 0.0)
    deadline = time.monotonic() + timeout
    jobs = [("metrics", lambda: meter_provider.shutdown(timeout_millis=timeout * 1000.0))]
    if tracer_provider is not None:
        jobs.append(("spans", tracer_provider.shutdown))
    threads = []
    for name, job in jobs:
        thread = threading.Thread(
            target=_logged(job, name), name=f"certobs-shutdown-{name}", daemon=True
        )
        thread.start()
        threads.append((name, thread))
    for name, thread in threads:
        thread.join(max(deadline - time.monotonic(), 0.0))
        if thread.is_alive():
            logger.warning(
                "certobs: flushing %s did not finish within %.1f s (is the collector reachable?); "
                "what was not exported is dropped",
                name,
                timeout,
            )
    if server is not None:
        server.shutdown()
        server.server_close()


def _logged(job: Callable[[], object], name: str) -> Callable[[], None]:
    def run() -> None:
        try:
            job()
        except Exception:
            logger.exception("certobs: error while flushing %s at shutdown", name)

    return run


# Forks. A pre-fork server (gunicorn, uWSGI, multiprocessing's "fork" start method) copies the
# configured parent into every child: its providers, its aggregates, and its readers, whose
# export threads the SDK restarts in the child. Left alone, each child would export the
# parent's totals again under the parent's identity: duplicated series. Instead a child drops
# what it inherited, unexported, and builds providers of its own with the same settings and a
# service.instance.id of its own, so that parent and children are distinct series.


def _after_fork_in_child() -> None:
    _Configured.lock = threading.Lock()  # held by a thread the child does not have, maybe
    inherited = _Configured.meter_provider
    resolved = _Configured.settings
    if inherited is None or resolved is None or _Configured.pid == os.getpid():
        return
    try:
        from opentelemetry import trace
        from opentelemetry.metrics import _internal as metrics_internal

        inherited_tracer = _Configured.tracer_provider
        server = _Configured.http_server
        # configure(set_global=True): the application records through these too.
        global_meter = metrics_internal._METER_PROVIDER is inherited
        global_tracer = inherited_tracer is not None and trace._TRACER_PROVIDER is inherited_tracer
        _silence(_Configured.readers)
        _Configured.meter_provider = None
        _Configured.tracer_provider = None
        _Configured.http_server = None  # the parent's; its serving thread is not in the child
        _Configured.store = None
        _Configured.readers = []
        _runtime.install(None, None)
        if resolved.exporter == "prometheus":
            port = server.server_address[1] if server is not None else resolved.prometheus_port
            if server is not None:
                # The child's copy of the parent's listening socket: nobody here accepts on it.
                with contextlib.suppress(OSError):
                    server.socket.close()
            logger.warning(
                "certobs: process %d forked from a process exporting to Prometheus on port %d: "
                "it records nothing. Call certobs.shutdown() and certobs.configure() with a "
                "port of its own in the child (gunicorn: post_fork), or use exporter='otlp'",
                os.getpid(),
                port,
            )
            return
        import uuid

        attributes = {**resolved.resource_attributes, "service.instance.id": str(uuid.uuid4())}
        _install(attrs.evolve(resolved, resource_attributes=attributes), set_global=False)
        # OpenTelemetry's globals can be set only once; in the child they must be the child's.
        # Instruments the application created before the fork stay with the silenced ones.
        if global_meter:
            metrics_internal._METER_PROVIDER = _Configured.meter_provider
        if global_tracer:
            trace._TRACER_PROVIDER = _Configured.tracer_provider
        _register_multiprocessing_exit()
    except Exception as exc:  # never break the child over telemetry
        _runtime.install(None, None)
        logger.error("certobs: could not set up telemetry in forked process: %r", exc)


def _silence(readers: list[MetricReader]) -> None:
    """Make the inherited readers collect and export nothing, from this process, ever.

    ``_collect`` is the callback the provider gave each reader (an SDK internal, the one the
    store wraps too). A reader whose callback returns None exports nothing; the SDK restarts
    a periodic reader's thread in the child, and setting its stop event lets that thread end.
    """

    def nothing(reader: MetricReader, timeout_millis: float = 10_000) -> None:
        return None

    for reader in readers:
        reader._collect = nothing  # type: ignore[assignment]
        stop = getattr(reader, "_shutdown_event", None)
        if stop is not None:
            stop.set()


def _register_multiprocessing_exit() -> None:
    """Flush at the end of a ``multiprocessing`` child, which exits without exit handlers."""
    if "multiprocessing" not in sys.modules:
        return
    from multiprocessing import util

    # A Process clears finalizers when it starts its target, then runs these after-fork hooks.
    util.register_after_fork(_Configured, _finalize_at_process_exit)


def _finalize_at_process_exit(_: object) -> None:
    from multiprocessing import util

    util.Finalize(None, shutdown, exitpriority=100)


def _register_fork_hook() -> None:
    """Register :func:`_after_fork_in_child`, once, after the first providers were built.

    Fork hooks run in the order they were registered, and building providers in the child
    needs the hooks of what building them imported (``concurrent.futures`` resets a lock the
    SDK's resource detection takes) to have run first: registering here puts ours after them.
    """
    if _Configured.fork_hook_registered or not hasattr(os, "register_at_fork"):
        return
    os.register_at_fork(after_in_child=_after_fork_in_child)
    _Configured.fork_hook_registered = True
