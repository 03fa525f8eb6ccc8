"""The ``hwnas`` command line. Each command builds a config and calls the library with it.

A command is declared by its config class (:mod:`hwnas.config`): :func:`command` turns every
field into an option (or a positional argument) with the field's help, and adds
``--config FILE`` (replay a saved config; options given on the command line override it),
``--save-config FILE`` (write what the command line means, and stop) and ``--json``
(machine-readable output). Command modules (one per job) register on the one Typer ``app``
defined here; they import nothing heavy at module level. Errors derived from
:class:`~hwnas.errors.HwnasError` are printed as one line on stderr with exit status 2, never as
a traceback.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import typing
from collections.abc import Callable
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, Optional

import typer

from hwnas.config import Config
from hwnas.errors import HwnasError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Profile a device, search a subnet under a budget, export it to the device.")


@app.callback()
def _root() -> None:
    """Profile a device, search a subnet under a budget, export it to the device."""


def console():
    """A rich console; when stdout is not a terminal (a pipe, a file), lines are not cut to 80 columns."""
    from rich.console import Console

    if sys.stdout.isatty() or "COLUMNS" in os.environ:
        return Console()
    return Console(width=200, soft_wrap=True)


class Output:
    """Where a command's results go: rich text, or one JSON document with ``--json``."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self._console = None

    @property
    def console(self):
        if self._console is None:
            self._console = console()
        return self._console

    def print(self, *items: Any) -> None:
        if not self.as_json:
            self.console.print(*items)

    def line(self, text: str) -> None:
        """One plain line (no rich markup or wrapping): for values other programs read."""
        if not self.as_json:
            typer.echo(text)

    @property
    def say(self) -> Callable[[str], None] | None:
        """A one-line progress callback (none with ``--json``, so stdout stays one document)."""
        return None if self.as_json else self.console.print

    def json(self, obj: Any) -> None:
        typer.echo(json.dumps(obj, indent=1, default=str))


def _cli_type(hint: Any) -> Any:
    """The Typer type of a config field's type (containers become repeatable options)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union or (origin is not None and type(None) in args):
        inner = [a for a in args if a is not type(None)]
        return _cli_type(inner[0])
    if origin is tuple:  # repeatable, each value may be a comma list; the config converts the items
        return Optional[list[str]]
    if origin is dict:
        return Optional[list[str]]
    if hint is bool:
        return bool
    return Optional[hint]


def _parameter(f, hint: Any) -> inspect.Parameter:
    meta = f.metadata
    help_ = meta.get("help", "")
    typ = _cli_type(hint)
    if meta.get("argument"):
        info = typer.Argument(None, help=help_, show_default=False)
    elif hint is bool:
        flag = meta.get("flag") or "--" + f.name.replace("_", "-")
        info = typer.Option(f.default, f"{flag}/--no-{flag[2:]}", help=help_)
    else:
        flag = meta.get("flag") or "--" + f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else None
        shown = None if default in (None, (), {}) else (",".join(map(str, default)) if isinstance(default, tuple)
                                                           else default)
        names = [flag] + ([meta["short"]] if meta.get("short") else [])
        info = typer.Option(None, *names, help=help_ + (" [required]" if meta.get("required") else ""),
                            show_default=str(shown) if shown is not None else False)
    return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=typ)


def build_config(ctx: typer.Context, cls: type[Config], values: dict[str, Any], config_file: Path | None) -> Config:
    """The config a command line means: ``config_file`` (if any), overridden by the options given."""
    from typer._click.core import ParameterSource

    given = {k: v for k, v in values.items() if ctx.get_parameter_source(k) not in (ParameterSource.DEFAULT, None)
             and v is not None}
    base = cls.load(config_file) if config_file is not None else cls()
    return base.replace(**given) if given else base


def known_from_weights(cfg: Config) -> None:
    """Weights a command names (``--checkpoint``, ``--init``) that were trained for a derived space
    register it before the command reads a ``--space`` or ``--arch`` of it — on a machine where the
    space was never derived."""
    paths = [getattr(cfg, k, None) for k in ("checkpoint", "init")]
    if any(paths):
        from hwnas.supernet.derive import space_from_checkpoint

        for path in filter(None, paths):
            space_from_checkpoint(path)


def command(name: str, cls: type[Config]):
    """Register ``fn(config, output)`` as command ``name`` with the options of config class ``cls``."""

    def deco(fn: Callable[[Any, Output], Any]):
        hints = typing.get_type_hints(cls)
        params = [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)]
        params += [_parameter(f, hints[f.name]) for f in fields(cls)]
        params += [
            inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path],
                              default=typer.Option(None, "--config", help="Replay a config file (options given here "
                                                   "override it).")),
            inspect.Parameter("save_config", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path],
                              default=typer.Option(None, "--save-config", help="Write what this command line means "
                                                   "to FILE and stop.")),
            inspect.Parameter("as_json", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                              default=typer.Option(False, "--json", help="Machine-readable output.")),
        ]

        def cmd(ctx: typer.Context, **kw: Any) -> None:
            config_file, save, as_json = kw.pop("config"), kw.pop("save_config"), kw.pop("as_json")
            cfg = build_config(ctx, cls, kw, config_file)
            if save is not None:
                cfg.save(save)
                typer.echo(f"wrote {save} ('{cls.KIND}' config; run it with: hwnas {name} --config {save})")
                return
            cfg.check_complete()
            known_from_weights(cfg)
            fn(cfg, Output(as_json))

        cmd.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        cmd.__annotations__ = {p.name: p.annotation for p in params}
        cmd.__doc__ = (cls.__doc__ or "").strip()
        cmd.__name__ = name.replace("-", "_")
        app.command(name)(cmd)
        return fn

    return deco


def main() -> None:
    try:
        app()
    except HwnasError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None


# The command modules register themselves on ``app``; they import nothing heavy at module level.
from hwnas.cli import basic, boards, export, latency, profile, quickstart, search, supernet  # noqa: E402,F401
