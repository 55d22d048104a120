"""``certobs demo`` runs the simulated service, prints readable metrics and stops cleanly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

DEMO = [sys.executable, "-m", "certobs", "demo"]


def test_demo_console_prints_every_operation():
    """A short console demo prints metrics for every lifecycle operation and a summary."""
    result = subprocess.run(
        [*DEMO, "--duration", "4", "--seed", "7", "--export-interval", "1"],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "--- certobs metrics at" in out
    for op in ("issue", "renew", "deploy", "validate", "bundle.build"):
        assert f"certificate.operation.name={op}" in out, op
    assert "certificate.bundle.requests{" in out
    assert "certificate.renewal.lead_time{" in out
    # The demo's fleet is in the inventory: expiry per certificate and counts by status.
    assert re.search(r"certificate\.not_after\{certificate\.id=api\.example\.com,.*\} 20\d\d-", out)
    assert "certificate.count{certificate.issuer.name=" in out
    assert "certobs demo: what the service did" in out
    assert "Traceback" not in result.stderr
    assert "certobs:" not in result.stderr  # the demo triggers no certobs warning


def test_demo_ctrl_c_flushes_and_exits():
    """Ctrl-C stops the demo early, flushes the last metrics and exits with 130, no traceback."""
    proc = subprocess.Popen(
        [*DEMO, "--duration", "120", "--export-interval", "3600"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        banner = proc.stdout.readline()
        assert "simulating a certificate service" in banner
        time.sleep(1.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "interrupted; flushing telemetry" in err
    assert "Traceback" not in err
    # The export interval is an hour: the only metrics printed are the final flush.
    assert "--- certobs metrics at" in out
    assert "certificate.operation.duration{" in out
    assert "certobs demo: what the service did" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--duration", "0"], "--duration must be positive"),
        (["--exporter", "otlp", "--endpoint", "nowhere"], "endpoint='nowhere' is not a valid"),
        (["--export-interval", "-1"], "export_interval=-1.0"),
    ],
)
def test_demo_bad_arguments(args, message):
    """Bad arguments exit with status 2 and a message naming the setting, not a traceback."""
    result = subprocess.run([*DEMO, *args], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_version_and_help():
    """``certobs --version`` prints the installed version; no command prints help."""
    version = subprocess.run(
        [sys.executable, "-m", "certobs", "--version"], capture_output=True, text=True, check=True
    )
    assert version.stdout.startswith("certobs ")
    bare = subprocess.run(
        [sys.executable, "-m", "certobs"], capture_output=True, text=True, check=False
    )
    assert bare.returncode == 2
    assert "demo" in bare.stdout


def test_console_script_installed():
    """The ``certobs`` console script is installed next to the interpreter."""
    script = os.path.join(os.path.dirname(sys.executable), "certobs")
    assert os.path.exists(script)
