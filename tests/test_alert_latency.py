"""Alert latency end to end: a failing renewal reaches Alertmanager's webhook within a minute.

Real Prometheus and Alertmanager (Debian packages) with the shipped intervals (scrape 10 s,
rule evaluation 15 s, group_wait 5 s), a service exporting through certobs' Prometheus endpoint,
and a webhook receiver in the test. The measured latency is printed; the shipped configuration
promises under 60 s.
"""

from __future__ import annotations

import http.server
import json
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import yaml

from certobs.mixin import MixinConfig, render

PROMETHEUS = shutil.which("prometheus")
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
pytestmark = [
    pytest.mark.promtool,
    pytest.mark.skipif(
        PROMETHEUS is None or ALERTMANAGER is None,
        reason="prometheus and prometheus-alertmanager (Debian packages) needed",
    ),
]

SERVICE = textwrap.dedent(
    """
    import sys, time, certobs
    from certobs import _export

    class RateLimited(Exception):
        pass

    certobs.configure(exporter="prometheus", prometheus_host="127.0.0.1", prometheus_port=0,
                      service_name="latency-test")
    host, port = _export.prometheus_address()
    print(f"{host}:{port}", flush=True)

    @certobs.renewal(issuer="letsencrypt")
    def renew(fail):
        if fail:
            raise RateLimited("too many certificates")

    import select
    while True:
        renew(False)
        ready, _, _ = select.select([sys.stdin], [], [], 0.5)
        if ready:
            line = sys.stdin.readline()
            if not line or line.strip() == "stop":
                break
            failed_at = time.time()
            try:
                renew(True)
            except RateLimited:
                pass
            print(f"failed {failed_at}", flush=True)
    certobs.shutdown()
    """
)


def free_port() -> int:
    """A free port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Webhook(http.server.BaseHTTPRequestHandler):
    """Alertmanager's receiver: records when each firing alert arrives."""

    received: list[tuple[float, dict]] = []  # noqa: RUF012 - reset per test

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Webhook.received.append((time.time(), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        """Quiet."""


def test_failing_renewal_pages_within_a_minute(tmp_path: Path):
    """From the first failing renewal to the webhook: under 60 s with the shipped intervals."""
    Webhook.received = []
    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Webhook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    am_port, prom_port = free_port(), free_port()
    config = MixinConfig(
        alertmanager_target=f"127.0.0.1:{am_port}",
        webhook_url=f"http://127.0.0.1:{hook.server_address[1]}/alerts",
    )
    files = render(config)
    for relative, text in files.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)
    service = subprocess.Popen(
        [sys.executable, "-c", SERVICE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    processes = [service]
    try:
        target = service.stdout.readline().strip()
        assert re.fullmatch(r"127\.0\.0\.1:\d+", target), service.stderr.read()
        prometheus_config = yaml.safe_load(files["prometheus/prometheus.yml"])
        prometheus_config["scrape_configs"] = [
            {"job_name": "certobs", "static_configs": [{"targets": [target]}]}
        ]
        prometheus_config["rule_files"] = [
            str(tmp_path / "rules" / "certobs-recording.yaml"),
            str(tmp_path / "rules" / "certobs-alerts.yaml"),
        ]
        (tmp_path / "prometheus" / "prometheus.yml").write_text(yaml.safe_dump(prometheus_config))
        processes.append(
            subprocess.Popen(
                [
                    ALERTMANAGER,
                    f"--config.file={tmp_path / 'alertmanager' / 'alertmanager.yml'}",
                    f"--storage.path={tmp_path / 'am'}",
                    f"--web.listen-address=127.0.0.1:{am_port}",
                    "--cluster.listen-address=",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        processes.append(
            subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={tmp_path / 'prometheus' / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp_path / 'data'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        time.sleep(12)  # Prometheus has scraped the healthy service at least once
        service.stdin.write("fail\n")
        service.stdin.flush()
        line = service.stdout.readline()
        failed_at = float(line.split()[1])
        deadline = time.monotonic() + 90
        arrived = None
        while arrived is None and time.monotonic() < deadline:
            time.sleep(0.5)
            for at, body in Webhook.received:
                names = {alert["labels"].get("alertname") for alert in body.get("alerts", [])}
                if "CertificateRenewalFailing" in names and body.get("status") == "firing":
                    arrived = at
                    break
        assert arrived is not None, f"no alert within 90 s; webhook got {Webhook.received}"
        latency = arrived - failed_at
        print(f"\nalert latency, failing renewal to webhook: {latency:.1f} s")
        (alert,) = [
            a
            for _, body in Webhook.received
            for a in body["alerts"]
            if a["labels"]["alertname"] == "CertificateRenewalFailing"
        ][:1]
        assert alert["labels"]["certificate_issuer_name"] == "letsencrypt"
        assert alert["labels"]["error_type"] == "__main__.RateLimited"
        assert latency < 60
    finally:
        if service.poll() is None:
            service.stdin.write("stop\n")
            service.stdin.flush()
        for process in processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
        hook.shutdown()
