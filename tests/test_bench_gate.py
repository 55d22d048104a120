"""The benchmark gate fails when a ratio is over its limit, and passes when all are within."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUDGET = ROOT / "benchmarks" / "budget.toml"


@pytest.fixture(scope="module")
def gate():
    """benchmarks/gate.py, imported as a module."""
    spec = importlib.util.spec_from_file_location(
        "certobs_bench_gate", ROOT / "benchmarks" / "gate.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def budget_with(tmp_path: Path, case: str, limit: float) -> Path:
    """The real budget with one limit replaced."""
    data = tomllib.loads(BUDGET.read_text())
    data[case]["limit"] = limit
    path = tmp_path / "budget.toml"
    path.write_text(
        "".join(f"[{name}]\nlimit = {entry['limit']}\n" for name, entry in data.items())
    )
    return path


def test_gate_fails_when_a_limit_is_broken(gate, tmp_path, capsys):
    """A limit set below what is measured makes the gate exit non-zero and say which case."""
    budget = budget_with(tmp_path, "disabled_vs_closure", 0.001)
    code = gate.main(["--short", "--only", "disabled_vs_closure", "--budget", str(budget)])
    captured = capsys.readouterr()
    assert code == 1
    assert "FAIL" in captured.out
    assert "budget exceeded: disabled_vs_closure" in captured.err
    assert "re-measured" in captured.out  # a failure is confirmed by a second measurement


def test_gate_passes_within_limits(gate, tmp_path, capsys):
    """With room in the limit, the same measurement passes and prints the table."""
    budget = budget_with(tmp_path, "disabled_vs_closure", 1000.0)
    code = gate.main(["--short", "--only", "disabled_vs_closure", "--budget", str(budget)])
    out = capsys.readouterr().out
    assert code == 0
    assert "disabled_vs_closure" in out
    assert "pass" in out
    assert "all 1 ratios within budget" in out


def test_every_case_has_a_limit(gate):
    """The budget file names every case the gate measures, and nothing else."""
    known = {case for cases, _ in gate.GROUPS.values() for case in cases}
    assert set(gate.load_budget(BUDGET)) == known


def test_missing_limit_is_an_error(gate, tmp_path):
    """A budget without a limit for some case is refused, naming the case."""
    path = tmp_path / "budget.toml"
    path.write_text("[disabled_vs_closure]\nlimit = 1.1\n")
    with pytest.raises(SystemExit) as info:
        gate.main(["--short", "--only", "disabled_vs_closure", "--budget", str(path)])
    assert info.value.code == 2


def test_table_marks_failures(gate):
    """The printed table shows ratio, limit and the verdict of each row."""
    rows = [
        gate.Row("a", "x", "y", 2.0, 1.0, "ns/call", 2.0, limit=1.5),
        gate.Row("b", "x", "y", 1.0, 1.0, "ns/call", 1.0, limit=1.5),
    ]
    text = gate.table(rows)
    assert "2.000" in text
    assert "FAIL" in text.splitlines()[2]
    assert "pass" in text.splitlines()[3]
