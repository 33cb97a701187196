"""Duplicate groups of the dataset, from the index: find them, suggest a keeper, resolve them (undoably).

The detection itself is pure (curator.dedup.matching); this module reads what it needs from the database. Confirm
thumbnails are 12 KiB each, so they are read only for the images the hash stage proposes, never for the whole
dataset. A resolution marks the copies `duplicate` of the keeper through one `decisions.record` call per group, so
each group can be undone on its own. Nothing is deleted.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Hashable, Iterable, Mapping, NamedTuple

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from core.db import transactional
from core.files import write_atomic
from core.history import record
from core.models import ACTIVE, DUPLICATE, Decision, Image
from curator.dedup import matching as dedup
from curator.imports.hashing import FINGERPRINT_BYTES, content_size
from curator.imports.storage import ImageStore

MAX_THRESHOLD = 32  # beyond this nearly every pair of a large dataset is a candidate: a mistake, not a setting
CHUNK = 500  # ids per IN (...) query (SQLite's variable limit is far above; keeps statements small)


class DedupError(ValueError):
    """A request we refuse (unknown ids, keeper not in the group, bad threshold); the message says why."""


@dataclass
class Fingerprint:
    """What curator.dedup.matching needs about one stored image (`thumb` is filled in only when needed)."""
    sha256: str
    pixel_hash: str | None
    phash: int
    dhash: int
    thumb: bytes | None = None


@dataclass
class Member:
    """One image of a group as the review page and the CLI show it."""
    image: Image
    rating: float | None = None  # Bradley–Terry mean within its class, if compared at least once
    rank: int | None = None  # 1 = best rated of its class among compared images
    distance: int | None = None  # smallest hash distance to another member (0 for exact / same pixels)
    why: object = None  # the match (curator.dedup.matching.Match) that ties it to the suggested keeper, or to the
    # member of the group that every other matches clearly (matching.KEEPER_MATCH) when it does not match the keeper
    why_smaller: int | None = None  # the smaller content side (px) of the two pictures of ``why``, when known

    @property
    def id(self) -> int:
        return self.image.id

    @property
    def why_with(self) -> int | None:
        """The other image of ``why``."""
        return None if self.why is None else (self.why.b if self.why.a == self.id else self.why.a)

    @property
    def why_text(self) -> str:
        return why_text(self.why, self.why_with, self.why_smaller)


@dataclass
class DupGroup:
    members: list[Member]
    keeper_id: int
    kind: str  # exact | same-pixels | near
    max_distance: int
    matches: list = field(default_factory=list)

    @property
    def ids(self) -> list[int]:
        return [m.id for m in self.members]

    @property
    def key(self) -> str:
        """Stable name of the group on a page: its sorted member ids."""
        return "-".join(str(i) for i in sorted(self.ids))

    @property
    def keeper(self) -> Member:
        return next(m for m in self.members if m.id == self.keeper_id)

    @property
    def all_match_keeper(self) -> bool:
        """Every other member matches the suggested keeper directly (else some match a clear copy of it)."""
        return all(m.why_with == self.keeper_id for m in self.members if m.id != self.keeper_id)


def parse_threshold(raw, default: int = dedup.DEFAULT_HASH_THRESHOLD) -> int:
    """A hash threshold in bits from a form or the command line; DedupError with the rule otherwise."""
    if raw is None or str(raw).strip() == "":
        return default
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise DedupError(f"threshold must be a whole number of bits (0–{MAX_THRESHOLD}), got {raw!r}") from None
    if not 0 <= value <= MAX_THRESHOLD:
        raise DedupError(f"threshold must be between 0 and {MAX_THRESHOLD} bits, got {value}")
    return value


# --- reading fingerprints ------------------------------------------------------------------------------------

def load_hashes(session: Session, status: str = ACTIVE, class_id: int | None = None) -> dict[int, Fingerprint]:
    """Hashes of every image with `status` (of one class if given; their thumbnails are read by ``load_thumbs``, in
    chunks)."""
    query = (select(Image.id, Image.sha256, Image.pixel_hash, Image.phash, Image.dhash)
             .where(Image.status == status, Image.phash.is_not(None), Image.dhash.is_not(None)).order_by(Image.id))
    if class_id is not None:
        query = query.where(Image.class_id == class_id)
    rows = session.execute(query)
    return {i: Fingerprint(sha, px, ph, dh) for i, sha, px, ph, dh in rows}


def load_thumbs(session: Session, fps: Mapping[int, Fingerprint], ids: Iterable[int]) -> None:
    """Fill in the confirm thumbnails of `ids`, a chunk of ids per query."""
    wanted = [i for i in ids if fps[i].thumb is None]
    for lo in range(0, len(wanted), CHUNK):
        chunk = wanted[lo:lo + CHUNK]
        for image_id, thumb in session.execute(select(Image.id, Image.fingerprint).where(Image.id.in_(chunk))):
            fps[image_id].thumb = thumb


def existing_index(session: Session) -> tuple[dedup.DuplicateIndex, dict[int, Fingerprint]]:
    """The active images as a DuplicateIndex (for checking new images against them) and their fingerprints, with
    their thumbnails: a new picture's nearest signatures among them are candidates too (``dedup.NEIGHBOURS``)."""
    fps = load_hashes(session, ACTIVE)
    load_thumbs(session, fps, list(fps))
    index = dedup.DuplicateIndex()
    index.add(fps)
    return index, fps


