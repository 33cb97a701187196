"""Password hashing with argon2id (argon2-cffi): memory-hard, salted, its cost stored in each hash so it can be
raised later and old hashes upgraded at the next login. Pure: no Flask, no database."""
from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 8
MAX_LENGTH = 1024  # longer input only costs the server time

# argon2-cffi's defaults are RFC 9106's "low memory" choice: argon2id, 3 passes over 64 MiB, 4 lanes.
_hasher = PasswordHasher()


class PasswordError(ValueError):
    """A password that may not be set; the message says why."""


def check_rules(password: str) -> str:
    if len(password) < MIN_LENGTH:
        raise PasswordError(f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise PasswordError(f"a password may have at most {MAX_LENGTH} characters")
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(check_rules(password))


def verify(stored_hash: str, password: str) -> bool:
    """True when `password` matches; never raises for a wrong or over-long password or a damaged hash."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """The hash was made with weaker settings than today's: store a new one at the next successful login."""
    try:
        return _hasher.check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True


@functools.cache
def _dummy_hash() -> str:
    return _hasher.hash("not a password of anyone")


def verify_nobody(password: str) -> bool:
    """Spend the time a real check costs, for a name that has no account: the answer's timing does not tell which
    names exist."""
    verify(_dummy_hash(), password)
    return False
