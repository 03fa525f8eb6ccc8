"""The two callbacks long work reports through: a progress bar, and one line of news."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str, float, float], None]
"""``progress(what, done, total)``: long work with a known total (profiling, training, datasets)."""

Say = Callable[[str], None]
"""``say(line)``: one line of what happened (search rounds, export trials, verification)."""
