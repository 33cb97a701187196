"""Duplicate review under /duplicates: groups side by side, one-key accept, keeper override, resolve all, undo;
and the threshold calibration page under /duplicates/calibrate.

Keyboard first (j/k move between groups, Enter or a accepts the chosen keeper, ←/→ or 1–9 choose another keeper);
each group is one form that works without JavaScript, and with htmx only that group's region is swapped for its
"resolved" note (with its undo button).
"""
from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for

from core import jobs
from core.db import db
from core.models import Decision, Image
from core.web import is_htmx
from curator.dedup import service as ds
from curator.dedup.matching import DEFAULT_HASH_THRESHOLD
from curator.imports.storage import ImageStore
from curator.imports.views import start_job, to_job

bp = Blueprint("dedup", __name__, template_folder="templates")


MAX_GROUPS_SHOWN = 50  # per page: 200 made a 790 KB page of about 800 thumbnails that took 3 s to come back after an undo


def _threshold(source) -> tuple[int, str | None]:
    try:
        return ds.parse_threshold(source.get("threshold")), None
    except ds.DedupError as exc:
        return DEFAULT_HASH_THRESHOLD, str(exc)


SEARCH_INLINE_MAX = 400  # active images the search may take in the request, about 1 s (947 took 2.6 s), past
# which a job shows its progress (config DEDUP_INLINE_MAX overrides)


def inline_limit() -> int:
    """Images whose search, or whose fingerprints of an older version, a request may take on (else: a job)."""
    return int(current_app.config.get("DEDUP_INLINE_MAX", SEARCH_INLINE_MAX))


def fingerprint_update(next_page: dict):
    """To the page of the job that recomputes fingerprints of an older version (a running one is joined), which
    leads on to `next_page` when it is done."""
    running = jobs.find_unfinished(current_app.instance_path, "fingerprint update", {})
    return to_job(running.id if running else start_job(
        "fingerprint update", "curator.dedup.service:run_refresh_job", {}, next_page))


@bp.get("/duplicates/")
def dedup_index():
    """The review. A search that is not kept yet over more than SEARCH_INLINE_MAX images runs as a job (a second
    visitor joins it) and this page follows it; once done, the kept search answers every visit at once."""
    threshold, error = _threshold(request.args)
    if error:
        flash(f"{error}; showing the default ({DEFAULT_HASH_THRESHOLD} bits).", "error")
    store = ImageStore(current_app.instance_path)
    if ds.search_needs_a_job(db.session, store, threshold, inline_limit()) and not error:
        args = {"threshold": threshold}
        running = jobs.find_unfinished(current_app.instance_path, "duplicate search", args)
        job_id = running.id if running else start_job(
            "duplicate search", "curator.dedup.service:run_search_job", args,
            {"endpoint": "dedup.dedup_index", "values": {"threshold": threshold}})
        return to_job(job_id)
    groups = ds.find_groups(db.session, ImageStore(current_app.instance_path), hash_threshold=threshold)
    return render_template("dedup/index.html", groups=groups[:MAX_GROUPS_SHOWN], total=len(groups),
                           threshold=threshold, default_threshold=DEFAULT_HASH_THRESHOLD,
                           recent=ds.recent_resolutions(db.session)), (400 if error else 200)


def _back(threshold=None):
    return redirect(url_for("dedup.dedup_index", threshold=threshold))


@bp.post("/duplicates/resolve")
def dedup_resolve():
    """Resolve one group: the posted members (what the page showed) with the chosen keeper."""
    members = request.form.getlist("member")
    keeper = request.form.get("keeper")
    threshold = request.form.get("threshold") or None
    try:
        if keeper is None:
            raise ds.DedupError("choose which image to keep")
        decision = ds.resolve(db.session, members, keeper)
    except ds.DedupError as exc:
        if is_htmx():  # keep the group on the page; the message goes to the page's message list
            body = render_template("dedup/_message.html", message=str(exc), kind="error")
            return body, 200, {"HX-Retarget": "#dedup-messages", "HX-Reswap": "innerHTML"}
        flash(str(exc), "error")
        return _back(threshold)
    keeper_img = db.session.get(Image, decision.image_id)
    copies = len(decision.after.get("image", {}))
    if is_htmx():  # the group's note, and (out of band) the page's count and its recent resolutions, kept true
        try:
            bits = ds.parse_threshold(threshold)
        except ds.DedupError:
            bits = DEFAULT_HASH_THRESHOLD
        total = len(ds.find_groups(db.session, ImageStore(current_app.instance_path), hash_threshold=bits,
                                   with_ratings=False, refresh=False))
        return render_template("dedup/_resolved.html", decision=decision, keeper=keeper_img, copies=copies,
                               key="-".join(sorted(members, key=int)), total=total, threshold=bits,
                               recent=ds.recent_resolutions(db.session), oob=True)
    flash(f"Kept #{keeper_img.id}; {copies} cop{'y' if copies == 1 else 'ies'} marked duplicate (decision "
          f"#{decision.id}, undo below).", "ok")
    return _back(threshold)


