"""The ``hwnas`` command line. Each command builds a config and calls the library.

Commands live in one module per job (``basic``, ``train``, ...), each registering on
the one Typer ``app`` defined here. Errors derived from
:class:`~hwnas.errors.HwnasError` are printed as one line on stderr with exit
status 2, never as a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from hwnas.errors import HwnasError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Profile a device, search a subnet under a budget, export it to the device.")


@app.callback()
def _root() -> None:
    """Profile a device, search a subnet under a budget, export it to the device."""


def console():
    from rich.console import Console

    return Console()


def echo_json(obj) -> None:
    typer.echo(json.dumps(obj, indent=1, default=str))


def parse_arch(text: str, space: Optional[str]):
    """``--arch`` accepts the string of ``hwnas arch``, a JSON dict (OFA's ks/e/d/r form too) or a JSON file."""
    from hwnas.types import ArchConfig

    p = Path(text)
    if text.endswith(".json") and p.is_file():
        return ArchConfig.from_dict(json.loads(p.read_text()), space)
    return ArchConfig.parse(text, space)


def main() -> None:
    try:
        app()
    except HwnasError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None


# The command modules register themselves on ``app``; they import nothing heavy at module level.
from hwnas.cli import basic, export, latency, profile, quickstart, search, supernet  # noqa: E402,F401
