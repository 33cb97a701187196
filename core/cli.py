"""What every command shares: the --instance option, --json output, and tqdm progress on stderr.

Each feature's `cli.py` defines its commands with these; `manage.py` gathers them into one group.
"""
from __future__ import annotations

import json
import sys
from typing import Callable

import click
from flask.cli import ScriptInfo


def _remember_instance(ctx: click.Context, _param, value):
    if value:
        ctx.ensure_object(ScriptInfo).data["instance"] = value
    return value


def instance_option() -> click.Option:
    """--instance, accepted on the group and on every command (FlaskGroup builds the app lazily from it)."""
    return click.Option(["--instance"], type=click.Path(file_okay=False), expose_value=False, is_eager=True,
                        callback=_remember_instance, envvar="MENAGERIE_INSTANCE",
                        help="Instance folder holding the index, images, snapshots and runs "
                             "(default: ./instance or $MENAGERIE_INSTANCE).")


def add_instance_option(command: click.Command) -> None:
    """--instance on a command and on each of its sub-commands."""
    command.params.append(instance_option())
    for sub in getattr(command, "commands", {}).values():
        add_instance_option(sub)


def json_option(what: str) -> Callable:
    """The --json flag every command has: `what` says what the JSON holds."""
    return click.option("--json", "as_json", is_flag=True, help=f"Print {what} as JSON on stdout.")


def emit(result: dict, as_json: bool, human: str) -> None:
    """Machine-readable result on stdout with --json; otherwise a sentence for people (progress is on stderr)."""
    click.echo(json.dumps(result, default=str) if as_json else human)


def progress_bar(total: int | None, desc: str, unit: str = "file"):
    """A tqdm bar on stderr (hidden when stderr is not a terminal). No monitor thread: imports and merges fork their
    workers, which is only safe from a single-threaded process."""
    from tqdm import tqdm
    tqdm.monitor_interval = 0
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=None)


def progress_factory(desc: str, unit: str = "file") -> Callable[[int], Callable[[int], object]]:
    """For library calls that take `progress_factory(total) -> update(n)`."""
    return lambda total: progress_bar(total, desc, unit).update
