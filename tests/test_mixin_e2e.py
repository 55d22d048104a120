"""End to end: the demo, scraped by a real Prometheus with the mixin's rules, feeds every panel."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from certobs.mixin import MixinConfig, build

PROMETHEUS = shutil.which("prometheus")
pytestmark = [
    pytest.mark.promtool,
    pytest.mark.skipif(PROMETHEUS is None, reason="prometheus (Debian package) missing"),
]


def free_port() -> int:
    """A free port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def query(port: int, expr: str) -> dict:
    """An instant query against the test's Prometheus."""
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def test_every_dashboard_query_returns_data(tmp_path: Path):
    """With the demo scraped, every panel query of both dashboards returns data, no error."""
    config = MixinConfig(evaluation_interval="1s", scrape_interval="1s")
    build(tmp_path, config)
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "certobs",
            "demo",
            "--exporter",
            "prometheus",
            "--prometheus-host",
            "127.0.0.1",
            "--prometheus-port",
            "0",
            "--duration",
            "120",
            "--export-interval",
            "1",
            "--seed",
            "5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    prometheus = None
    try:
        target = re.search(r"http://(127\.0\.0\.1:\d+)/metrics", demo.stdout.readline()).group(1)
        port = free_port()
        config_file = tmp_path / "prometheus" / "test.yml"
        config_file.write_text(
            json.dumps(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [
                        str(tmp_path / "rules" / "certobs-recording.yaml"),
                        str(tmp_path / "rules" / "certobs-alerts.yaml"),
                    ],
                    "scrape_configs": [
                        {"job_name": "certobs", "static_configs": [{"targets": [target]}]}
                    ],
                }
            )
        )
        prometheus = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        exprs = []
        for name in ("certobs-operations.json", "certobs-executive.json"):
            dashboard = json.loads((tmp_path / "dashboards" / name).read_text())
            for panel in dashboard["panels"]:
                for target_ in panel.get("targets", []):
                    exprs.append((name, panel["title"], target_["expr"]))
        assert len(exprs) >= 20
        empty: list[tuple[str, str, str]] = exprs
        deadline = time.monotonic() + 90
        while empty and time.monotonic() < deadline:
            time.sleep(3)
            still = []
            for item in empty:
                try:
                    answer = query(port, item[2])
                except OSError:
                    still.append(item)
                    continue
                assert answer["status"] == "success", (item, answer)
                if not answer["data"]["result"]:
                    still.append(item)
            empty = still
        assert empty == [], f"panels with no data: {[(d, t) for d, t, _ in empty]}"
    finally:
        for proc in (demo, prometheus):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
