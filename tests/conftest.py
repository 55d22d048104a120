"""Shared fixtures. The ``certobs_telemetry`` fixture comes from certobs' own pytest plugin."""

from __future__ import annotations

import pytest

import certobs


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