# --- fingerprints of older indexes ---------------------------------------------------------------------------
# Fingerprints of an older version (1: a bare 12,288-byte thumbnail and hashes of the whole canvas; 2: a trim that
# kept some borders; 3: a margin's last line kept where the work image blends it; 4: outlines and edges touching an
# added border peeled as if they blended two margins) cannot be compared with current ones. They are recognised by
# their length (each version has its own; SQLite reads a blob's length from its record header, so the check is cheap)
# and recomputed from the stored files once, before anything compares them: after an upgrade, every image's.

OLD_VERSION = "updating fingerprints of an older version (once after an upgrade)"
REFRESH_CHUNK = 500  # files recomputed and written per transaction (no lock or idle transaction held for minutes)


class Refreshed(NamedTuple):
    recomputed: int
    unreadable: int  # files that could not be read: their old thumbnail was restamped as current


def _old_version():
    """The images whose stored fingerprint is of an older version (its length tells: see above)."""
    return (Image.fingerprint.is_not(None), func.length(Image.fingerprint) != FINGERPRINT_BYTES)


def old_fingerprints(session: Session) -> int:
    """How many images still have a fingerprint of an older version (the pages send a large number to a job)."""
    return session.scalar(select(func.count()).select_from(Image).where(*_old_version())) or 0


def refresh_fingerprints(session: Session, store: ImageStore,
                         progress: Callable[[int, int], None] | None = None) -> Refreshed:
    """Recompute every fingerprint older than the current version from its stored file, REFRESH_CHUNK files per
    committed transaction, no transaction open while files are read (PostgreSQL ends one idle for 60 s, and SQLite's
    write lock would stop every other writer for as long). The session must hold no pending changes.

    A file that cannot be read keeps its old thumbnail, restamped as current: it is still compared, less well, and
    is not tried again on every visit (pages send many old fingerprints to a job: one that stayed old would send
    every visit there). `progress(done, total)` follows the files (every image's once after an upgrade: about 870
    files a second on two cores, 2 minutes at 100,000)."""
    from curator.imports.hashing import FingerprintError, fingerprint_many, restamped

    if session.new or session.dirty or session.deleted:
        raise RuntimeError("refresh_fingerprints commits as it goes: call it with no pending changes")
    rows = session.execute(select(Image.id, Image.path).where(*_old_version())).all()
    session.commit()  # ends the read: nothing is held while the files are read
    recomputed = unreadable = counted = 0

    def advance(files: int) -> None:
        nonlocal counted
        counted += files
        progress(counted, len(rows))

    for lo in range(0, len(rows), REFRESH_CHUNK):
        chunk = rows[lo:lo + REFRESH_CHUNK]
        fps = fingerprint_many([store.absolute(p) for _, p in chunk], on_error="return",
                               progress=SimpleNamespace(update=advance) if progress is not None else None)
        try:
            fresh = {image_id: fp for (image_id, _), fp in zip(chunk, fps)}
            # another job may have done some meanwhile; one statement per kind of change, not one per image
            still_old = session.scalars(select(Image.id).where(Image.id.in_(fresh), *_old_version())).all()
            done = [i for i in still_old if not isinstance(fresh[i], FingerprintError)]
            failed = [i for i in still_old if isinstance(fresh[i], FingerprintError)]
            if done:
                session.execute(_update_by_id("phash", "dhash", "fingerprint"),
                                [{"image_id": i, "new_phash": fresh[i].phash, "new_dhash": fresh[i].dhash,
                                  "new_fingerprint": fresh[i].thumb} for i in done])
            if failed:
                kept = session.execute(select(Image.id, Image.fingerprint, Image.width, Image.height)
                                       .where(Image.id.in_(failed))).all()
                session.execute(_update_by_id("fingerprint"),
                                [{"image_id": i, "new_fingerprint": restamped(fp, (w, h))} for i, fp, w, h in kept])
            recomputed, unreadable = recomputed + len(done), unreadable + len(failed)
            session.commit()
        except BaseException:
            session.rollback()
            raise
    if recomputed or unreadable:
        _forget_kept(store)  # matches found with the old fingerprints
    return Refreshed(recomputed, unreadable)


