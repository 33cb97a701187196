"""The Menagerie web suite: `create_app()` builds it for `manage.py`, the tests and gunicorn ('app:create_app()')."""
from __future__ import annotations

import datetime as dt
import os
import secrets
from pathlib import Path

from flask import Flask, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import NotFound

from core import auth, web
from core.db import db
from core.migrate import upgrade

ROOT = Path(__file__).resolve().parent
DEMO_DIR = ROOT / "demo" / "animal-emoji"
DEFAULT_INSTANCE = ROOT / "instance"

# The page loads htmx from a CDN, pinned by version and Subresource Integrity hash (checked in the browser tests
# against the npm package of the same release).
HTMX_VERSION = "2.0.11"
HTMX_URL = f"https://cdn.jsdelivr.net/npm/htmx.org@{HTMX_VERSION}/dist/htmx.min.js"
HTMX_SRI = "sha384-2OatzQy1H+Zd/IIrjr1TcuDGqLXeHhbooAyJY1KdQMKnr4LZ22k31GBLdYKHmVjg"

def resolve_instance(instance_path: str | os.PathLike | None) -> Path:
    return Path(instance_path or os.environ.get("MENAGERIE_INSTANCE") or DEFAULT_INSTANCE).resolve()


def _secret_key(instance: Path) -> str:
    """MENAGERIE_SECRET_KEY, or one generated once per instance so sessions survive restarts and workers agree."""
    if os.environ.get("MENAGERIE_SECRET_KEY"):
        return os.environ["MENAGERIE_SECRET_KEY"]
    path = instance / "secret_key"
    if not path.exists():
        tmp = instance / f".secret_key.{os.getpid()}"
        tmp.write_text(secrets.token_hex(32))
        tmp.chmod(0o600)
        try:
            os.link(tmp, path)  # atomic create-if-absent: concurrent workers end up with the same key
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()


def default_config(instance: Path) -> dict:
    roots = [instance / "imports", DEMO_DIR]
    roots += [Path(p) for p in os.environ.get("MENAGERIE_IMPORT_ROOTS", "").split(os.pathsep) if p]
    return {
        "SQLALCHEMY_DATABASE_URI": os.environ.get("MENAGERIE_DATABASE_URL")
        or f"sqlite:///{instance / 'menagerie.sqlite3'}",
        "MAX_CONTENT_LENGTH": 512 * 1024 * 1024,  # one upload request
        "MAX_FILE_BYTES": 50 * 1024 * 1024,  # one image file
        "MAX_PIXELS": 40_000_000,
        "IMPORT_ROOTS": roots,  # folders the web form may import from (the CLI may import from anywhere)
        "PAGE_SIZE": 60,
        "WTF_CSRF_TIME_LIMIT": 12 * 3600,  # a form left open over a working day still posts; a leaked token dies
        "SESSION_COOKIE_SAMESITE": "Lax",  # other sites' forms and frames do not carry the session
        "SESSION_COOKIE_HTTPONLY": True,
        "PERMANENT_SESSION_LIFETIME": dt.timedelta(days=14),  # a login lasts two weeks
        # Logins required (core/auth.py) unless MENAGERIE_AUTH=off; `manage.py serve` on loopback turns them off.
        "AUTH_REQUIRED": auth.required_from_env(),
        "HTMX_URL": HTMX_URL,
        "HTMX_SRI": HTMX_SRI,
        "DEMO_DIR": DEMO_DIR,
    }


def create_app(test_config: dict | None = None, instance_path: str | os.PathLike | None = None) -> Flask:
    """The app; raises core.auth.NoAccountError when it requires logins (AUTH_REQUIRED, the default) and there is
    no account, so gunicorn refuses to start rather than serve an app nobody can log in to."""
    instance = resolve_instance(instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    app = Flask(__name__, instance_path=str(instance))
    app.config.update(default_config(instance))
    app.config["SECRET_KEY"] = _secret_key(instance)
    if test_config:
        app.config.update(test_config)

    db.init_app(app)
    web.init_app(app)
    auth.init_app(app)
    with app.app_context():
        upgrade(db.engine, instance / ".migrate.lock")
    auth.check_can_serve(app)
    for views in _feature_views():
        app.register_blueprint(views.bp)
    _connect_features()
    _register_handlers(app)
    return app


def _connect_features() -> None:
    """The one place features that may not import each other are joined: ranking uses the duplicate search (near
    copies meet head to head), so the duplicate review gets its ratings from ranking through this seam."""
    from curator.dedup import service as dedup_service
    from curator.ranking import service as ranking_service
    dedup_service.use_ratings(ranking_service.ratings_within_class)


def _feature_views() -> list:
    """Each feature's blueprint, in the order the navigation shows them."""
    from accounts import views as accounts
    from curator.dedup import views as dedup
    from curator.gallery import views as gallery
    from curator.imports import views as imports
    from curator.merge import views as merge
    from curator.ranking import views as ranking
    from curator.snapshots import views as snapshots
    from trainer import generation_views as generation
    from trainer import launch_views as launch
    from trainer import sticker_views as stickers
    from trainer import views as trainer
    return [gallery, imports, ranking, dedup, merge, snapshots, trainer, launch, generation, stickers, accounts]


def _register_handlers(app: Flask) -> None:
    @app.errorhandler(413)
    def too_large(_exc):
        limit = app.config["MAX_CONTENT_LENGTH"] / 2**20
        return render_template("error.html", title="Upload too large",
                               message=f"The upload is larger than the {limit:.0f} MiB limit for one request. "
                                       "Nothing was imported. Send fewer files at once, or import a folder or "
                                       "zip archive from the command line."), 413

    @app.errorhandler(CSRFError)
    def csrf_failed(exc):
        return render_template("error.html", title="Form expired",
                               message=f"{exc.description} Reload the page and try again; nothing was changed."), 400

    @app.errorhandler(404)
    def not_found(exc):
        said = exc.description if exc.description != NotFound.description else ""  # abort(404, "why")
        return render_template("error.html", title="Not found",
                               message=said or f"Nothing here: {request.path}"), 404
