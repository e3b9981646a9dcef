"""Numeric option types with their allowed ranges, checked when the command line is parsed.

Each factory returns an ``argparse`` type: a bad value (NaN, out of range, not a number) is
an argparse error naming the option, one line and exit code 2, before any work starts.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable

__all__ = ["Parser", "cores", "float_in", "fraction", "int_in", "nonnegative_int", "nonnegative_mm",
           "positive_int", "positive_mm"]


class Parser(argparse.ArgumentParser):
    """``ArgumentParser`` whose errors are one line (no usage block) with exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def cores() -> int:
    """Logical CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _describe(low: float | None, high: float | None, low_open: bool) -> str:
    if high is None:
        return f"{'above' if low_open else 'at least'} {low:g}"
    if low is None:
        return f"at most {high:g}"
    return f"in {'(' if low_open else '['}{low:g}, {high:g}]"


def int_in(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """An integer type in ``[low, high]`` (either bound optional)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{value} is not {_describe(low, high, False)}")
        return value

    parse.__name__ = "integer"
    return parse


def float_in(low: float | None = None, high: float | None = None, *,
             low_open: bool = False) -> Callable[[str], float]:
    """A finite float type in ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        below = low is not None and (value <= low if low_open else value < low)
        if below or (high is not None and value > high):
            raise argparse.ArgumentTypeError(
                f"{value:g} is not {_describe(low, high, low_open)}")
        return value

    parse.__name__ = "number"
    return parse


#: The common cases, named for what they accept.
positive_int = int_in(1)
nonnegative_int = int_in(0)
positive_mm = float_in(0.0, low_open=True)
nonnegative_mm = float_in(0.0)
fraction = float_in(0.0, 1.0)