@bp.post("/duplicates/resolve-all")
def dedup_resolve_all():
    try:
        threshold = ds.parse_threshold(request.form.get("threshold"))
    except ds.DedupError as exc:
        flash(f"{exc}: nothing was changed.", "error")
        return _back()
    store = ImageStore(current_app.instance_path)
    if ds.search_needs_a_job(db.session, store, threshold, inline_limit()):
        flash("The groups must be found again (the dataset or its fingerprints changed): here they are; nothing was "
              "changed.", "error")
        return _back(threshold)  # the review starts the search job; this request stays short
    groups = ds.find_groups(db.session, store, hash_threshold=threshold)
    try:
        decisions = ds.resolve_all_suggested(db.session, groups)
    except ds.DedupError as exc:
        flash(f"{exc}", "error")
        return _back(threshold)
    copies = sum(len(g.members) - 1 for g in groups)
    flash(f"Resolved {len(decisions)} group(s) with the suggested keepers: {copies} image(s) marked duplicate. "
          "Each group can be undone below or on the History page.", "ok")
    return _back(threshold)


@bp.get("/duplicates/decision/<int:decision_id>")
def dedup_decision(decision_id: int):
    """What one resolution did (keeper and copies), with its undo button."""
    decision = db.session.get(Decision, decision_id)
    if decision is None or decision.kind != "duplicate":
        abort(404)
    ids = [int(i) for i in decision.after.get("image", {})]
    return render_template("dedup/decision.html", decision=decision,
                           keeper=db.session.get(Image, decision.image_id),
                           copies=[db.session.get(Image, i) for i in ids])


# --- calibration ---------------------------------------------------------------------------------------------

@bp.get("/duplicates/calibrate")
def calibrate_page():
    """Pairs to label. Fingerprints of an older version are recomputed first: in the request when they are few, as a
    job this page follows when there are more than ``inline_limit()`` (every image's, once after an upgrade)."""
    if ds.old_fingerprints(db.session) > inline_limit():
        return fingerprint_update({"endpoint": "dedup.calibrate_page", "values": {}})
    ds.refresh_fingerprints(db.session, ImageStore(current_app.instance_path))
    pair, done, offered = ds.next_calibration_pair(db.session)
    images = (db.session.get(Image, pair[0]), db.session.get(Image, pair[1])) if pair else None
    return render_template("dedup/calibrate.html", pair=pair, images=images, done=done, offered=offered,
                           result=ds.calibration_result(db.session), default_threshold=DEFAULT_HASH_THRESHOLD,
                           recent=ds.recent_labels(db.session))


@bp.post("/duplicates/calibrate/undo")
def calibrate_undo():
    """Take back one label (the page lists the latest ones, each with an undo button)."""
    try:
        ds.unlabel(db.session, request.form.get("a"), request.form.get("b"))
        flash("Label removed: that pair will be offered again.", "ok")
    except ds.DedupError as exc:
        flash(str(exc), "error")
    return redirect(url_for("dedup.calibrate_page"))


@bp.post("/duplicates/calibrate")
def calibrate_label():
    verdict = request.form.get("verdict")
    if verdict not in ("same", "different"):
        flash(f"Unknown verdict {verdict!r}: choose same or different. Nothing was stored.", "error")
        return redirect(url_for("dedup.calibrate_page"))
    try:
        ds.label_pair(db.session, request.form.get("a"), request.form.get("b"), verdict == "same")
    except ds.DedupError as exc:
        flash(str(exc), "error")
    return redirect(url_for("dedup.calibrate_page"))
