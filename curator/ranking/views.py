"""Ranking pages under /rank/: compare two images, pick the best of four, triage one at a time, leaderboard and
selection per class.

The compare page is keyboard first (←/→ choose, ↓ tie, ↑ neither belongs, Backspace undoes) and swaps
`_pair.html` by htmx; the best-of-4 page (keys 1–4, optionally putting all four in order) swaps `_screen.html` the
same way. Each answer's response already holds the next screen (whose images the page preloaded) and preloads the
images of the one after it, so answering never waits on an image. Without JavaScript the same forms post and
redirect. When every top-k place of the class is settled, both pages say so instead of asking more (with a way to
keep going). Answers are stored under the logged-in account (core.auth), or, where no login is needed, under the
browser session's own guest name; undo takes back only that person's answers.
"""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from core.auth import current_actor
from core.db import db
from core.models import Decision, Image
from core.web import is_htmx, safe_next
from curator.gallery.service import class_summaries
from curator.imports.service import class_names
from curator.ranking import service as rs

bp = Blueprint("ranking", __name__, template_folder="templates")


LEADERBOARD_ROWS = 200


def actor() -> str:
    """Who is answering (core.auth.current_actor: the account, or this browser's guest name)."""
    return current_actor()


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


def _screen_arg(source, key: str) -> tuple[int, ...] | None:
    """A screen's image ids from a form or query ("3,8,12,5" or repeated fields); None if absent or malformed
    (it only says which screen to show, so a bad value just means a freshly chosen one)."""
    try:
        ids = rs.parse_ids(source.getlist(key), key)
    except rs.RankingError:
        return None
    return tuple(ids) or None


def _more(source) -> bool:
    """Keep asking after the class is done (the person chose to keep going)."""
    return source.get("more") == "1"


# --- overview --------------------------------------------------------------------------------------------------

@bp.get("/rank/")
def rank_index():
    rows = []
    for summary in class_summaries(db.session):
        image_class = rs.get_class(db.session, summary.name) if summary.total else None  # an empty class: nothing to rank
        if image_class is None:
            continue
        rows.append((image_class, rs.standings(db.session, image_class, limit=0)))
    return render_template("ranking/index.html", rows=rows, actor=actor())


# --- compare ---------------------------------------------------------------------------------------------------

PAIRS, BEST = "pairs", "best"  # the two compare pages
SCREEN = {PAIRS: 2, BEST: 4}  # images per screen


def _render(image_class, kind: str, *, first=None, then=None, more: bool = False, order: bool = False,
            status: int = 200, message: str = "", message_kind: str = "info"):
    """The compare region of a page (`kind`: pairs or best-of-4), or the whole page without htmx: the screen to
    answer (`first` if still valid), the screen after it (`then` if given and valid, else chosen) with its images
    preloaded, and the counters; or, once every top-k place is settled and the person has not chosen to keep going
    (`more`), the class-done panel instead."""
    view = rs.class_view(db.session, image_class)
    table = rs.standings(db.session, image_class, view=view, limit=0)
    done = table.progress.done and not more
    screens = [] if done else rs.next_screens(db.session, image_class, size=SCREEN[kind], first=first, view=view)
    if then and len(screens) > 1 and len(then) == len(screens[0]) and len(set(then)) == len(then) \
            and set(then) != set(screens[0]) and set(then) <= set(view.competing_ratings):
        screens[1] = tuple(then)
    screen = screens[0] if screens else None
    upcoming = screens[1] if len(screens) > 1 else None
    mine = rs.answers_by(db.session, image_class.id, actor())
    context = dict(cls=image_class, kind=kind, table=table, done=done, more=more, order=order, upcoming=upcoming,
                   mine=mine, can_undo=mine > 0, message=message, message_kind=message_kind,
                   confidence=rs.CONFIDENCE, actor=actor())
    if kind == PAIRS:
        template = "ranking/_pair.html" if is_htmx() else "ranking/compare.html"
        return render_template(template, pair=screen, **context), status
    template = "ranking/_screen.html" if is_htmx() else "ranking/best.html"
    return render_template(template, screen=screen, **context), status


def _compare_url(image_class, kind: str, screen=None, more: bool = False, order: bool = False) -> str:
    """Where a plain (no-JavaScript) form goes after an answer: the page showing `screen` next."""
    more = 1 if more else None
    if kind == PAIRS:
        left, right = screen if screen else (None, None)
        return url_for("ranking.rank_compare", name=image_class.name, left=left, right=right, more=more)
    shown = ",".join(map(str, screen)) if screen else None
    return url_for("ranking.rank_best", name=image_class.name, shown=shown, more=more, order=1 if order else None)


@bp.get("/rank/<name>/")
def rank_compare(name: str):
    """Show a pair (the one in ?left=&right= when it is still valid, as after a plain-form answer) and
    preload the next."""
    image_class = get_class(name)
    return _render(image_class, PAIRS, first=_pair_arg(request.args, "left", "right"), more=_more(request.args))


@bp.get("/rank/<name>/best")
def rank_best(name: str):
    """Show four images to pick the best of (the screen in ?shown= when it is still valid) and preload the next;
    ?order=1 asks for all four in order."""
    image_class = get_class(name)
    return _render(image_class, BEST, first=_screen_arg(request.args, "shown"), more=_more(request.args),
                   order=request.args.get("order") == "1")


