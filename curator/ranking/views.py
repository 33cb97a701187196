"""Ranking pages under /rank/: compare two images, triage one at a time, leaderboard and selection per class.

The compare page is keyboard first (←/→ choose, ↓ tie, ↑ neither belongs, Backspace undoes) and swaps
`_rank_pair.html` by htmx; each answer's response already holds the next pair (whose images the page preloaded)
and preloads the images of the pair after it, so answering never waits on an image. Without JavaScript the same
forms post and redirect. Who answers is a name typed once and kept in the session ("anonymous" until then).
"""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from sqlalchemy import select

from core.db import db
from core.models import Decision, Image
from core.web import is_htmx
from curator.gallery.service import class_summaries
from curator.imports.service import class_names
from curator.ranking import service as rs

bp = Blueprint("ranking", __name__, template_folder="templates")


ANONYMOUS = "anonymous"
NAME_MAX = 64
LEADERBOARD_ROWS = 200


def actor() -> str:
    return session.get("rank_name") or ANONYMOUS


def get_class(name: str):
    return rs.get_class(db.session, name) or abort(404)


def _int_arg(source, key: str) -> int | None:
    try:
        return int(source.get(key, ""))
    except ValueError:
        return None


def _pair_arg(source, left: str, right: str) -> tuple[int, int] | None:
    a, b = _int_arg(source, left), _int_arg(source, right)
    return (a, b) if a is not None and b is not None else None


# --- who is ranking --------------------------------------------------------------------------------------------

@bp.post("/rank/name")
def rank_set_name():
    name = " ".join(request.form.get("name", "").split())
    back = request.form.get("next") or url_for("ranking.rank_index")
    if not name or len(name) > NAME_MAX or not name.isprintable():
        flash(f"Type a name of 1–{NAME_MAX} printable characters; answers are stored under it.", "error")
    else:
        session["rank_name"] = name
        flash(f"Ranking as {name}.", "ok")
    return redirect(back)


# --- overview --------------------------------------------------------------------------------------------------

@bp.get("/rank/")
def rank_index():
    rows = []
    for summary in class_summaries(db.session):
        image_class = rs.get_class(db.session, summary.name)
        if image_class is None:
            continue
        rows.append((image_class, rs.standings(db.session, image_class, limit=0)))
    return render_template("ranking/index.html", rows=rows, actor=actor())


# --- compare ---------------------------------------------------------------------------------------------------

def _render_pair(image_class, *, first=None, pending=(), then=None, status: int = 200, message: str = "",
                 message_kind: str = "info"):
    """The compare region (or the whole page without htmx): the pair to answer (`first` if still valid), the
    pair after it (`then` if given and valid, else chosen) with its images preloaded, and the counter."""
    view = rs.class_view(db.session, image_class)
    pairs = rs.next_pairs(db.session, image_class, first=first, pending=pending, view=view)
    if then and len(pairs) > 1 and then[0] != then[1] and set(then) != set(pairs[0]) \
            and {then[0], then[1]} <= set(view.competing_ratings):
        pairs[1] = then
    table = rs.standings(db.session, image_class, view=view, limit=0)
    pair = pairs[0] if pairs else None
    upcoming = pairs[1] if len(pairs) > 1 else None
    wanted = set(pair or ()) | set(upcoming or ())
    images = {i.id: i for i in db.session.scalars(select(Image).where(Image.id.in_(wanted)))} if wanted else {}
    mine = rs.answers_by(db.session, image_class.id, actor())
    context = dict(cls=image_class, table=table, pair=pair, upcoming=upcoming, images=images, mine=mine,
                   can_undo=mine > 0, message=message, message_kind=message_kind, actor=actor())
    template = "ranking/_pair.html" if is_htmx() else "ranking/compare.html"
    return render_template(template, **context), status


@bp.get("/rank/<name>/")
def rank_compare(name: str):
    """Show a pair (the one in ?left=&right= when it is still valid, as after a plain-form answer) and
    preload the next."""
    image_class = get_class(name)
    return _render_pair(image_class, first=_pair_arg(request.args, "left", "right"))


def _compare_url(image_class, pair):
    if pair:
        return url_for("ranking.rank_compare", name=image_class.name, left=pair[0], right=pair[1])
    return url_for("ranking.rank_compare", name=image_class.name)


@bp.post("/rank/<name>/answer")
def rank_answer(name: str):
    image_class = get_class(name)
    form = request.form
    shown = _pair_arg(form, "left", "right")
    upcoming = _pair_arg(form, "next_left", "next_right")
    try:
        result = rs.record_answer(db.session, image_class, form.get("left"), form.get("right"),
                                  form.get("outcome", ""), actor())
    except rs.RankingError as exc:
        message = f"Answer not stored: {exc}."
        if is_htmx():  # htmx swaps only 2xx responses: show the message and a fresh pair in place
            return _render_pair(image_class, message=message, message_kind="error")
        return _render_pair(image_class, first=shown, status=400, message=message, message_kind="error")
    answered = (result.comparison.left_id, result.comparison.right_id)
    first = upcoming if upcoming and set(upcoming) != set(answered) else None
    if not is_htmx():
        return redirect(_compare_url(image_class, first))
    message = "" if result.stored else "That answer was already stored (sent twice?); kept once."
    return _render_pair(image_class, first=first, message=message)


