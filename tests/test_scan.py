"""``certobs scan`` end to end: table, JSON, exit codes, errors named, and --serve."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
import trustme

from tls_servers import closed_port, leaf, serving

SCAN = [sys.executable, "-m", "certobs", "scan"]


def scan(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``certobs scan`` with ``args``."""
    return subprocess.run([*SCAN, *args], capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def ca():
    """A test CA."""
    return trustme.CA()


@pytest.fixture
def certs(ca, tmp_path):
    """A directory with a healthy, an expiring and an expired certificate."""
    leaf(ca, common_name="healthy.example.com", days_left=70).cert_chain_pems[0].write_to_path(
        str(tmp_path / "healthy.pem")
    )
    leaf(ca, common_name="soon.example.com", days_left=10).cert_chain_pems[0].write_to_path(
        str(tmp_path / "soon.pem")
    )
    leaf(ca, common_name="gone.example.com", days_left=-1).cert_chain_pems[0].write_to_path(
        str(tmp_path / "gone.pem")
    )
    return tmp_path


def test_table_sorted_by_urgency_exit_1(certs):
    """Expired first, then expiring, then valid; exit 1 because something needs attention."""
    result = scan(str(certs))
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "SUBJECT",
        "ISSUER",
        "DAYS",
        "LEFT",
        "LIFETIME",
        "LEFT",
        "STATUS",
        "SOURCE",
    ]
    order = [line.split()[0] for line in lines[1:]]
    assert order == ["gone.example.com", "soon.example.com", "healthy.example.com"]
    assert " expired " in lines[1]
    assert " expiring " in lines[2]
    assert "Traceback" not in result.stderr


def test_all_valid_exits_0_and_fail_within(certs):
    """Only healthy certificates: exit 0; --fail-within beyond its days left: exit 1."""
    healthy = str(certs / "healthy.pem")
    assert scan(healthy).returncode == 0
    assert scan(healthy, "--fail-within", "60").returncode == 0
    assert scan(healthy, "--fail-within", "80").returncode == 1


def test_json_output(certs):
    """--json gives the same facts for machines."""
    result = scan("--json", str(certs))
    document = json.loads(result.stdout)
    by_subject = {c["subject"]: c for c in document["certificates"]}
    assert by_subject["soon.example.com"]["status"] == "expiring"
    assert 9 < by_subject["soon.example.com"]["days_left"] < 10.1
    assert 0 < by_subject["healthy.example.com"]["lifetime_left"] < 1
    assert document["errors"] == []


def test_bad_inputs_named_with_reasons_exit_3(ca, tmp_path):
    """Unreadable sources are named with their reason; exit 3 when nothing is expiring."""
    (tmp_path / "bad.pem").write_text(
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    )
    good = leaf(ca, common_name="ok.example.com", days_left=80)
    good.cert_chain_pems[0].write_to_path(str(tmp_path / "ok.pem"))
    with serving(None, mode="hang") as hang:
        port = closed_port()
        result = scan(
            str(tmp_path),
            str(tmp_path / "missing.pem"),
            f"127.0.0.1:{port}",
            hang.address,
            "--timeout",
            "1",
        )
    assert result.returncode == 3, result.stdout + result.stderr
    out = result.stdout
    assert f"error: {tmp_path / 'bad.pem'}: bad_format:" in out
    assert f"error: {tmp_path / 'missing.pem'}: not_found:" in out
    assert f"error: 127.0.0.1:{port}: unreachable:" in out
    assert f"error: {hang.address}: timeout:" in out
    assert "ok.example.com" in out
    assert "Traceback" not in result.stderr


def test_endpoint_scan_with_trust_and_drift(ca, tmp_path):
    """An endpoint's chain is verified against --trust and checked against --expect."""
    served = leaf(ca, "localhost", "127.0.0.1", common_name="tls.example.com", days_left=70)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    with serving(served) as server:
        ok = scan(server.address, "--trust", str(tmp_path / "ca.pem"), "--json")
        drift = scan(
            server.address,
            "--trust",
            str(tmp_path / "ca.pem"),
            "--expect",
            f"{server.address}=00:11",
        )
    document = json.loads(ok.stdout)
    assert ok.returncode == 0, ok.stderr
    (endpoint,) = document["endpoints"]
    assert endpoint["chain_valid"] is True
    assert endpoint["tls_version"] in ("1.2", "1.3")
    assert document["certificates"][0]["subject"] == "tls.example.com"
    assert f"{server.address}: TLS" in drift.stdout
    assert "DRIFT: serves another certificate" in drift.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["x.pem", "--fail-within", "-1"], "--fail-within"),
        (["x.pem", "--fail-within", "nan"], "--fail-within"),
        (["x.pem", "--timeout", "1e300"], "--timeout"),
        (["x.pem", "--expect", "nothing"], "--expect 'nothing'"),
        (["x.pem", "--expiring-fraction", "2"], "--expiring-fraction"),
        (
            ["localhost:443", "--trust", "/nonexistent/ca.pem"],
            "trust bundle /nonexistent/ca.pem not found",
        ),
    ],
)
def test_usage_errors_exit_2(args, message):
    """Bad options exit 2 with a message naming the option, never a traceback."""
    result = scan(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_exports_the_inventory(certs):
    """--serve keeps running and serves the inventory on a Prometheus endpoint; Ctrl-C stops."""
    proc = subprocess.Popen(
        [
            *SCAN,
            str(certs),
            "--serve",
            "--exporter",
            "prometheus",
            "--prometheus-host",
            "127.0.0.1",
            "--prometheus-port",
            "0",
            "--interval",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        banner = proc.stderr.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/metrics", banner).group(0)
        text = ""
        deadline = time.monotonic() + 20
        while "certificate_not_after_seconds{" not in text and time.monotonic() < deadline:
            time.sleep(0.2)
            text = urllib.request.urlopen(url, timeout=5).read().decode()
        assert "certificate_count{" in text
        assert 'certificate_status="expired"' in text
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
