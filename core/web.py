"""What every blueprint shares on the web side: htmx and CSRF set-up, "is this an htmx request", partial-or-page
rendering, ids from the URL, the template helpers every page uses, and the guards every request passes: bounded
input, security headers, safe redirects, and a clear 503 instead of a 500 when the database is busy."""
from __future__ import annotations

import errno
from urllib.parse import urlsplit

from flask import Flask, abort, current_app, render_template, request
from flask_htmx import HTMX
from flask_wtf.csrf import CSRFProtect
from markupsafe import Markup
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import BadRequest
from werkzeug.routing import IntegerConverter

from core.models import UNLABELLED

htmx = HTMX()
csrf = CSRFProtect()

# Ids are INTEGER columns: 64-bit on SQLite but 32-bit on PostgreSQL, so a larger id in a URL names nothing on
# either (2**31 rows are far beyond what one index holds); the same answer (404, or 400 for a query value) on both.
MAX_ID = 2**31 - 1
MAX_PAGE = 1_000_000  # a page number past this is no page of any dataset this app can hold
MAX_ARG_CHARS = 2048  # one query or path value; a longer one is refused before any view sees it
# Query values that every view reads as numbers (page numbers, image ids, comma-separated screens of ids).
NUMERIC_ARGS = {"page": MAX_PAGE, "left": MAX_ID, "right": MAX_ID, "start": MAX_PAGE, "batch": MAX_ID,
                "undo": MAX_ID, "i": MAX_PAGE, "epoch": MAX_PAGE}
LIST_ARGS = {"shown": MAX_ID}  # comma-separated ids
RETRY_AFTER_S = 3
BUSY_MESSAGE = ("The database is busy with other work (an import or another writer), so this request was not "
                "carried out and nothing was saved: your answer was NOT recorded. Try again in a few seconds.")
# Bidi controls (embeddings, overrides, isolates, marks): shown as visible markers so a file named
# "cat\u202egnp.exe" cannot pass for "catexe.png".
BIDI_CONTROLS = {c: f"[U+{ord(c):04X}]" for c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f"}
_BIDI_TABLE = str.maketrans(BIDI_CONTROLS)


class BoundedInt(IntegerConverter):
    """`<int:...>` limited to the ids' range (MAX_ID): /image/99999999999999999999 is a 404, not an overflow."""

    def __init__(self, map, *args, **kwargs):
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


def is_htmx() -> bool:
    """True when htmx asks for a region (answer with the partial that region swaps). A boosted link or form (the
    hx-boost on <body>) sends HX-Request too, but it replaces the whole body: it gets the whole page."""
    return bool(htmx) and not htmx.boosted


def get_or_404(session, model, ident):
    """The row with this primary key, or 404 (never a 500 for an id outside the database's range)."""
    if isinstance(ident, int) and not 0 <= ident <= MAX_ID:
        abort(404)
    if isinstance(ident, str) and not ident_ok(ident):
        abort(404)
    return session.get(model, ident) or abort(404)


def ident_ok(text: str, limit: int = 255) -> bool:
    """A text id (run, snapshot, generation) that can name something: not empty, no NUL or other control
    character, no path separator, not hidden, and short enough to be a file name."""
    return (0 < len(text) <= limit and not text.startswith(".") and "/" not in text and "\\" not in text
            and text.isprintable())


def bounded_int(raw, default: int | None = None, *, low: int = 0, high: int = MAX_ID, name: str = "value"):
    """An integer query or form value within [low, high]; a missing one is `default`; anything else a 400 that says
    which value was wrong (never an overflow deeper down)."""
    if raw is None or raw == "":
        return default
    try:
        number = int(str(raw).strip())
    except ValueError:
        abort(400, f"{name} must be a whole number, not {str(raw)[:40]!r}")
    if not low <= number <= high:
        abort(400, f"{name} must be between {low} and {high}, not {number if len(str(number)) < 40 else '…'}")
    return number


def safe_next(url: str | None, fallback: str = "/") -> str:
    """`url` if it is a path on this site ("/rank/cat/?left=3"), else `fallback`: never another host, whatever the
    spelling ("//evil", "https://evil", "/\\evil", "\\\\evil", control characters browsers drop, "javascript:")."""
    if not url or not isinstance(url, str) or len(url) > MAX_ARG_CHARS:
        return fallback
    if not url.startswith("/") or url.startswith("//") or "\\" in url or not url.isprintable():
        return fallback
    parts = urlsplit(url)
    if parts.scheme or parts.netloc:
        return fallback
    return url


def show_bidi(value):
    """Template output with its bidi controls shown as visible markers (e.g. "[U+202E]") instead of reordering the
    text around them. Applied to every {{ ... }} (the Jinja finalize hook) and available as the `show_bidi`
    filter."""
    if isinstance(value, Markup):
        return Markup(str(value).translate(_BIDI_TABLE))
    if isinstance(value, str):
        return value.translate(_BIDI_TABLE)
    return value


def class_label(name: str | None) -> str:
    """How a class shows on a page: images without a class are '(unlabelled)'; None means every class."""
    if name is None:
        return "All classes"
    return "(unlabelled)" if name in (UNLABELLED, "") else name


def content_security_policy(app: Flask) -> str:
    """Scripts, styles, images and requests from this site only, plus the one pinned htmx script (by its exact URL
    and its integrity hash); no inline script or style, no plugins, no framing, forms post only here."""
    htmx_src = " ".join(s for s in (app.config.get("HTMX_URL"), f"'{app.config['HTMX_SRI']}'"
                                    if app.config.get("HTMX_SRI") else None) if s)
    return "; ".join([
        "default-src 'self'", f"script-src 'self' {htmx_src}".strip(), "style-src 'self'", "img-src 'self'",
        "connect-src 'self'", "font-src 'self'", "object-src 'none'", "base-uri 'none'", "form-action 'self'",
        "frame-ancestors 'none'"])


SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
                    "Referrer-Policy": "same-origin", "Cross-Origin-Opener-Policy": "same-origin"}