@bp.post("/rank/<name>/undo")
def rank_undo(name: str):
    """Undo this person's latest answer in the class and show that pair again (the pair on screen comes next)."""
    image_class = get_class(name)
    result = rs.undo_last_answer(db.session, image_class, actor())
    on_screen = _pair_arg(request.form, "left", "right")
    if result is None:
        message, kind, pairs = "Nothing to undo: you have no answers in this class.", "info", None
    else:
        c = result.comparison
        message = f"Undid your answer on #{c.left_id} vs #{c.right_id} ({c.outcome}). {result.note}".strip()
        kind = "error" if result.note else "ok"
        pairs = [(c.left_id, c.right_id)]
    if not is_htmx():
        flash(message, kind)
        return redirect(_compare_url(image_class, pairs[0] if pairs else on_screen))
    if pairs:  # the undone pair to answer again, then the pair that was on screen
        return _render_pair(image_class, first=pairs[0], then=on_screen, message=message, message_kind=kind)
    return _render_pair(image_class, first=on_screen, message=message, message_kind=kind)


# --- leaderboard and selection ---------------------------------------------------------------------------------

@bp.get("/rank/<name>/leaderboard")
def rank_leaderboard(name: str):
    image_class = get_class(name)
    show_all = request.args.get("all") == "1"
    table = rs.standings(db.session, image_class, limit=None if show_all else LEADERBOARD_ROWS)
    rows = table.rows
    images = {i.id: i for i in db.session.scalars(select(Image).where(Image.id.in_([r.image_id for r in rows])))}
    return render_template("ranking/leaderboard.html", cls=image_class, table=table, rows=rows,
                           images=images, show_all=show_all, settled=rs.SETTLED,
                           undo_selection=rs.last_selection(db.session, image_class), actor=actor())


@bp.post("/rank/<name>/k")
def rank_set_k(name: str):
    image_class = get_class(name)
    try:
        k = rs.set_top_k(db.session, image_class, request.form.get("k"))
        flash(f"{image_class.name}: ranking now settles the top {k}.", "ok")
    except rs.RankingError as exc:
        flash(f"k not changed: {exc}.", "error")
    return redirect(request.form.get("next") or url_for("ranking.rank_leaderboard", name=image_class.name))


@bp.post("/rank/<name>/select")
def rank_select(name: str):
    image_class = get_class(name)
    back = url_for("ranking.rank_leaderboard", name=image_class.name)
    try:
        decision, count = rs.select_images(db.session, image_class, request.form.get("mode", ""),
                                           request.form.get("threshold"), actor=actor())
    except rs.RankingError as exc:
        flash(f"Selection not changed: {exc}.", "error")
        return redirect(back)
    if decision is None:
        flash(f"Selection unchanged ({count} selected).", "info")
    else:
        flash(f"{count} images of {image_class.name} selected for snapshots (undo below).", "ok")
    return redirect(back)


# --- triage ----------------------------------------------------------------------------------------------------

def _triage_url(image_class, queue: str, start: int = 0, undo: int | None = None) -> str:
    return url_for("ranking.rank_triage", name=image_class.name, queue=queue, start=start or None, undo=undo)


@bp.get("/rank/<name>/triage")
def rank_triage(name: str):
    image_class = get_class(name)
    queue = request.args.get("queue")
    if queue is None:
        flagged = rs.triage_queue(db.session, image_class, "flagged")
        queue = "flagged" if flagged.image else "all"
    try:
        view = rs.triage_queue(db.session, image_class, queue, max(0, request.args.get("start", 0, type=int)))
    except rs.RankingError as exc:
        abort(400, str(exc))
    undo_id = request.args.get("undo", type=int)
    last = db.session.get(Decision, undo_id) if undo_id else None
    if last is not None and last.undone_by_id:
        last = None
    others = [c for c in class_names(db.session) if c != image_class.name]
    return render_template("ranking/triage.html", cls=image_class, view=view, queue=queue, last=last,
                           others=others, queues=rs.TRIAGE_QUEUES, actor=actor())


@bp.post("/rank/<name>/triage/<int:image_id>")
def rank_triage_act(name: str, image_id: int):
    image_class = get_class(name)
    queue = request.form.get("queue", "all")
    if queue not in rs.TRIAGE_QUEUES:
        queue = "all"
    try:
        decision = rs.triage(db.session, image_class, image_id, request.form.get("action", ""),
                             request.form.get("class_name", ""), actor=actor())

    except rs.RankingError as exc:
        flash(f"Nothing changed: {exc}.", "error")
        return redirect(_triage_url(image_class, queue, image_id))
    if decision is not None:
        flash(f"#{image_id}: {decision.kind}.", "ok")
    return redirect(_triage_url(image_class, queue, image_id + 1, decision.id if decision else None))
