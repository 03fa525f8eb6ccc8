"""A search run directory: what a search wrote and what it ran with.

``front.json`` (the :class:`~hwnas.types.ParetoFront`, with the run's config and its parent
profile's content id in ``meta.lineage``), ``front.parquet`` (one row per candidate),
``checks.parquet`` (the closed loop's predicted vs measured figures), ``config.json`` and
``pareto_<objective>.png`` plots.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hwnas.fileio import atomic_write_json, file_sha256
from hwnas.searching.front import plot_front
from hwnas.types import ParetoFront


def save_run(out: str | os.PathLike, front: ParetoFront, config: dict[str, Any] | None = None) -> list[str]:
    """Write the run directory; returns the plot paths."""
    import pandas as pd

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    front.save(out / "front.json")
    if config is not None:
        atomic_write_json(out / "config.json", config)
    rows = [{"arch": c.arch.to_str(), "feasible": c.feasible, **c.objectives,
             **{f"measured_{k}": v for k, v in (c.measured or {}).items()}} for c in front.candidates]
    pd.DataFrame(rows).to_parquet(out / "front.parquet", index=False)
    checks = front.meta.get("closed_loop", {}).get("checks", [])
    if checks:
        pd.DataFrame(checks).to_parquet(out / "checks.parquet", index=False)
    quality = next((n for n, d in front.directions.items() if d == "max"), None)
    return [str(plot_front(front, n, quality, out / f"pareto_{n}.png", budgets=front.budgets))
            for n in front.directions if n != quality and quality is not None]


def run_id(run: str | os.PathLike) -> str:
    """Content id of a run: the sha256 of its ``front.json`` (first 16 hex digits)."""
    p = Path(run)
    return file_sha256(p / "front.json" if p.is_dir() else p)[:16]
