"""Accounts and logins: create, list, change role or password, disable; check a login against the rate limit.

Every write is one transaction (core.db.transactional). Names are lower case, so "Alice" and "alice" are one person.
The rate limit counts refused logins stored in the database (LoginFailure), so it holds across gunicorn workers and
restarts: per account name (someone guessing one person's password) and per client address (someone trying many
names). While either is over its limit, the login is refused before the password is even checked.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from accounts import passwords
from core.db import transactional
from core.models import ADMIN, ROLES, VIEWER, Account, LoginFailure, utcnow

NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,31}")
GUEST_PREFIX = "guest-"  # login-free sessions are called guest-<hex> (core.auth); no account may take such a name

WINDOW = dt.timedelta(minutes=15)  # refused logins count for this long
NAME_LIMIT = 5  # refused logins per account name within WINDOW
ADDRESS_LIMIT = 20  # refused logins per client address within WINDOW (a team behind one NAT still gets in)
KEEP_FAILURES = dt.timedelta(days=1)  # older rows are pruned when a new one is written


class AccountError(ValueError):
    """A request about accounts that cannot be done; the message says why."""


class WrongCredentials(Exception):
    """The name or password is wrong, or the account is disabled (the message does not say which)."""


class TooManyAttempts(Exception):
    def __init__(self, retry_after: int, who: str):
        super().__init__(f"too many refused logins for this {who}; try again in {retry_after} s")
        self.retry_after = retry_after


def parse_name(raw: str | None) -> str:
    name = (raw or "").strip().lower()
    if not NAME.fullmatch(name):
        raise AccountError(f"an account name is 1-32 letters, digits, '.', '_' or '-', starting with a letter or "
                           f"digit (got {raw!r})")
    if name.startswith(GUEST_PREFIX):
        raise AccountError(f"names starting with {GUEST_PREFIX!r} are kept for login-free sessions")
    return name


def parse_role(raw: str | None) -> str:
    role = (raw or "").strip().lower()
    if role not in ROLES:
        raise AccountError(f"the role must be one of {', '.join(ROLES)} (got {raw!r})")
    return role


def get(session: Session, name: str) -> Account | None:
    return session.scalar(select(Account).where(Account.name == (name or "").strip().lower()))


def _get_or_error(session: Session, name: str) -> Account:
    account = get(session, name)
    if account is None:
        raise AccountError(f"no account named {name!r}")
    return account


def list_accounts(session: Session) -> list[Account]:
    return list(session.scalars(select(Account).order_by(Account.name)))


def enabled_count(session: Session) -> int:
    return session.scalar(select(func.count(Account.id)).where(Account.disabled.is_(False))) or 0


def _check_password(password: str) -> str:
    try:
        return passwords.hash_password(password)
    except passwords.PasswordError as exc:
        raise AccountError(str(exc)) from None


@transactional
def create(session: Session, name: str, password: str, role: str = VIEWER) -> Account:
    name, role = parse_name(name), parse_role(role)
    if get(session, name) is not None:
        raise AccountError(f"an account named {name!r} already exists")
    account = Account(name=name, password_hash=_check_password(password), role=role, disabled=False,
                      created=utcnow())
    session.add(account)
    session.flush()
    return account


def _keeps_an_admin(session: Session, account: Account, *, role: str, disabled: bool) -> None:
    """Refuse a change that would leave no enabled admin (nobody could then manage accounts from the web)."""
    if account.role != ADMIN or account.disabled or (role == ADMIN and not disabled):
        return
    admins = session.scalar(select(func.count(Account.id)).where(
        Account.role == ADMIN, Account.disabled.is_(False), Account.id != account.id)) or 0
    if not admins:
        raise AccountError(f"{account.name} is the last enabled admin; make another admin first")


@transactional
def set_role(session: Session, name: str, role: str) -> Account:
    account, role = _get_or_error(session, name), parse_role(role)
    _keeps_an_admin(session, account, role=role, disabled=account.disabled)
    account.role = role
    return account


@transactional
def set_password(session: Session, name: str, password: str) -> Account:
    """A new password; the account's open sessions end (core.auth ties a session to the password hash)."""
    account = _get_or_error(session, name)
    account.password_hash = _check_password(password)
    return account


@transactional
def set_disabled(session: Session, name: str, disabled: bool = True) -> Account:
    """Disable (or enable again) an account: a disabled one cannot log in and its open sessions end at once."""
    account = _get_or_error(session, name)
    if disabled:
        _keeps_an_admin(session, account, role=account.role, disabled=True)
    account.disabled = disabled
    return account


# --- logging in ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Limits:
    window: dt.timedelta = WINDOW
    per_name: int = NAME_LIMIT
    per_address: int = ADDRESS_LIMIT


def _retry_after(session: Session, column, value: str, limit: int, window: dt.timedelta, now: dt.datetime) -> int:
    """Seconds until fewer than `limit` failures for this name or address remain within the window (0: now)."""
    since = now - window
    recent = list(session.scalars(select(LoginFailure.created).where(column == value, LoginFailure.created > since)
                                  .order_by(LoginFailure.created.desc()).limit(limit)))
    if len(recent) < limit:
        return 0
    return max(1, int((recent[-1] + window - now).total_seconds() + 0.999))


def retry_after(session: Session, name: str, address: str, limits: Limits = Limits(),
                now: dt.datetime | None = None) -> int:
    """0 when a login for this name from this address may be tried now, else TooManyAttempts."""
    now = now or utcnow()
    for column, value, limit, who in ((LoginFailure.name, name, limits.per_name, "account name"),
                                      (LoginFailure.address, address, limits.per_address, "address")):
        wait = _retry_after(session, column, value, limit, limits.window, now)
        if wait:
            raise TooManyAttempts(wait, who)
    return 0


@transactional
def _remember_failure(session: Session, name: str, address: str, now: dt.datetime) -> None:
    session.execute(delete(LoginFailure).where(LoginFailure.created < now - KEEP_FAILURES))
    session.add(LoginFailure(name=name, address=address, created=now))


@transactional
def _succeeded(session: Session, account: Account, password: str) -> None:
    """A good login clears its name's failures (not its address's) and upgrades an old hash."""
    session.execute(delete(LoginFailure).where(LoginFailure.name == account.name))
    if passwords.needs_rehash(account.password_hash):
        account.password_hash = passwords.hash_password(password)


def log_in(session: Session, raw_name: str, password: str, address: str, limits: Limits = Limits()) -> Account:
    """The account these credentials open, or WrongCredentials / TooManyAttempts (then nothing is checked)."""
    name = (raw_name or "").strip().lower()[:64]
    address = (address or "unknown")[:64]
    retry_after(session, name, address, limits)
    account = get(session, name) if NAME.fullmatch(name) else None
    ok = passwords.verify(account.password_hash, password) if account else passwords.verify_nobody(password)
    if not ok or account.disabled:
        _remember_failure(session, name, address, utcnow())
        raise WrongCredentials("wrong name or password, or the account is disabled")
    _succeeded(session, account, password)
    return account
