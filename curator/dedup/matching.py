"""Duplicate detection as pure functions: exact, same-pixels and near duplicates, grouped, with a keeper.

Two stages, because one perceptual hash cannot separate "the same picture, resized/cropped/
recompressed" from "another picture of the same subject in the same style":

1. **Propose**: pairs whose pHash is within ``hash_threshold`` bits or whose dHash is within 4 fewer (loose, found
   with the banded ``HammingIndex``, sub-quadratic). The hashes describe the picture's content: plain margins are
   trimmed first (curator.imports.hashing.content_box), so an added border or a wide empty field changes nothing.
2. **Confirm**: compare the aligned thumbnails (``ImageFingerprint.thumb``), at 32 px and at the detail of the
   smaller picture of the pair (half of it between different sizes, for renditions hand-tuned at each size).
   Crops and shifts of a few percent are undone by searching, per axis, the (left, right) offsets that best
   align the 1-D intensity profiles, in both directions. The aligned pair then gets one score from
   two terms: a *colour residual* after allowing a brightness change (one gain shared by the three
   channels, applied to the picture and optionally to its white background; measured on 2x2 cell
   means), which rejects recolourings (a red bird and the same bird in black) and shading changes;
   and the *worst local structure*, the mean of the worst 2 % of the SSIM contrast-structure map,
   which rejects two renderings of one outline (Fluent flat vs Fluent 3-D: hard edges and flat
   fills vs highlights and soft shading) even where their colours agree. A picture with little detail
   (``information``: a plain glyph, a line) is asked for more evidence.
   ``score = 1 - residual / 64 - w * (1 - worst structure) - info penalty >= confirm_threshold``.
   A pair that falls just short while one thumbnail has a frame at its edge that the other lacks (a border that
   JPEG or resampling blended, trimmed by the import up to a thin line) is compared again without the outer 2 px.
   A pair that passes without being a clear copy loses some score when the colours of one picture's flat areas are
   missing from the other's under every brightness gain (``flat_colours_differ``): the same emoji in another skin
   tone, or with one part recoloured, differs only in part of its area and otherwise scores like a JPEG copy.
   A pair of small pictures (under 64 px) whose score leaves it in doubt (0.5-0.9) is decided by a learned check
   (``curator.dedup.verifier``: a small network trained on other icon themes and emoji sets), which tells another
   hand-tuned rendition of an icon from a sibling of its family, and another skin tone from a copy, better than
   any threshold on the score. From 64 px up it may only veto a confirmed pair that is not a clear copy
   (0.7-0.9), when it is sure they differ (``LEARNED_VETO``); and a pair from 28 px up (``RECOLOUR_FROM``) is not
   confirmed when one coloured area of a few pixels changed colour while the rest kept its own (``recoloured``:
   another skin tone on one hand, which the residual averages away; under 64 px compared at the smaller picture's
   own size).
   The work goes where it is needed: a cheap 8x8 signature correlation skips hopeless candidates, each picture's
   closest few candidates are compared, and a 16 px first look settles the clear cases. Each picture's thumbnail
   is decoded once per search (``Thumbs``: one uint8 array, with each picture's content size and signature), not
   once per pair it is in.
3. **Group** (``groups_from_matches``): two groups join only when every pair across them matches directly, or when
   one picture of the joined group matches every other clearly (``KEEPER_MATCH``: copies of one picture by different
   edits), so pictures that are mostly background cannot chain unrelated pictures together.

Exact copies (same sha256) and the same pixels in another encoding (same pixel hash) are grouped
too, without the confirm stage. Inputs are "fingerprint-like" objects: anything with ``sha256``,
``pixel_hash``, ``phash``, ``dhash`` (signed or unsigned 64-bit ints) and ``thumb`` (bytes), e.g.
``curator.imports.hashing.ImageFingerprint`` or a database row. No Flask, no SQLAlchemy.

The defaults below were chosen on the tuning part of bench/dedup_set.py (bench/dedup_quality.py); its untouched
part was scored once, at the end.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace
from datetime import datetime
from itertools import combinations
from typing import Any, Hashable, Iterable, Mapping, NamedTuple, Sequence

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from curator.dedup.nearsearch import (
    HammingIndex,
    UnionFind,
    all_pairs_within,
    as_uint64,
    group_pairs,
    hamming,
    nearest_pairs,
)
from curator.dedup.verifier import default_verifier
from curator.imports.hashing import STORED_LENGTHS, THUMB_BYTES, THUMB_SIDE, content_size

__all__ = [
    "DEFAULT_HASH_THRESHOLD",
    "DEFAULT_CONFIRM_THRESHOLD",
    "MAX_CROP",
    "Match",
    "Group",
    "DuplicateIndex",
    "confirm_scores",
    "candidate_pairs",
    "find_duplicate_groups",
    "check_new",
    "groups_from_matches",
    "matches_among",
    "match_order",
    "suggest_keeper",
    "keeper_sort_key",
]

# Chosen on the tuning part of the benchmark (bench/dedup_set.py: icons, line art, pixel art, emoji, renders and
# photos with copies, renditions and look-alikes): see bench/dedup_quality.py for the figures per kind.
DEFAULT_HASH_THRESHOLD = 16  # loose stage 1: propose a pair if pHash is within this many bits, or dHash within
DHASH_TIGHTER = 4  # ... 4 fewer: dHash's 9x8 gradients of icons collide far more (at 20k icons it proposed 2.5x
# as many pairs as pHash; within 12 bits it still finds all but 0.7 % of the confirmed duplicates it found at 16)
DEFAULT_CONFIRM_THRESHOLD = 0.70  # stage 2: confirm score needed (see confirm_scores)
MAX_CROP = 0.06  # largest relative crop/shift per side the confirm stage undoes
_CROP_STEPS = 13  # per-side offsets tried: -MAX_CROP .. +MAX_CROP in 1 % steps
_SIDE = 32  # pairs are compared at 32x32: the 64 px thumbnail reduced (or matched to a smaller picture's detail)
_RESIDUAL_CELLS = 16  # colour residual measured on a 16x16 grid of cell means (2x2 px cells at 32 px)
_RESIDUAL_SCALE = 64.0  # grey levels of colour residual that bring the score from 1 to 0
_MAX_GAIN = 1.25  # brightness gain allowed between two copies (+-10 % each way is 1.22)
_GAIN_CLIP = 250.0  # values at or above this (clipped or background) do not vote for the gain
_WHITE = 230.0  # pixels whose darkest channel is this bright may be background (own gain or none)
_STRUCTURE_SIGMA = 0.75  # Gaussian window of the SSIM contrast-structure map, px at 32 px (SSIM's 1.5 at 64 px)
_SSIM_C2 = (0.03 * 255) ** 2  # SSIM's stabiliser: contrast below ~8 grey levels counts as flat
_STRUCTURE_WORST = 0.02  # fraction of the map (worst pixels) that the structure term averages
_STRUCTURE_WEIGHT = 0.1  # score lost per unit of (1 - worst local structure)
_STRUCTURE_WEIGHT_DETAILED = 0.25  # the same where both pictures are 64 px or more (structure is reliable there)
_REFINE_FLOOR = 0.5  # pairs whose colour score is below this both ways skip the structure term
_INFO_FULL = 10.0  # grey levels of mean neighbour difference (at 32 px) from which a picture has enough detail
_INFO_PENALTY = 0.2  # score taken from a pair whose plainer picture has no detail at all (linearly less up to full)

KINDS = ("exact", "same-pixels", "near")


@dataclass(frozen=True)
class Match:
    """One duplicate pair: ``a``/``b`` ids, kind ('exact', 'same-pixels', 'near'), distances, score."""

    a: Hashable
    b: Hashable
    kind: str
    phash_distance: int
    dhash_distance: int
    score: float  # confirm-stage similarity (1.0 for exact / same-pixels)


@dataclass
class Group:
    """Ids that are copies of one picture; ``kind`` is the weakest link ('near' beats 'same-pixels')."""

    members: list
    kind: str
    matches: list[Match] = field(default_factory=list)

    @property
    def max_distance(self) -> int:
        return max((min(m.phash_distance, m.dhash_distance) for m in self.matches), default=0)


# --------------------------------------------------------------------------- confirm stage


def _interp_matrices(n: int, max_crop: float = MAX_CROP, steps: int = _CROP_STEPS):
    """Linear-interpolation matrices mapping one thumbnail into the frame of another.

    (left, right) are the fractions the other picture lost (positive) or gained (negative, sampled
    at the clamped edge) on each side; crops of both copies in different places need both signs.
    """
    fracs = np.linspace(-max_crop, max_crop, steps)
    mats = []
    for left in fracs:
        for right in fracs:
            pos = (left + (np.arange(n) + 0.5) / n * (1.0 - left - right)) * n - 0.5
            pos = np.clip(pos, 0, n - 1)
            lo = np.floor(pos).astype(int)
            hi = np.minimum(lo + 1, n - 1)
            w = pos - lo
            m = np.zeros((n, n))
            m[np.arange(n), lo] += 1 - w
            m[np.arange(n), hi] += w
            mats.append(m)
    return np.stack(mats).astype(np.float32)


def _blur_matrix(n: int = _SIDE, sigma: float = _STRUCTURE_SIGMA) -> np.ndarray:
    """(n, n) Gaussian smoothing matrix (rows sum to 1): ``B @ img @ B.T`` blurs an image."""
    x = np.arange(n)
    g = np.exp(-0.5 * ((x[:, None] - x[None, :]) / sigma) ** 2)
    return (g / g.sum(axis=1, keepdims=True)).astype(np.float32)


_BLUR = _blur_matrix()


def _thumb_stack(thumbs) -> np.ndarray:
    """(N, S, S, 3) uint8 from a sequence of stored fingerprints (thumbnail bytes, optionally with the content size)."""
    blobs = list(thumbs)
    for i, t in enumerate(blobs):
        if t is None or len(t) not in STORED_LENGTHS:
            raise ValueError(f"thumbnail {i} has {0 if t is None else len(t)} bytes, expected one of {STORED_LENGTHS}")
    joined = b"".join(t if len(t) == THUMB_BYTES else memoryview(t)[:THUMB_BYTES] for t in blobs)
    return np.frombuffer(joined, dtype=np.uint8).reshape(-1, THUMB_SIDE, THUMB_SIDE, 3)


def _as_thumbs(thumbs) -> np.ndarray:
    """(N, 3, S, S) float32, contiguous (channels first), from a sequence of thumbnail bytes or an array."""
    arr = thumbs if isinstance(thumbs, np.ndarray) else _thumb_stack(thumbs)
    arr = arr.reshape(-1, THUMB_SIDE, THUMB_SIDE, 3).transpose(0, 3, 1, 2)
    return np.ascontiguousarray(arr, dtype=np.float32)


class Thumbs:
    """The confirm thumbnails of a set of pictures, decoded once for a whole search: one uint8 array (N, S, S, 3),
    each picture's content size, and its signature (made when first asked for). A picture is compared with many
    others (its candidates, then every member of a group it may join), so this is done once per picture, not once
    per pair; comparing two pictures then only reads two rows of the array."""

    def __init__(self, fps: Sequence):
        blobs = [fp.thumb for fp in fps]
        self.stack = _thumb_stack(blobs)
        self.sizes = _content_sizes(blobs)
        self._signatures = np.zeros((len(blobs), 3 * _SIGNATURE_CELLS ** 2), dtype=np.float32)
        self._signed = np.zeros(len(blobs), dtype=bool)
        self._colours: dict = {}

    def colours_differ(self, positions: np.ndarray, other: "Thumbs", other_positions: np.ndarray) -> np.ndarray:
        """``flat_colours_differ`` of the pairs (``positions[k]`` here, ``other_positions[k]`` in ``other``), each
        picture's flat colours found once per search."""
        return np.array([_colours_differ(self._colours_at(int(p)), other._colours_at(int(q)))
                         for p, q in zip(positions, other_positions)], dtype=bool)

    def _colours_at(self, position: int):
        if position not in self._colours:
            self._colours[position] = _flat_colours(self.stack[position])
        return self._colours[position]

    def signatures(self, positions: np.ndarray) -> np.ndarray:
        """(len(positions), 192) signatures of the pictures at ``positions``."""
        todo = np.unique(positions[~self._signed[positions]])
        for lo in range(0, todo.size, 4096):
            chunk = todo[lo:lo + 4096]
            self._signatures[chunk] = signatures(self.stack[chunk])
        self._signed[todo] = True
        return self._signatures[positions]


