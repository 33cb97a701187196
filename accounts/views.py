"""Login, logout and the user admin page (/users, admins only: core.auth says so)."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from accounts import service
from core import auth
from core.db import db
from core.models import ROLES
from core.web import safe_next

bp = Blueprint("accounts", __name__)


@bp.get("/login")
def login():
    return render_template("accounts/login.html", next=safe_next(request.args.get("next")), name="",
                           error=""), 200


@bp.post("/login")
def login_post():
    form = request.form
    target = safe_next(form.get("next"))
    name, password = form.get("name", ""), form.get("password", "")
    try:
        account = service.log_in(db.session, name, password, request.remote_addr or "")
    except service.TooManyAttempts as exc:
        page = render_template("accounts/login.html", next=target, name=name, retry_after=exc.retry_after,
                               error=f"Too many attempts: {exc}.")
        return page, 429, {"Retry-After": str(exc.retry_after)}
    except service.WrongCredentials:
        return render_template("accounts/login.html", next=target, name=name,
                               error="Wrong name or password (or the account is disabled)."), 401
    auth.log_in(account)
    flash(f"Logged in as {account.name} ({account.role}).", "ok")
    return redirect(target)


@bp.post("/logout")
def logout():
    auth.log_out()
    flash("Logged out.", "ok")
    return redirect(url_for("accounts.login"))


# --- user admin ---------------------------------------------------------------------------------------------------

@bp.get("/users")
def users():
    return render_template("accounts/users.html", accounts=service.list_accounts(db.session), roles=ROLES,
                           form={}, error="")


@bp.post("/users")
def users_add():
    form = request.form
    try:
        if form.get("password", "") != form.get("password2", ""):
            raise service.AccountError("the two passwords differ")
        account = service.create(db.session, form.get("name", ""), form.get("password", ""),
                                 form.get("role", "viewer"))
    except service.AccountError as exc:
        return render_template("accounts/users.html", accounts=service.list_accounts(db.session), roles=ROLES,
                               form=form, error=f"No account added: {exc}."), 400
    flash(f"Added {account.name} ({account.role}).", "ok")
    return redirect(url_for("accounts.users"))


@bp.post("/users/<name>")
def users_change(name: str):
    """Change one account: `role`, or `action` disable / enable."""
    form = request.form
    try:
        if form.get("action") in ("disable", "enable"):
            account = service.set_disabled(db.session, name, form["action"] == "disable")
            what = "disabled" if account.disabled else "enabled again"
        else:
            account = service.set_role(db.session, name, form.get("role", ""))
            what = f"now a {account.role}"
    except service.AccountError as exc:
        return render_template("accounts/users.html", accounts=service.list_accounts(db.session), roles=ROLES,
                               form={}, error=f"Nothing changed: {exc}."), 400
    flash(f"{account.name}: {what}.", "ok")
    return redirect(url_for("accounts.users"))