@bp.post("/rank/<name>/answer")
def rank_answer(name: str):
    image_class = get_class(name)
    form = request.form
    shown = _pair_arg(form, "left", "right")
    upcoming = _pair_arg(form, "next_left", "next_right")
    more = _more(form)
    try:
        result = rs.record_answer(db.session, image_class, form.get("left"), form.get("right"),
                                  form.get("outcome", ""), actor())
    except rs.RankingError as exc:
        return _refused(image_class, PAIRS, exc, shown, more)
    answered = (result.comparison.left_id, result.comparison.right_id)
    return _answered(image_class, PAIRS, result, answered, upcoming, more)


def _refused(image_class, kind: str, exc: Exception, shown, more: bool, order: bool = False):
    """An answer that was not stored: the reason, over a fresh screen (htmx swaps only 2xx responses) or, as a
    plain form, the same screen again with status 400."""
    message = f"Answer not stored: {exc}."
    if is_htmx():
        return _render(image_class, kind, more=more, order=order, message=message, message_kind="error")
    return _render(image_class, kind, first=shown, more=more, order=order, status=400, message=message,
                   message_kind="error")


def _answered(image_class, kind: str, result, answered, upcoming, more: bool, order: bool = False):
    """After a stored answer: the prefetched screen next (a plain form is redirected to it)."""
    first = upcoming if upcoming and set(upcoming) != set(answered) else None
    if not is_htmx():
        return redirect(_compare_url(image_class, kind, first, more, order))
    message = "" if result.stored else "That answer was already stored (sent twice?); kept once."
    return _render(image_class, kind, first=first, more=more, order=order, message=message)


@bp.post("/rank/<name>/pick")
def rank_pick(name: str):
    """One answer on a best-of-4 screen: `shown` (the images, in screen order) and `pick` (the best), or, in
    order mode, `order` (ids best first, as the keys fill it in) or a `place_<id>` per image (the plain form)."""
    image_class = get_class(name)
    form = request.form
    shown = _screen_arg(form, "shown")
    more, order = _more(form), form.get("mode") == "order"
    try:
        result = rs.record_choice(db.session, image_class, form.getlist("shown"), _picks(form, shown), actor())
    except rs.RankingError as exc:
        return _refused(image_class, BEST, exc, shown, more, order)
    return _answered(image_class, BEST, result, rs.shown_on(result.comparison), _screen_arg(form, "next"), more,
                     order)


def _picks(form, shown) -> list[str]:
    """The picks a form names, best first: `pick`, else `order`, else the places chosen per image (blank places
    are left out: the last one may be implied)."""
    if form.get("pick"):
        return form.getlist("pick")
    if form.get("order"):
        return form.getlist("order")
    places = {}
    for image_id in shown or ():
        raw = form.get(f"place_{image_id}", "").strip()
        if not raw:
            continue
        try:
            place = int(raw)
        except ValueError:
            raise rs.RankingError(f"the place of #{image_id} must be a number from 1 to {len(shown)}, "
                                  f"got {raw!r}") from None
        if not 1 <= place <= len(shown) or place in places:
            raise rs.RankingError(f"give each image its own place from 1 to {len(shown)}")
        places[place] = image_id
    return [str(places[p]) for p in sorted(places)]


@bp.post("/rank/<name>/undo")
def rank_undo(name: str):
    """Undo this person's latest answer in the class and show that screen again when it is of the page's kind
    (the screen on show comes next)."""
    image_class = get_class(name)
    form = request.form
    kind = BEST if form.get("view") == BEST else PAIRS
    more, order = _more(form), form.get("mode") == "order"
    on_screen = _screen_arg(form, "shown") if kind == BEST else _pair_arg(form, "left", "right")
    result = rs.undo_last_answer(db.session, image_class, actor())
    again = None
    if result is None:
        message, message_kind = "Nothing to undo: you have no answers in this class.", "info"
    else:
        c = result.comparison
        message = f"Undid your answer: {rs.describe(c)}. {result.note}".strip()
        message_kind = "error" if result.note else "ok"
        shown = tuple(rs.shown_on(c))
        if (kind == PAIRS) == (c.outcome not in rs.CHOICE_OUTCOMES):
            again = shown
    if not is_htmx():
        flash(message, message_kind)
        return redirect(_compare_url(image_class, kind, again or on_screen, more, order))
    if again:  # the undone screen to answer again, then the one that was on show
        return _render(image_class, kind, first=again, then=on_screen, more=more, order=order, message=message,
                       message_kind=message_kind)
    return _render(image_class, kind, first=on_screen, more=more, order=order, message=message,
                   message_kind=message_kind)


# --- leaderboard and selection ---------------------------------------------------------------------------------

@bp.get("/rank/<name>/leaderboard")
def rank_leaderboard(name: str):
    image_class = get_class(name)
    show_all = request.args.get("all") == "1"
    table = rs.standings(db.session, image_class, limit=None if show_all else LEADERBOARD_ROWS)
    rows = table.rows
    shown = [r.image_id for r in rows + table.review]
    images = {i.id: i for i in db.session.scalars(select(Image).where(Image.id.in_(shown)))}
    return render_template("ranking/leaderboard.html", cls=image_class, table=table, rows=rows,
                           images=images, show_all=show_all, confidence=rs.CONFIDENCE,
                           undo_selection=rs.last_selection(db.session, image_class), actor=actor())


@bp.post("/rank/<name>/k")
def rank_set_k(name: str):
    image_class = get_class(name)
    try:
        k = rs.set_top_k(db.session, image_class, request.form.get("k"))
        flash(f"{image_class.name}: ranking now settles the top {k}.", "ok")
    except rs.RankingError as exc:
        flash(f"k not changed: {exc}.", "error")
    return redirect(safe_next(request.form.get("next"), url_for("ranking.rank_leaderboard", name=image_class.name)))


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
