"""What every blueprint shares on the web side: htmx and CSRF set-up, "is this an htmx request", partial-or-page
rendering, ids from the URL, and the template helpers every page uses."""
from __future__ import annotations

from flask import Flask, abort
from flask_htmx import HTMX
from flask_wtf.csrf import CSRFProtect

from core.models import UNLABELLED

htmx = HTMX()
csrf = CSRFProtect()

MAX_ID = 2**63 - 1  # the database's integer range: a larger id in a URL names nothing


def is_htmx() -> bool:
    """True when htmx asks for a region (answer with the partial that region swaps). A boosted link or form (the
    hx-boost on <body>) sends HX-Request too, but it replaces the whole body: it gets the whole page."""
    return bool(htmx) and not htmx.boosted


def get_or_404(session, model, ident):
    """The row with this primary key, or 404 (never a 500 for an id outside the database's range)."""
    if isinstance(ident, int) and not 0 <= ident <= MAX_ID:
        abort(404)
    return session.get(model, ident) or abort(404)


def class_label(name: str | None) -> str:
    """How a class shows on a page: images without a class are '(unlabelled)'; None means every class."""
    if name is None:
        return "All classes"
    return "(unlabelled)" if name in (UNLABELLED, "") else name


def init_app(app: Flask) -> None:
    htmx.init_app(app)
    csrf.init_app(app)
    app.add_template_filter(class_label, "class_label")

    @app.after_request
    def vary_on_htmx(response):
        """Full pages and htmx partials share URLs: caches must keep them apart."""
        response.vary.add("HX-Request")
        return response
