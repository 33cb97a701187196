"""Who is asking, and whether they may: the one place roles are enforced.

Every request passes `_check` (a before_request hook) which finds the minimum role its endpoint needs in
`required_role` and lets it through, sends it to the login page, or answers 403 with the reason. Reading pages needs
a viewer; ranking answers a ranker; decisions about the dataset (reject, relabel, select, import, merge, duplicates,
snapshots) a curator; training, generation and accounts an admin. An endpoint nobody listed that changes something
needs an admin, so a new page is closed until someone decides who may use it.

Two modes (config AUTH_REQUIRED): required (gunicorn, `serve` on another address) or login-free (`serve` on loopback
for one person, or MENAGERIE_AUTH=off). Login-free lets everyone do everything; each browser session then gets its
own identity (guest-<hex>), so two people ranking at once are never taken for one. The session holds the account id
and a fingerprint of its password hash: a new password or a disabled account ends its sessions at the next request.
"""
from __future__ import annotations

import hashlib
import ipaddress
import os
import secrets
from urllib.parse import urlsplit

from flask import Flask, g, has_request_context, redirect, render_template, request, session, url_for
from sqlalchemy import func, select

from core.db import db
from core.models import ADMIN, CURATOR, RANKER, ROLES, VIEWER, Account
from core.web import htmx, is_htmx, safe_next

READ_METHODS = {"GET", "HEAD", "OPTIONS"}
PUBLIC = {"static", "accounts.login", "accounts.login_post", "accounts.logout"}
# The role a request that changes something needs, by blueprint; endpoints below override it.
WRITE_ROLE = {"gallery": CURATOR, "imports": CURATOR, "ranking": CURATOR, "dedup": CURATOR, "merge": CURATOR,
              "snapshots": CURATOR, "trainer": ADMIN, "launch": ADMIN, "generation": ADMIN, "stickers": ADMIN,
              "accounts": ADMIN}
ENDPOINT_ROLE = {
    "ranking.rank_answer": RANKER, "ranking.rank_pick": RANKER, "ranking.rank_undo": RANKER,
    "accounts.users": ADMIN,  # reading the account list is admin work too
}
GUEST_PREFIX = "guest-"
ENV = "MENAGERIE_AUTH"


class NoAccountError(RuntimeError):
    """Logins are required but nobody could log in: the server must not start."""


def required_role(endpoint: str, method: str) -> str | None:
    """The least role that may call `endpoint` with `method`; None when anyone may (static files, logging in)."""
    if endpoint in PUBLIC:
        return None
    if endpoint in ENDPOINT_ROLE:
        return ENDPOINT_ROLE[endpoint]
    if method in READ_METHODS:
        return VIEWER
    return WRITE_ROLE.get(endpoint.partition(".")[0], ADMIN)


def allows(role: str, needed: str) -> bool:
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


def required_from_env(default: bool = True) -> bool:
    """MENAGERIE_AUTH=off serves without logins (e.g. behind a proxy that authenticates), =on always asks for one."""
    raw = os.environ.get(ENV, "").strip().lower()
    if not raw:
        return default
    if raw in ("off", "0", "false", "no"):
        return False
    if raw in ("on", "1", "true", "yes"):
        return True
    raise ValueError(f"{ENV} must be 'on' or 'off', not {raw!r}")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_can_serve(app: Flask) -> None:
    """Refuse to serve (NoAccountError) when logins are required and no enabled account exists."""
    if not app.config.get("AUTH_REQUIRED", True):
        return
    with app.app_context():
        enabled = db.session.scalar(select(func.count(Account.id)).where(Account.disabled.is_(False))) or 0
        db.session.remove()
    if not enabled:
        raise NoAccountError(
            "Menagerie served to others requires a login, but there is no account. Create one first:\n"
            "  python manage.py user add NAME --role admin\n"
            f"or, to serve without logins (e.g. behind a proxy that authenticates), set {ENV}=off.")


def fingerprint(account: Account) -> str:
    """Ties a session to the account's password: a new password ends the sessions opened with the old one."""
    return hashlib.sha256(account.password_hash.encode()).hexdigest()[:24]


def log_in(account: Account) -> None:
    """Start a fresh session for `account` (nothing of the previous session carries over)."""
    session.clear()
    session.permanent = True
    session["account"] = account.id
    session["auth"] = fingerprint(account)


def log_out() -> None:
    session.clear()


def current_account() -> Account | None:
    return g.get("account") if has_request_context() else None


def current_actor() -> str:
    """The name answers and decisions are stored under: the logged-in account, else this browser session's own
    guest identity; "" outside a request (the command line)."""
    if not has_request_context():
        return ""
    account = current_account()
    if account is not None:
        return account.name
    if not session.get("guest"):
        session["guest"] = GUEST_PREFIX + secrets.token_hex(4)
    return session["guest"]


def _session_account() -> Account | None:
    ident = session.get("account")
    if not isinstance(ident, int):
        return None
    account = db.session.get(Account, ident)
    if account is None or account.disabled or session.get("auth") != fingerprint(account):
        session.pop("account", None)
        session.pop("auth", None)
        return None
    return account


def _here() -> str:
    """The page to come back to after logging in: this one, or for an htmx request the page that sent it."""
    if htmx and htmx.current_url:
        current = urlsplit(htmx.current_url)
        return safe_next(current.path + (f"?{current.query}" if current.query else ""))
    return safe_next(request.full_path if request.query_string else request.path)


def _login_needed():
    """Not logged in: a page is redirected to the login form; anything else (a form sent, an htmx request) gets a
    401 saying so, and htmx is told to go to the login page."""
    login = url_for("accounts.login", next=_here())
    from_htmx = bool(htmx)  # a boosted request too: htmx follows HX-Redirect for it as well
    if request.method in READ_METHODS and not from_htmx:
        return redirect(login)
    page = render_template("accounts/denied.html", title="Log in first", login_url=login,
                           message="Log in to do this; nothing was changed.")
    return page, 401, ({"HX-Redirect": login} if from_htmx else {})


def _forbidden(account: Account, needed: str):
    """403 with the reason: a whole page, or for an htmx region request just the message (htmx swaps our 4xx
    answers into the region it asked for, which must not receive a whole page)."""
    message = (f"This needs the {needed} role; {account.name} is a {account.role}. Nothing was changed. "
               "An admin can change your role.")
    if is_htmx():
        return render_template("accounts/_denied.html", message=message), 403
    return render_template("accounts/denied.html", title="Not allowed", login_url=None, message=message), 403


def _check():
    g.account = None if request.endpoint == "static" else _session_account()
    if request.endpoint is None:  # no such page: the 404 handler answers
        return None
    needed = required_role(request.endpoint, request.method)
    if needed is None or not g.auth_required:
        return None
    if g.account is None:
        return _login_needed()
    if not allows(g.account.role, needed):
        return _forbidden(g.account, needed)
    return None


def init_app(app: Flask) -> None:
    app.config.setdefault("AUTH_REQUIRED", True)

    @app.before_request
    def check_access():
        g.auth_required = app.config["AUTH_REQUIRED"]
        return _check()

    @app.context_processor
    def who():
        return {"current_account": current_account(), "auth_required": g.get("auth_required", True),
                "may": lambda endpoint, method="POST": _may(endpoint, method)}


def _may(endpoint: str, method: str = "POST") -> bool:
    """For templates: whether to offer a control (the check above still decides)."""
    if not g.get("auth_required", True):
        return True
    needed = required_role(endpoint, method)
    account = current_account()
    return needed is None or (account is not None and allows(account.role, needed))