def _check_request_values() -> None:
    """Refuse, with a 400 that says why, what no view can use: NUL or overlong values in the path or the query,
    and numbers out of range in the query values that are read as numbers."""
    for key, value in (request.view_args or {}).items():
        if isinstance(value, str) and ("\x00" in value or len(value) > MAX_ARG_CHARS):
            abort(400, f"the {key} in this address is not valid (a NUL character, or over {MAX_ARG_CHARS} "
                       "characters)")
    for key, value in request.args.items(multi=True):
        if "\x00" in value or "\x00" in key or len(value) > MAX_ARG_CHARS:
            abort(400, f"the query value {key[:40]!r} is not valid (a NUL character, or over {MAX_ARG_CHARS} "
                       "characters)")
        high = NUMERIC_ARGS.get(key) or LIST_ARGS.get(key)
        for part in (value.split(",") if key in LIST_ARGS else [value]) if high else []:
            _refuse_out_of_range(key, part, high)
    if request.method == "POST" and request.mimetype in ("application/x-www-form-urlencoded",):
        for key, value in request.form.items(multi=True):
            if "\x00" in value or "\x00" in key:
                abort(400, f"the form value {key[:40]!r} holds a NUL character")


def _refuse_out_of_range(key: str, raw: str, high: int) -> None:
    """400 for a whole number past what the value can mean; anything else is left to the view (which may treat a
    word as "not given", as before)."""
    try:
        number = int(raw.strip())
    except ValueError:
        return
    if not -MAX_ID <= number <= high:
        abort(400, f"{key} is out of range: at most {high}")


def is_busy(exc: BaseException) -> bool:
    """Whether a database error means "busy, try again" rather than a fault: SQLite's write lock outlasting
    busy_timeout, PostgreSQL's lock_timeout, a serialization failure or deadlock (SQLSTATE 55P03, 40001, 40P01),
    a cancelled statement (57014), the connection pool exhausted, or the server unreachable for a moment."""
    if isinstance(exc, PoolTimeout):
        return True
    if not isinstance(exc, OperationalError):
        return False
    orig = getattr(exc, "orig", None)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or ""
    if code in ("55P03", "40001", "40P01", "57014") or code.startswith("08"):
        return True
    text = str(orig or exc).lower()
    return "database is locked" in text or "database table is locked" in text or "database is busy" in text


def _busy_response(exc: BaseException):
    """503 with Retry-After: a full page, or for an htmx region a notice put above the page (the region stays as it
    was, so the same answer can simply be given again)."""
    current_app.logger.warning("busy database, answered 503: %s", exc)
    headers = {"Retry-After": str(RETRY_AFTER_S), "Cache-Control": "no-store"}
    if is_htmx():
        headers.update({"HX-Retarget": "main", "HX-Reswap": "afterbegin"})
    return render_template("error.html", title="Busy, not saved", message=BUSY_MESSAGE, partial=is_htmx(),
                           retry_after=RETRY_AFTER_S), 503, headers


def _bad_value_response(reason: str):
    return render_template("error.html", title="Bad request", message=reason, partial=is_htmx()), 400


def init_app(app: Flask) -> None:
    # Before any blueprint adds its rules: every <int:...> in the app is bounded to the database's range
    app.url_map.converters["int"] = BoundedInt
    htmx.init_app(app)
    csrf.init_app(app)
    app.add_template_filter(class_label, "class_label")
    app.add_template_filter(show_bidi, "show_bidi")
    app.jinja_env.finalize = show_bidi
    app.jinja_env.globals["safe_next"] = safe_next
    app.before_request(_check_request_values)

    @app.after_request
    def vary_on_htmx(response):
        """Full pages and htmx partials share URLs: caches must keep them apart."""
        response.vary.add("HX-Request")
        return response

    @app.after_request
    def security_headers(response):
        """The browser-side guards (set on every answer, files included; a view that set its own keeps it)."""
        response.headers.setdefault("Content-Security-Policy", content_security_policy(app))
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.errorhandler(OperationalError)
    @app.errorhandler(PoolTimeout)
    def database_busy(exc):
        if is_busy(exc):
            return _busy_response(exc)
        raise exc  # a real fault: the ordinary 500 and its traceback in the log

    @app.errorhandler(DataError)
    def value_out_of_range(exc):
        """A value the database cannot hold (an integer past its range, a NUL in text on PostgreSQL) that no check
        caught earlier: the request was wrong, not the server."""
        current_app.logger.warning("bad value reached the database: %s", exc)
        return _bad_value_response("A value in this request is out of range for the database (a number too "
                                   "large, or a character it cannot store). Nothing was changed.")

    @app.errorhandler(OverflowError)
    def overflow(_exc):
        return _bad_value_response("A number in this request is too large. Nothing was changed.")

    @app.errorhandler(OSError)
    def path_error(exc):
        """A path from a form that the file system refuses by its shape (a component over 255 bytes, a NUL): the
        request is wrong. Any other OSError is a real fault and stays a 500."""
        if exc.errno in (errno.ENAMETOOLONG,) or "embedded null" in str(exc):
            return _bad_value_response("A path in this request is not valid (a name over 255 bytes, or a NUL "
                                       "character). Nothing was changed.")
        raise exc

    @app.errorhandler(BadRequest)
    def bad_request(exc):
        return _bad_value_response(exc.description or "This request is not valid.")