def _update_by_id(*columns: str):
    """UPDATE image SET each column = :new_<column> WHERE id = :image_id and the fingerprint is still old, for many
    rows at once (executemany)."""
    table = Image.__table__
    return (update(table).where(table.c.id == bindparam("image_id"), *_old_version())
            .values({c: bindparam(f"new_{c}") for c in columns}))


def search_needs_a_job(session: Session, store: ImageStore, hash_threshold: int, limit: int) -> bool:
    """Whether the review's search must run as a job rather than in a request of at most `limit` images' work:
    more active images than that and no kept search, or fingerprints of an older version to recompute first (which
    also ends a kept search), or more of those than that (of any status: all are recomputed)."""
    kept, count = search_is_kept(session, store, hash_threshold)
    old = old_fingerprints(session)
    return (count > limit and (not kept or old > 0)) or old > limit


def run_refresh_job(job) -> dict:
    """Fingerprints of an older version recomputed in their own process (core.jobs target), for a page that needs
    them current and found too many to recompute in a request."""
    with job.session() as session:
        done = refresh_fingerprints(session, ImageStore(job.instance),
                                    progress=lambda files, total: job.progress(files, total, OLD_VERSION))
        return done._asdict()


# --- finding groups ------------------------------------------------------------------------------------------

# The confirm stage costs seconds per thousand candidate pairs, and a pair's verdict never changes (fingerprints
# are immutable), so the matches found over a set of active images are kept: while the active set stays a subset
# of it (resolving groups, undoing resolutions), the groups are regrouped from the kept matches instead of re-run.
_MATCHES: "OrderedDict[tuple, tuple[frozenset, list]]" = OrderedDict()
_MATCHES_LOCK = threading.Lock()
_MATCHES_KEPT = 32  # one per scope (the whole dataset, each ranked class) and setting


def _regroup(matches: list, active: set) -> list[dedup.Group]:
    """Groups from the matches between active images."""
    return dedup.groups_from_matches(dedup.matches_among(matches, active))


def _matches(session: Session, store: ImageStore | None, fps: dict[int, Fingerprint], hash_threshold: int,
             confirm_threshold: float, scope: object = "all") -> list:
    active = frozenset(fps)
    slot = (str(session.get_bind().url), scope, store is not None, hash_threshold, confirm_threshold)
    cached = _cached(slot, store, active)
    if cached is not None:
        return cached
    load_thumbs(session, fps, list(fps))  # any picture may be another's nearest signature, not only hash candidates
    matches: list = []  # every match found, so that regrouping after a resolution can use those no group kept
    dedup.find_duplicate_groups(fps, hash_threshold=hash_threshold, confirm_threshold=confirm_threshold,
                                all_matches=matches)
    if store is not None:
        matches = upgrade_same_pixels(session, store, matches)
    _keep(slot, store, active, matches)
    return matches


def _usable(entry: tuple[frozenset, list] | None, active: frozenset) -> bool:
    """Kept matches answer for `active` while it is a subset of the images they were found among (resolutions and
    undos only shrink or restore it; a new image needs a new search). Equal pictures whose link ran through one
    that left are linked again when regrouping (``matching.matches_among``)."""
    return entry is not None and active <= entry[0]


# The kept matches also live on disk (instance/cache/dedup), so every server worker, a restarted server and the
# job that searched (its own process) share one search: reopening /duplicates/ is instant.
CACHE_FOLDER = ("cache", "dedup")


def _cache_file(slot: tuple, store: ImageStore) -> Path:
    key = hashlib.sha256(json.dumps([str(x) for x in slot]).encode()).hexdigest()[:24]
    return store.root.joinpath(*CACHE_FOLDER, f"{key}.json")


def _cached(slot: tuple, store: ImageStore | None, active: frozenset) -> list | None:
    with _MATCHES_LOCK:
        entry = _MATCHES.get(slot)
    if _usable(entry, active):
        return entry[1]
    if store is None:
        return None
    try:
        data = json.loads(_cache_file(slot, store).read_text())
        entry = (frozenset(data["active"]), [dedup.Match(**m) for m in data["matches"]])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not _usable(entry, active):
        return None
    _remember(slot, entry)
    return entry[1]


