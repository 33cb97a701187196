"""The curator: import, browse, rank, deduplicate and merge images into a dataset indexed in SQLite.

Never imports torch or trainer: the web process stays light.
"""
from flask import Blueprint

bp = Blueprint("curator", __name__, template_folder="templates", static_folder="static",
               static_url_path="/curator-static")

from . import views  # noqa: E402,F401  (routes register themselves on bp)
