"""Docstring examples run, public names are documented, and the README's commands are real."""

from __future__ import annotations

import doctest
import importlib
import re
from pathlib import Path

import pytest

import certobs

ROOT = Path(__file__).resolve().parent.parent
MODULES = [
    "certobs",
    "certobs._operation",
    "certobs.semconv",
    "certobs.semconv._naming",
    "certobs.testing",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    """Every example in a docstring runs and gives what it shows."""
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_some_doctests_exist():
    """The doctest run is not empty (a test that cannot fail would be a defect)."""
    attempted = sum(doctest.testmod(importlib.import_module(n)).attempted for n in MODULES)
    assert attempted >= 4


@pytest.mark.parametrize("name", sorted(certobs.__all__))
def test_public_names_documented_and_in_changelog(name):
    """Every name in certobs.__all__ has a docstring and a changelog line."""
    obj = getattr(certobs, name)
    if name != "__version__":
        assert (obj.__doc__ or "").strip(), name
    changelog = (ROOT / "CHANGELOG.md").read_text()
    if name != "__version__":
        pattern = rf"`(certobs\.)?{re.escape(name)}[`(]"
        assert re.search(pattern, changelog), f"{name} missing from CHANGELOG.md"


def test_all_is_sorted():
    """Public modules keep a sorted __all__."""
    assert list(certobs.__all__) == sorted(certobs.__all__)


def test_readme_commands():
    """README gives the install+demo command and the test command that .ci/run runs."""
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```sh\n(.+?)\n```", readme)
    assert any("certobs demo" in c and "pip install" in c for c in commands)
    test_command = next(c for c in commands if "nox -s tests" in c)
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_command.split("&&")[-1].strip() in ci