def _remember(slot: tuple, entry: tuple[frozenset, list]) -> None:
    with _MATCHES_LOCK:
        _MATCHES[slot] = entry
        _MATCHES.move_to_end(slot)
        while len(_MATCHES) > _MATCHES_KEPT:
            _MATCHES.popitem(last=False)


def _keep(slot: tuple, store: ImageStore | None, active: frozenset, matches: list) -> None:
    _remember(slot, (active, matches))
    if store is None:
        return
    path = _cache_file(slot, store)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"active": sorted(active), "matches": [dataclasses.asdict(m) for m in matches]}
    write_atomic(path, json.dumps(payload, default=_plain), durable=False)


def _plain(value):
    """numpy scalars (distances, scores) as Python numbers for JSON."""
    return value.item() if hasattr(value, "item") else str(value)


def _forget_kept(store: ImageStore | None) -> None:
    with _MATCHES_LOCK:
        _MATCHES.clear()
    if store is not None:
        for path in store.root.joinpath(*CACHE_FOLDER).glob("*.json"):
            path.unlink(missing_ok=True)


def search_is_kept(session: Session, store: ImageStore, hash_threshold: int,
                   confirm_threshold: float = dedup.DEFAULT_CONFIRM_THRESHOLD) -> tuple[bool, int]:
    """(whether find_groups would answer from kept matches, how many active images there are): the page decides
    from it (``search_needs_a_job``) whether to search in the request or start a job."""
    fps = load_hashes(session, ACTIVE)
    slot = (str(session.get_bind().url), "all", True, hash_threshold, confirm_threshold)
    return _cached(slot, store, frozenset(fps)) is not None, len(fps)


def run_search_job(job) -> dict:
    """The duplicate search in its own process (core.jobs target): its matches are kept on disk for the pages."""
    with job.session() as session:
        job.progress(0, None, "checking that every fingerprint is current")
        store = ImageStore(job.instance)
        refresh_fingerprints(session, store, progress=lambda done, total: job.progress(done, total, OLD_VERSION))
        fps = load_hashes(session, ACTIVE)
        job.progress(0, 0, f"comparing {len(fps)} images")
        matches = _matches(session, store, fps, int(job.args["threshold"]), dedup.DEFAULT_CONFIRM_THRESHOLD)
        return {"images": len(fps), "matches": len(matches)}


# Where ratings come from. Ranking depends on this service (near duplicates meet head to head), so this service
# never imports ranking: the app's composition root plugs ranking's ratings in (app.create_app).
RatingsOf = Callable[[Session, Iterable[Image]], dict[int, tuple[float, int]]]
_ratings_source: RatingsOf | None = None


def use_ratings(source: RatingsOf | None) -> None:
    """Set where {image id: (rating, rank within its class)} come from; None: groups carry no ratings."""
    global _ratings_source
    _ratings_source = source


def class_groups(session: Session, class_id: int) -> list[dedup.Group]:
    """Unresolved duplicate groups among one class's active images (ranking makes their members meet head to head).
    Same detection and defaults as the review page, cached per class while its active images stay the same."""
    fps = load_hashes(session, ACTIVE, class_id)
    return _regroup(_matches(session, None, fps, dedup.DEFAULT_HASH_THRESHOLD, dedup.DEFAULT_CONFIRM_THRESHOLD,
                             scope=("class", class_id)), set(fps))


