"""Turn a small generated sample into a sticker: transparent background without halos, upscaled, traced to SVG.

The pipeline, and why each step:
1. Matte at the native size, where a uniform background is exactly uniform: the background is the border-
   connected region of the border's colour. Each edge pixel's alpha is solved from C = αF + (1−α)B with B the
   known background and F the colour of the solid pixels next to it (projection onto the B→F line), so anti-
   aliasing is kept as coverage instead of being thrown away or left as a pale fringe.
   Holes: an enclosed region of the background colour becomes transparent only when it covers at least
   `HOLE_MIN_SHARE` of the image (a gap between a tail and a body) and is the background colour itself (nine in
   ten of its pixels within 6 levels: a pale belly is not). Smaller ones (eye whites, teeth, highlights) stay
   opaque: at 32 px the two cannot be told apart by colour, and a sticker missing its eyes is worse than one
   with a small gap filled.
   Specks: the pieces are the solid parts (alpha ≥ ½, 8-connected), each with the faint pixels touching it. A
   piece smaller than `SPECK_MAX_SHARE` of the largest (a stray dot the model drew beside the animal), or smaller
   than `SEPARATE_MAX_SHARE` and clearly apart from it (`SEPARATE_GAP` of the side away, or cut by the frame) is
   made background, so it does not float beside the sticker or get its own ring of outline; faint pixels that
   touch no kept piece go too (a faint trail once joined specks to the animal). Ears, fins and tails a pixel or
   two from the body, and a second animal, stay. Both rules run again on the full-size silhouette, where the
   smooth upscaled coverage can raise islands of its own and close a thin channel of background into a pinhole.
2. Colour is upscaled on its own (Lanczos, or the run's learned upscaler through `upscaler=`); the coverage is
   upscaled smoothly and cut at its 0.5 level set with a one-pixel ramp (alpha = (c − ½)/|∇c| + ½), which gives
   a crisp, anti-aliased silhouette at any scale instead of a ×8 blur.
3. Decontamination: where the smooth coverage is high the foreground colour is unmixed, F = (C − (1−c)B)/c;
   in the thin band outside that, colours are carried outward from the nearest solid pixels, so no pixel of the
   silhouette keeps any of the old background (the halo).
4. An optional outline (the sticker look): the silhouette dilated by a disc of the chosen width, anti-aliased,
   painted under the sticker; the canvas grows by the width so the outline is not cut.
5. SVG: the sticker's opaque pixels are reduced to a few flat colours (k-means in CIE Lab), a 3×3 majority filter
   removes mottled single pixels, then vtracer traces flat shapes with spline curves and drops speckles.
"""
from __future__ import annotations

import io
import json
import re
import zipfile
from typing import Callable

import numpy as np
from PIL import Image, ImageColor, ImageDraw

SCALES = (4, 8)
BACKGROUNDS = ("auto", "keep", "matte", "none")
HOLE_MIN_SHARE = 0.04  # enclosed background regions at least this share of the image become holes
SPECK_MAX_SHARE = 0.05  # detached foreground pieces smaller than this share of the largest one are dropped
SEPARATE_MAX_SHARE = 0.25  # ... and pieces smaller than this share when they are clearly apart (drop_specks)
SEPARATE_GAP = 0.08  # "clearly apart": this share of the image's side away from the largest piece
MAX_OUTLINE = 64
COLOUR_RANGE = (2, 32)
DEFAULT_COLOURS = 8

Upscaler = Callable[[Image.Image, int], Image.Image]  # RGB image, scale -> RGB image ×scale


class StickerError(ValueError):
    """The image cannot be made into a sticker as asked; the message says why."""


# --- small array helpers --------------------------------------------------------------------------------------

def _shift(a: np.ndarray, dy: int, dx: int, fill=0) -> np.ndarray:
    """a shifted by (dy, dx) with `fill` coming in at the edges."""
    out = np.full_like(a, fill)
    h, w = a.shape[:2]
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = a[ys, xs]
    return out


def _dilate(mask: np.ndarray) -> np.ndarray:
    """4-neighbour binary dilation."""
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out


