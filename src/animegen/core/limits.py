"""The limits on numbers a user gives (flags, and the `serve` page's requests), in a module without torch:
each is an argparse type that refuses a bad value in one line, so the command line and the server check the same
way."""

from __future__ import annotations

import argparse
import math

MAX_GUIDANCE = 10.0  # the largest autoguidance weight a command or a page request may ask for (1: none)


def at_least(low: float, kind: type = int):
    """An argparse type: a number of `kind` >= low, refused in one line otherwise."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {'whole ' if kind is int else ''}number, got {text!r}")
        if not math.isfinite(value):  # float('nan') compares False with every bound
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low:g}, got {text}")
        return value

    return parse


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def in_range(low: float, high: float, kind: type = float):
    def parse(text: str):
        value = at_least(low, kind)(text)
        if value > high:
            raise argparse.ArgumentTypeError(f"must be from {low:g} to {high:g}, got {text}")
        return value

    return parse


POSITIVE, COUNT = at_least(1), at_least(0)