def find_groups(session: Session, store: ImageStore | None = None, *, refresh: bool = True,
                hash_threshold: int = dedup.DEFAULT_HASH_THRESHOLD,
                confirm_threshold: float = dedup.DEFAULT_CONFIRM_THRESHOLD,
                with_ratings: bool = True, ratings: RatingsOf | None = None) -> list[DupGroup]:
    """Duplicate groups among the active images, each with its suggested keeper. With the image `store`, near pairs
    that are the same pixels (JPEGs have no pixel hash from the import) are labelled so (see 'same pixels in another
    encoding' below), and fingerprints of an older version are recomputed first unless `refresh` is False (a request
    that must stay short: they are then compared as they are). Ratings (for the keeper rule and the page) come from
    `ratings`, or the source the app plugged in."""
    if store is not None and refresh:
        refresh_fingerprints(session, store)
    fps = load_hashes(session, ACTIVE)
    groups = _regroup(_matches(session, store, fps, hash_threshold, confirm_threshold), set(fps))
    if not groups:
        return []
    ids = [i for g in groups for i in g.members]
    images = {}
    for lo in range(0, len(ids), CHUNK):
        images.update({img.id: img for img in session.scalars(select(Image).where(Image.id.in_(ids[lo:lo + CHUNK])))})
    source = ratings or _ratings_source
    ratings = source(session, images.values()) if with_ratings and source else {}
    out = []
    for g in groups:
        closest: dict[int, int] = {}
        for m in g.matches:
            d = min(m.phash_distance, m.dhash_distance) if m.kind == "near" else 0
            for x in (m.a, m.b):
                closest[x] = min(closest.get(x, d), d)
        members = [Member(images[i], *ratings.get(i, (None, None)), distance=closest.get(i)) for i in g.members]
        keeper = suggest_keeper(members)
        links = {frozenset((m.a, m.b)): m for m in g.matches}
        for member in members:
            if member.id != keeper:
                member.why = links.get(frozenset((member.id, keeper))) or min(
                    (m for m in g.matches if member.id in (m.a, m.b)), key=dedup.match_order, default=None)
                member.why_smaller = _smaller_content(images, member.why)
        out.append(DupGroup(members, keeper, g.kind, g.max_distance, g.matches))
    return out


def _smaller_content(images: dict, match) -> int | None:
    """The smaller content side (px) of the two images of ``match`` (None if either fingerprint does not say)."""
    if match is None or match.a not in images or match.b not in images:
        return None
    sizes = [content_size(images[i].fingerprint) for i in (match.a, match.b)]
    return None if None in sizes else min(min(size) for size in sizes)


def why_text(match, other: int | None = None, smaller: int | None = None) -> str:
    """Why two images were grouped, in words (the review page and the CLI); ``other``: the image it ties this one to,
    ``smaller``: the smaller content side of the two (px), which tells whether the learned check decided (and, from
    RECOLOUR_FROM px, that the recolour check was passed)."""
    if match is None:
        return ""
    to = f" as #{other}" if other is not None else ""
    if match.kind == "exact":
        return f"the same file{to} (identical bytes)"
    if match.kind == "same-pixels":
        return f"the same pixels{to} in another encoding"
    # a score in the learned check's band was its verdict where the smaller picture is under 64 px, and from 64 px
    # up a confirmed score below its ceiling was shown to it, which may only veto; without the sizes the text says
    # the rule
    learned = ""
    if dedup.LEARNED_CHECK and dedup.LEARNED_FLOOR <= match.score < dedup.LEARNED_CEILING:
        if smaller is None:
            learned = f"; under {dedup.LEARNED_BELOW} px the learned check decides, from it up it may veto"
        elif smaller < dedup.LEARNED_BELOW:
            learned = f"; confirmed by the learned check, the smaller picture being {smaller} px"
        elif match.score >= dedup.DEFAULT_CONFIRM_THRESHOLD:
            learned = "; the learned check, which may veto such a pair, did not"
    if dedup.RECOLOUR_CHECK and smaller is not None and smaller >= dedup.RECOLOUR_FROM:
        learned += "; no coloured area changed colour"  # ``recoloured``: asked about every such pair confirmed
    distance = min(match.phash_distance, match.dhash_distance)
    nearest = ("; too far apart for the hashes, proposed as one of the pictures whose layout is nearest"
               if distance > dedup.DEFAULT_HASH_THRESHOLD else "")
    return (f"looks the same{to}: similarity {match.score:.2f} after aligning (needs "
            f"{dedup.DEFAULT_CONFIRM_THRESHOLD:.2f}{learned}), hash distance {distance} bits (pHash "
            f"{match.phash_distance}, dHash {match.dhash_distance}{nearest})")


def suggest_keeper(members: list[Member]) -> int:
    """Highest resolution of the content, then not JPEG, WebP or GIF, then best rating, then oldest (then lowest id):
    the curator.dedup.matching rule."""
    rows = sorted(({"id": m.id, "width": m.image.width, "height": m.image.height, "format": m.image.format,
                    "rating": m.rating, "created": m.image.created,
                    **dict(zip(("content_width", "content_height"), content_size(m.image.fingerprint) or ())),
                    } for m in members), key=lambda r: r["id"])
    return dedup.suggest_keeper(rows)["id"]


# --- resolving -----------------------------------------------------------------------------------------------

