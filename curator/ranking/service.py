"""Database glue for ranking: stored answers in, ratings, next screens and selections out.

Why it exists: `rating.py` and `pairing.py` are pure maths over ids; the pages and the command line need them over
the index. Ratings are *derived*: for one class they are always `replay(universe, live comparisons)` where

- the live comparisons are the class's `Comparison` rows not undone, in stored (id) order (a pair answer, or a
  pick / an order on a screen of up to four images, one row each), and
- the universe is every image in those comparisons plus the class's active images, sorted by id.

`recompute()` does exactly that from scratch. `class_ratings()` gives the same numbers from a small in-memory cache
keyed by the live set (class, last live comparison id, how many, which were undone) and the universe, and folds new
answers in incrementally (the maths guarantees incremental == replay). Every request checks the key against the
database, so several workers and people ranking at once never see stale ratings for long — at worst they replay.

Only active, unflagged images of a class are shown and compete for its top-k; a flagged image ("neither belongs")
waits in triage. Every user change to images goes through `decisions.record` so it can be undone.
"""
from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping, NamedTuple, Sequence

import numpy as np
from sqlalchemy import String, case, cast, func, select
from sqlalchemy.orm import Session

from core.db import transactional
from core.history import UndoError, image_changes, record, undo
from core.models import ACTIVE, REJECTED, Comparison, Decision, Image, ImageClass, utcnow
from curator.dedup import service as dedup_service
from curator.imports.service import ClassCache
from curator.ranking.pairing import choose_set
from curator.ranking.rating import (
    OUTCOMES,
    Choice,
    Progress,
    Rating,
    RatingState,
    replay,
    settled_threshold,
    top_k_membership,
)

CONFIDENCE = 0.95  # a class is done when its whole top-k is right with this probability (rating.settled_threshold)
COVARIANCE_MAX = 1000  # images in a class up to which P(in top-k) uses the ratings' joint covariance
SCREEN_SIZES = (2, 3, 4)  # images on one screen: a pair, or "pick the best" of up to four
CHOICE_OUTCOMES = ("best", "order")  # an answer on a screen of several: the best only, or all of them in order
DEFAULT_K_CAP = 64  # a class without its own k ranks for min(64, half its images)
MAX_K = 1_000_000
NEITHER_KIND = "neither"  # Decision.kind of the flags a "neither belongs" answer sets
SELECT_KIND = "select"
TRIAGE_ACTIONS = ("keep", "reject", "relabel")
TRIAGE_QUEUES = ("flagged", "all")


class RankingError(ValueError):
    """Bad input from a person (unknown image, wrong class, bogus outcome, bad k ...); the message says which.
    Raised before anything is written, so nothing changes."""


# --- classes and k ---------------------------------------------------------------------------------------------

def get_class(session: Session, name: str) -> ImageClass | None:
    return session.scalar(select(ImageClass).where(ImageClass.name == name))


