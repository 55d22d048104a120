"""Shared fixtures. The ``certobs_telemetry`` fixture comes from certobs' own pytest plugin."""