def _cell_matrix(n: int, cells: int) -> np.ndarray:
    """(cells, n) averaging matrix: ``P @ img @ P.T`` is the grid of cell means of an n x n image."""
    p = np.zeros((cells, n), dtype=np.float32)
    q = n // cells
    for c in range(cells):
        p[c, c * q : (c + 1) * q] = 1.0 / q
    return p




def _both_sides_t(stack: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``(a @ m @ a.T).T`` for every (S, S) matrix ``m`` of ``stack`` (..., S, S); ``a`` is (R, S).

    Two plain 2-D GEMMs instead of many small batched ones (much faster). The result comes out
    transposed; callers only take order-free statistics of it (sums, means, worst values).
    """
    *lead, s, _ = stack.shape
    once = (stack.reshape(-1, s) @ a.T).reshape(-1, s, a.shape[0])  # m @ a.T
    twice = once.transpose(0, 2, 1).reshape(-1, s) @ a.T  # (a @ m @ a.T).T
    return twice.reshape(*lead, a.shape[0], a.shape[0])


def _best_axis_warp(src_prof: np.ndarray, dst_prof: np.ndarray, geometry: "_Geometry | None" = None) -> np.ndarray:
    """Index into the warps of the crop that best maps each source profile (N, S) onto its target.

    Best = highest normalised correlation; the target is normalised once and the warped
    profiles' means come from one small GEMM, so the (N, K, S) candidates are read twice only.
    """
    g = geometry or _FULL
    k, size, _ = g.mats.shape
    src_prof = src_prof - src_prof.mean(axis=1, keepdims=True)  # rows of each warp sum to 1: NCC unchanged,
    warped = (src_prof @ g.flat_t).reshape(-1, k, size)  # and float32 sums of squares stay accurate
    d = dst_prof - dst_prof.mean(axis=1, keepdims=True)
    d /= np.maximum(np.sqrt((d * d).sum(axis=1, keepdims=True)), 1e-6)
    num = np.einsum("nks,ns->nk", warped, d)
    mean = src_prof @ g.mean_t  # (N, K)
    var = np.einsum("nks,nks->nk", warped, warped) - size * mean * mean
    return np.argmax(num / np.sqrt(np.maximum(var, 1e-6)), axis=1)


class _Geometry:
    """The crop warps and the residual's cell grid for comparing at one side (px)."""

    def __init__(self, side: int, cells: int, steps: int = _CROP_STEPS):
        self.mats = _interp_matrices(side, steps=steps)
        self.flat_t = np.ascontiguousarray(self.mats.reshape(-1, side).T)
        self.mean_t = np.ascontiguousarray(self.mats.mean(axis=1).T)
        self.cells = _cell_matrix(side, cells)


_FULL = _Geometry(_SIDE, _RESIDUAL_CELLS)
_MATS = _FULL.mats  # (K, S, S): the crops the full comparison tries
_COARSE = _Geometry(_SIDE // 2, _RESIDUAL_CELLS // 2, 7)  # the first look: 16 px, 8x8 cells, crops in 2 % steps
_COARSE_MARGIN = 0.1  # a pair whose first look scores this far below the threshold is not looked at again


def _grey(thumbs: np.ndarray) -> np.ndarray:
    """(N, S, S) grey of (N, 3, S, S) thumbnails: the channels' mean (as three adds: ``mean(axis=1)`` costs several
    times more on these small arrays, and the search takes it millions of times)."""
    return (thumbs[:, 0] + thumbs[:, 1] + thumbs[:, 2]) * np.float32(1.0 / 3.0)


def _halve(thumbs: np.ndarray) -> np.ndarray:
    """(N, C, S/2, S/2) means of each 2x2 block of (N, C, S, S) images (strided adds: far cheaper than a reshaped
    ``mean`` or two matrix products)."""
    return (thumbs[..., ::2, ::2] + thumbs[..., 1::2, ::2] + thumbs[..., ::2, 1::2] + thumbs[..., 1::2, 1::2]) * \
        np.float32(0.25)


def _colour_residual(x: np.ndarray, y: np.ndarray, cells_matrix: np.ndarray | None = None) -> np.ndarray:
    """RMS grey levels by which ``y`` differs from ``x`` (both (N, C, S, S)) once brightness changes are allowed for.

    Brightness model: one gain for all three channels (so a recoloured drawing, e.g. a red bird
    made black, is not explained away as a per-channel gain), fitted on values that are neither
    clipped nor background in either picture. Editors brighten a sticker over its kept background
    or the whole picture flattened on white, and two copies may have had either, so a bright pixel
    of ``x`` (background, or white paint) may keep its value, follow the picture's gain, or follow
    one gain fitted on all bright pixels (the other copy's background): each takes the nearest.
    Compared on 4x4 cell means so that JPEG noise and sub-pixel misalignment average out while
    shading differences between two renderings of one outline remain.
    """
    def sq(r):
        return np.einsum("ncij,ncij->nij", r, r)[:, None]

    gained, alternatives, bright = _brightness_models(x, y)
    r = y - gained
    err = sq(r)
    for r_alt in (y - m for m in alternatives):
        err_alt = sq(r_alt)
        better = bright & (err_alt < err)
        r = np.where(better, r_alt, r)
        err = np.where(better, err_alt, err)
    cells = _both_sides_t(r, _FULL.cells if cells_matrix is None else cells_matrix)  # (N, C, cells, cells) means
    return np.sqrt((cells * cells).mean(axis=(1, 2, 3)))


def _brightness_models(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray], np.ndarray]:
    """What ``y`` may be of ``x`` (both (N, C, S, S)) under the brightness model of ``_colour_residual``: ``x`` under
    the picture's gain; the alternatives for a bright pixel (background or white paint): ``x`` kept, or under the
    gain of all bright pixels; and where ``x`` is bright, (N, 1, S, S)."""
    def gain_fit(valid):
        xv = np.where(valid, x, 0.0)
        g = np.einsum("ncij,ncij->n", xv, y) / np.maximum(np.einsum("ncij,ncij->n", xv, xv), 1e-3)
        return np.clip(g, 1.0 / _MAX_GAIN, _MAX_GAIN)[:, None, None, None]

    bright = x.min(axis=1, keepdims=True) >= _WHITE
    gained = np.minimum(gain_fit((x < _GAIN_CLIP) & (y < _GAIN_CLIP)) * x, 255.0)
    return gained, (x, np.minimum(gain_fit(bright) * x, 255.0)), bright


def _worst_structure(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean of the worst ``_STRUCTURE_WORST`` fraction of the local SSIM contrast-structure map (grey).

    SSIM's contrast-structure term, ``(2 cov + C) / (var_x + var_y + C)`` in a Gaussian window, is
    1 where both pictures have the same local pattern, whatever the brightness. A copy keeps its
    structure everywhere; a flat and a 3-D rendering of one outline differ in a few places
    (highlights, soft shading against flat fills), which the worst few percent of the map catch
    while a global average would dilute them.
    """
    gx, gy = _grey(x) - 127.5, _grey(y) - 127.5  # (N, S, S) grey, centred: float32 moments stay exact
    stats = np.stack([gx, gy, gx * gx, gy * gy, gx * gy], axis=1)
    mx, my, xx, yy, xy = _both_sides_t(stats, _BLUR).transpose(1, 0, 2, 3)
    vx = np.maximum(xx - mx * mx, 0.0)
    vy = np.maximum(yy - my * my, 0.0)
    cs = ((2.0 * (xy - mx * my) + _SSIM_C2) / (vx + vy + _SSIM_C2)).reshape(len(x), -1)
    k = max(1, int(cs.shape[1] * _STRUCTURE_WORST))
    return np.partition(cs, k - 1, axis=1)[:, :k].mean(axis=1)


def _aligned_colour_score(src: np.ndarray, dst: np.ndarray, geometry: "_Geometry | None" = None
                          ) -> tuple[np.ndarray, np.ndarray]:
    """(colour score, ``src`` warped into the frame of ``dst``: ``_warped``) for (N, C, S, S) thumbnails; the colour
    score is ``1 - colour residual / _RESIDUAL_SCALE``."""
    g = geometry or _FULL
    warped = _warped(src, dst, g)
    return 1.0 - _colour_residual(warped, dst, g.cells) / _RESIDUAL_SCALE, warped


def _warped(src: np.ndarray, dst: np.ndarray, geometry: "_Geometry") -> np.ndarray:
    """``src`` cropped/shifted into the frame of ``dst``, per axis, as found on their 1-D intensity profiles."""
    gs, gd = _grey(src), _grey(dst)  # (N, S, S)
    kx = _best_axis_warp(gs.mean(axis=1), gd.mean(axis=1), geometry)  # column profiles
    ky = _best_axis_warp(gs.mean(axis=2), gd.mean(axis=2), geometry)  # row profiles
    return geometry.mats[ky][:, None] @ src @ geometry.mats[kx].transpose(0, 2, 1)[:, None]


_LEVELS = (6, 8, 12, 16, 24)  # effective resolutions (px) a pair can be compared at, below _SIDE
_DETAIL = 0.5  # pictures of other sizes are compared at half the smaller one's: a hand-tuned rendition moves lines


@functools.cache
def _reduce_matrix(level: int | None, n: int = THUMB_SIDE, out: int = _SIDE) -> np.ndarray:
    """(out, n) matrix: ``R @ img @ R.T`` reduces an n px thumbnail to ``out`` px, at the detail of a ``level`` px
    picture (area-reduced to ``level`` px, then linearly scaled to ``out``); ``level`` None: plain area reduction
    (``recoloured`` uses it to take a thumbnail back to a smaller picture's own pixels). Made once per arguments:
    callers must not write into it."""

    def area(m: int, k: int) -> np.ndarray:  # (m, k): area weights of the k source pixels under each of m
        w = np.zeros((m, k))
        for i in range(m):
            lo, hi = i * k / m, (i + 1) * k / m
            for j in range(int(lo), min(k, int(np.ceil(hi)))):
                w[i, j] = min(hi, j + 1) - max(lo, j)
        return w / w.sum(axis=1, keepdims=True)

    if level is None:
        return area(out, n).astype(np.float32)
    pos = np.clip((np.arange(out) + 0.5) * level / out - 0.5, 0, level - 1)
    lo = np.floor(pos).astype(int)
    up = np.zeros((out, level))
    up[np.arange(out), lo] += 1 - (pos - lo)
    up[np.arange(out), np.minimum(lo + 1, level - 1)] += pos - lo
    return (up @ area(level, n)).astype(np.float32)


_REDUCE = {level: _reduce_matrix(level) for level in (*_LEVELS, None)}


def _content_sizes(thumbs) -> np.ndarray:
    """(N,) smaller side of each picture's content in its file's pixels (THUMB_SIDE when unknown: version 1)."""
    out = np.full(len(thumbs), THUMB_SIDE)
    if not isinstance(thumbs, np.ndarray):
        for k, t in enumerate(thumbs):
            size = content_size(t)
            if size is not None:
                out[k] = min(size)
    return out


def _reduced_pairs(x: np.ndarray, y: np.ndarray, sx: np.ndarray, sy: np.ndarray,
                   detail: float = _DETAIL) -> tuple[np.ndarray, np.ndarray]:
    """Both thumbnails of each pair at _SIDE px, at the detail of the pair's smaller picture: an icon drawn at 16 px
    and its 48 px rendition (or a 32 px icon and its 200 px enlargement) differ mostly in detail that the small one
    cannot have, and hand-tuned renditions place each line a pixel apart, so pictures of different sizes are
    compared at half the smaller one's detail (the same size: at its own; ``detail`` sets that share, and the
    learned check sees all of it). The level is the largest of _LEVELS not above that (full detail from _SIDE)."""
    smaller = np.minimum(sx, sy) * np.where(np.maximum(sx, sy) > 1.2 * np.minimum(sx, sy), detail, 1.0)
    level = np.searchsorted(np.array(_LEVELS), smaller, side="right") - 1  # index of the largest level <= size
    level[(smaller >= _SIDE) | (level < 0)] = len(_LEVELS)
    level[smaller < _LEVELS[0]] = 0
    rx = np.empty((len(x), 3, _SIDE, _SIDE), dtype=np.float32)
    ry = np.empty_like(rx)
    for k in np.unique(level):
        r = _REDUCE[(*_LEVELS, None)[int(k)]]
        sel = np.flatnonzero(level == k)
        if r is _REDUCE[None]:  # the plain area reduction: 2x2 means, without two matrix products
            rx[sel], ry[sel] = _halve(x[sel]), _halve(y[sel])
        else:
            rx[sel] = r @ x[sel] @ r.T
            ry[sel] = r @ y[sel] @ r.T
    return rx, ry


def information(thumbs: np.ndarray) -> np.ndarray:
    """(N,) how much detail each (N, 3, S, S) thumbnail has: the mean grey difference between neighbouring pixels.

    A blank-ish picture (a plain glyph, a line, a dot, a picture that is mostly background) has little, and two such
    pictures of different things can agree almost everywhere; the confirm score asks them for more evidence."""
    grey = _grey(thumbs)
    return np.abs(np.diff(grey, axis=1)).mean(axis=(1, 2)) + np.abs(np.diff(grey, axis=2)).mean(axis=(1, 2))


def _inner_matrix(cut: int, n: int = THUMB_SIDE) -> np.ndarray:
    """(n, n) matrix: ``C @ img @ C.T`` is an n px thumbnail without its outer ``cut`` px, scaled back to n px."""
    pos = np.clip(cut + (np.arange(n) + 0.5) * (n - 2 * cut) / n - 0.5, 0, n - 1)
    lo = np.floor(pos).astype(int)
    m = np.zeros((n, n))
    m[np.arange(n), lo] += 1 - (pos - lo)
    m[np.arange(n), np.minimum(lo + 1, n - 1)] += pos - lo
    return m.astype(np.float32)


# An added border that JPEG or resampling blurred is sometimes trimmed only up to a thin blended line (the import's
# trim works on the reduced image), so one copy's thumbnail keeps a dark or coloured 1-2 px frame that the other lacks,
# and that line alone costs a pair 0.2-0.4 of score. Chosen on the tuning part (bench/dedup_quality.py):
_INNER = _inner_matrix(2)  # the retry compares both thumbnails without their outer 2 px (of 64)
_RETRY_BAND = 0.3  # ... only pairs that fell short of the threshold by less than this
_EDGE_DIFFERS = 24.0  # ... and whose outer rings differ in mean grey by this much (one has a frame, the other not)
_RETRY_DETAIL = 25.0  # ... and whose cut thumbnails both keep this much detail (``information``): a square outline
# or a glyph touching its box would lose what tells it apart


_RING = np.ones((THUMB_SIDE, THUMB_SIDE), dtype=bool)
_RING[2:-2, 2:-2] = False


def _edge_grey(thumbs) -> np.ndarray:
    """(N,) mean grey of each thumbnail's outer 2 px ring (thumbnail bytes, or arrays (N, S, S, 3))."""
    arr = thumbs if isinstance(thumbs, np.ndarray) else _thumb_stack(thumbs)
    return arr[:, _RING].mean(axis=(1, 2), dtype=np.float32)


def _pick(thumbs, keep: np.ndarray):
    return thumbs[keep] if isinstance(thumbs, np.ndarray) else [thumbs[k] for k in keep]


def confirm_scores(thumbs_a, thumbs_b, chunk: int = 256, threshold: float | None = None,
                   sizes_a=None, sizes_b=None, colours_differ=None) -> np.ndarray:
    """Similarity in [-1, 1] of each pair of confirm thumbnails (1 = same picture): ``_confirm_scores``, and for a
    pair that falls just short while one thumbnail has a frame at its edge that the other lacks, the better of that
    and the same comparison without the outer 2 px of both (see ``_INNER``). A pair that passes the bar without being
    a clear copy (below KEEPER_MATCH) loses ``_COLOUR_PENALTY`` when the flat colours of one are missing from the
    other (``flat_colours_differ``: another skin tone, a recoloured part). The bar is ``threshold``, or the
    default confirm threshold. Thumbnails are stored fingerprints (bytes), or arrays (N, S, S, 3) with their content
    sizes in ``sizes_a``/``sizes_b`` (an array does not carry them). ``colours_differ(positions)``, if given, answers
    ``flat_colours_differ`` for those pairs (``Thumbs.colours_differ``: each picture's colours found once).
    Pairs in doubt are then asked of the learned check (see LEARNED_CHECK), and a confirmed pair whose smaller picture
    is RECOLOUR_FROM px or more scores just below the bar when one coloured area changed colour (``recoloured``; under
    64 px at the smaller picture's own size)."""
    if not isinstance(thumbs_a, np.ndarray):
        thumbs_a = list(thumbs_a)
    if not isinstance(thumbs_b, np.ndarray):
        thumbs_b = list(thumbs_b)
    if sizes_a is None or sizes_b is None:
        sizes_a, sizes_b = _content_sizes(thumbs_a), _content_sizes(thumbs_b)
    out = _confirm_scores(thumbs_a, thumbs_b, chunk, threshold, sizes_a, sizes_b)
    bar = DEFAULT_CONFIRM_THRESHOLD if threshold is None else threshold
    again = np.flatnonzero((out < bar) & (out >= bar - _RETRY_BAND))
    if again.size:
        again = again[np.abs(_edge_grey(_pick(thumbs_a, again)) - _edge_grey(_pick(thumbs_b, again)))
                      >= _EDGE_DIFFERS]
    if again.size:
        xa, xb = (np.ascontiguousarray(_INNER @ _as_thumbs(_pick(t, again)) @ _INNER.T)
                  for t in (thumbs_a, thumbs_b))
        r = _REDUCE[None]
        rich = np.minimum(information(r @ xa @ r.T), information(r @ xb @ r.T)) >= _RETRY_DETAIL
        if rich.any():
            sa, sb = sizes_a[again[rich]], sizes_b[again[rich]]
            out[again[rich]] = np.maximum(out[again[rich]], _confirm_scores(
                xa[rich].transpose(0, 2, 3, 1), xb[rich].transpose(0, 2, 3, 1), chunk, threshold, sa, sb))
    unclear = np.flatnonzero((out >= bar) & (out < KEEPER_MATCH))
    if unclear.size:
        differ = (colours_differ(unclear) if colours_differ is not None
                  else flat_colours_differ(_pick(thumbs_a, unclear), _pick(thumbs_b, unclear)))
        out[unclear[differ]] -= _COLOUR_PENALTY
    verifier = default_verifier() if LEARNED_CHECK else None
    least = np.minimum(sizes_a, sizes_b)
    small = least < LEARNED_BELOW
    in_band = (out >= np.where(small, LEARNED_FLOOR, bar)) & (out < LEARNED_CEILING)
    asked = np.flatnonzero(in_band) if verifier is not None else []
    if len(asked):
        xa, xb = (t[asked] if isinstance(t, np.ndarray) else _thumb_stack(_pick(t, asked)) for t in (thumbs_a, thumbs_b))
        same = verifier.probabilities(*verifier_inputs(xa, xb, sizes_a[asked], sizes_b[asked], out[asked]))
        out[asked] = np.where(small[asked], second_opinion(out[asked], same, bar), learned_veto(out[asked], same, bar))
    if RECOLOUR_CHECK:
        for checked, sides in ((np.flatnonzero((out >= bar) & ~small), None),
                               (np.flatnonzero((out >= bar) & small & (least >= RECOLOUR_FROM)), least)):
            if checked.size:
                xa, xb = (t[checked] if isinstance(t, np.ndarray) else _thumb_stack(_pick(t, checked))
                          for t in (thumbs_a, thumbs_b))
                out[checked[recoloured(xa, xb, None if sides is None else sides[checked])]] = bar - 0.001
    return out


# The learned check (curator.dedup.verifier) is asked about every pair whose score falls in a band around the bar,
# and its verdict decides those pairs. The band and the verdict's bar were chosen on the Tango and GNOME icon themes,
# the benchmark's tuning part and its fourth untouched part (none of which it was trained on: bench/dedup_verifier.py)
# among a ceiling of 0.8, 0.9 or 1 and a bar of 0.8, 0.85 or 0.9: a higher ceiling lets it reject another skin tone
# that scores like a copy, a lower bar finds more renditions and joins more siblings. The floor was first 0.3, where
# its training pairs start; below 0.5 it confirmed 2 true and 35 false pairs of the tuning part and the fourth and
# fifth untouched ones, while a 20k search spent a third of its questions there. Session 13's network, trained with
# each picture's nearest signatures among its pairs (NEIGHBOURS), is surer of fewer pairs: its bar went from 0.85 to
# 0.7, chosen among 0.6, 0.7 and 0.8 on the same four sets as the one where it is as good as or better than the
# previous network at 0.85 (tune 0.961 / 0.941 -> 0.968 / 0.941, untouched-4 0.947 / 0.918 -> 0.945 / 0.925, Tango
# 0.946 / 0.447 -> 0.976 / 0.532, GNOME 0.971 / 0.381 -> 0.972 / 0.418; pairs precision / recall of whole searches).
# Session 14's network also learned monochrome glyphs hand-tuned at each size (Blueprint, Heroicons), for 16 epochs,
# and sees a faint pair with its contrast raised (``_stretched``: without it, the network trained so took Numix's
# light-grey panel glyphs for one another, 1,250 wrong pairs). Its bar, 0.6, was chosen among 0.5, 0.55, 0.6 and 0.7
# by a rule fixed beforehand: the highest mean pair F1 over those four sets with no more mixed groups in all than
# before (35) and no set's precision more than 0.01 lower (tune 0.968 / 0.941 -> 0.969 / 0.932, untouched-4 0.945 /
# 0.925 -> 0.941 / 0.915, Tango 0.976 / 0.532 -> 0.969 / 0.617, GNOME 0.972 / 0.418 -> 0.973 / 0.445; 31 mixed groups).
# Session 15's network is wider (32-48-64-96 channels, not 24-32-48-64), trained on the same pairs; by the same rule
# (no more than 31 mixed groups, no set's precision 0.01 lower, and as many pictures found whole) its bar is 0.5:
# tune 0.961 / 0.949, untouched-4 0.944 / 0.932, Tango 0.988 / 0.648, GNOME 0.980 / 0.486; 28 mixed groups.
LEARNED_CHECK = True  # False: the confirm score decides alone (benchmarks compare both)
RECOLOUR_CHECK = True  # False: confirmed pairs are not checked for a recoloured area (``recoloured``)
LEARNED_FLOOR = 0.5  # pairs scoring below this are not asked
LEARNED_CEILING = 0.9  # ... nor those scoring this or more: plain copies (asked too, it rejected pixel-art
# copies, a kind it never saw, that score 0.9 or more)
LEARNED_SAME = 0.5  # probability from which the network confirms a pair
LEARNED_BELOW = 2 * _SIDE  # ... and only pairs whose smaller picture is smaller than this (px): from 64 px up
# the confirm score sees every line and highlight, and the network, which never saw such pictures restyled or brightened
# alone, confirmed a flat emoji's 3-D rendering and rejected a brightened JPEG copy of a synthetic sticker
LEARNED_VETO = 0.05  # from 64 px up it may only undo a confirmation (score from the bar to the ceiling), and only
# when this sure that the pair differs: another skin tone of a shaded emoji scores like a copy there. Chosen on the
# tuning part and the fourth untouched one: a veto below 0.05 undid 18 and 3 of their 49 and 10 wrong confirmations
# in that band and none of 292 right ones (the lowest right ones: 0.20 for two brightened JPEGs of one emoji, 0.25
# for a photo tile; 0.32 for a resized wallpaper of the wallpapers part). Above the band it found nothing to undo.


def second_opinion(scores: np.ndarray, same: np.ndarray, bar: float) -> np.ndarray:
    """Scores of asked pairs after the network's verdict: a confirmed pair (``same`` >= LEARNED_SAME) keeps its
    score or, if that is lower, gets the bar plus up to just below KEEPER_MATCH as the network is surer (so the
    network alone never makes a keeper link); a rejected one scores just below the bar (still shown, never
    confirmed)."""
    raised = bar + (same - LEARNED_SAME) / (1.0 - LEARNED_SAME) * (KEEPER_MATCH - bar) * 0.999
    return np.where(same >= LEARNED_SAME, np.maximum(scores, raised), np.minimum(scores, bar - 0.001))


def learned_veto(scores: np.ndarray, same: np.ndarray, bar: float) -> np.ndarray:
    """Scores of asked pairs of larger pictures (from LEARNED_BELOW px) after the network's verdict: one it is sure
    differs (``same`` < LEARNED_VETO) scores just below the bar (still shown, never confirmed); the others keep
    their score (the network never confirms such a pair)."""
    return np.where(same < LEARNED_VETO, np.minimum(scores, bar - 0.001), scores)


_STRETCH_RANGE = 96.0  # grey levels: the learned check sees a pair spanning fewer with its contrast raised by this
# over its span (faint glyphs, light grey on white, otherwise all look alike to it)
_STRETCH_MAX = 8.0  # ... but never more than this many times


def _stretched(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both (N, 3, S, S) pictures of each faint pair with their contrast raised alike, about the pair's mid grey, by
    _STRETCH_RANGE over the grey levels the pair spans (clipped to 0-255: the white of light glyphs on white stays
    white); pairs spanning _STRETCH_RANGE or more are unchanged."""
    gx, gy = _grey(x), _grey(y)
    lo = np.minimum(gx.min(axis=(1, 2)), gy.min(axis=(1, 2)))
    hi = np.maximum(gx.max(axis=(1, 2)), gy.max(axis=(1, 2)))
    gain = np.clip(_STRETCH_RANGE / np.maximum(hi - lo, 1e-3), 1.0, _STRETCH_MAX)[:, None, None, None]
    mid = ((lo + hi) / 2.0)[:, None, None, None]
    return np.clip(mid + (x - mid) * gain, 0.0, 255.0), np.clip(mid + (y - mid) * gain, 0.0, 255.0)


def verifier_inputs(stack_a: np.ndarray, stack_b: np.ndarray, sizes_a: np.ndarray, sizes_b: np.ndarray,
                    scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What the learned check sees of each pair of thumbnails (N, 64, 64, 3) uint8: images (N, 6, 32, 32), the
    smaller picture aligned into the larger one's frame (as the confirm stage aligns them) and the larger one, both at
    the smaller one's full detail (values / 255, a faint pair's contrast raised: ``_stretched``; the network also
    sees their difference: ``fold_difference``);
    scalars (N, 4), the confirm score, log2 of the size ratio, the smaller size / 64 and the plainer picture's
    detail / _INFO_FULL (both capped)."""
    swap = (np.asarray(sizes_a) > np.asarray(sizes_b))[:, None, None, None]
    a, b = np.where(swap, stack_b, stack_a), np.where(swap, stack_a, stack_b)
    small, large = np.minimum(sizes_a, sizes_b), np.maximum(sizes_a, sizes_b)
    images = np.empty((len(a), 6, _SIDE, _SIDE), dtype=np.float32)
    scalars = np.empty((len(a), 4), dtype=np.float32)
    for lo in range(0, len(a), 512):
        part = slice(lo, lo + 512)
        x, y = _reduced_pairs(_as_thumbs(a[part]), _as_thumbs(b[part]), small[part], large[part], detail=1.0)
        warped, shown = _stretched(_warped(x, y, _FULL), y)
        images[part, 0:3] = warped / 255.0
        images[part, 3:6] = shown / 255.0
        scalars[part, 0] = scores[part]
        scalars[part, 1] = np.log2(large[part] / np.maximum(small[part], 1))
        scalars[part, 2] = np.minimum(small[part], 64) / 64.0
        # the larger picture's detail as shown, after a faint pair's raise (session 14's network was trained so)
        scalars[part, 3] = np.minimum(np.minimum(information(x), information(shown)) / _INFO_FULL, 2.0)
    return images, scalars


# The same emoji in another skin tone, or a picture with one part recoloured, differs from it only in part of its area
# and often scores like a JPEG copy. A copy (re-encoded, resized, cropped, brightened, given a border) keeps the
# colours of its flat areas, up to one brightness gain; another tone does not. Chosen on the tuning part, whose
# families include three skin tones of each of 30 emoji (bench/dedup_quality.py):
_COLOUR_PENALTY = 0.1  # score taken from a pair that is not a clear copy and whose flat colours differ
_FLAT_RANGE = 6.0  # grey levels: a pixel whose neighbourhood spans less is in a flat area
_FLAT_SIZE = 3  # px (at 64 px), the side of that neighbourhood (5 loses the faces of small emoji; JPEG can move the
# colour of thin strokes, but such a copy scores as a clear copy and is not tested)
_FLAT_MIN = 20  # coloured flat pixels a picture needs for its colours to be compared
_COLOUR_NEAR = 24.0  # RGB distance within which a flat colour of one picture is found in the other (JPEG moves
# a saturated colour by up to ~20; the next skin tone lies 40-100 away)
_COLOURS_MISSING = 0.2  # share of one picture's flat pixels whose colour the other lacks, above which they differ
_COLOUR_GAINS = np.linspace(0.85, 1.18, 12, dtype=np.float32)  # brightness gains tried (an edit's +-10 % and more)
_COLOUR_GRID = 4  # flat colours are counted on a grid of this many levels per channel
_COLOURFUL = 8.0  # channel spread below which a flat pixel is grey: left to the brightness gain (and so is white)


class Palette(NamedTuple):
    """The coloured flat areas of one picture: their colours (K, 3) on the _COLOUR_GRID, each one's share of the flat
    pixels (K,), and a k-d tree of the colours (each picture's is built once, then asked about many others')."""

    colours: np.ndarray
    share: np.ndarray
    tree: cKDTree


def _flat_colours(thumb: np.ndarray) -> Palette | None:
    """The ``Palette`` of a (S, S, 3) uint8 thumbnail; None when it has too few flat coloured pixels to tell. Grey
    and white are left out: a grey drawing differs from its copies by brightness, which the score allows for, and
    another tone or a recoloured part is coloured."""
    rgb = thumb.astype(np.float32)
    grey = rgb.mean(axis=2)
    flat = (ndimage.maximum_filter(grey, _FLAT_SIZE) - ndimage.minimum_filter(grey, _FLAT_SIZE)) < _FLAT_RANGE
    flat &= rgb.max(axis=2) - rgb.min(axis=2) >= _COLOURFUL
    if flat.sum() < _FLAT_MIN:
        return None
    colours = rgb[flat]
    cells, counts = np.unique((colours // _COLOUR_GRID).astype(np.int32), axis=0, return_counts=True)
    centres = (cells * _COLOUR_GRID + _COLOUR_GRID / 2).astype(np.float32)
    return Palette(centres, counts / counts.sum(), cKDTree(centres))


def _colours_missing(x: Palette, y: Palette) -> float:
    """Share of ``x``'s flat pixels whose colour, under the brightness gain that fits best, is farther than
    _COLOUR_NEAR from every flat colour of ``y`` (the nearest found in ``y``'s tree, looked no farther than that)."""
    scaled = np.minimum(x.colours[None] * _COLOUR_GAINS[:, None, None], 255.0)  # (G, K, 3)
    nearest, _ = y.tree.query(scaled.reshape(-1, 3), distance_upper_bound=_COLOUR_NEAR * 1.001)  # inf: none so near
    return float(((nearest.reshape(len(_COLOUR_GAINS), -1) > _COLOUR_NEAR) * x.share).sum(axis=1).min())


def _colours_differ(x, y) -> bool:
    """Two pictures' ``_flat_colours`` differ: either way, more than _COLOURS_MISSING of one's is missing from the
    other's (False when either has too few flat coloured pixels to tell)."""
    return x is not None and y is not None and max(_colours_missing(x, y), _colours_missing(y, x)) > _COLOURS_MISSING


def flat_colours_differ(thumbs_a, thumbs_b) -> np.ndarray:
    """(N,) bool: the flat colours of one thumbnail of each pair are missing from the other (stored fingerprints or
    arrays (N, S, S, 3))."""
    a = thumbs_a if isinstance(thumbs_a, np.ndarray) else _thumb_stack(thumbs_a)
    b = thumbs_b if isinstance(thumbs_b, np.ndarray) else _thumb_stack(thumbs_b)
    return np.array([_colours_differ(_flat_colours(x), _flat_colours(y)) for x, y in zip(a, b)], dtype=bool)


# From 64 px up the thumbnail shows the few pixels where another skin tone differs (a hand, a neck), which the score
# and the flat-colour check average away (Noto's golfers in two tones score 0.93, like a JPEG copy). A copy keeps every
# coloured area's colour up to the score's brightness model, to within a pixel of its place; another tone moves one
# area's colour and keeps the rest. Chosen on every tone of 263 people of EmojiOne and Noto v1 at 64-128 px (two
# copies each; bench/dedup_verifier.py's training emoji, never in the benchmark), on the tuning part's and the fourth
# untouched part's confirmed pairs, and on the training themes' renditions from 64 px (see the README):
_RECOLOUR_DISTANCE = 24.0  # RGB distance from a pixel to every pixel within 1 px of its place in the other picture
_RECOLOUR_COLOURFUL = 16.0  # ... both pixels coloured (channel spread): grey lines a rendition moves do not count
_RECOLOUR_AREA = 8  # pixels (at 64 px) of one connected area of such pixels whose 4 neighbours all differ too, from
# which the pair differs (chosen among 5, 8 and 12 by a rule fixed beforehand: 5 vetoed 3 of the two parts' 722 right
# pairs from 64 px, 12 caught 15 of their 24 wrong ones, not 21)
_RECOLOUR_MARGIN = 2  # px of the thumbnail's edge left out (the alignment clamps there)
# Below 64 px the thumbnail is the picture enlarged, and a JPEG or GIF copy's noise is enlarged with it into areas
# that pass the test above (it vetoed 35-77 right pairs of each tuning set there). So a confirmed pair whose smaller
# picture is under 64 px is compared at that picture's own size: both aligned thumbnails are averaged down to it, both
# pictures' colour planes are smoothed alike (``_chroma_smoothed``: JPEG and WebP keep colour at half size, which moves
# a thin stripe's colour further than another tone), and the test counts that size's pixels. Chosen on the small pairs
# of the tone set (EmojiOne and Noto v1 drawn at 24-63 px), a set of small colourful icons with lossy copies (Firefox
# OS emoji, flag-icons, Devicon at 28-63 px: none in the benchmark) and the confirmed pairs under 64 px of the tuning
# part, the fourth untouched part, Tango and GNOME, then among three settings by a rule fixed beforehand (the highest
# mean pair F1 of whole searches over those four sets, no more mixed groups, no recall 0.005 lower; see the README):
RECOLOUR_FROM = 28  # px: below this a face or a hand is a pixel or two, and renditions hand-tuned at 16-24 px recolour
_SMALL_DISTANCE = 40.0  # RGB distance (32 and 36 with larger areas scored the same or vetoed more right pairs)
_SMALL_AREA = 2  # pixels of the smaller picture's own grid in one connected area (each with its 4 neighbours)


@functools.cache
def _detailed() -> _Geometry:
    """The crops at 64 px, made when first needed (13 ms: not at every start of the web process or the CLI)."""
    return _Geometry(THUMB_SIDE, _RESIDUAL_CELLS)


def _tolerant_distance(x: np.ndarray, y: np.ndarray, reach: int = 1) -> np.ndarray:
    """(N, S, S) RGB distance from each pixel of ``y`` to the nearest of ``x``'s pixels within ``reach`` px of its
    place (both (N, 3, S, S), aligned), under ``_brightness_models``: a copy resized or re-encoded moves edges by a
    pixel. Never more than with a shorter reach (the pixel's own place is among those tried)."""
    gained, (kept, background), bright = _brightness_models(x, y)
    n, _, side, _ = x.shape
    span = 2 * reach + 1
    best = np.full((n, side, side), np.inf, dtype=np.float32)
    pad = ((0, 0), (0, 0), (reach, reach), (reach, reach))
    padded_bright = np.pad(bright, pad, mode="edge")[:, 0]
    for k, model in enumerate((gained, kept, background)):
        padded = np.pad(model, pad, mode="edge")
        for dy in range(span):
            for dx in range(span):
                r = y - padded[:, :, dy : dy + side, dx : dx + side]
                err = np.einsum("ncij,ncij->nij", r, r)
                if k:  # the alternatives hold for bright pixels only
                    err = np.where(padded_bright[:, dy : dy + side, dx : dx + side], err, np.inf)
                np.minimum(best, err, out=best)
    return np.sqrt(best)


def _within_each(structure: np.ndarray) -> np.ndarray:
    """A 2-D structuring element as the 3-D one that applies it to each picture of a stack (N, S, S) alone."""
    out = np.zeros((3, 3, 3), dtype=bool)
    out[1] = structure
    return out


_CROSS = _within_each(ndimage.generate_binary_structure(2, 1))  # a pixel and its 4 neighbours


def _differing_core(x: np.ndarray, y: np.ndarray, colourful: np.ndarray, reach: int, distance: float,
                    margin: int) -> np.ndarray:
    """(N, S', S') pixels of ``y`` (inside ``margin`` px) farther than ``distance`` from ``x`` within ``reach``,
    coloured, with their 4 neighbours so too."""
    differs = (_tolerant_distance(x, y, reach) > distance) & colourful
    return ndimage.binary_erosion(differs[:, margin:-margin, margin:-margin], structure=_CROSS)


# JPEG's (and lossy WebP's) YCbCr: the colour planes are kept at half size, which at a small picture's own size
# moves a thin coloured stripe or a small dot by more than another skin tone
_TO_YCBCR = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], np.float32)
_FROM_YCBCR = np.linalg.inv(_TO_YCBCR).astype(np.float32)
_SMOOTHING = np.array([0.25, 0.5, 0.25], np.float32)


def _chroma_smoothed(x: np.ndarray) -> np.ndarray:
    """(N, 3, S, S) RGB with its colour planes (Cb, Cr) smoothed by [1, 2, 1] / 4 each way and its brightness kept:
    what a copy re-encoded with half-size colour keeps, for both pictures alike."""
    ycc = np.einsum("kc,ncij->nkij", _TO_YCBCR, x)
    ycc[:, 1:] = ndimage.convolve1d(ndimage.convolve1d(ycc[:, 1:], _SMOOTHING, axis=2, mode="nearest"),
                                    _SMOOTHING, axis=3, mode="nearest")
    return np.einsum("kc,ncij->nkij", _FROM_YCBCR, ycc)


def _differing_areas(x: np.ndarray, y: np.ndarray, reduce: np.ndarray | None, distance: float, area: int,
                     margin: int) -> np.ndarray:
    """(N,) bool: ``y`` has ``area`` connected pixels, each with its 4 neighbours farther than ``distance`` from the
    pixels of ``x`` near their place and coloured in both (``x`` aligned to ``y``, both (N, 3, 64, 64), compared at
    the size of ``reduce``: an area reduction by ``_reduce_matrix``, or None for 64 px). A pair whose pixels differ too little in place is
    not compared within a pixel (that can only differ less)."""
    if reduce is not None:
        x, y = reduce @ x @ reduce.T, reduce @ y @ reduce.T
    colourful = np.minimum(np.ptp(x, axis=1), np.ptp(y, axis=1)) >= _RECOLOUR_COLOURFUL
    if reduce is not None:
        x, y = _chroma_smoothed(x), _chroma_smoothed(y)
    maybe = _differing_core(x, y, colourful, 0, distance, margin).sum(axis=(1, 2)) >= area
    if maybe.any():
        labels, _ = ndimage.label(_differing_core(x[maybe], y[maybe], colourful[maybe], 1, distance, margin),
                                  structure=_CROSS)
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        maybe[maybe] = (sizes[labels] >= area).any(axis=(1, 2))
    return maybe


def recoloured(stack_a: np.ndarray, stack_b: np.ndarray, sides: np.ndarray | None = None, chunk: int = 256
               ) -> np.ndarray:
    """(N,) bool: one coloured area of each pair of thumbnails (N, 64, 64, 3) changed colour while the rest kept
    its own (another skin tone, a recoloured part), either way: _RECOLOUR_AREA connected pixels, each with its 4
    neighbours farther than _RECOLOUR_DISTANCE from the other picture's pixels near their place
    (``_tolerant_distance``) and coloured in both (_RECOLOUR_COLOURFUL). ``sides``: for pairs under 64 px, the
    smaller picture's content size of each, at which the pair is compared instead (the _SMALL_ settings)."""
    found = np.zeros(len(stack_a), dtype=bool)
    keys = np.zeros(len(stack_a), dtype=int) if sides is None else np.asarray(sides)
    for side in np.unique(keys):
        reduce, distance, area, margin = ((None, _RECOLOUR_DISTANCE, _RECOLOUR_AREA, _RECOLOUR_MARGIN)
                                          if sides is None else
                                          (_reduce_matrix(None, out=int(side)), _SMALL_DISTANCE, _SMALL_AREA, 1))
        for block in np.array_split(np.flatnonzero(keys == side), -(-np.sum(keys == side) // chunk)):
            x, y = _as_thumbs(stack_a[block]), _as_thumbs(stack_b[block])
            left = np.arange(len(block))
            for src, dst in ((x, y), (y, x)):
                src, dst = src[left], dst[left]
                left = left[_differing_areas(_warped(src, dst, _detailed()), dst, reduce, distance, area, margin)]
                if not left.size:
                    break
            found[block[left]] = True
    return found


def _confirm_scores(thumbs_a, thumbs_b, chunk: int = 256, threshold: float | None = None,
                    sizes_a=None, sizes_b=None) -> np.ndarray:
    """Similarity in [-1, 1] of each pair of confirm thumbnails (1 = same picture); ``sizes_a``/``sizes_b``: the
    content sizes, where the thumbnails are arrays (N, S, S, 3) that do not carry them.

    ``1 - colour residual / 64 - 0.1 * (1 - worst local structure)`` of the aligned pair (see
    ``_colour_residual`` and ``_worst_structure``), less up to 0.2 when the plainer picture has little detail
    (``information``), compared at 32 px and at the detail of the smaller picture (``_reduced_pairs``).
    Both directions are tried (either picture may be the cropped one) and the better is kept. The structure term
    can only lower the score, so it is skipped for pairs whose colour score is below ``_REFINE_FLOOR`` both ways.
    Nearly flat thumbnails (no structure to align) score by their mean colour difference.

    With a ``threshold`` (the search's), every pair first gets a coarse look at 16 px (colour only, about six times
    cheaper); one that scores more than ``_COARSE_MARGIN`` below the threshold keeps that coarse score (it cannot be
    confirmed), and only the others are compared in full: the work goes where the answer is not obvious.
    Works in chunks, so memory stays small however many pairs are scored.
    """
    if not isinstance(thumbs_a, np.ndarray):
        thumbs_a = list(thumbs_a)
    if not isinstance(thumbs_b, np.ndarray):
        thumbs_b = list(thumbs_b)
    n = len(thumbs_a)
    if n != len(thumbs_b):
        raise ValueError(f"{n} thumbnails against {len(thumbs_b)}")
    out = np.empty(n, dtype=np.float64)
    for lo in range(0, n, chunk):
        if sizes_a is None:
            sa, sb = _content_sizes(thumbs_a[lo : lo + chunk]), _content_sizes(thumbs_b[lo : lo + chunk])
        else:
            sa, sb = sizes_a[lo : lo + chunk], sizes_b[lo : lo + chunk]
        x, y = _reduced_pairs(_as_thumbs(thumbs_a[lo : lo + chunk]), _as_thumbs(thumbs_b[lo : lo + chunk]), sa, sb)
        penalty = _INFO_PENALTY * np.clip(1.0 - np.minimum(information(x), information(y)) / _INFO_FULL, 0.0, 1.0)
        score = np.empty(len(x))
        full = np.arange(len(x))
        if threshold is not None:
            x16, y16 = _halve(x), _halve(y)
            score[:] = np.maximum(_aligned_colour_score(x16, y16, _COARSE)[0],
                                  _aligned_colour_score(y16, x16, _COARSE)[0]) - penalty
            full = np.flatnonzero(score >= threshold - _COARSE_MARGIN)
        if full.size:
            score[full] = _full_scores(x[full], y[full], np.minimum(sa, sb)[full] >= 2 * _SIDE) - penalty[full]
        flat = (x.std(axis=(1, 2, 3)) < 2.0) | (y.std(axis=(1, 2, 3)) < 2.0)
        if flat.any():
            diff = np.abs(x[flat].mean(axis=(2, 3)) - y[flat].mean(axis=(2, 3))).max(axis=-1)
            score[flat] = 1.0 - diff / 255.0 * 4.0  # flat pictures: same only if the colours agree closely
        out[lo : lo + chunk] = np.clip(score, -1.0, 1.0)
    return out


def _full_scores(x: np.ndarray, y: np.ndarray, detailed: np.ndarray) -> np.ndarray:
    """The aligned colour score less the structure term, the better direction (before the information penalty);
    ``detailed``: both pictures large enough (64 px or more) for shading and highlights to count more."""
    s_xy, x_in_y = _aligned_colour_score(x, y)
    s_yx, y_in_x = _aligned_colour_score(y, x)
    refine = np.maximum(s_xy, s_yx) >= _REFINE_FLOOR
    if refine.any():
        weight = np.where(detailed[refine], _STRUCTURE_WEIGHT_DETAILED, _STRUCTURE_WEIGHT)
        s_xy[refine] -= weight * (1.0 - _worst_structure(x_in_y[refine], y[refine]))
        s_yx[refine] -= weight * (1.0 - _worst_structure(y_in_x[refine], x[refine]))
    return np.maximum(s_xy, s_yx)


# --------------------------------------------------------------------------- fingerprint access


def _items(fingerprints) -> tuple[list, list]:
    """(ids, fingerprints) from a mapping id -> fp or a sequence (ids = positions)."""
    if isinstance(fingerprints, Mapping):
        ids = list(fingerprints.keys())
        return ids, [fingerprints[i] for i in ids]
    fps = list(fingerprints)
    return list(range(len(fps))), fps


def _hash_array(fps: Sequence, attr: str) -> np.ndarray:
    return as_uint64(np.array([int(getattr(fp, attr)) & 0xFFFFFFFFFFFFFFFF for fp in fps], dtype=np.uint64))


def candidate_pairs(phash, dhash, hash_threshold: int):
    """Positions (i, j) with i < j whose pHash is within ``hash_threshold`` or whose dHash is within
    ``hash_threshold - DHASH_TIGHTER`` (sub-quadratic)."""
    p, d = as_uint64(phash), as_uint64(dhash)
    pi, pj, _ = all_pairs_within(p, hash_threshold)
    di, dj, _ = all_pairs_within(d, max(0, hash_threshold - DHASH_TIGHTER))
    pairs = np.unique(np.concatenate([np.stack([pi, pj], 1), np.stack([di, dj], 1)]).reshape(-1, 2), axis=0)
    return pairs[:, 0], pairs[:, 1]


def _group_kind(kinds: Iterable[str]) -> str:
    order = {k: n for n, k in enumerate(KINDS)}
    return max(kinds, key=lambda k: order[k])


def match_order(m: Match) -> tuple:
    """Best match first: exact, then same pixels, then near by score, then hash distance."""
    return KINDS.index(m.kind), -m.score, m.phash_distance


# A group may also hold two copies that do not match each other directly when one of its pictures matches every
# other member at least this well: each is then a clear copy of that picture (a crop of a JPEG and a brightened
# resize of one icon differ by both edits; chosen on the tuning part: at 0.8 it grouped 17 more true pairs and no
# wrong one, at 0.75 it joined ten pairs of an icon and its filled twin)
KEEPER_MATCH = 0.8


def _centred(group: set, known: Mapping) -> bool:
    """True when one picture of ``group`` matches each other member directly with a score of KEEPER_MATCH or more."""
    def strong(x, y) -> bool:
        m = known.get(frozenset((x, y)))
        return m is not None and m.score >= KEEPER_MATCH
    return any(all(strong(centre, y) for y in group if y != centre) for centre in group)


def matches_among(matches: list[Match], active) -> list[Match]:
    """The matches between `active` pictures, for regrouping after some left (resolved as copies).

    Equal pictures are linked as ``_exact_matches`` links them: a star of 'exact' links from the first of each set of
    one file, and of 'same-pixels' links from the first of each set of equal pixels to the others not of its file
    (equal pixels have equal hashes: distance 0). When one that such links ran through has left, the sets it was in
    are linked again that way among the pictures still active."""
    kept = [m for m in matches if m.a in active and m.b in active]
    equal = [m for m in matches if m.kind != "near"]
    if all(m.a in active and m.b in active for m in equal):
        return kept
    same_pixels, same_file = UnionFind(), UnionFind()
    for m in equal:
        same_pixels.union(m.a, m.b)
        if m.kind == "exact":
            same_file.union(m.a, m.b)
    broken = {same_pixels.find(x) for m in equal for x in (m.a, m.b) if x not in active}
    kept = [m for m in kept if m.kind == "near" or same_pixels.find(m.a) not in broken]
    classes: dict = {}
    for x in {x for m in equal for x in (m.a, m.b) if x in active and same_pixels.find(x) in broken}:
        classes.setdefault(same_pixels.find(x), []).append(x)
    for members in classes.values():
        members.sort(key=_sortable)
        files: dict = {}
        for x in members:
            files.setdefault(same_file.find(x), []).append(x)
        kept.extend(Match(f[0], x, "exact", 0, 0, 1.0) for f in files.values() for x in f[1:])
        first = members[0]
        kept.extend(Match(first, x, "same-pixels", 0, 0, 1.0) for x in members[1:]
                    if same_file.find(x) != same_file.find(first))
    return kept


def groups_from_matches(matches: list[Match], verify=None) -> list[Group]:
    """Groups in which every two pictures match each other directly, or all match one of them clearly; largest and
    strongest kind first.

    Bare transitive closure (union-find over the matches) lets pictures that are mostly background chain unrelated
    pictures into one group through a few weak links. Here exact and same-pixels matches join first (their members
    are one picture), then near matches are taken strongest first, and two groups join only when every pair across
    them matches (a known match, or one ``verify`` confirms), or when one picture of the joined group matches every
    other with a score of KEEPER_MATCH or more (``_centred``: copies of one picture, each by other edits).
    ``verify(pairs)`` gets a list of (a, b) ids and returns a Match or None for each (None for every pair when
    ``verify`` is None: only known matches count). The matches a group was joined by, verified ones included, are its
    ``matches``, so a subset of the pictures can be regrouped from them alone.
    """
    uf = UnionFind()
    members: dict = {}
    known = {frozenset((m.a, m.b)): m for m in matches}
    for m in matches:
        for x in (m.a, m.b):
            if uf.find(x) not in members:
                members[uf.find(x)] = {x}
    kept = [m for m in matches if m.kind != "near"]
    for m in kept:
        ra, rb = uf.find(m.a), uf.find(m.b)
        if ra != rb:
            joined = members.pop(ra) | members.pop(rb)
            members[uf.union(ra, rb)] = joined
    for m in sorted((m for m in matches if m.kind == "near"), key=lambda m: (-m.score, m.phash_distance)):
        ra, rb = uf.find(m.a), uf.find(m.b)
        if ra == rb:
            continue
        cross = [(x, y) for x in members[ra] for y in members[rb]]
        unknown = [p for p in cross if frozenset(p) not in known]
        if unknown:
            found = verify(unknown) if verify is not None else [None] * len(unknown)
            for p, v in zip(unknown, found):
                known[frozenset(p)] = v
        links = [known[frozenset(p)] for p in cross]
        if any(v is None for v in links) and not _centred(members[ra] | members[rb], known):
            continue
        kept.extend(v for v in links if v is not None and v is not m)
        kept.append(m)
        joined = members.pop(ra) | members.pop(rb)
        members[uf.union(ra, rb)] = joined
    by_root: dict = {}
    for m in {id(m): m for m in kept}.values():
        by_root.setdefault(uf.find(m.a), []).append(m)
    groups = []
    for ms in by_root.values():
        group_members = sorted({x for m in ms for x in (m.a, m.b)}, key=_sortable)
        groups.append(Group(members=group_members, kind=_group_kind(m.kind for m in ms), matches=ms))
    groups.sort(key=lambda g: (KINDS.index(g.kind), -len(g.members), _sortable(g.members[0])))
    return groups


def _sortable(x):
    return (str(type(x)), x) if not isinstance(x, (int, np.integer)) else ("", int(x))


def _exact_matches(ids, fps, phash, dhash) -> tuple[list[Match], set]:
    """Matches between equal sha256 (exact) or equal pixel hash (same-pixels); returns the pair set."""
    out, seen = [], set()
    for attr, kind in (("sha256", "exact"), ("pixel_hash", "same-pixels")):
        first: dict = {}
        for pos, fp in enumerate(fps):
            key = getattr(fp, attr, None)
            if not key:
                continue
            if key in first:
                f = first[key]
                pair = (f, pos)
                if pair not in seen:
                    seen.add(pair)
                    out.append(Match(ids[f], ids[pos], kind, int(hamming(phash[f], phash[pos])[0]),
                                     int(hamming(dhash[f], dhash[pos])[0]), 1.0))
            else:
                first[key] = pos
    return out, seen


def find_duplicate_groups(fingerprints, *, hash_threshold: int = DEFAULT_HASH_THRESHOLD,
                          confirm_threshold: float = DEFAULT_CONFIRM_THRESHOLD,
                          confirm: bool = True, all_matches: list | None = None) -> list[Group]:
    """All duplicate groups among ``fingerprints`` (mapping id -> fp, or a sequence: ids are positions).

    ``confirm=False`` skips the thumbnail stage (pure hash threshold, for calibration/benchmarks). ``all_matches``,
    a list, receives every match found, also those no group kept (a pair whose third picture did not match both):
    once a picture leaves (resolved as a copy), the others regroup from them (``groups_from_matches``).
    """
    ids, fps = _items(fingerprints)
    if len(fps) < 2:
        return []
    phash, dhash = _hash_array(fps, "phash"), _hash_array(fps, "dhash")
    matches, seen = _exact_matches(ids, fps, phash, dhash)
    ci, cj = candidate_pairs(phash, dhash, hash_threshold)
    thumbs = Thumbs(fps) if confirm else None  # decoded once for the whole search
    if confirm:
        ci, cj = _with_neighbours(ci, cj, thumbs)
    # pairs already joined by exact / same-pixels links need no confirm stage (and stay labelled exact)
    same = UnionFind()
    for i, j in seen:
        same.union(i, j)
    root = np.array([same.find(k) for k in range(len(fps))])  # once per picture, not per candidate pair
    fresh = root[ci] != root[cj]
    ci, cj = ci[fresh], cj[fresh]
    matches += _confirm(ids, ids, thumbs, thumbs, ci, cj, phash, dhash, phash, dhash, confirm_threshold, confirm,
                        nearest=NEAREST)
    position = {i: k for k, i in enumerate(ids)}

    def confirmed(pairs) -> dict:
        ia = np.array([position[a] for a, _ in pairs], dtype=np.int64)
        ib = np.array([position[b] for _, b in pairs], dtype=np.int64)
        found = _confirm(ids, ids, thumbs, thumbs, ia, ib, phash, dhash, phash, dhash, confirm_threshold, confirm)
        return {frozenset((m.a, m.b)): m for m in found}

    ahead = _pairs_the_grouping_may_ask(matches)
    checked = dict.fromkeys(map(frozenset, ahead))
    checked.update(confirmed(ahead))

    def verify(pairs):
        todo = [p for p in pairs if frozenset(p) not in checked]
        checked.update(dict.fromkeys(map(frozenset, todo)))
        if todo:
            checked.update(confirmed(todo))
        found = [_facing(checked[frozenset(p)], *p) for p in pairs]
        if all_matches is not None:
            all_matches.extend(m for m in found if m is not None)
        return found

    if all_matches is not None:
        all_matches.extend(matches)
    return groups_from_matches(matches, verify)


# Another rendition of an icon (drawn again at 16, 22 or 32 px) is often far from it in hash space while its
# signature (``signatures``) is still among the closest of the set: on the Tango and GNOME themes, the three nearest
# signatures of each picture held 274 and 483 of the true pairs the hashes missed. Each picture's NEIGHBOURS nearest
# are therefore candidates too, confirmed like the others (chosen on those themes, the tuning part and the fourth
# untouched one among 2, 3, 4 and 5; with the learned check trained on such pairs, bench/dedup_verifier.py, they add
# 0.6 to 7.3 points of recall there, precision within 0.4 points either way).
NEIGHBOURS = 3


def _with_neighbours(ci: np.ndarray, cj: np.ndarray, thumbs: Thumbs) -> tuple[np.ndarray, np.ndarray]:
    """The hash candidates (ci, cj) and each picture's NEIGHBOURS nearest signatures (a flat picture has none), each
    pair once."""
    ni, nj = nearest_pairs(thumbs.signatures(np.arange(len(thumbs.stack))), NEIGHBOURS)
    pairs = np.unique(np.concatenate([np.stack([ci, cj], 1), np.stack([ni, nj], 1)]).astype(np.int64), axis=0)
    return pairs[:, 0], pairs[:, 1]


def _facing(match: Match | None, a, b) -> Match | None:
    """``match`` with its pictures in the order (a, b) asked about."""
    return match if match is None or match.a == a else replace(match, a=a, b=b)


PREFETCH_MAX = 12  # pictures in a set of linked ones whose unlinked pairs are all confirmed up front


def _pairs_the_grouping_may_ask(matches: list[Match]) -> list[tuple]:
    """The unmatched pairs within each set of pictures that the matches link (of 3 to PREFETCH_MAX pictures): the
    grouping asks about the pairs across two parts it joins, one join at a time, and confirming them in one batch
    costs a fraction of many small calls (each pair's score is the same either way). Larger sets are asked about as
    the grouping goes (a long chain would cost its square)."""
    known = {frozenset((m.a, m.b)) for m in matches}
    return [(x, y) for part in group_pairs([(m.a, m.b) for m in matches], min_size=3) if len(part) <= PREFETCH_MAX
            for x, y in combinations(part, 2) if frozenset((x, y)) not in known]


_SIGNATURE_CELLS = 8  # the cheap first look: 8x8 cell means of each colour channel
NEAREST = 6  # each picture's closest hash candidates (by signature correlation) that are compared
_SIGNATURE_FLOOR = 0.5  # correlation of two signatures below which a pair within 8 bits is not confirmed
_SIGNATURE_FLOOR_FAR = 0.65  # ... and beyond 8 bits (the bench's confirmed duplicates lie above these; most of the
# hash candidates of a large set of icons lie below)


def signatures(thumbs) -> np.ndarray:
    """(N, 3 * 8 * 8) zero-mean, unit-length colour signatures of confirm thumbnails (zeros for a flat one).

    Computed once per picture; two signatures' dot product is their correlation, which rejects most hash candidates
    before the aligned comparison is paid for (crops of a few percent move a picture by less than half a cell)."""
    arr = thumbs if isinstance(thumbs, np.ndarray) else _thumb_stack(thumbs)
    k, q = _SIGNATURE_CELLS, THUMB_SIDE // _SIGNATURE_CELLS
    cells = (arr.reshape(len(arr), k, q, k, q, 3).sum(axis=(2, 4), dtype=np.float32) / (q * q))
    cells = np.ascontiguousarray(cells.transpose(0, 3, 1, 2)).reshape(len(arr), -1)
    cells -= cells.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(cells, axis=1, keepdims=True)
    return np.where(norm > 1.0, cells / np.maximum(norm, 1e-6), 0.0).astype(np.float32)


def _correlations(thumbs_a: Thumbs, thumbs_b: Thumbs, ia: np.ndarray, ib: np.ndarray,
                  block: int = 1 << 17) -> tuple[np.ndarray, np.ndarray]:
    """(signature correlation, a picture of the pair is flat) of each pair (ia[k], ib[k]), in blocks so that memory
    stays small however many candidates there are."""
    corr = np.empty(ia.size, dtype=np.float32)
    flat = np.empty(ia.size, dtype=bool)
    for lo in range(0, ia.size, block):
        sa, sb = thumbs_a.signatures(ia[lo:lo + block]), thumbs_b.signatures(ib[lo:lo + block])
        corr[lo:lo + block] = np.einsum("ij,ij->i", sa, sb)
        flat[lo:lo + block] = ~sa.any(axis=1) | ~sb.any(axis=1)
    return corr, flat


def _worth_confirming(corr: np.ndarray, flat: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """Pairs whose signatures correlate enough to be confirmed at their hash distance, and pairs with a flat picture
    (no signature)."""
    return flat | (corr >= np.where(distance <= 8, _SIGNATURE_FLOOR, _SIGNATURE_FLOOR_FAR))


def _nearest(ia: np.ndarray, ib: np.ndarray, closeness: np.ndarray, k: int) -> np.ndarray:
    """Positions of the pairs that are among the ``k`` closest of either of their pictures (``ia`` and ``ib`` index
    two sets of pictures; in a self-join a picture has a budget on each side)."""
    n = closeness.size
    ends = np.concatenate([ia, ib + (int(ia.max()) + 1)])
    pair = np.concatenate([np.arange(n), np.arange(n)])
    order = np.lexsort((-np.concatenate([closeness, closeness]), ends))
    ends, pair = ends[order], pair[order]
    first = np.r_[0, np.flatnonzero(np.diff(ends)) + 1]
    rank = np.arange(ends.size) - np.repeat(first, np.diff(np.r_[first, ends.size]))
    return np.unique(pair[rank < k])


_CONFIRM_BLOCK = 4096  # pairs whose thumbnails are gathered from the Thumbs arrays at once (2 x 48 MiB)


def _confirm(ids_a, ids_b, thumbs_a: Thumbs | None, thumbs_b: Thumbs | None, ia, ib, ph_a, dh_a, ph_b, dh_b,
             confirm_threshold, confirm, nearest: int | None = None) -> list[Match]:
    """Near matches among the candidate pairs (ia[k], ib[k]): positions in ``thumbs_a`` and ``thumbs_b`` (None
    without the confirm stage). With ``nearest``, only each picture's ``nearest`` candidates by signature correlation
    are compared: a group needs links that join it, not every pair of it (the grouping checks the pairs it still
    needs itself)."""
    if ia.size == 0:
        return []
    pd = hamming(ph_a[ia], ph_b[ib])
    dd = hamming(dh_a[ia], dh_b[ib])
    if confirm:
        corr, flat = _correlations(thumbs_a, thumbs_b, ia, ib)
        worth = np.flatnonzero(_worth_confirming(corr, flat, np.minimum(pd, dd)))
        if nearest is not None and worth.size:
            worth = worth[_nearest(ia[worth], ib[worth], corr[worth], nearest)]
        scores = np.full(ia.size, -1.0)
        for lo in range(0, worth.size, _CONFIRM_BLOCK):
            block = worth[lo:lo + _CONFIRM_BLOCK]
            a, b = ia[block], ib[block]
            scores[block] = confirm_scores(
                thumbs_a.stack[a], thumbs_b.stack[b], threshold=confirm_threshold, sizes_a=thumbs_a.sizes[a],
                sizes_b=thumbs_b.sizes[b],
                colours_differ=lambda k, a=a, b=b: thumbs_a.colours_differ(a[k], thumbs_b, b[k]))
        ok = scores >= confirm_threshold
    else:
        scores = np.ones(ia.size)
        ok = np.ones(ia.size, dtype=bool)
    return [Match(ids_a[i], ids_b[j], "near", int(p), int(d), float(s))
            for i, j, p, d, s, k in zip(ia.tolist(), ib.tolist(), pd, dd, scores, ok) if k]


# --------------------------------------------------------------------------- incremental check


class DuplicateIndex:
    """What is already in the dataset, for checking a new batch without re-running everything.

    Holds sha256 / pixel-hash lookups, two banded Hamming indexes (pHash, dHash) and, when the fingerprints come
    with their thumbnails, each picture's signature (``check_new`` proposes a new picture's nearest ones too).
    The thumbnails themselves are not kept: ``check_new`` reads them from ``existing_fps`` for the candidates.
    """

    def __init__(self):
        self.by_sha: dict[str, Any] = {}
        self.by_pixels: dict[str, Any] = {}
        self.phash = HammingIndex()
        self.dhash = HammingIndex()
        self._hashes: dict[Any, tuple[int, int]] = {}
        self._ids: list = []  # HammingIndex wants int64 ids: we index positions in this list
        self._signatures: list[np.ndarray] = []  # one block per add(), rows in position order
        self._signed = True  # every indexed picture came with its thumbnail

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, fingerprints) -> None:
        ids, fps = _items(fingerprints)
        start = len(self._ids)
        for i, fp in zip(ids, fps):
            if i in self._hashes:
                raise ValueError(f"id {i!r} is already indexed")
            self.by_sha.setdefault(fp.sha256, i)
            if getattr(fp, "pixel_hash", None):
                self.by_pixels.setdefault(fp.pixel_hash, i)
            self._hashes[i] = (int(fp.phash), int(fp.dhash))
            self._ids.append(i)
        pos = np.arange(start, len(self._ids), dtype=np.int64)
        self.phash.add(pos, _hash_array(fps, "phash"))
        self.dhash.add(pos, _hash_array(fps, "dhash"))
        self._signed = self._signed and all(getattr(fp, "thumb", None) for fp in fps)
        if self._signed and fps:
            self._signatures.append(signatures(_thumb_stack([fp.thumb for fp in fps])))

    def signatures(self) -> np.ndarray | None:
        """(len(self), 192) signatures of the indexed pictures in position order, or None if some came without a
        thumbnail."""
        if not self._signed:
            return None
        return np.concatenate(self._signatures) if self._signatures else np.zeros((0, 3 * _SIGNATURE_CELLS ** 2),
                                                                                   dtype=np.float32)

    def id_at(self, pos: int):
        return self._ids[pos]

    def hashes_of(self, id_) -> tuple[int, int]:
        return self._hashes[id_]


def check_new(new_fps, index: DuplicateIndex, existing_fps: Mapping, *,
              hash_threshold: int = DEFAULT_HASH_THRESHOLD,
              confirm_threshold: float = DEFAULT_CONFIRM_THRESHOLD) -> dict:
    """Duplicates of each new image among the existing ones and within the batch.

    Returns ``{new_id: [Match, ...]}`` (best first: exact, same-pixels, then near by score) for every
    new id; an empty list means "new picture". ``Match.a`` is the new id, ``Match.b`` the existing id
    or an earlier new id of the same batch. The index is not modified (add the accepted ones after).
    """
    ids, fps = _items(new_fps)
    result: dict = {i: [] for i in ids}
    if not fps:
        return result
    phash, dhash = _hash_array(fps, "phash"), _hash_array(fps, "dhash")
    handled: set = set()
    for pos, fp in enumerate(fps):
        for attr, kind, table in (("sha256", "exact", index.by_sha), ("pixel_hash", "same-pixels", index.by_pixels)):
            key = getattr(fp, attr, None)
            if key and key in table:
                other = table[key]
                if (pos, other) in handled:
                    continue
                handled.add((pos, other))
                op, od = index.hashes_of(other)
                result[ids[pos]].append(Match(ids[pos], other, kind, int(hamming(phash[pos], op)[0]),
                                              int(hamming(dhash[pos], od)[0]), 1.0))
    # hash candidates against the index, incremental (no re-scan of existing pairs), and each new picture's nearest
    # signatures among the indexed ones (as the whole search proposes them, from the new picture's side)
    new_thumbs = Thumbs(fps)
    cand: set = set()
    for idx in (index.phash, index.dhash):
        rows, pos_ids, _ = idx.query_arrays(phash if idx is index.phash else dhash, hash_threshold)
        cand.update(zip(rows.tolist(), pos_ids.tolist()))
    indexed = index.signatures()
    if indexed is not None and len(indexed):
        rows, pos_ids = nearest_pairs(new_thumbs.signatures(np.arange(len(fps))), NEIGHBOURS, others=indexed)
        cand.update(zip(rows.tolist(), pos_ids.tolist()))
    cand = sorted((r, p) for r, p in cand if (r, index.id_at(p)) not in handled)
    if cand:
        ia = np.array([r for r, _ in cand], dtype=np.int64)
        # each existing picture once, however many new ones it is a candidate of
        positions, ib = np.unique(np.array([p for _, p in cand], dtype=np.int64), return_inverse=True)
        ex_ids = [index.id_at(int(p)) for p in positions]
        ex_fps = [existing_fps[e] for e in ex_ids]
        ex_ph = _hash_array(ex_fps, "phash")
        ex_dh = _hash_array(ex_fps, "dhash")
        for m in _confirm(ids, ex_ids, new_thumbs, Thumbs(ex_fps), ia, ib, phash, dhash, ex_ph, ex_dh,
                          confirm_threshold, True):
            result[m.a].append(m)
    # duplicates inside the batch
    for g in find_duplicate_groups(dict(zip(ids, fps)), hash_threshold=hash_threshold,
                                   confirm_threshold=confirm_threshold):
        for m in g.matches:
            later, earlier = (m.b, m.a) if ids.index(m.a) < ids.index(m.b) else (m.a, m.b)
            result[later].append(Match(later, earlier, m.kind, m.phash_distance, m.dhash_distance, m.score))
    for i in result:
        result[i].sort(key=match_order)
    return result


# --------------------------------------------------------------------------- keeper


def _get(member, key, default=None):
    if isinstance(member, Mapping):
        return member.get(key, default)
    return getattr(member, key, default)


# formats in which a copy may have lost detail or colours to its encoding (WebP may be lossy; GIF keeps 256 colours)
LOSSY_FORMATS = frozenset({"JPEG", "WEBP", "GIF"})


def keeper_sort_key(member):
    """Sort key: highest resolution first (of the content, ``content_width``/``content_height`` where given: an added
    border adds none; sizes within 10 % of each other count as equal, as re-encodings trim a pixel apart), then a
    ``format`` outside LOSSY_FORMATS (a PNG before its JPEG or WebP copy of one size), then best rating (missing =
    worst), then oldest."""
    w = _get(member, "content_width") or _get(member, "width") or 0
    h = _get(member, "content_height") or _get(member, "height") or 0
    rating = _get(member, "rating")
    created = _get(member, "created")
    if isinstance(created, datetime):
        created_key = created.timestamp()
    elif created is None:
        created_key = float("inf")
    else:
        created_key = float(created)
    size = math.floor(math.log(w * h) / math.log(1.1)) if w and h else 0
    lossy = str(_get(member, "format") or "").upper() in LOSSY_FORMATS
    return (-size, lossy, 0 if rating is not None else 1, -(rating or 0.0), created_key)


def suggest_keeper(members: Sequence):
    """The member to keep: highest resolution, then not JPEG, WebP or GIF, then best rating, then oldest
    (``created``).

    Members are dicts or objects with ``width``, ``height``, optional ``content_width``, ``content_height``,
    ``format``, ``rating`` and ``created`` (datetime or number). Returns the member itself.
    """
    if not members:
        raise ValueError("suggest_keeper needs at least one member")
    return min(members, key=keeper_sort_key)
