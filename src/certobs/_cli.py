"""The ``certobs`` command."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from collections.abc import Sequence

import certobs
from certobs._config import EXPORTERS, PROTOCOLS


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="certobs", description="Observability for the certificate lifecycle."
    )
    parser.add_argument("--version", action="version", version=f"certobs {certobs.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="run a simulated certificate service instrumented with certobs",
        description=(
            "Run a simulated certificate service (issuance, renewals with failures, deployments "
            "to several targets, bundles) instrumented with certobs, and export its telemetry. "
            "By default metrics are printed to the console; Ctrl-C stops early and flushes."
        ),
    )
    demo.add_argument("--duration", type=float, default=30.0, help="seconds to run (default: 30)")
    demo.add_argument(
        "--exporter",
        choices=EXPORTERS,
        default="console",
        help="where telemetry goes (default: console)",
    )
    demo.add_argument("--endpoint", help="OTLP endpoint, e.g. http://localhost:4317")
    demo.add_argument("--protocol", choices=PROTOCOLS, help="OTLP protocol (default: grpc)")
    demo.add_argument(
        "--export-interval",
        type=float,
        default=None,
        help="seconds between metric exports (default: 5 for console, else 10)",
    )
    demo.add_argument("--prometheus-host", default=None, help="scrape endpoint address")
    demo.add_argument("--prometheus-port", type=int, default=None, help="scrape endpoint port")
    demo.add_argument("--seed", type=int, default=None, help="random seed, for repeatable runs")
    from certobs import _scan

    scan = commands.add_parser(
        "scan",
        help="report the certificates in files and at TLS endpoints, most urgent first",
        description=(
            "Read certificates from files, directories, glob patterns (PEM, DER, PKCS#12) and "
            "TLS endpoints (HOST:PORT), and print them most urgent first. Exit status: 0 all "
            "good, 1 something expired or expiring, 2 bad usage, 3 some source unreadable."
        ),
    )
    _scan.add_arguments(scan)
    mixin = commands.add_parser(
        "mixin", help="monitoring mixin: Prometheus rules and configuration"
    )
    mixin_commands = mixin.add_subparsers(dest="mixin_command", metavar="COMMAND")
    build = mixin_commands.add_parser(
        "build",
        help="write the rules and configuration files",
        description=(
            "Write Prometheus recording and alerting rules, and Prometheus, Alertmanager and "
            "OpenTelemetry Collector configuration, generated from the semantic conventions."
        ),
    )
    build.add_argument("--output", required=True, help="directory to write into")
    build.add_argument("--selector", default="", help='label matchers, e.g. job="renewer"')
    build.add_argument("--runbook-url", default=None, help="base URL of the runbooks")
    return parser


def _demo(args: argparse.Namespace) -> int:
    from certobs import _demo, _export

    if args.duration <= 0:
        print("certobs demo: --duration must be positive", file=sys.stderr)
        return 2
    interval = args.export_interval
    if interval is None:
        interval = 5.0 if args.exporter == "console" else 10.0
    try:
        settings = certobs.configure(
            exporter=args.exporter,
            service_name="certobs-demo",
            endpoint=args.endpoint,
            protocol=args.protocol,
            export_interval=interval,
            prometheus_host=args.prometheus_host,
            prometheus_port=args.prometheus_port,
        )
    except certobs.ConfigurationError as exc:
        print(f"certobs demo: {exc}", file=sys.stderr)
        return 2
    where = {
        "console": "metrics printed below",
        "otlp": f"OTLP {settings.protocol} to {settings.endpoint or 'the default endpoint'}",
        "none": "nothing exported",
    }.get(settings.exporter, "")
    if settings.exporter == "prometheus":
        host, port = _export.prometheus_address() or ("?", 0)
        where = f"scrape http://{host}:{port}/metrics"
    print(
        f"certobs demo: simulating a certificate service for {args.duration:g} s ({where}); "
        "Ctrl-C stops early",
        flush=True,
    )
    code = 0
    tally: Counter[str] = Counter()
    try:
        asyncio.run(_demo.run(args.duration, tally, seed=args.seed))
    except KeyboardInterrupt:
        print("\ncertobs demo: interrupted; flushing telemetry", file=sys.stderr, flush=True)
        code = 130
    finally:
        certobs.shutdown()
    _demo.summary(tally, sys.stdout)
    return code


def _mixin(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.mixin_command != "build":
        parser.parse_args(["mixin", "--help"])
        return 2
    from certobs.mixin import MixinConfig, build

    try:
        options = {"selector": args.selector}
        if args.runbook_url:
            options["runbook_url"] = args.runbook_url
        written = build(args.output, MixinConfig(**options))
    except (certobs.ConfigurationError, OSError) as exc:
        print(f"certobs mixin build: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``certobs`` command line; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        return _demo(args)
    if args.command == "scan":
        from certobs import _scan

        return _scan.run(args)
    if args.command == "mixin":
        return _mixin(args, parser)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
