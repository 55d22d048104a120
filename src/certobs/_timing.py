"""Interleaved timing: the measurement core of the benchmark gate and of ``measure_overhead``.

Absolute times on a shared machine drift with CPU frequency, neighbours and caches; a ratio
between two loops is stable only if the two run close together in time. So the loops of every
case alternate, round after round, in one process, and a ratio is the median of the per-round
ratios.
"""

from __future__ import annotations

import gc
import statistics
from collections.abc import Callable, Mapping
from time import perf_counter_ns

__all__ = ["Loop", "interleave", "median_ratio"]

Loop = Callable[[int], None]
"""A benchmark body: runs the measured operation ``n`` times."""


def _time(loop: Loop, n: int) -> float:
    start = perf_counter_ns()
    loop(n)
    return (perf_counter_ns() - start) / n


def interleave(
    loops: Mapping[str, Loop], *, rounds: int = 15, number: int = 20_000, repeat: int = 3
) -> dict[str, list[float]]:
    """Time each loop in alternation; return nanoseconds per operation, per round.

    Each round runs every loop ``repeat`` times for ``number`` operations and keeps the
    fastest (the least disturbed) of the repeats. The garbage collector is off while timing.

    Args:
        loops: The loops to compare, by name.
        rounds: How many rounds of alternation.
        number: Operations per timed run.
        repeat: Timed runs per loop and round.

    Returns:
        For each name, its ns/operation in each round.
    """
    for loop in loops.values():  # warm up: caches, lazy instruments, specialisation
        loop(max(number // 10, 1))
    results: dict[str, list[float]] = {name: [] for name in loops}
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            for name, loop in loops.items():
                results[name].append(min(_time(loop, number) for _ in range(repeat)))
    finally:
        if enabled:
            gc.enable()
    return results


def median_ratio(
    numerator: list[float], denominator: list[float], *, minus: list[float] | None = None
) -> float:
    """Median over rounds of ``(numerator - minus) / (denominator - minus)``.

    With ``minus`` (a baseline such as a bare call), the ratio compares overheads.
    """
    ratios = []
    for i, (top, bottom) in enumerate(zip(numerator, denominator, strict=True)):
        base = minus[i] if minus is not None else 0.0
        ratios.append((top - base) / max(bottom - base, 1e-9))
    return statistics.median(ratios)
