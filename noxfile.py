"""Developer and CI tasks: nox -s tests, lint, typing, bench, fuzz, reliability, generate."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox

nox.options.sessions = ["lint", "typing", "tests", "bench"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

PYPROJECT = nox.project.load_toml("pyproject.toml")
# Sessions run on the interpreter nox runs on (any supported Python, 3.10 or newer); CI uses
# the machine's python3.
PYTHON = None


def _ensure_promtool(session: nox.Session) -> None:
    """Install Debian's prometheus and alertmanager packages when missing and we may use apt."""
    if shutil.which("promtool") and shutil.which("prometheus-alertmanager"):
        return
    if shutil.which("apt-get") and shutil.which("id"):
        uid = session.run("id", "-u", silent=True, external=True)
        if uid and uid.strip() == "0":
            session.log("installing Debian's prometheus and prometheus-alertmanager packages")
            session.run("apt-get", "update", "-qq", external=True)
            session.run(
                "apt-get",
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "prometheus",
                "prometheus-alertmanager",
                external=True,
                env={"DEBIAN_FRONTEND": "noninteractive"},
            )
            return
    session.warn("promtool not found and cannot install it: the promtool tests will be skipped")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the test suite (installs promtool from Debian when missing and running as root)."""
    _ensure_promtool(session)
    session.install("-e", ".[prometheus]", *nox.project.dependency_groups(PYPROJECT, "tests"))
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Ruff: lint and formatting."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typing(session: nox.Session) -> None:
    """Mypy, strict, on src/."""
    session.install("-e", ".[prometheus]", *nox.project.dependency_groups(PYPROJECT, "typing"))
    session.run("mypy")


@nox.session(python=PYTHON)
def generate(session: nox.Session) -> None:
    """Regenerate certobs.semconv and docs/semantic-conventions.md from model/."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "generate"))
    session.run("python", "model/generate.py", *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """The performance gate: every hot-path ratio against benchmarks/budget.toml.

    ``nox -s bench`` runs the full measurement; ``nox -s bench -- --short`` the quick one CI
    runs. Exits non-zero when a ratio is over its limit.
    """
    session.install("-e", ".[mixin]", *nox.project.dependency_groups(PYPROJECT, "bench"))
    session.run("python", "benchmarks/gate.py", *session.posargs)


@nox.session(python=PYTHON)
def reliability(session: nox.Session) -> None:
    """The fault-injection scenarios with long collector outages (30 s; CI runs them with 3 s).

    ``nox -s reliability -- 60`` sets another outage length in seconds. Prints the figures of
    each scenario (counts recorded and received, worst call latency, memory growth).
    """
    session.install("-e", ".[prometheus]", *nox.project.dependency_groups(PYPROJECT, "tests"))
    seconds = session.posargs[0] if session.posargs else "30"
    session.run(
        "pytest", "-s", "tests/test_reliability.py", env={"CERTOBS_OUTAGE_SECONDS": seconds}
    )


FUZZ_TARGETS = ("fuzz_x509", "fuzz_attributes")


@nox.session(python=PYTHON)
def fuzz(session: nox.Session) -> None:
    """Coverage-guided fuzzing (atheris) of certificate parsing and the attribute API.

    ``nox -s fuzz`` runs each target for 60 s, ``nox -s fuzz -- 20`` for 20 s each, and
    ``nox -s fuzz -- -runs=100000`` for that many inputs each. Every target starts from a
    scratch copy of its seeds in fuzz/corpus/ (libFuzzer adds what it finds to its corpus);
    crashing inputs are written to the session's tmp directory, and the session fails.
    """
    session.install("-e", ".", *nox.project.dependency_groups(PYPROJECT, "fuzz"))
    limit = session.posargs[0] if session.posargs else "60"
    if not limit.startswith("-"):
        limit = f"-max_total_time={limit}"
    tmp = Path(session.create_tmp())
    for target in FUZZ_TARGETS:
        corpus = tmp / "corpus" / target
        shutil.rmtree(corpus, ignore_errors=True)
        shutil.copytree(Path("fuzz", "corpus", target), corpus)
        session.run(
            "python",
            f"fuzz/{target}.py",
            limit,
            "-timeout=10",  # an input that runs longer than 10 s is a hang: a crash
            f"-artifact_prefix={tmp}{os.sep}",
            str(corpus),
        )