def _resolve(session: Session, member_ids: Iterable, keeper_id, *, actor: str = "", reason: str = "") -> Decision:
    """Mark every member but the keeper `duplicate` of it, as one undoable decision (`resolve` commits it).

    The members are what the user saw as one group; each must still be an active image (so a stale page cannot
    overwrite a later decision) and the keeper must be one of them. Raises DedupError otherwise.
    """
    try:
        ids = sorted({int(i) for i in member_ids})
        keeper_id = int(keeper_id)
    except (TypeError, ValueError):
        raise DedupError("image ids must be whole numbers") from None
    if len(ids) < 2:
        raise DedupError("a duplicate group needs at least two images")
    if keeper_id not in ids:
        raise DedupError(f"the keeper #{keeper_id} is not in the group ({', '.join(f'#{i}' for i in ids)})")
    images = {img.id: img for img in session.scalars(select(Image).where(Image.id.in_(ids)))}
    missing = [i for i in ids if i not in images]
    if missing:
        raise DedupError(f"unknown image {', '.join(f'#{i}' for i in missing)}: nothing was changed")
    inactive = [f"#{i} is {images[i].status}" for i in ids if images[i].status != ACTIVE]
    if inactive:
        raise DedupError(f"the group changed since it was shown ({'; '.join(inactive)}): nothing was changed; "
                         "reload the page")
    keeper = images[keeper_id]
    why = reason or f"duplicate of #{keeper_id}"
    changes = [(images[i], {"status": DUPLICATE, "duplicate_of_id": keeper_id, "status_reason": why})
               for i in ids if i != keeper_id]
    return record(session, "duplicate", changes, actor=actor, image_id=keeper.id)


resolve = transactional(_resolve)


@transactional
def resolve_all_suggested(session: Session, groups: list[DupGroup], *, actor: str = "") -> list[Decision]:
    """Resolve every group with its suggested keeper: one decision per group (each undoable alone), all in one
    transaction (a stale group changes nothing at all)."""
    return [_resolve(session, g.ids, g.keeper_id, actor=actor) for g in groups]


def recent_resolutions(session: Session, limit: int = 20) -> list[Decision]:
    """The latest duplicate resolutions that are not undone, for undo links."""
    return list(session.scalars(select(Decision).where(Decision.kind == "duplicate",
                                                       Decision.undone_by_id.is_(None))
                                .order_by(Decision.id.desc()).limit(limit)))


def group_summary(group: DupGroup) -> dict:
    """A group as plain data (the CLI's --json)."""
    return {"members": [{"id": m.id, "file": m.image.original_filename, "class": m.image.class_name,
                         "width": m.image.width, "height": m.image.height, "file_size": m.image.file_size,
                         "rating": m.rating, "rank": m.rank, "distance": m.distance,
                         "why": None if m.why is None else {"kind": m.why.kind, "score": round(float(m.why.score), 3),
                                                            "phash_distance": m.why.phash_distance,
                                                            "dhash_distance": m.why.dhash_distance,
                                                            "with": m.why_with, "text": m.why_text}}
                        for m in group.members],
            "keeper": group.keeper_id, "kind": group.kind, "max_distance": group.max_distance}


# --- calibration ---------------------------------------------------------------------------------------------

CALIBRATION_MAX_DISTANCE = 24  # pairs are sampled at hash distances 0..this
CALIBRATION_SAMPLE = 3000  # images considered (spread over the dataset): enough pairs per distance, bounded work


def pair_distance(a: Fingerprint | Image, b: Fingerprint | Image) -> int:
    """The stage-1 distance: the smaller of the pHash and dHash distances (a pair is proposed if either is close)."""
    from curator.dedup.nearsearch import hamming
    return int(min(hamming([a.phash], [b.phash])[0], hamming([a.dhash], [b.dhash])[0]))


def calibration_pairs(session: Session, *, labelled: Iterable[tuple[int, int]] | None = None,
                      max_distance: int = CALIBRATION_MAX_DISTANCE,
                      sample: int = CALIBRATION_SAMPLE) -> list[tuple[int, int, int]]:
    """(a, b, distance) pairs of active images to label (a < b), a few per distance up to `max_distance`, the
    labelled ones first (``calibration.pick_per_bucket``). Every pair of the sampled images is measured: a few
    thousand images take a fraction of a second, so each label's page answers at once."""
    from curator.dedup.calibration import pick_per_bucket
    from curator.dedup.nearsearch import as_uint64, brute_force_pairs
    fps = load_hashes(session, ACTIVE)
    labelled = labelled_pairs(session) if labelled is None else labelled
    ids = sorted(fps)
    if len(ids) > sample:  # a spread of them, and the images of labelled pairs (so those stay on offer)
        step = len(ids) / sample
        ids = sorted({ids[int(k * step)] for k in range(sample)} | {i for pair in labelled for i in pair if i in fps})
    pi, pj, pd = brute_force_pairs(as_uint64([fps[i].phash for i in ids]), max_distance,
                                   also=as_uint64([fps[i].dhash for i in ids]))
    id_of = np.array(ids, dtype=np.int64)
    keys = (id_of[pi] << 32) | id_of[pj]  # a pair's name, so its draw depends on its two images only
    known = np.array([(a << 32) | b for a, b in labelled], dtype=np.int64)
    chosen = pick_per_bucket(pd, max_distance=max_distance, preferred=np.isin(keys, known), keys=keys)
    return [(ids[pi[k]], ids[pj[k]], int(pd[k])) for k in chosen]


