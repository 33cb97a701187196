#!/usr/bin/env python
"""Menagerie's command line. `python manage.py --help` lists the commands; each has --help and --json."""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before anything imports torch (train, sample)

import click  # noqa: E402
from flask import current_app  # noqa: E402
from flask.cli import FlaskGroup, ScriptInfo  # noqa: E402

from accounts import cli as accounts_cli  # noqa: E402
from app import create_app  # noqa: E402
from core import auth  # noqa: E402
from core.cli import add_instance_option, instance_option  # noqa: E402
from curator.dedup import cli as dedup_cli  # noqa: E402
from curator.imports import cli as imports_cli  # noqa: E402
from curator.merge import cli as merge_cli  # noqa: E402
from curator.ranking import cli as ranking_cli  # noqa: E402
from curator.snapshots import cli as snapshots_cli  # noqa: E402
from trainer import cli as trainer_cli  # noqa: E402

FEATURE_CLIS = (imports_cli, ranking_cli, dedup_cli, merge_cli, snapshots_cli, trainer_cli, accounts_cli)


def _make_app():
    """FlaskGroup calls this lazily; --instance (on the group or any command) decides where the data lives.
    Commands act as the machine's owner and serve nobody, so the app starts without an account (the first one is
    made by `user add`); `serve` decides about logins itself."""
    info = click.get_current_context().find_object(ScriptInfo)
    return create_app({"AUTH_REQUIRED": False}, instance_path=info.data.get("instance") if info else None)


cli = FlaskGroup(create_app=_make_app, add_default_commands=False, add_version_option=False,
                 load_dotenv=False, help=__doc__)
cli.params.append(instance_option())


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--demo", is_flag=True, help="Import the bundled demo dataset first (once).")
def serve(host: str, port: int, demo: bool) -> None:
    """Run the web suite for one person (for several, use gunicorn: see README). On a loopback address it needs no
    login (MENAGERIE_AUTH=on asks for one); on any other address it does, and refuses to start without an account
    (`manage.py user add NAME --role admin`) unless MENAGERIE_AUTH=off."""
    try:
        required = auth.required_from_env(default=not auth.is_loopback(host))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    current_app.config["AUTH_REQUIRED"] = required
    try:
        auth.check_can_serve(current_app)
    except auth.NoAccountError as exc:
        raise click.ClickException(str(exc)) from None
    if demo:
        imports_cli.import_demo(as_json=False)
    from werkzeug.serving import run_simple  # app.run() refuses to start inside a Flask CLI command
    mode = "logins required" if required else "no login needed"
    if not required and not auth.is_loopback(host):
        click.echo(f"Warning: {host} is not a loopback address and {auth.ENV}=off: anyone who can reach it may "
                   "change everything. Serve on 127.0.0.1, or drop the setting to require logins.", err=True)
    click.echo(f"Menagerie on http://{host}:{port}/  ({mode}; instance: {current_app.instance_path})", err=True)
    run_simple(host, port, current_app._get_current_object(), threaded=True)


for _module in FEATURE_CLIS:
    for _command in _module.commands:
        cli.add_command(_command)
for _command in cli.commands.values():
    add_instance_option(_command)

if __name__ == "__main__":
    cli()
