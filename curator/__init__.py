"""The curator: import, browse, rank, deduplicate and merge images into a dataset indexed in SQLite.

Never imports torch or trainer: the web process stays light.
"""
from flask import Blueprint

bp = Blueprint("curator", __name__, template_folder="templates", static_folder="static",
               static_url_path="/curator-static")

from . import views  # noqa: E402,F401  (routes register themselves on bp)
from . import rank_views  # noqa: E402,F401
from . import dedup_views  # noqa: E402,F401
from . import merge_views  # noqa: E402,F401


@bp.app_template_filter("class_label")
def class_label(name: str | None) -> str:
    """How a class shows on a page: images without a class are '(unlabelled)'; None means every class."""
    from .queries import UNLABELLED
    if name is None:
        return "All classes"
    return "(unlabelled)" if name in (UNLABELLED, "") else name