def labelled_pairs(session: Session) -> dict[tuple[int, int], bool]:
    from core.models import CalibrationLabel
    return {(lab.image_a_id, lab.image_b_id): lab.same for lab in session.scalars(select(CalibrationLabel))}


def next_calibration_pair(session: Session) -> tuple[tuple[int, int, int] | None, int, int]:
    """The first unlabelled pair in distance order, and (labelled so far, pairs offered)."""
    done = labelled_pairs(session)
    pairs = calibration_pairs(session, labelled=done)
    todo = [p for p in pairs if (p[0], p[1]) not in done]
    return (todo[0] if todo else None), len(pairs) - len(todo), len(pairs)


@transactional
def label_pair(session: Session, a, b, same: bool):
    """Store (or change) the user's verdict on a pair; the distance is computed here, not trusted from a form.
    Raises DedupError (nothing stored) for unknown or identical images."""
    from core.models import CalibrationLabel
    try:
        a, b = sorted((int(a), int(b)))
    except (TypeError, ValueError):
        raise DedupError("image ids must be whole numbers") from None
    if a == b:
        raise DedupError("a pair needs two different images")
    images = [session.get(Image, a), session.get(Image, b)]
    if None in images:
        raise DedupError(f"unknown image #{a if images[0] is None else b}: nothing was stored")
    if any(img.phash is None or img.dhash is None for img in images):
        raise DedupError("these images have no perceptual hashes")
    distance = pair_distance(*images)
    label = session.scalar(select(CalibrationLabel).where(CalibrationLabel.image_a_id == a,
                                                          CalibrationLabel.image_b_id == b))
    if label is None:
        label = CalibrationLabel(image_a_id=a, image_b_id=b, distance=distance, same=same)
        session.add(label)
    else:
        label.distance, label.same = distance, same
    return label


def calibration_result(session: Session):
    """Precision/recall per distance of the two-stage search on the stored labels, and the recommended threshold
    (curator.dedup.calibration). Each labelled pair is run through the confirm stage at the default setting."""
    from core.models import CalibrationLabel
    from curator.dedup.calibration import Label, calibrate
    labels = session.execute(select(CalibrationLabel.image_a_id, CalibrationLabel.image_b_id,
                                    CalibrationLabel.distance, CalibrationLabel.same)).all()
    confirmed = _confirmed(session, [(a, b) for a, b, _, _ in labels])
    return calibrate([Label(d, s, ok) for (_, _, d, s), ok in zip(labels, confirmed)],
                     default=dedup.DEFAULT_HASH_THRESHOLD, max_distance=CALIBRATION_MAX_DISTANCE)


def _confirmed(session: Session, pairs: list[tuple[int, int]]) -> list[bool]:
    """Whether the confirm stage accepts each pair (the same bytes or pixels always; a lost image never)."""
    if not pairs:
        return []
    ids = sorted({i for p in pairs for i in p})
    fps: dict[int, Fingerprint] = {}
    for lo in range(0, len(ids), CHUNK):
        for i, sha, px, ph, dh in session.execute(select(Image.id, Image.sha256, Image.pixel_hash, Image.phash,
                                                         Image.dhash).where(Image.id.in_(ids[lo:lo + CHUNK]))):
            fps[i] = Fingerprint(sha, px, ph, dh)
    load_thumbs(session, fps, list(fps))
    usable = [k for k, (a, b) in enumerate(pairs) if a in fps and b in fps and fps[a].thumb and fps[b].thumb]
    out = [False] * len(pairs)
    scores = dedup.confirm_scores([fps[pairs[k][0]].thumb for k in usable], [fps[pairs[k][1]].thumb for k in usable])
    for k, score in zip(usable, scores):
        a, b = fps[pairs[k][0]], fps[pairs[k][1]]
        same = a.sha256 == b.sha256 or (a.pixel_hash and a.pixel_hash == b.pixel_hash)
        out[k] = bool(same or score >= dedup.DEFAULT_CONFIRM_THRESHOLD)
    return out


