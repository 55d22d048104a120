"""``certobs scan``: read certificates from files and endpoints, report by urgency."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from typing import IO, Any

from certobs._errors import ConfigurationError

EXIT_OK = 0
EXIT_EXPIRING = 1
"""Something is expired, expiring (lifetime-relative policy) or within ``--fail-within``."""
EXIT_USAGE = 2
EXIT_UNREADABLE = 3
"""Nothing is expiring, but some source could not be read."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``scan`` command's options."""
    parser.add_argument(
        "targets",
        nargs="+",
        metavar="PATH|HOST:PORT",
        help="certificate files, directories, glob patterns, or TLS endpoints",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--fail-within",
        type=float,
        metavar="DAYS",
        help="exit 1 if a certificate expires within DAYS (default: if any is expired or "
        "expiring by the lifetime-relative policy)",
    )
    parser.add_argument(
        "--expiring-fraction",
        type=float,
        default=1 / 3,
        metavar="F",
        help="a certificate is expiring with less than F of its lifetime left (default 1/3)",
    )
    parser.add_argument("--password", help="password of PKCS#12 files")
    parser.add_argument(
        "--trust", help="PEM bundle that endpoint chains must verify against (default: system)"
    )
    parser.add_argument("--no-verify", action="store_true", help="do not verify endpoint chains")
    parser.add_argument(
        "--expect",
        action="append",
        default=[],
        metavar="HOST:PORT=SHA256",
        help="the fingerprint an endpoint should serve (drift check); repeatable",
    )
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="seconds per connect and handshake (5)"
    )
    parser.add_argument("--concurrency", type=int, default=50, help="endpoints probed at once (50)")
    parser.add_argument(
        "--serve",
        action="store_true",
        help="keep running and export the inventory through the configured exporter",
    )
    parser.add_argument(
        "--interval", type=float, default=60.0, help="seconds between refreshes with --serve"
    )
    parser.add_argument(
        "--exporter",
        default=None,
        help="with --serve: otlp, prometheus or console (default: CERTOBS_EXPORTER, else otlp)",
    )
    parser.add_argument("--prometheus-host", default=None)
    parser.add_argument("--prometheus-port", type=int, default=None)
    parser.add_argument("--endpoint", default=None, help="with --serve: OTLP endpoint")


def _split(targets: list[str]) -> tuple[list[str], list[str]]:
    from certobs._probe import parse_endpoint

    paths, endpoints = [], []
    for target in targets:
        if os.path.exists(target):
            paths.append(target)
            continue
        try:
            parse_endpoint(target)
        except ValueError:
            paths.append(target)  # a pattern, or reported as not_found with the path named
        else:
            endpoints.append(target)
    return paths, endpoints


def _build(args: argparse.Namespace) -> Any:
    from certobs.inventory import Inventory
    from certobs.x509 import ExpiryPolicy

    try:
        policy = ExpiryPolicy(fraction=args.expiring_fraction)
    except ValueError as exc:
        raise ConfigurationError(f"--expiring-fraction: {exc}") from None
    expected = {}
    for item in args.expect:
        endpoint, sep, fingerprint = item.partition("=")
        if not sep or not fingerprint:
            raise ConfigurationError(f"--expect {item!r}: expected HOST:PORT=SHA256")
        expected[endpoint] = fingerprint
    inventory = Inventory(policy=policy)
    paths, endpoints = _split(args.targets)
    interval = args.interval if args.serve else 3600.0
    if paths:
        inventory.watch_files(*paths, password=args.password, interval=interval, start=False)
    if endpoints:
        inventory.watch_endpoints(
            endpoints,
            timeout=args.timeout,
            concurrency=args.concurrency,
            trust=args.trust,
            verify=not args.no_verify,
            expected=expected,
            interval=interval,
            start=False,
        )
    elif expected:
        raise ConfigurationError("--expect names endpoints, but no HOST:PORT was given")
    return inventory


def _rows(inventory: Any, now: float) -> list[dict[str, Any]]:
    rows = []
    for entry in inventory.entries():
        info = entry.info
        rows.append(
            {
                "id": entry.id,
                "subject": info.subject_common_name or info.subject,
                "issuer": info.issuer_common_name or info.issuer,
                "days_left": info.seconds_left(now) / 86400,
                "lifetime_left": info.fraction_left(now),
                "status": info.status(now, inventory.policy).value,
                "source": entry.source,
                "not_after": info.not_after,
                "fingerprint_sha256": info.fingerprint_sha256,
                "key_algorithm": info.key_algorithm,
            }
        )
    order = {"expired": 0, "expiring": 1, "not_yet_valid": 2, "valid": 3}
    rows.sort(key=lambda r: (order[r["status"]], r["days_left"], r["id"]))
    return rows