def default_k(n_images: int) -> int:
    return max(1, min(DEFAULT_K_CAP, n_images // 2))


def effective_k(image_class: ImageClass, n_images: int) -> int:
    """The class's k (or the default), at most the number of images competing."""
    k = image_class.top_k if image_class.top_k else default_k(n_images)
    return max(0, min(k, n_images))


def parse_k(raw) -> int:
    """A k typed by a person: a whole number from 1 to MAX_K, or RankingError saying what is wrong."""
    text = str(raw if raw is not None else "").strip()
    try:
        k = int(text)
    except ValueError:
        raise RankingError(f"k must be a whole number, got {text!r}") from None
    if k < 1:
        raise RankingError(f"k must be at least 1, got {k}")
    if k > MAX_K:
        raise RankingError(f"k must be at most {MAX_K}, got {k}")
    return k


@transactional
def set_top_k(session: Session, image_class: ImageClass, raw) -> int:
    """Store the class's k (a setting, not an image change: not in the decision log)."""
    k = parse_k(raw)
    image_class.top_k = k
    return k


# --- stored comparisons ----------------------------------------------------------------------------------------
# Reads here use Core on the session's connection (no ORM row loading): at thousands of rows per request that is
# several times cheaper, and these run on every answer.

_ROW = (Comparison.id, Comparison.left_id, Comparison.right_id, Comparison.outcome, Comparison.others,
        Comparison.picks)


class Row(NamedTuple):
    """One stored answer as the maths reads it: the answer is a pair answer (left, right, outcome) or a
    `rating.Choice(shown, picks)`; shown, the images on its screen."""
    id: int
    answer: tuple
    shown: tuple


def _row(values) -> Row:
    id_, left, right, outcome, others, picks = values
    if outcome in CHOICE_OUTCOMES:
        shown = (left, right, *(others or ()))
        return Row(id_, Choice(shown, tuple(picks or ())), shown)
    return Row(id_, (left, right, outcome), (left, right))


def load_comparisons(session: Session, class_id: int, *, after_id: int = 0, include_undone: bool = False) -> list[Row]:
    """The class's answers, in stored order."""
    q = select(*_ROW).where(Comparison.class_id == class_id, Comparison.id > after_id).order_by(Comparison.id)
    if not include_undone:
        q = q.where(Comparison.undone.is_(False))
    return [_row(values) for values in session.connection().execute(q)]


def active_images(session: Session, class_id: int) -> list[tuple[int, bool]]:
    """(id, flagged) of the class's active images, by id."""
    q = (select(Image.id, Image.flagged).where(Image.class_id == class_id, Image.status == ACTIVE)
         .order_by(Image.id))
    return [(i, bool(f)) for i, f in session.connection().execute(q)]


@dataclass(frozen=True)
class LiveKey:
    """Identifies the set of live comparisons of a class: every id up to `max_id` except the `undone` ones.
    (Undoing the latest answer gives back the key from before it, so the cache can answer from memory.)"""
    max_id: int
    count: int
    undone: frozenset


def live_key(session: Session, class_id: int) -> LiveKey:
    """One pass over the class's comparisons: last live id, how many are live, which were undone."""
    live_id = case((Comparison.undone.is_(False), Comparison.id))
    undone_id = case((Comparison.undone.is_(True), cast(Comparison.id, String)))
    max_id, count, undone = session.connection().execute(
        select(func.max(live_id), func.count(live_id), func.aggregate_strings(undone_id, ","))
        .where(Comparison.class_id == class_id)).one()
    max_id = max_id or 0
    undone_ids = frozenset(i for i in map(int, undone.split(",")) if i < max_id) if undone else frozenset()
    return LiveKey(max_id, count or 0, undone_ids)


def recompute(session: Session, class_id: int) -> RatingState:
    """Ratings from scratch, no cache: the definition the cached path must match."""
    comparisons = load_comparisons(session, class_id)
    universe = {i for i, _ in active_images(session, class_id)}
    universe.update(i for c in comparisons for i in c.shown)
    return replay(sorted(universe), [c.answer for c in comparisons])


def _rows_of(session: Session, class_id: int, key: "LiveKey", after_id: int = 0) -> list[Row]:
    """Exactly the live comparisons `key` names (after `after_id`), even if answers arrive meanwhile: rows are
    bounded by the key's last id and its undone set, so a cached state always holds what its key says."""
    q = (select(*_ROW).where(Comparison.class_id == class_id, Comparison.id > after_id, Comparison.id <= key.max_id)
         .order_by(Comparison.id))
    return [_row(values) for values in session.connection().execute(q) if values[0] not in key.undone]


# --- the ratings cache -----------------------------------------------------------------------------------------

@dataclass
class ClassRatings:
    """Derived ratings of one class at one live key (treat as read-only: it is shared between requests)."""
    key: LiveKey
    universe: frozenset
    state: RatingState
    mu: np.ndarray
    sigma: np.ndarray
    n: np.ndarray
    history: dict  # {pair_key(a, b): times shown together}, every live answer ("neither" too)
    compared: frozenset  # images in at least one live answer

    @property
    def index(self) -> dict:
        return self.state.index

    def rating(self, image_id: int) -> Rating:
        i = self.state.index[image_id]
        return Rating(float(self.mu[i]), float(self.sigma[i]), int(self.n[i]))


_CACHE: "OrderedDict[tuple, tuple[list[ClassRatings], threading.Lock]]" = OrderedDict()
_LOCK = threading.Lock()
_CLASSES_CACHED = 64  # classes kept (per process)
_STATES_PER_CLASS = 4  # recent live sets per class, so undoing an answer is served from memory
stats = {"hits": 0, "incremental": 0, "replays": 0}  # how the cache answered (tests and benchmarks read it)


def _finish(key: LiveKey, universe: frozenset, state: RatingState, history: dict,
            compared: frozenset) -> ClassRatings:
    mu, sigma, n = state.arrays()
    return ClassRatings(key, universe, state, mu, sigma, n, history, compared)


def pair_key(a: int, b: int) -> int:
    """One int per unordered pair of image ids. Counts are kept under int keys, not frozensets: tens of thousands
    of small container objects in a long-lived cache make every garbage collection pass slow."""
    return (a << 32) | b if a < b else (b << 32) | a


def _history(comparisons: Iterable[Row], base: dict | None = None) -> dict:
    counts = dict(base) if base else {}
    for c in comparisons:
        for a, b in itertools.combinations(c.shown, 2):
            key = pair_key(a, b)
            counts[key] = counts.get(key, 0) + 1
    return counts


def class_ratings(session: Session, class_id: int, active: Iterable[int] | None = None) -> ClassRatings:
    """Current ratings of a class, from the cache when the live comparisons and the universe are unchanged,
    by folding in new answers when only answers were added, and by replaying otherwise.

    `active`: the class's active image ids if the caller has just read them (saves reading them again).
    """
    active = set(active) if active is not None else {i for i, _ in active_images(session, class_id)}
    slot = (str(session.get_bind().url), class_id)
    with _LOCK:  # the table of classes; each class has its own lock so one replay does not hold up the others
        entries, lock = _CACHE.pop(slot, None) or ([], threading.Lock())
        _CACHE[slot] = (entries, lock)  # most recently used last
        while len(_CACHE) > _CLASSES_CACHED:
            _CACHE.popitem(last=False)
    for _attempt in range(3):
        key = live_key(session, class_id)
        with lock:
            for entry in entries:
                if entry.key == key and _universe_ok(entry, active):
                    stats["hits"] += 1
                    return entry
            result = _incremental(session, class_id, key, active, entries)
            if result is not None:
                stats["incremental"] += 1
            else:
                comparisons = _rows_of(session, class_id, key)
                if len(comparisons) != key.count:
                    continue  # the key changed under us (an answer committed out of id order): read it again
                compared = frozenset(i for c in comparisons for i in c.shown)
                universe = frozenset(active) | compared
                state = replay(sorted(universe), [c.answer for c in comparisons])
                result = _finish(key, universe, state, _history(comparisons), compared)
                stats["replays"] += 1
            entries.insert(0, result)
            del entries[_STATES_PER_CLASS:]
            return result
    raise RuntimeError(f"the comparisons of class {class_id} kept changing while being read; try again")


def _universe_ok(entry: ClassRatings, active: set) -> bool:
    """The universe is compared images + active ones: an uncompared image that left the class changes it."""
    return entry.universe == active | entry.compared


def _incremental(session, class_id, key: LiveKey, active: set, entries) -> ClassRatings | None:
    """Extend a cached state whose live set is a prefix of the current one (only new answers since)."""
    for entry in entries:
        old = entry.key
        if not (old.max_id < key.max_id and {u for u in key.undone if u < old.max_id} == old.undone):
            continue
        new = _rows_of(session, class_id, key, after_id=old.max_id)
        if old.count + len(new) != key.count:
            continue
        touched = frozenset(i for c in new for i in c.shown)
        if not (touched <= entry.universe and _universe_ok(entry, active)):
            continue  # a new image joined (or an uncompared one left): replay with the new universe
        state = entry.state.copy()
        for c in new:
            state.apply(c.answer)
        return _finish(key, entry.universe, state, _history(new, entry.history), entry.compared | touched)
    return None


def clear_cache() -> None:
    with _LOCK:
        _CACHE.clear()


# --- one class as a request sees it ----------------------------------------------------------------------------

@dataclass
class ClassView:
    """Everything one request needs about a class, read once: ratings, which images compete, k, P(top-k)."""
    image_class: ImageClass
    ratings: ClassRatings
    active: list[tuple[int, bool]]  # (id, flagged) of active images
    competing: np.ndarray  # ids of active, unflagged images
    k: int
    p_top: np.ndarray  # P(in top-k) of each competing image (see class_view)
    covariance: np.ndarray | None = field(default=None, repr=False)  # of the competing images' ratings, if known
    _competing_ratings: dict | None = field(default=None, repr=False)

    @property
    def competing_ratings(self) -> dict[int, Rating]:
        """{id: Rating} of the competing images, as pairing.choose_pair takes them."""
        if self._competing_ratings is None:
            idx = np.array([self.ratings.index[i] for i in self.competing.tolist()], dtype=np.intp)
            rows = zip(self.ratings.mu[idx].tolist(), self.ratings.sigma[idx].tolist(),
                       self.ratings.n[idx].tolist())
            self._competing_ratings = dict(zip(self.competing.tolist(), map(Rating._make, rows)))
        return self._competing_ratings

    @property
    def threshold(self) -> float:
        """P(in top-k) above which a top place is settled: all k settled means the top-k is right with CONFIDENCE."""
        return settled_threshold(self.k, CONFIDENCE)

    @property
    def progress(self) -> Progress:
        """How many of the k top places are settled (P > `threshold`), as rating.settled_progress counts them."""
        settled_in = int(np.sum(self.p_top > self.threshold))
        settled = settled_in + int(np.sum(self.p_top < 1.0 - self.threshold))
        return Progress(min(settled_in, self.k), self.k, settled, len(self.competing))


def class_view(session: Session, image_class: ImageClass) -> ClassView:
    """P(in top-k) is `rating.top_k_membership`: each image's margin over the top-k boundary with the ratings'
    joint covariance (cached with the ratings, one O(n^3) inverse per new answer; up to COVARIANCE_MAX images), or
    beyond that the O(n) mean-field estimate. Leaderboard, counter, "class done" and selection all read it."""
    active = active_images(session, image_class.id)
    cr = class_ratings(session, image_class.id, (i for i, _ in active))
    competing = np.array([i for i, f in active if not f], dtype=np.int64)
    k = effective_k(image_class, len(competing))
    idx = np.array([cr.index[i] for i in competing.tolist()], dtype=np.intp)
    if not len(idx):
        return ClassView(image_class, cr, active, competing, k, np.zeros(0))
    covariance = cr.state.covariance(COVARIANCE_MAX)
    if covariance is not None:
        covariance = covariance[np.ix_(idx, idx)]
    p = top_k_membership(cr.mu[idx], cr.sigma[idx], k, covariance)
    return ClassView(image_class, cr, active, competing, k, p, covariance)


# --- standings: leaderboard, progress counter, export ----------------------------------------------------------

@dataclass
class Standing:
    image_id: int
    mu: float
    sigma: float
    comparisons: int
    p_top: float | None  # None for a flagged image (it does not compete until triaged)
    flagged: bool
    rank: int | None  # 1-based by rating among the competing images; None for a flagged image


@dataclass
class Standings:
    image_class: ImageClass
    k: int
    rows: list[Standing]  # the competing images, best first: the first k are the top-k
    review: list[Standing]  # flagged images ("neither belongs"), best first: outside the top-k until triaged
    progress: Progress
    answers: int  # live answers in the class ("neither" included)
    competing: int  # active, unflagged images
    flagged: int  # active images flagged "neither belongs", waiting for triage
    view: ClassView = field(repr=False)


def standings(session: Session, image_class: ImageClass, view: ClassView | None = None,
              limit: int | None = None) -> Standings:
    """Competing images best first with rating ± uncertainty, comparisons and P(in top-k), ranked among themselves
    so the top-k never holds a flagged image; flagged images apart, unranked, for review.
    `limit`: only the first competing rows (the counter needs none, a page a few hundred)."""
    view = view or class_view(session, image_class)
    cr = view.ratings
    ids = np.array([i for i, _ in view.active], dtype=np.int64)
    idx = np.array([cr.index[i] for i in ids.tolist()], dtype=np.intp)
    order = np.lexsort((ids, -cr.mu[idx]))  # best first, ties by id
    flagged = {i for i, f in view.active if f}
    p_of = dict(zip(view.competing.tolist(), view.p_top.tolist()))
    rows: list[Standing] = []
    review: list[Standing] = []
    for j in order.tolist():
        image_id, i = int(ids[j]), int(idx[j])
        is_flagged = image_id in flagged
        into = review if is_flagged else rows
        if not is_flagged and limit is not None and len(rows) >= limit:
            continue
        into.append(Standing(image_id, float(cr.mu[i]), float(cr.sigma[i]), int(cr.n[i]), p_of.get(image_id),
                             is_flagged, None if is_flagged else len(rows) + 1))
    return Standings(image_class, view.k, rows, review, view.progress, cr.key.count, len(view.competing),
                     len(flagged), view)


def ratings_within_class(session: Session, images: Iterable[Image]) -> dict[int, tuple[float, int]]:
    """{image id: (rating, rank within class)} for images whose class has ratings and which were compared: what the
    duplicate review shows and its keeper rule uses (the app plugs it into curator.dedup.service)."""
    wanted: dict[int, set[int]] = {}
    for img in images:
        if img.class_id is not None:
            wanted.setdefault(img.class_id, set()).add(img.id)
    out: dict[int, tuple[float, int]] = {}
    for class_id, ids in wanted.items():
        ratings = class_ratings(session, class_id)
        compared = sorted((i for i in ratings.index if i in ratings.compared),
                          key=lambda i: -ratings.rating(i).mu)
        rank = {i: n + 1 for n, i in enumerate(compared)}
        for i in ids:
            if i in rank:
                out[i] = (ratings.rating(i).mu, rank[i])
    return out


def ranked_images(session: Session, image_class: ImageClass, images: list[Image]) -> list[Image]:
    """Images of a class best first, by the rules every page uses: hand-selected ones first, then by the class's
    current rating (the same cached Bradley–Terry ratings as the leaderboard), then oldest first. Snapshots' top-k
    reads this."""
    cr = class_ratings(session, image_class.id)
    mu = {image_id: float(cr.mu[i]) for image_id, i in cr.index.items()}
    return sorted(images, key=lambda img: (not img.selected, -mu.get(img.id, 0.0), img.id))


def answers_by(session: Session, class_id: int, actor: str) -> int:
    return session.scalar(select(func.count(Comparison.id)).where(
        Comparison.class_id == class_id, Comparison.actor == actor, Comparison.undone.is_(False))) or 0


# --- choosing what to show ------------------------------------------------------------------------------------

class _PendingCounts(Mapping):
    """The stored pair counts plus the pairs of screens already shown but not answered yet, without copying the
    counts, as `choose_set` reads them: {frozenset({a, b}): count}."""

    def __init__(self, base: dict, pending: Iterable[Sequence[int]]):
        self.base = base
        self.extra: dict = {}
        for screen in pending:
            for a, b in itertools.combinations(screen, 2):
                key = pair_key(a, b)
                self.extra[key] = self.extra.get(key, 0) + 1

    def get(self, pair, default=0):
        if len(pair) != 2:
            return default
        a, b = pair
        key = pair_key(a, b)
        return self.base.get(key, 0) + self.extra.get(key, 0) or default

    def __getitem__(self, pair):
        count = self.get(pair)
        if not count:
            raise KeyError(pair)
        return count

    def __iter__(self) -> Iterator:
        for key in list(self.extra) + [k for k in self.base if k not in self.extra]:
            yield frozenset((key >> 32, key & 0xFFFFFFFF))

    def __len__(self) -> int:
        return len(self.base) + sum(1 for k in self.extra if k not in self.base)


def duplicate_groups(session: Session, class_id: int) -> list[set[int]] | None:
    """Unresolved near-duplicate groups among the class's active images, so their members meet head to head: the
    answer tells which copy to keep. From the duplicate search (curator.dedup.service.class_groups, cached per class
    while its active images stay the same). None when there are no groups."""
    return [set(g.members) for g in dedup_service.class_groups(session, class_id)] or None


def next_screens(session: Session, image_class: ImageClass, *, size: int = 2, count: int = 2,
                 first: Sequence[int] | None = None, pending: Iterable[Sequence[int]] = (),
                 rng: np.random.Generator | int | None = None, view: ClassView | None = None) -> list[tuple[int, ...]]:
    """`count` screens of `size` images (or as many as compete) to show in turn: the current one (`first` if it is
    still valid) and the ones to prefetch.

    Screens on show (`pending`) and the ones chosen before count as asked, so a pair of images is not shown
    together twice in a row. Returns [] when fewer than two images compete.
    """
    view = view or class_view(session, image_class)
    ratings = view.competing_ratings
    if len(ratings) < 2:
        return []
    size = max(2, min(size, len(ratings)))
    rng = np.random.default_rng(rng)
    groups = duplicate_groups(session, image_class.id)
    screens: list[tuple[int, ...]] = []
    if first is not None and len(first) == size and len(set(first)) == size and all(i in ratings for i in first):
        screens.append(tuple(int(i) for i in first))
    pending = list(pending)
    while len(screens) < count:
        history = _PendingCounts(view.ratings.history, pending + screens)
        screen = choose_set(ratings, view.k, size, history=history, rng=rng, groups=groups,
                            covariance=view.covariance, settled=view.threshold, on_show=pending + screens)
        screens.append(tuple(int(i) for i in screen))
    return screens


def next_pairs(session: Session, image_class: ImageClass, **options) -> list[tuple[int, int]]:
    """`next_screens` of two images."""
    return next_screens(session, image_class, size=2, **options)


# --- answers ---------------------------------------------------------------------------------------------------

def _image_in_class(session: Session, image_id, image_class: ImageClass, role: str) -> Image:
    try:
        image_id = int(image_id)
    except (TypeError, ValueError):
        raise RankingError(f"{role} image must be an image number, got {image_id!r}") from None
    image = session.get(Image, image_id)
    if image is None:
        raise RankingError(f"there is no image #{image_id}")
    if image.class_id != image_class.id:
        raise RankingError(f"image #{image_id} is not in class {image_class.name!r} "
                           f"(it is in {image.class_name or 'no class'!r})")
    if image.status != ACTIVE:
        raise RankingError(f"image #{image_id} is {image.status}, not active: it no longer takes part")
    return image


@dataclass
class Answer:
    comparison: Comparison
    stored: bool  # False: the same answer was just stored (a double submit), nothing new was written


@transactional
def record_answer(session: Session, image_class: ImageClass, left_id, right_id, outcome: str,
                  actor: str) -> Answer:
    """Store one raw answer (and for "neither", flag both images as one undoable decision).

    Validates everything first (RankingError, nothing written). Repeating the actor's latest answer verbatim
    (a double click, a resent form) stores nothing new.
    """
    if outcome not in OUTCOMES:
        raise RankingError(f"unknown answer {outcome!r}: choose one of {', '.join(OUTCOMES)}")
    left = _image_in_class(session, left_id, image_class, "left")
    right = _image_in_class(session, right_id, image_class, "right")
    if left.id == right.id:
        raise RankingError(f"an image cannot be compared with itself (#{left.id})")
    last = last_answer(session, image_class.id, actor)
    if last is not None and (last.left_id, last.right_id, last.outcome) == (left.id, right.id, outcome):
        return Answer(last, stored=False)
    now = utcnow()
    comparison = Comparison(class_id=image_class.id, left_id=left.id, right_id=right.id, outcome=outcome,
                            actor=actor, created=now)
    session.add(comparison)
    if outcome == "neither":
        changes = image_changes([left, right], flagged=True)
        if changes:
            decision = record(session, NEITHER_KIND, changes, actor=actor, image_id=left.id)
            decision.created = now  # the link back from the comparison (see undo_last_answer)
    return Answer(comparison, stored=True)


def parse_ids(raw, what: str) -> list[int]:
    """Image numbers typed or posted: a list of strings, or one string separated by commas or spaces."""
    parts = raw if isinstance(raw, (list, tuple)) else [raw]
    text = [p for part in parts if part is not None for p in str(part).replace(",", " ").split()]
    try:
        return [int(p) for p in text]
    except ValueError:
        raise RankingError(f"the {what} must be image numbers, got {' '.join(text)!r}") from None


@transactional
def record_choice(session: Session, image_class: ImageClass, shown_raw, picks_raw, actor: str) -> Answer:
    """Store one answer on a screen of several images: `shown_raw` the images on it (2 to 4, in screen order),
    `picks_raw` the best one, or all of them best first (the last may be left out: it is implied).

    Validates everything first (RankingError, nothing written). Repeating the actor's latest answer verbatim
    (a double click, a resent form) stores nothing new.
    """
    shown = parse_ids(shown_raw, "images shown")
    picks = parse_ids(picks_raw, "picked images")
    if not SCREEN_SIZES[0] <= len(shown) <= SCREEN_SIZES[-1]:
        raise RankingError(f"a screen shows {SCREEN_SIZES[0]} to {SCREEN_SIZES[-1]} images, got {len(shown)}")
    if len(set(shown)) != len(shown):
        raise RankingError("an image was shown twice on one screen")
    images = [_image_in_class(session, i, image_class, "each shown") for i in shown]
    if not picks:
        raise RankingError("pick the best image (1 to 4)")
    if len(set(picks)) != len(picks):
        raise RankingError("an image was picked twice")
    strangers = [i for i in picks if i not in shown]
    if strangers:
        raise RankingError(f"image #{strangers[0]} was not on the screen")
    if 1 < len(picks) < len(shown) - 1:
        raise RankingError(f"put all {len(shown)} images in order, or pick only the best")
    outcome = "best" if len(picks) == 1 and len(shown) > 2 else "order"
    if outcome == "order" and len(picks) == len(shown) - 1:
        picks.append(next(i for i in shown if i not in picks))
    last = last_answer(session, image_class.id, actor)
    if last is not None and (last.outcome, last.picks, shown_on(last)) == (outcome, picks, shown):
        return Answer(last, stored=False)
    comparison = Comparison(class_id=image_class.id, left_id=images[0].id, right_id=images[1].id, outcome=outcome,
                            others=shown[2:], picks=picks, actor=actor, created=utcnow())
    session.add(comparison)
    return Answer(comparison, stored=True)


def shown_on(comparison: Comparison) -> list[int]:
    """The images a stored answer's screen showed, in screen order."""
    return [comparison.left_id, comparison.right_id, *(comparison.others or ())]


def describe(comparison: Comparison) -> str:
    """An answer in words, for messages: "#3 vs #5 (left)", "#4 best of #4, #9, #2, #7"."""
    if comparison.outcome in CHOICE_OUTCOMES:
        shown = ", ".join(f"#{i}" for i in shown_on(comparison))
        if comparison.outcome == "best":
            return f"#{comparison.picks[0]} best of {shown}"
        return f"{' > '.join(f'#{i}' for i in comparison.picks)} (of {shown})"
    return f"#{comparison.left_id} vs #{comparison.right_id} ({comparison.outcome})"


def last_answer(session: Session, class_id: int, actor: str) -> Comparison | None:
    return session.scalar(select(Comparison).where(
        Comparison.class_id == class_id, Comparison.actor == actor, Comparison.undone.is_(False))
        .order_by(Comparison.id.desc()).limit(1))


@dataclass
class Undone:
    comparison: Comparison
    note: str = ""  # e.g. why the flags of a "neither" answer were left as they are


@transactional
def undo_last_answer(session: Session, image_class: ImageClass, actor: str) -> Undone | None:
    """Take back this actor's latest answer in the class (others' answers are untouched).

    The comparison row stays, marked undone (the audit trail keeps it). For "neither", the flags it set are
    undone through the decision log; if they were changed since, they stay and the note says so. None when the
    actor has nothing to undo.
    """
    comparison = last_answer(session, image_class.id, actor)
    if comparison is None:
        return None
    comparison.undone = True
    note = ""
    if comparison.outcome == "neither":
        decision = session.scalar(select(Decision).where(
            Decision.kind == NEITHER_KIND, Decision.image_id == comparison.left_id, Decision.actor == actor,
            Decision.created == comparison.created, Decision.undone_by_id.is_(None))
            .order_by(Decision.id.desc()).limit(1))
        if decision is not None:
            try:
                undo(session, decision, actor=actor)
            except UndoError as exc:
                note = f"The flags were left as they are: {exc}"
    return Undone(comparison, note)


# --- selection -------------------------------------------------------------------------------------------------

SELECT_MODES = ("settled", "threshold", "clear")


def parse_threshold(raw) -> float:
    text = str(raw if raw is not None else "").strip()
    try:
        value = float(text)
    except ValueError:
        raise RankingError(f"the rating threshold must be a number, got {text!r}") from None
    if not np.isfinite(value):
        raise RankingError(f"the rating threshold must be a finite number, got {text!r}")
    return value


@transactional
def select_images(session: Session, image_class: ImageClass, mode: str, threshold=None,
                  actor: str = "") -> tuple[Decision | None, int]:
    """Mark the class's selection for snapshots as one undoable decision.

    settled: the images whose top place is settled (P(in top-k) > ClassView.threshold); threshold: competing images rated at least `threshold`;
    clear: none. Every other image of the class loses its mark. Returns (decision or None if nothing changed,
    number selected).
    """
    if mode not in SELECT_MODES:
        raise RankingError(f"unknown selection {mode!r}: choose one of {', '.join(SELECT_MODES)}")
    value = parse_threshold(threshold) if mode == "threshold" else None
    table = standings(session, image_class)
    if mode == "settled":
        chosen = {r.image_id for r in table.rows if r.p_top is not None and r.p_top > table.view.threshold}
    elif mode == "threshold":
        chosen = {r.image_id for r in table.rows if not r.flagged and r.mu >= value}
    else:
        chosen = set()
    images = list(session.scalars(select(Image).where(Image.class_id == image_class.id)))
    changes = [c for img in images for c in image_changes([img], selected=img.id in chosen)]
    if not changes:
        return None, len(chosen)
    decision = record(session, SELECT_KIND, changes, actor=actor)
    return decision, len(chosen)


def last_selection(session: Session, image_class: ImageClass) -> Decision | None:
    """The latest selection decision for this class that can still be undone."""
    ids = {str(i) for i in session.scalars(select(Image.id).where(Image.class_id == image_class.id))}
    for decision in session.scalars(select(Decision).where(Decision.kind == SELECT_KIND)
                                    .order_by(Decision.id.desc()).limit(50)):
        if ids & set(decision.after.get("image", {})):
            return None if decision.undone_by_id else decision
    return None


# --- triage ----------------------------------------------------------------------------------------------------

@dataclass
class TriageView:
    image: Image | None
    upcoming: Image | None  # prefetched
    remaining: int  # in the queue from this image on


def triage_queue(session: Session, image_class: ImageClass, queue: str, start: int = 0) -> TriageView:
    """The image to triage: the first of the queue with id >= start (flagged: active flagged images; all: every
    active image), the one after it, and how many are left."""
    if queue not in TRIAGE_QUEUES:
        raise RankingError(f"unknown queue {queue!r}: choose one of {', '.join(TRIAGE_QUEUES)}")
    q = select(Image).where(Image.class_id == image_class.id, Image.status == ACTIVE)
    if queue == "flagged":
        q = q.where(Image.flagged.is_(True))
    head = list(session.scalars(q.where(Image.id >= start).order_by(Image.id).limit(2)))
    if not head:
        return TriageView(None, None, 0)
    remaining = session.scalar(select(func.count()).select_from(q.where(Image.id >= start).subquery()))
    return TriageView(head[0], head[1] if len(head) > 1 else None, remaining)


@transactional
def triage(session: Session, image_class: ImageClass, image_id, action: str, class_name: str = "",
           actor: str = "") -> Decision | None:
    """Keep (clears the flag), reject, or relabel one image of the class as an undoable decision.
    Returns None when nothing needed changing (keeping an unflagged image)."""
    if action not in TRIAGE_ACTIONS:
        raise RankingError(f"unknown triage action {action!r}: choose one of {', '.join(TRIAGE_ACTIONS)}")
    image = _image_in_class(session, image_id, image_class, "the")
    if action == "keep":
        changes = image_changes([image], flagged=False)
        kind = "keep"
    elif action == "reject":
        changes = image_changes([image], status=REJECTED, status_reason="rejected in triage", flagged=False)
        kind = "reject"
    else:
        try:
            target = ClassCache(session).get(class_name or "")
        except ValueError as exc:
            raise RankingError(str(exc)) from None
        session.flush()
        if target.id == image_class.id:
            raise RankingError(f"image #{image.id} is already in {image_class.name!r}")
        changes = image_changes([image], class_id=target.id, flagged=False)
        kind = "relabel"
    if not changes:
        session.rollback()
        return None
    decision = record(session, kind, changes, actor=actor, image_id=image.id)
    return decision


__all__ = ["RankingError", "get_class", "default_k", "effective_k", "parse_k", "set_top_k", "Row", "load_comparisons",
           "active_images", "LiveKey", "live_key", "recompute", "ClassRatings", "class_ratings", "clear_cache",
           "Standing", "Standings", "standings", "answers_by", "duplicate_groups", "next_screens",
           "next_pairs", "Answer", "record_answer", "parse_ids", "record_choice", "shown_on", "describe",
           "last_answer", "Undone", "undo_last_answer", "SELECT_MODES", "parse_threshold", "select_images",
           "last_selection", "TriageView", "triage_queue", "triage"]