def recent_labels(session: Session, limit: int = 5) -> list:
    """The latest calibration labels (for undo on the page)."""
    from core.models import CalibrationLabel
    return list(session.scalars(select(CalibrationLabel).order_by(CalibrationLabel.id.desc()).limit(limit)))


@transactional
def unlabel(session: Session, a, b) -> None:
    """Remove the user's verdict on a pair (undo a label); DedupError if there is none."""
    from core.models import CalibrationLabel
    try:
        a, b = sorted((int(a), int(b)))
    except (TypeError, ValueError):
        raise DedupError("image ids must be whole numbers") from None
    label = session.scalar(select(CalibrationLabel).where(CalibrationLabel.image_a_id == a,
                                                          CalibrationLabel.image_b_id == b))
    if label is None:
        raise DedupError(f"no label on the pair #{a} and #{b}: nothing was changed")
    session.delete(label)


# --- same pixels in another encoding ----------------------------------------------------------------------------
# Which near duplicates are really the same pixels in another encoding, for images without a pixel hash.
# 
# The import decodes JPEGs at reduced size (curator.imports.validation.reduced_decode), so they get no pixel hash there (nor
# do images indexed before the pixel hash became xxh3-128: migration 0003 cleared theirs). Two
# files with the same pixels are always proposed and confirmed as near duplicates (their fingerprints differ by at
# most the rounding of two reduced decodes), and only pictures of the same size can have the same pixels. So the exact
# check is done afterwards, on confirmed near pairs of equal size only: the missing pixel hashes are computed from a
# full decode of the stored file, and an equal pair becomes a `same-pixels` match. That costs a few full decodes per
# such pair instead of a full decode and a hash of every pixel of every JPEG at import.


def _stored(session: Session, store: ImageStore, ids: list) -> dict:
    """id -> (sorted size, pixel hash or None, reader of the file's bytes) for stored images."""
    out = {}
    for lo in range(0, len(ids), CHUNK):
        rows = session.execute(select(Image.id, Image.width, Image.height, Image.pixel_hash, Image.path)
                               .where(Image.id.in_(ids[lo:lo + CHUNK])))
        out.update({i: (tuple(sorted((w, h))), px, store.absolute(path).read_bytes) for i, w, h, px, path in rows})
    return out


def _unsaved(key, read: Callable[[], bytes]) -> tuple:
    """(sorted size from the header, None, reader) for a file not stored yet; size None if it cannot be read now."""
    try:
        data = read()
        with PILImage.open(io.BytesIO(data)) as img:
            return tuple(sorted(img.size)), None, lambda: data
    except Exception:  # unreadable now: it stays a near duplicate
        return None, None, None


def upgrade_same_pixels(session: Session, store: ImageStore, matches: Iterable,
                        unsaved: Mapping[Hashable, Callable[[], bytes]] | None = None) -> list:
    """`matches` (curator.dedup.matching.Match) with each near pair of equal size and equal pixels relabelled
    `same-pixels`.

    Ids are stored image ids, or keys of `unsaved` (files not stored yet, e.g. a merge dry run: key -> reader of the
    file's bytes). A file that cannot be read or decoded any more keeps its `near` label.
    """
    from curator.imports.hashing import pixel_hash_of_bytes  # numpy/scipy only when a search runs

    matches = list(matches)
    unsaved = unsaved or {}
    keys = {x for m in matches if m.kind == "near" for x in (m.a, m.b)}
    if not keys:
        return matches
    info = _stored(session, store, sorted(k for k in keys if k not in unsaved))
    info.update({k: _unsaved(k, unsaved[k]) for k in keys if k in unsaved})
    hashes: dict = {}

    def pixels_of(key) -> str | None:
        _size, pixel_hash, read = info[key]
        if pixel_hash is None and key not in hashes:
            try:
                hashes[key] = pixel_hash_of_bytes(read())
            except Exception:  # a missing or damaged file: it stays a near duplicate
                hashes[key] = None
        return pixel_hash or hashes.get(key)

    def size_of(key):
        return info[key][0] if key in info else None

    out = []
    for m in matches:
        if m.kind == "near" and size_of(m.a) is not None and size_of(m.a) == size_of(m.b):
            px_a = pixels_of(m.a)
            if px_a is not None and px_a == pixels_of(m.b):
                m = dataclasses.replace(m, kind="same-pixels", score=1.0)
        out.append(m)
    return out