def _table(rows: list[dict[str, Any]], errors: list[Any], probes: list[Any], out: IO[str]) -> None:
    header = ("SUBJECT", "ISSUER", "DAYS LEFT", "LIFETIME LEFT", "STATUS", "SOURCE")
    lines = [header] + [
        (
            _clip(r["subject"], 40),
            _clip(r["issuer"], 30),
            f"{r['days_left']:.1f}",
            f"{r['lifetime_left']:.0%}",
            r["status"],
            r["id"],
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
        out.write("\n")
    for probe in probes:
        notes = []
        if probe.tls_version:
            notes.append(f"TLS {probe.tls_version}")
        if probe.chain_valid is not None:
            notes.append("chain verifies" if probe.chain_valid else "chain does NOT verify")
        if probe.drift is not None:
            notes.append("DRIFT: serves another certificate" if probe.drift else "no drift")
        if notes:
            out.write(f"{probe.endpoint.name}: {', '.join(notes)}\n")
    for error in errors:
        out.write(f"error: {error.source}: {error.reason.value}: {error.message}\n")


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _verdict(rows: list[dict[str, Any]], errors: list[Any], fail_within: float | None) -> int:
    if fail_within is not None:
        urgent = any(r["days_left"] < fail_within for r in rows)
    else:
        urgent = any(r["status"] in ("expired", "expiring") for r in rows)
    if urgent:
        return EXIT_EXPIRING
    if errors:
        return EXIT_UNREADABLE
    return EXIT_OK


def run(args: argparse.Namespace, out: IO[str] = sys.stdout, err: IO[str] = sys.stderr) -> int:
    """Run ``certobs scan``; return the exit code. Never raises for bad input."""
    import warnings

    # Malformed certificates make cryptography warn; the scan reports them as errors already.
    warnings.filterwarnings("ignore", module="certobs")
    try:
        if args.fail_within is not None and not 0 <= args.fail_within < 1e6:
            raise ConfigurationError("--fail-within: expected a number of days >= 0")
        if not 0 < args.timeout <= 3600:
            raise ConfigurationError("--timeout: expected seconds, more than 0 and at most 3600")
        inventory = _build(args)
    except ConfigurationError as exc:
        err.write(f"certobs scan: {exc}\n")
        return EXIT_USAGE
    if args.serve:
        return _serve(args, inventory, err)
    inventory.refresh()
    now = time.time()
    rows = _rows(inventory, now)
    errors = inventory.errors()
    probes = [p for p in inventory.probes() if p.reason is None]
    if args.json:
        document = {
            "certificates": rows,
            "endpoints": [
                {
                    "endpoint": p.endpoint.name,
                    "tls_version": p.tls_version,
                    "chain_valid": p.chain_valid,
                    "verify_error": p.verify_error,
                    "drift": p.drift,
                }
                for p in probes
            ],
            "errors": [
                {"source": e.source, "kind": e.kind, "reason": e.reason.value, "message": e.message}
                for e in errors
            ],
        }
        json.dump(document, out, indent=2)
        out.write("\n")
    else:
        _table(rows, errors, probes, out)
    return _verdict(rows, errors, args.fail_within)


def _serve(args: argparse.Namespace, inventory: Any, err: IO[str]) -> int:
    import certobs

    try:
        settings = certobs.configure(
            exporter=args.exporter,
            service_name="certobs-scan",
            endpoint=args.endpoint,
            prometheus_host=args.prometheus_host,
            prometheus_port=args.prometheus_port,
        )
    except ConfigurationError as exc:
        err.write(f"certobs scan: {exc}\n")
        return EXIT_USAGE
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    where = settings.exporter
    if settings.exporter == "prometheus":
        from certobs._export import prometheus_address

        host, port = prometheus_address() or ("?", 0)
        where = f"http://{host}:{port}/metrics"
    err.write(f"certobs scan: serving the inventory ({where}); Ctrl-C stops\n")
    err.flush()
    inventory.start()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        inventory.stop()
        certobs.shutdown()
    return EXIT_OK
