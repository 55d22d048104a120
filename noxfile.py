"""Developer and CI tasks: ``nox -s tests``, ``lint``, ``typing``, ``generate``."""

from __future__ import annotations

import shutil

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
