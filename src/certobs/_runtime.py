"""Where certobs finds its providers, and its instruments, created once per provider.

certobs records through the providers that :func:`certobs.configure` (or the test fixture)
installed; without those, through the global OpenTelemetry providers the application installed.
With neither, nothing is recorded and a decorated call costs one check (:func:`recording`).
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.metrics import (
    Counter,
    Histogram,
    MeterProvider,
    UpDownCounter,
    get_meter_provider,
)
from opentelemetry.metrics import _internal as _metrics_internal

from certobs.semconv import metrics as m

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer, TracerProvider

    from certobs._aggregate import Store

SCOPE_NAME = "certobs"


class _State:
    """Providers installed by certobs itself; None means: use the global ones."""

    meter_provider: MeterProvider | None = None
    tracer_provider: TracerProvider | None = None
    # The fast path's aggregates, when certobs owns the meter provider's readers.
    store: Store | None = None
    # Bumped whenever the providers change, so cached instruments are rebuilt.
    generation = 0
    lock = threading.Lock()


# A provider certobs installed (configure() or certobs.testing), or None: a module global,
# the cheapest read there is, for recording().
_own: object = None


def recording() -> object:
    """Return a true value when some provider can receive certobs telemetry.

    This is the whole cost of a decorated call while certobs is off, so it is written for
    speed: three reads and truth tests, no comparisons, no proxy. The OpenTelemetry API keeps
    its global providers in module globals that stay None until an application installs one.
    Providers are always true values.
    """
    return _own or _metrics_internal._METER_PROVIDER or trace._TRACER_PROVIDER


def install(
    meter_provider: MeterProvider | None,
    tracer_provider: TracerProvider | None,
    store: Store | None = None,
) -> None:
    """Make certobs record through these providers (None: fall back to the global ones).

    With a ``store``, operations and bundle requests aggregate in process and reach the
    provider's readers through it (see ``certobs._aggregate``).
    """
    global _own  # see recording()
    with _State.lock:
        _State.meter_provider = meter_provider
        _State.tracer_provider = tracer_provider
        _State.store = store
        _own = meter_provider or tracer_provider
        _State.generation += 1
        _Instruments.current = None


def _reinit_lock_in_child() -> None:
    # A lock held by another thread at os.fork() stays held forever in the child.
    _State.lock = threading.Lock()
    if _State.store is not None and _State.store.pid != os.getpid():
        # The parent's aggregates, and their locks: the child must not record into them.
        # configure() rebuilds the child's own (see certobs._export); anything else installed
        # (certobs.testing.capture) records nothing in the child.
        install(None, None)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_lock_in_child)


class _Instruments:
    """The instruments of one meter provider."""

    current: _Instruments | None = None

    def __init__(self, provider: MeterProvider, generation: int) -> None:
        from certobs import __version__

        meter = provider.get_meter(SCOPE_NAME, __version__)
        self.provider = provider
        self.generation = generation
        self.duration: Histogram = m.create_certificate_operation_duration(meter)
        self.active: UpDownCounter = m.create_certificate_operation_active(meter)
        self.lead_time: Histogram = m.create_certificate_renewal_lead_time(meter)
        self.bundle_requests: Counter = m.create_certificate_bundle_requests(meter)
        self.inventory_errors: Counter = m.create_certificate_inventory_errors(meter)
        # The inventory's gauges, observed at collection from its snapshots; with a store
        # (certobs' own readers) the store reports them instead.
        self.gauges = (
            []
            if _State.store is not None
            else [
                helper(meter, [_observe(name)])
                for name, helper in (
                    (m.CERTIFICATE_NOT_AFTER, m.create_certificate_not_after),
                    (m.CERTIFICATE_NOT_BEFORE, m.create_certificate_not_before),
                    (m.CERTIFICATE_COUNT, m.create_certificate_count),
                    (m.CERTIFICATE_ENDPOINT_CHAIN_VALID, m.create_certificate_endpoint_chain_valid),
                    (m.CERTIFICATE_ENDPOINT_DRIFT, m.create_certificate_endpoint_drift),
                )
            ]
        )


def _observe(name: str) -> Any:
    """A callback reporting one inventory gauge (each collection recomputes the snapshot)."""
    from opentelemetry.metrics import Observation

    def callback(options: Any) -> list[Observation]:
        from certobs._inventory_metrics import observations

        return [Observation(value, attributes) for attributes, value in observations()[name]]

    return callback


def _meter_provider() -> MeterProvider:
    return _State.meter_provider or get_meter_provider()


def instruments() -> _Instruments:
    """Return the instruments of the current meter provider, creating them on first use."""
    cached = _Instruments.current
    provider = _State.meter_provider or _metrics_internal._METER_PROVIDER
    if (
        cached is not None
        and cached.generation == _State.generation
        and (provider is None or cached.provider is provider)
    ):
        return cached
    fresh = _Instruments(_meter_provider(), _State.generation)
    _Instruments.current = fresh
    return fresh


_tracer_cache: dict[int, tuple[Any, Tracer]] = {}


def tracer() -> Tracer | None:
    """Return certobs' tracer, or None when no TracerProvider is installed (no spans then)."""
    provider = _State.tracer_provider
    if provider is None:
        provider = trace._TRACER_PROVIDER
        if provider is None:
            return None
    cached = _tracer_cache.get(_State.generation)
    if cached is not None and cached[0] is provider:
        return cached[1]
    from certobs import __version__

    made = provider.get_tracer(SCOPE_NAME, __version__)
    _tracer_cache.clear()
    _tracer_cache[_State.generation] = (provider, made)
    return made


def scope() -> Any:
    """Return the instrumentation scope certobs records under (loads the SDK)."""
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    from certobs import __version__

    return InstrumentationScope(SCOPE_NAME, __version__)