def _box_sum(a: np.ndarray, r: int) -> np.ndarray:
    """Sum over a (2r+1)² window (zero outside), for 2-D or 3-D arrays."""
    pad = [(r + 1, r), (r + 1, r)] + [(0, 0)] * (a.ndim - 2)
    c = np.pad(a.astype(np.float64), pad).cumsum(0).cumsum(1)
    k = 2 * r + 1
    return c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]


def label(mask: np.ndarray, *, diagonal: bool = False) -> tuple[np.ndarray, int]:
    """(int labels, 0 = outside the mask, and the number of pieces) of a boolean mask's connected pieces,
    4-connected, or 8-connected with `diagonal`. Works on runs of each row joined by union-find, so a 256 px
    silhouette takes milliseconds."""
    h, w = mask.shape
    edges = np.diff(np.pad(mask, ((0, 0), (1, 1))).astype(np.int8), axis=1)
    rows, starts = np.nonzero(edges == 1)
    ends = np.nonzero(edges == -1)[1]  # each run is [start, end) on its row; both lists in row-major order
    parent = list(range(len(rows)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first = np.searchsorted(rows, np.arange(h + 1))
    slack = 1 if diagonal else 0
    for y in range(1, h):
        i, i_end, j, j_end = first[y - 1], first[y], first[y], first[y + 1]
        while i < i_end and j < j_end:
            if starts[i] < ends[j] + slack and starts[j] < ends[i] + slack:
                parent[root(i)] = root(j)
            if ends[i] < ends[j]:
                i += 1
            else:
                j += 1
    labels = np.zeros((h, w), dtype=np.int32)
    ids: dict[int, int] = {}
    for k in range(len(rows)):
        labels[rows[k], starts[k]:ends[k]] = ids.setdefault(root(k), len(ids) + 1)
    return labels, len(ids)


def _components(mask: np.ndarray) -> list[np.ndarray]:
    """4-connected components of a boolean mask, each as an array of (y, x)."""
    labels, n = label(mask)
    ys, xs = np.nonzero(labels)
    order = np.argsort(labels[ys, xs], kind="stable")
    coords = np.stack([ys[order], xs[order]], axis=1)
    return np.split(coords, np.cumsum(np.bincount(labels[ys, xs], minlength=n + 1)[1:])[:-1])


def _flood_from_border(candidate: np.ndarray) -> np.ndarray:
    """Pixels of `candidate` connected (4-neighbour) to the image border through candidate pixels."""
    reached = np.zeros_like(candidate)
    reached[0], reached[-1], reached[:, 0], reached[:, -1] = candidate[0], candidate[-1], candidate[:, 0], \
        candidate[:, -1]
    while True:
        grown = _dilate(reached) & candidate
        if (grown == reached).all():
            return reached
        reached = grown


def _fill_outward(colour: np.ndarray, known: np.ndarray, steps: int) -> np.ndarray:
    """Carry known colours into unknown neighbours, one ring per step (mean of the known 3×3 neighbours)."""
    colour = colour.copy()
    known = known.copy()
    for _ in range(steps):
        sums = _box_sum(colour * known[..., None], 1)
        counts = _box_sum(known.astype(np.float64), 1)
        new = ~known & (counts > 0)
        if not new.any():
            break
        colour[new] = sums[new] / counts[new][:, None]
        known |= new
    return colour


def parse_colour(text: str) -> tuple[int, int, int]:
    """A CSS-like colour ('white', '#fff', '#1a2b3c') as RGB; StickerError otherwise."""
    if not isinstance(text, str) or not text or "\x00" in text or len(text) > 40:
        raise StickerError(f"colour {text!r} is not a colour (try 'white', 'black' or '#ff8800')")
    try:
        return tuple(ImageColor.getrgb(text.strip())[:3])
    except ValueError:
        raise StickerError(f"colour {text!r} is not a colour (try 'white', 'black' or '#ff8800')") from None


# --- matte --------------------------------------------------------------------------------------------------

def border_colour(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """Median colour of the one-pixel border, and the share of border pixels close to it (uniformity)."""
    border = np.concatenate([rgb[0], rgb[-1], rgb[1:-1, 0], rgb[1:-1, -1]]).astype(np.float32)
    colour = np.median(border, axis=0)
    close = np.abs(border - colour).max(axis=1) <= 24
    return colour, float(close.mean())


def solve_alpha(rgb: np.ndarray, fg: np.ndarray, bg: np.ndarray, unknown: float = 1.0) -> np.ndarray:
    """Coverage α from C = αF + (1−α)B for known F and B: the projection of C−B on F−B, clipped to [0, 1].
    Where F is too close to B to tell (a white animal on white), α is `unknown` (1 on the animal's side: keep
    the pixel rather than guess)."""
    d = fg - bg
    norm = (d * d).sum(axis=-1)
    alpha = ((rgb - bg) * d).sum(axis=-1) / np.maximum(norm, 1e-6)
    return np.where(norm < 30.0 ** 2, unknown, np.clip(alpha, 0.0, 1.0))


def matte_alpha(rgb: np.ndarray, *, tolerance: float = 28.0, min_uniform: float = 0.6,
                hole_min_share: float = HOLE_MIN_SHARE) -> tuple[np.ndarray, np.ndarray]:
    """(alpha in [0, 1], background colour) of an RGB float array with a uniform background (see module doc)."""
    h, w, _ = rgb.shape
    bg, uniform = border_colour(rgb)
    if uniform < min_uniform:
        raise StickerError(f"the background is not a uniform colour (only {uniform:.0%} of the border matches "
                           "its median colour), so it cannot be removed cleanly; pick another sample or keep "
                           "the background")
    dist = np.abs(rgb - bg).max(axis=2)
    candidate = dist <= tolerance
    background = _flood_from_border(candidate)
    for region in _components(candidate & ~background):  # enclosed: a hole only when big (module doc)
        if len(region) >= hole_min_share * h * w and np.quantile(dist[region[:, 0], region[:, 1]], 0.9) <= 6:
            background[region[:, 0], region[:, 1]] = True
    # Solid: foreground pixels two steps away from the background. An edge pixel's F is one of two guesses, the
    # one that explains its colour best (least residual): the nearest solid colour carried outward (a flat fill
    # meeting the background) or the neighbour most unlike the background (a thin dark outline whose every pixel
    # is part-covered, so no solid pixel of it exists at this size).
    near = _dilate(_dilate(background))
    solid = ~near
    alpha = np.where(background, 0.0, 1.0)
    outer = background & _dilate(_dilate(~background))  # background pixels that may hold a little animal
    band = (near & ~background) | outer
    best_alpha, best_resid = np.ones((h, w)), np.full((h, w), np.inf)
    for fg in (_fill_outward(rgb, solid, steps=4), _farthest_neighbour(rgb, ~background, bg)):
        est = np.where(outer, solve_alpha(rgb, fg, bg, unknown=0.0), solve_alpha(rgb, fg, bg))
        resid = np.abs(rgb - (est[..., None] * fg + (1 - est[..., None]) * bg)).max(axis=2)
        better = resid < best_resid
        best_alpha[better], best_resid[better] = est[better], resid[better]
    alpha[band] = best_alpha[band]
    return drop_specks(alpha), bg


def _dilate8(mask: np.ndarray) -> np.ndarray:
    """8-neighbour binary dilation."""
    sideways = _shift(mask, 0, 1, False) | _shift(mask, 0, -1, False)
    return _dilate(mask) | _shift(sideways, 1, 0, False) | _shift(sideways, -1, 0, False)


def _gap_to(mask: np.ndarray, target: np.ndarray, limit: int) -> int:
    """Empty pixels between `mask` and `target` (8-neighbour steps), up to `limit`."""
    reach = target
    for gap in range(limit):
        if (_dilate8(reach) & mask).any():
            return gap
        reach = _dilate8(reach)
    return limit


def drop_specks(alpha: np.ndarray, *, max_share: float = SPECK_MAX_SHARE,
                separate_share: float = SEPARATE_MAX_SHARE, separate_gap: float = SEPARATE_GAP) -> np.ndarray:
    """`alpha` without the stray pieces beside the animal (module doc, step 1). The pieces are the solid parts
    (alpha ≥ ½, the level the silhouette is cut at; 8-connected, so a thin diagonal tail is one piece); faint
    pixels belong to the solid piece they touch, and faint pixels touching none are dropped (a faint trail must
    not join a speck to the animal). A piece goes when it is smaller than `max_share` of the largest, or smaller
    than `separate_share` and clearly apart: at least `separate_gap` × the image's longer side away from the
    largest piece, or touching the frame and not next to the animal (a fragment the frame cut off). Ears, fins
    and tails a pixel or two from the body, and a second animal, stay."""
    labels, n = label(alpha >= 0.5, diagonal=True)
    if n == 0:
        return alpha
    areas = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    main = int(np.argmax(areas)) + 1
    body = labels == main
    frame = np.zeros_like(body)
    frame[0], frame[-1], frame[:, 0], frame[:, -1] = True, True, True, True
    gap_px = max(2, round(separate_gap * max(alpha.shape)))
    keep = body.copy()
    for k in range(1, n + 1):
        if k == main or areas[k - 1] < max_share * areas[main - 1]:
            continue
        piece = labels == k
        if areas[k - 1] < separate_share * areas[main - 1]:
            gap = _gap_to(piece, body, gap_px)
            if gap >= gap_px or ((piece & frame).any() and gap >= 2):
                continue
        keep |= piece
    return np.where(keep | (_dilate8(keep) & (alpha < 0.5)), alpha, 0.0)


def fill_pinholes(alpha: np.ndarray, hole_min_share: float = HOLE_MIN_SHARE) -> np.ndarray:
    """`alpha` with enclosed transparent regions (alpha < ½, not reaching the frame) smaller than
    `hole_min_share` of the image made opaque, with their anti-aliased rims: the matte's hole rule applied to the
    full-size silhouette, where a channel of background that reached into a pale animal at the native size has
    closed, leaving a pinhole through which the backdrop or the outline would show."""
    labels, n = label(alpha < 0.5)
    if n < 2:
        return alpha
    h, w = alpha.shape
    areas = np.bincount(labels.ravel(), minlength=n + 1)
    outside = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    small = areas < hole_min_share * h * w
    small[0] = False
    small[outside] = False
    holes = small[labels]
    if not holes.any():
        return alpha
    out = alpha.copy()
    out[_dilate(holes)] = 1.0  # 4-neighbours of a 4-connected hole are all the animal
    return out


def _farthest_neighbour(rgb: np.ndarray, valid: np.ndarray, bg: np.ndarray, r: int = 2) -> np.ndarray:
    """Per pixel, the colour of the `valid` pixel in its (2r+1)² window that is farthest from the background."""
    dist = np.where(valid, np.abs(rgb - bg).max(axis=2), -1.0)
    best, best_d = rgb.copy(), dist.copy()
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            d = _shift(dist, dy, dx, fill=-1.0)
            take = d > best_d
            best[take], best_d[take] = _shift(rgb, dy, dx)[take], d[take]
    return best


def matte(img: Image.Image, **kwargs) -> Image.Image:
    """Native-size RGBA with the uniform background removed and edge colours decontaminated."""
    rgb = np.asarray(img.convert("RGB"), dtype=np.float64)
    alpha, bg = matte_alpha(rgb, **kwargs)
    colour = decontaminate(rgb, alpha, bg)
    return Image.fromarray(np.dstack([colour, alpha * 255]).round().clip(0, 255).astype(np.uint8), "RGBA")


def decontaminate(rgb: np.ndarray, coverage: np.ndarray, bg: np.ndarray, *, trust: float = 0.9,
                  band: int = 12) -> np.ndarray:
    """Foreground colour under partial coverage: unmixed where coverage ≥ `trust`, F = (C − (1−c)B)/c, and
    carried outward from there into the rest of the edge band (where dividing by a small c only amplifies
    noise and the old background)."""
    c = coverage[..., None]
    unmixed = np.clip((rgb - (1 - c) * bg) / np.maximum(c, 1e-6), 0, 255)
    trusted = coverage >= trust
    if not trusted.any():
        return rgb
    return _fill_outward(unmixed, trusted, steps=band)


def has_transparency(img: Image.Image) -> bool:
    if img.mode not in ("RGBA", "LA", "PA") and "transparency" not in img.info:
        return False
    alpha = np.asarray(img.convert("RGBA"))[..., 3]
    return bool((alpha < 250).any())


def _coverage(img: Image.Image, background: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(RGB as flat colour over B, coverage α, B or None when nothing is removed)."""
    if background not in BACKGROUNDS:
        raise StickerError(f"background {background!r} must be one of {', '.join(BACKGROUNDS)}")
    if background == "none":
        rgb = np.asarray(img.convert("RGB"), dtype=np.float64)
        return rgb, np.ones(rgb.shape[:2]), None
    if background == "keep" or (background == "auto" and has_transparency(img)):
        if not has_transparency(img):
            raise StickerError("the image has no transparency to keep; choose 'matte' to key out its background")
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float64)
        a = rgba[..., 3:] / 255.0
        white = np.array([255.0, 255.0, 255.0])
        return rgba[..., :3] * a + (1 - a) * white, a[..., 0], white
    rgb = np.asarray(img.convert("RGB"), dtype=np.float64)
    alpha, bg = matte_alpha(rgb)
    return rgb, alpha, bg


def transparent(img: Image.Image, background: str = "auto") -> Image.Image:
    """Native-size RGBA with a transparent background ("keep", "matte", "auto" or "none"; see make_sticker)."""
    rgb, alpha, bg = _coverage(img, background)
    colour = rgb if bg is None else decontaminate(rgb, alpha, bg)
    return Image.fromarray(np.dstack([colour, alpha * 255]).round().clip(0, 255).astype(np.uint8), "RGBA")


# --- upscaling and the silhouette ---------------------------------------------------------------------------

def lanczos(img: Image.Image, scale: int) -> Image.Image:
    """The classic upscaler (the default, and the baseline the learned one is compared with)."""
    return img.resize((img.width * scale, img.height * scale), Image.LANCZOS)


def _smooth_up(a: np.ndarray, scale: int) -> np.ndarray:
    img = Image.fromarray(a.astype(np.float32), "F")
    return np.asarray(img.resize((img.width * scale, img.height * scale), Image.BICUBIC), dtype=np.float64)


def silhouette(coverage: np.ndarray) -> np.ndarray:
    """Cut a smooth coverage field at 0.5 with a ramp one output pixel wide: crisp and anti-aliased."""
    gy, gx = np.gradient(coverage)
    grad = np.hypot(gx, gy)
    sharp = np.clip((coverage - 0.5) / np.maximum(grad, 1e-3) + 0.5, 0.0, 1.0)
    return np.where(grad < 1e-3, (coverage >= 0.5).astype(np.float64), sharp)


def outline(rgba: np.ndarray, width: int, colour: tuple[int, int, int]) -> np.ndarray:
    """Paint an anti-aliased outline `width` px wide under a float RGBA array; the canvas grows by `width`."""
    a = np.pad(rgba[..., 3] / 255.0, width)
    ring = np.zeros_like(a)
    for dy in range(-width, width + 1):
        for dx in range(-width, width + 1):
            weight = np.clip(width + 0.5 - np.hypot(dy, dx), 0.0, 1.0)
            if weight > 0:
                np.maximum(ring, _shift(a, dy, dx) * weight, out=ring)
    top = np.pad(rgba, ((width, width), (width, width), (0, 0)))
    ta = top[..., 3:] / 255.0
    under = ring[..., None]
    out_a = ta + under * (1 - ta)
    out_rgb = (top[..., :3] * ta + np.array(colour, dtype=np.float64) * under * (1 - ta)) / np.maximum(out_a, 1e-6)
    return np.dstack([out_rgb, out_a[..., 0] * 255])


def _check(scale: int, outline_width: int, outline_colour: str) -> tuple[int, int, int]:
    if scale not in SCALES:
        raise StickerError(f"scale {scale!r} must be one of {', '.join(map(str, SCALES))}")
    if not isinstance(outline_width, int) or isinstance(outline_width, bool) or not 0 <= outline_width <= MAX_OUTLINE:
        raise StickerError(f"outline width {outline_width!r} must be a whole number of pixels from 0 to "
                           f"{MAX_OUTLINE}")
    return parse_colour(outline_colour) if outline_width else (255, 255, 255)


def prepare(img: Image.Image, background: str = "auto") -> tuple[Image.Image, np.ndarray, np.ndarray | None]:
    """Native-size steps: (decontaminated colour to upscale, coverage, background colour or None)."""
    if min(img.size) < 2:
        raise StickerError(f"the image is too small to make a sticker ({img.width}x{img.height} px)")
    rgb, alpha, bg = _coverage(img, background)
    colour = rgb if bg is None else decontaminate(rgb, alpha, bg, trust=0.25, band=6)
    return Image.fromarray(colour.round().clip(0, 255).astype(np.uint8), "RGB"), alpha, bg


def finish(big: Image.Image, alpha: np.ndarray, bg: np.ndarray | None, scale: int, *, outline_width: int = 0,
           outline_colour: str = "white") -> Image.Image:
    """Upscaled colour + the coverage -> the sticker: level-set silhouette, clamped rim, optional outline."""
    ocolour = _check(scale, outline_width, outline_colour)
    want = (alpha.shape[1] * scale, alpha.shape[0] * scale)
    if big.size != want:
        raise StickerError(f"the upscaled image is {big.width}x{big.height} px, expected {want[0]}x{want[1]}")
    big_rgb = np.asarray(big.convert("RGB"), dtype=np.float64)
    if bg is None:
        out = np.dstack([big_rgb, np.full(big_rgb.shape[:2], 255.0)])
    else:
        # The smooth coverage can leave islands the native pieces did not have (a faint pixel's bump crossing ½),
        # and pinholes (a thin channel of background into a pale animal closes): the speck and hole rules again.
        shape = fill_pinholes(drop_specks(silhouette(np.clip(_smooth_up(alpha, scale), 0.0, 1.0))))
        out = clamp_rim(np.dstack([big_rgb, shape * 255]))
    if outline_width:
        out = outline(out, outline_width, ocolour)
    return Image.fromarray(out.round().clip(0, 255).astype(np.uint8), "RGBA")


def make_sticker(img: Image.Image, *, scale: int = 4, background: str = "auto", upscaler: Upscaler | None = None,
                 outline_width: int = 0, outline_colour: str = "white") -> Image.Image:
    """The sticker as an RGBA image, ×scale (plus 2 × outline_width when outlined); see the module doc.
    background: "matte" a uniform background, "keep" the image's transparency, "auto" (keep when the image has
    transparency, matte otherwise), or "none" (opaque, just upscaled). `upscaler(rgb, scale)`: Lanczos by default."""
    _check(scale, outline_width, outline_colour)
    flat, alpha, bg = prepare(img, background)
    big = (upscaler or lanczos)(flat, scale)
    return finish(big, alpha, bg, scale, outline_width=outline_width, outline_colour=outline_colour)


def upscale(img: Image.Image, scale: int) -> Image.Image:
    """×scale of an RGBA image with its alpha as coverage (kept for callers of the earlier API)."""
    return make_sticker(img, scale=scale, background="keep" if has_transparency(img) else "none")


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    return buf.getvalue()


# --- measuring halos ----------------------------------------------------------------------------------------

def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def _max_filter(a: np.ndarray, r: int, fill: float = -np.inf) -> np.ndarray:
    """Maximum over a (2r+1)² window (separable: rows, then columns)."""
    out = a.copy()
    for d in range(1, r + 1):
        np.maximum(out, _shift(a, d, 0, fill), out=out)
        np.maximum(out, _shift(a, -d, 0, fill), out=out)
    rows = out.copy()
    for d in range(1, r + 1):
        np.maximum(out, _shift(rows, 0, d, fill), out=out)
        np.maximum(out, _shift(rows, 0, -d, fill), out=out)
    return out


def rim_and_reference(alpha: np.ndarray, *, ring: int = 2, window: int = 4, lum: np.ndarray | None = None):
    """(rim mask, min and max luma of the solid animal near each pixel): the rim is the visible pixels within
    `ring` px of a transparent one; the reference is the opaque pixels further inside, in a (2·window+1)² box."""
    clear = alpha < 0.02
    near = clear.copy()
    for _ in range(ring):
        near = _dilate(near)
    rim = near & ~clear
    inner = ~_dilate(near) & (alpha > 0.98)
    ref_max = _max_filter(np.where(inner, lum, -np.inf), window)
    ref_min = -_max_filter(np.where(inner, -lum, -np.inf), window)
    return rim, ref_min, ref_max


def clamp_rim(rgba: np.ndarray) -> np.ndarray:
    """Keep the silhouette's rim within the lightness range of the animal just inside it (shifting its colour
    evenly), so neither a leftover of the old background nor Lanczos ringing shows as a light or dark fringe."""
    lum = _luma(rgba[..., :3])
    rim, lo, hi = rim_and_reference(rgba[..., 3] / 255.0, lum=lum)
    ok = rim & np.isfinite(lo) & np.isfinite(hi)
    shift = np.clip(lum, lo, hi) - lum
    out = rgba.copy()
    out[..., :3][ok] += shift[ok][:, None]
    out[..., :3] = np.clip(out[..., :3], 0, 255)
    return out


def halo_pixels(sticker: Image.Image, *, tolerance: float = 12.0, min_alpha: float = 0.1) -> tuple[int, int]:
    """(halo pixels, rim pixels). The rim: visible pixels within 2 px of a transparent one (with some solid
    animal near). A halo pixel's own colour (alpha ≥ `min_alpha`) is lighter or darker, by more than `tolerance`
    in luma, than every solid pixel of the animal near it (rim_and_reference): on some backdrop it then shows
    lighter or darker than both the animal's edge and the backdrop (a pale fringe does on a dark or mid one)."""
    arr = np.asarray(sticker.convert("RGBA"), dtype=np.float64)
    a = arr[..., 3] / 255.0
    lum = _luma(arr[..., :3])
    rim, ref_min, ref_max = rim_and_reference(a, lum=lum)
    rim &= np.isfinite(ref_max)
    halo = rim & (a >= min_alpha) & ((lum < ref_min - tolerance) | (lum > ref_max + tolerance))
    return int(halo.sum()), int(rim.sum())


# --- palette and SVG ----------------------------------------------------------------------------------------

def _to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB 0–255 -> CIE Lab (D65)."""
    c = rgb / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def kmeans_palette(rgb: np.ndarray, k: int, *, seed: int = 0, iters: int = 12, sample: int = 20000) -> np.ndarray:
    """k palette colours (RGB, uint8) for the pixels `rgb` [N, 3]: k-means in Lab, k-means++ start, fixed seed."""
    rng = np.random.default_rng(seed)
    if len(rgb) > sample:
        rgb = rgb[rng.choice(len(rgb), sample, replace=False)]
    lab = _to_lab(rgb.astype(np.float64))
    k = min(k, len(np.unique(rgb.astype(np.uint8), axis=0)))
    centres = [lab[rng.integers(len(lab))]]
    for _ in range(1, k):
        d = np.min([((lab - c) ** 2).sum(1) for c in centres], axis=0)
        centres.append(lab[rng.choice(len(lab), p=d / d.sum())] if d.sum() > 0 else lab[rng.integers(len(lab))])
    centres = np.array(centres)
    for _ in range(iters):
        label = ((lab[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
        for j in range(k):
            if (label == j).any():
                centres[j] = lab[label == j].mean(0)
    # Report each cluster as the mean of its pixels in RGB (exact colours the art used, not a Lab round trip).
    label = ((lab[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
    return np.array([rgb[label == j].mean(0) if (label == j).any() else rgb[0] for j in range(k)]).round().astype(
        np.uint8)


def reduce_palette(sticker: Image.Image, colours: int = DEFAULT_COLOURS, *, seed: int = 0,
                   smooth: int = 1) -> tuple[Image.Image, np.ndarray]:
    """(flat RGBA sticker, palette): opaque pixels (alpha ≥ 50 %) take the nearest of `colours` k-means colours,
    a 3×3 majority filter (`smooth` passes) removes mottled pixels; alpha becomes 0 or 255 (the SVG renderer
    anti-aliases the shapes)."""
    if not isinstance(colours, int) or not COLOUR_RANGE[0] <= colours <= COLOUR_RANGE[1]:
        raise StickerError(f"colours {colours!r} must be a whole number from {COLOUR_RANGE[0]} to {COLOUR_RANGE[1]}")
    arr = np.asarray(sticker.convert("RGBA"))
    solid = arr[..., 3] >= 128
    out = np.zeros_like(arr)
    if not solid.any():
        return Image.fromarray(out, "RGBA"), np.zeros((0, 3), np.uint8)
    palette = kmeans_palette(arr[..., :3][solid], colours, seed=seed)
    lab = _to_lab(arr[..., :3].astype(np.float64))
    label = ((lab[..., None, :] - _to_lab(palette.astype(np.float64))[None, None]) ** 2).sum(-1).argmin(-1)
    for _ in range(smooth):
        votes = np.stack([_box_sum(((label == j) & solid).astype(np.float64), 1) for j in range(len(palette))], -1)
        label = np.where(solid, votes.argmax(-1), label)
    out[..., :3] = palette[label]
    out[..., 3] = np.where(solid, 255, 0)
    out[~solid, :3] = 0
    return Image.fromarray(out, "RGBA"), palette


def trace_svg(sticker: Image.Image, *, colours: int = DEFAULT_COLOURS, filter_speckle: int | None = None,
              seed: int = 0) -> str:
    """Vectorise an RGBA sticker: palette reduction, then vtracer (stacked flat shapes, spline curves, speckles
    under `filter_speckle`² px dropped). Transparent pixels get no shape."""
    import vtracer  # imported here: only sticker export needs it
    flat, palette = reduce_palette(sticker, colours, seed=seed)
    speckle = filter_speckle if filter_speckle is not None else max(2, flat.width // 48)
    pixels = [tuple(p) for p in np.asarray(flat).reshape(-1, 4).tolist()]
    svg = vtracer.convert_pixels_to_svg(pixels, size=flat.size, colormode="color", hierarchical="stacked",
                                         mode="spline", filter_speckle=speckle, color_precision=8,
                                         layer_difference=8, corner_threshold=60, length_threshold=4.0,
                                         max_iterations=10, splice_threshold=45, path_precision=1)
    return _snap_fills(svg, palette)


def _snap_fills(svg: str, palette: np.ndarray) -> str:
    """vtracer averages colours where it merges small clusters; snap every fill back to the nearest palette colour
    so the SVG really has only the palette's flat colours."""
    if not len(palette):
        return svg
    pal = palette.astype(np.int64)

    def snap(match: re.Match) -> str:
        rgb = np.array([int(match.group(1)[i:i + 2], 16) for i in (0, 2, 4)])
        r, g, b = pal[((pal - rgb) ** 2).sum(1).argmin()]
        return f'fill="#{r:02X}{g:02X}{b:02X}"'
    return re.sub(r'fill="#([0-9A-Fa-f]{6})"', snap, svg)


# --- packs --------------------------------------------------------------------------------------------------

def contact_sheet(items: list[tuple[Image.Image, str]], *, cell: int = 160, columns: int = 6) -> Image.Image:
    """All stickers on a light checkerboard, each scaled into a `cell` px square with its label underneath."""
    columns = max(1, min(columns, len(items) or 1))
    rows = (len(items) + columns - 1) // columns or 1
    label_h = 16
    sheet = Image.new("RGB", (columns * cell, rows * (cell + label_h)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (img, label) in enumerate(items):
        r, c = divmod(i, columns)
        x, y = c * cell, r * (cell + label_h)
        for ty in range(0, cell, 16):
            for tx in range(0, cell, 16):
                if (tx // 16 + ty // 16) % 2:
                    draw.rectangle((x + tx, y + ty, x + tx + 15, y + ty + 15), fill=(232, 232, 232))
        thumb = img.convert("RGBA")
        thumb.thumbnail((cell - 8, cell - 8), Image.LANCZOS)
        sheet.paste(thumb, (x + (cell - thumb.width) // 2, y + (cell - thumb.height) // 2), thumb)
        draw.text((x + 4, y + cell + 2), label[:28], fill=(40, 40, 40))
    return sheet


def write_pack(target, stickers: list[dict], manifest: dict) -> None:
    """A zip: stickers/<name>.png and .svg for each entry ({"name", "png": bytes, "svg": str, "label"}),
    contact-sheet.png and manifest.json. `target` is a path or a binary file object."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z:
        for entry in stickers:
            z.writestr(f"stickers/{entry['name']}.png", entry["png"])
            z.writestr(f"stickers/{entry['name']}.svg", entry["svg"])
        sheet = contact_sheet([(Image.open(io.BytesIO(e["png"])), e.get("label", e["name"])) for e in stickers])
        z.writestr("contact-sheet.png", png_bytes(sheet))
        z.writestr("manifest.json", json.dumps(manifest, indent=2, sort_keys=True))
