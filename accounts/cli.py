"""`manage.py user ...`: accounts from the command line (the first admin is made here; see core/auth.py for roles).

Passwords are asked twice on the terminal, or read from the first line of stdin with --password-stdin (for
scripts); never taken as an argument, where other users of the machine could see it in the process list."""
from __future__ import annotations

import sys

import click
from flask.cli import AppGroup

from core.cli import emit, json_option
from core.models import ROLES, VIEWER

user = AppGroup("user", help="Accounts: add, list, change role or password, disable.")
# manage.py gives every command and sub-command --instance.


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt="Password again")


def _row(account) -> dict:
    return {"name": account.name, "role": account.role, "disabled": account.disabled,
            "created": account.created.isoformat(timespec="seconds")}


def _run(change, *args):
    """Call a service change; its refusal becomes the command's error message (exit status 1)."""
    from accounts.service import AccountError
    from core.db import db
    try:
        return change(db.session, *args)
    except AccountError as exc:
        raise click.ClickException(str(exc)) from None


password_stdin = click.option("--password-stdin", is_flag=True,
                              help="Read the password from the first line of stdin instead of asking.")


@user.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), default=VIEWER, show_default=True,
              help="viewer reads; ranker ranks; curator decides about the dataset; admin trains and manages accounts.")
@password_stdin
@json_option("the new account")
def add(name: str, role: str, password_stdin: bool, as_json: bool) -> None:
    """Add an account NAME (lower case letters, digits, '.', '_', '-')."""
    from accounts import service
    from accounts.service import AccountError
    from core.db import db
    try:
        name = service.parse_name(name)
    except AccountError as exc:
        raise click.ClickException(str(exc)) from None
    if service.get(db.session, name) is not None:  # say so before asking for a password
        raise click.ClickException(f"an account named {name!r} already exists")
    account = _run(service.create, name, _password(password_stdin), role)
    emit(_row(account), as_json, f"Added {account.name} ({account.role}).")


@user.command("list")
@json_option("every account")
def list_(as_json: bool) -> None:
    """Every account with its role and state."""
    from accounts import service
    from core.db import db
    rows = [_row(a) for a in service.list_accounts(db.session)]
    human = "\n".join(f"{r['name']:<32} {r['role']:<8} {'disabled' if r['disabled'] else 'enabled':<9} "
                      f"{r['created']}" for r in rows) or "No accounts yet: python manage.py user add NAME --role admin"
    emit({"accounts": rows}, as_json, human)


@user.command("role")
@click.argument("name")
@click.argument("role", type=click.Choice(ROLES))
@json_option("the changed account")
def role(name: str, role: str, as_json: bool) -> None:
    """Give NAME another role (takes effect at their next request)."""
    from accounts import service
    account = _run(service.set_role, name, role)
    emit(_row(account), as_json, f"{account.name} is now a {account.role}.")


@user.command("passwd")
@click.argument("name")
@password_stdin
@json_option("the changed account")
def passwd(name: str, password_stdin: bool, as_json: bool) -> None:
    """Set a new password for NAME; their open sessions end."""
    from accounts import service
    account = _run(service.set_password, name, _password(password_stdin))
    emit(_row(account), as_json, f"New password set for {account.name}; their open sessions have ended.")


@user.command("disable")
@click.argument("name")
@click.option("--enable", is_flag=True, help="Enable a disabled account again instead.")
@json_option("the changed account")
def disable(name: str, enable: bool, as_json: bool) -> None:
    """Disable NAME: no more logins, open sessions end. Accounts are never deleted (their names stay on the
    answers and decisions they made)."""
    from accounts import service
    account = _run(service.set_disabled, name, not enable)
    emit(_row(account), as_json, f"{account.name} is {'disabled' if account.disabled else 'enabled again'}.")


commands = [user]
