"""Shared fixtures. The ``certobs_telemetry`` fixture comes from certobs' own pytest plugin."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import certobs
from otlp_pipeline import OtlpSink


@pytest.fixture(autouse=True)
def _no_operation_leaks():
    """Every test must leave no certobs operation current behind it."""
    yield
    leaked = certobs.current_operation()
    assert leaked.operation is None, f"a test left operation {leaked.operation!r} current"


@pytest.fixture(autouse=True)
def _empty_default_inventory():
    """Tests that use the module-level inventory functions leave the default one empty."""
    yield
    import sys

    module = sys.modules.get("certobs.inventory")
    if module is not None and module._default is not None:
        module._default.clear()


@pytest.fixture
def otlp_sink() -> Iterator[OtlpSink]:
    """An OTLP/HTTP sink on a free 127.0.0.1 port, stopped at teardown."""
    sink = OtlpSink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()
