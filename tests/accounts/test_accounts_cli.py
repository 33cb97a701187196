"""`manage.py user ...` through the CLI runner on a real instance: add, list, role, passwd, disable, with --json,
and the refusals (bad names, taken names, short passwords, the last admin)."""
from __future__ import annotations

import json

from accounts import passwords, service
from core.db import db
from manage import cli
from tests.conftest import PASSWORD


def user(runner, *args, password: str | None = None):
    return runner.invoke(cli, ["user", *args], input=None if password is None else password + "\n")


def test_add_list_role_passwd_disable(runner, app):
    """Tried: adding an admin and a viewer (password from stdin), listing them as JSON, making the viewer a ranker,
    a new password for her (the old one stops working), disabling and enabling her again. Each command's JSON says
    the account's state; the stored password is an argon2id hash, never the password."""
    made = json.loads(user(runner, "add", "Root", "--role", "admin", "--password-stdin", "--json",
                           password=PASSWORD).output)
    assert made["name"] == "root" and made["role"] == "admin" and made["disabled"] is False
    assert "Added ann (viewer)." in user(runner, "add", "ann", "--password-stdin", password=PASSWORD).output
    listed = json.loads(user(runner, "list", "--json").output)["accounts"]
    assert [(a["name"], a["role"]) for a in listed] == [("ann", "viewer"), ("root", "admin")]
    assert json.loads(user(runner, "role", "ann", "ranker", "--json").output)["role"] == "ranker"
    assert user(runner, "passwd", "ann", "--password-stdin", password="another good one").exit_code == 0
    with app.app_context():
        stored = service.get(db.session, "ann").password_hash
        assert stored.startswith("$argon2id$") and PASSWORD not in stored
        assert passwords.verify(stored, "another good one") and not passwords.verify(stored, PASSWORD)
    assert json.loads(user(runner, "disable", "ann", "--json").output)["disabled"] is True
    assert json.loads(user(runner, "disable", "ann", "--enable", "--json").output)["disabled"] is False
    assert "ann" in user(runner, "list").output


def test_password_is_asked_twice_on_the_terminal(runner, app):
    """Tried: `user add` without --password-stdin, typing two different passwords, then the same one twice."""
    result = runner.invoke(cli, ["user", "add", "ann"], input=f"{PASSWORD}\nsomething else\n{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0 and "do not match" in result.output and "Added ann" in result.output


def test_refusals_say_why_and_change_nothing(runner, app):
    """Tried: a name with a space, one kept for guests, a taken name, a short password, an unknown role, changing
    an account that does not exist, and disabling or demoting the only admin. Each exits 1 (2 for a role click
    rejects) with the reason; the accounts stay as they were."""
    user(runner, "add", "root", "--role", "admin", "--password-stdin", password=PASSWORD)
    cases = [
        (["add", "ann smith", "--password-stdin"], PASSWORD, "an account name is 1-32 letters"),
        (["add", "guest-1234", "--password-stdin"], PASSWORD, "kept for login-free sessions"),
        (["add", "root", "--password-stdin"], PASSWORD, "already exists"),
        (["add", "ann", "--password-stdin"], "short", "at least 8 characters"),
        (["role", "nobody", "ranker"], None, "no account named 'nobody'"),
        (["disable", "root"], None, "last enabled admin"),
        (["role", "root", "curator"], None, "last enabled admin"),
    ]
    for args, password, message in cases:
        result = user(runner, *args, password=password)
        assert result.exit_code == 1 and message in result.output, (args, result.output)
    assert user(runner, "add", "ann", "--role", "boss", "--password-stdin", password=PASSWORD).exit_code == 2
    listed = json.loads(user(runner, "list", "--json").output)["accounts"]
    assert [(a["name"], a["role"], a["disabled"]) for a in listed] == [("root", "admin", False)]
