"""The sticker pipeline on fixed images: background keyed out (or alpha kept), upscaled cleanly, traced to SVG."""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from trainer import stickers

RED = (210, 30, 40)


def disc_on_white(size: int = 32) -> Image.Image:
    """A red disc on a white background with an enclosed white 'eye' that must survive the matte."""
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    draw.ellipse((4, 4, size - 5, size - 5), fill=RED)
    draw.rectangle((size // 2 - 3, size // 2 - 3, size // 2 + 2, size // 2 + 2), fill="white")
    return img


def test_uniform_background_becomes_transparent_and_enclosed_white_stays():
    """Tried: ×4 sticker of the disc. Corners are clear, the disc and its enclosed white eye stay opaque, and
    half-transparent edge pixels carry the disc's red, not a white halo."""
    sticker = stickers.make_sticker(disc_on_white(), scale=4, background="auto")
    assert sticker.mode == "RGBA" and sticker.size == (128, 128)
    arr = np.asarray(sticker).astype(int)
    assert arr[0, 0, 3] == 0 and arr[-1, -1, 3] == 0 and arr[2, 64, 3] == 0
    assert arr[30, 64, 3] == 255 and abs(arr[30, 64, :3] - RED).max() < 30  # inside the disc
    assert arr[64, 64, 3] == 255 and arr[64, 64, :3].min() > 230  # the enclosed eye is still opaque white
    edge = arr[(arr[..., 3] > 40) & (arr[..., 3] < 215)]
    assert len(edge) > 20
    assert np.median(edge[:, 1]) < 110, "edge pixels should be red (unmixed), not pale from the white background"


def test_existing_transparency_is_kept():
    """Tried: an RGBA emoji-like picture with a transparent background. Its alpha is kept (not re-matted):
    transparent where the original was, opaque in the middle."""
    img = Image.new("RGBA", (24, 24), (0, 0, 0, 0))
    ImageDraw.Draw(img).ellipse((3, 3, 20, 20), fill=(20, 160, 60, 255))
    assert stickers.has_transparency(img)
    sticker = stickers.make_sticker(img, scale=8)
    arr = np.asarray(sticker)
    assert sticker.size == (192, 192)
    assert arr[0, 0, 3] == 0 and arr[96, 96, 3] == 255 and tuple(arr[96, 96, :3]) == (20, 160, 60)
    assert not stickers.has_transparency(disc_on_white())


def test_bad_requests_get_clear_errors():
    """Tried: a noisy background to matte, keeping alpha that is not there, a ×3 scale. Each a StickerError that
    says why; 'none' keeps the noisy background as it is."""
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8))
    with pytest.raises(stickers.StickerError, match="not a uniform colour"):
        stickers.make_sticker(noisy, background="matte")
    with pytest.raises(stickers.StickerError, match="no transparency to keep"):
        stickers.make_sticker(disc_on_white(), background="keep")
    with pytest.raises(stickers.StickerError, match="scale 3"):
        stickers.make_sticker(disc_on_white(), scale=3)
    assert np.asarray(stickers.make_sticker(noisy, background="none", scale=4))[..., 3].min() == 255


def fills(svg: str) -> list[tuple[int, int, int]]:
    root = ET.fromstring(svg)
    out = []
    for el in root.iter():
        if el.tag.endswith("path"):
            m = re.fullmatch(r"#([0-9A-Fa-f]{6})", el.get("fill", ""))
            assert m, el.attrib
            out.append(tuple(int(m.group(1)[i:i + 2], 16) for i in (0, 2, 4)))
    return out


def test_trace_to_svg_has_the_shape_and_no_background():
    """Tried: tracing the ×8 disc sticker. Valid SVG of the sticker's size; the bottom (largest) shape is the red
    disc, at most one small white shape (the eye) and nothing covering the canvas in white."""
    sticker = stickers.make_sticker(disc_on_white(), scale=8)
    svg = stickers.trace_svg(sticker)
    root = ET.fromstring(svg)
    assert root.get("width") == "256" and root.get("height") == "256"
    colours = fills(svg)
    assert colours, "the trace has shapes"
    assert max(abs(a - b) for a, b in zip(colours[0], RED)) < 40, colours[:3]
    whites = [c for c in colours if min(c) > 220]
    assert len(whites) <= 1


def write_run_with_sample(instance: Path) -> tuple[str, str]:
    """A run folder laid out as diffusion.train writes it (config.json, one per-class sample PNG)."""
    run_id = "20260101-000000-abcd"
    run_dir = instance / "runs" / run_id
    sample = run_dir / "samples" / "epoch_0001" / "cat" / "0.png"
    sample.parent.mkdir(parents=True)
    disc_on_white(16).save(sample)
    (run_dir / "config.json").write_text(json.dumps({"class_names": ["cat", "dog"], "preset": "micro",
                                                     "image_size": 16, "epochs": 1}))
    return run_id, "samples/epoch_0001/cat/0.png"


def test_sticker_downloads_from_the_web(client, instance_path):
    """Tried: the sticker page and its PNG and SVG downloads for a run's sample, then a path outside the run.
    PNG (RGBA, ×8) and SVG arrive as attachments; the outside path is not served."""
    run_id, rel = write_run_with_sample(instance_path)
    page = client.get(f"/train/runs/{run_id}/sticker", query_string={"file": rel, "scale": 8})
    assert page.status_code == 200 and "Download SVG" in page.get_data(as_text=True)
    png = client.get(f"/train/runs/{run_id}/sticker.png", query_string={"file": rel, "scale": 8, "download": 1})
    assert png.status_code == 200 and png.mimetype == "image/png"
    assert "attachment" in png.headers["Content-Disposition"]
    img = Image.open(BytesIO(png.data))
    assert img.mode == "RGBA" and img.size == (128, 128) and img.getpixel((0, 0))[3] == 0
    svg = client.get(f"/train/runs/{run_id}/sticker.svg", query_string={"file": rel, "download": 1})
    assert svg.status_code == 200 and svg.mimetype == "image/svg+xml" and fills(svg.get_data(as_text=True))
    outside = client.get(f"/train/runs/{run_id}/sticker.png", query_string={"file": "../../secret_key"})
    assert outside.status_code == 404
    noisy = client.get(f"/train/runs/{run_id}/sticker", query_string={"file": rel, "background": "keep"})
    assert "no transparency to keep" in noisy.get_data(as_text=True)


# --- the maths of a clean sticker ----------------------------------------------------------------------------

def test_decontamination_recovers_the_foreground_colour_of_a_blend():
    """Tried: pixels that are known blends C = aF + (1-a)B of a teal F over a white B at a = 0.3 ... 1.0. Solving
    for alpha with F known gives a back, and unmixing (coverage trusted from 0.25) gives F within rounding."""
    fg, bg = np.array([20.0, 140.0, 150.0]), np.array([255.0, 255.0, 255.0])
    a = np.linspace(0.3, 1.0, 8)[None, :]
    blend = a[..., None] * fg + (1 - a[..., None]) * bg
    assert np.allclose(stickers.solve_alpha(blend, np.broadcast_to(fg, blend.shape), bg), a, atol=1e-6)
    recovered = stickers.decontaminate(blend.round(), a, bg, trust=0.25)
    assert np.abs(recovered - fg).max() < 2.5


def test_no_halo_on_an_anti_aliased_disc():
    """Tried: a dark-blue disc drawn anti-aliased (4x supersampled) on white, made a x4 and a x8 sticker. No pixel of
    the silhouette has a colour lighter or darker than the disc near it (halo_pixels), the alpha ramp is about
    one pixel wide, and the rim pixels are blue, not pale."""
    big = Image.new("RGB", (128, 128), "white")
    ImageDraw.Draw(big).ellipse((14, 18, 110, 114), fill=(30, 40, 160))
    small = big.resize((32, 32), Image.BOX)
    for scale in (4, 8):
        sticker = stickers.make_sticker(small, scale=scale)
        halo, edge = stickers.halo_pixels(sticker)
        assert edge > 100 and halo == 0, (scale, halo, edge)
        arr = np.asarray(sticker).astype(int)
        partial = arr[(arr[..., 3] > 10) & (arr[..., 3] < 245)]
        assert len(partial) < 4 * 3.2 * 24 * scale  # ~ perimeter x 1-2 px, not a x8 blur
        assert np.median(partial[:, 2]) > np.median(partial[:, 0]) + 60  # blue, not grey-white


def test_halo_measure_sees_a_pale_fringe_and_none_in_the_sticker():
    """Tried: the halo measure on a dark disc sticker whose half-transparent rim was painted white (the fringe a
    matte that keeps the old background leaves) and on the sticker as made: the fringe is counted as halo, the
    real sticker has none."""
    big = Image.new("RGB", (128, 128), "white")
    ImageDraw.Draw(big).ellipse((14, 18, 110, 114), fill=(40, 30, 120))
    small = big.resize((32, 32), Image.BOX)
    pale = np.asarray(stickers.make_sticker(small, scale=4)).astype(float)
    pale_rim = pale.copy()
    rim = (pale[..., 3] > 0) & (pale[..., 3] < 200)
    pale_rim[rim, :3] = 255  # a white fringe, as a matte that keeps the background's colour leaves
    halo, edge = stickers.halo_pixels(Image.fromarray(pale_rim.astype(np.uint8), "RGBA"))
    assert halo > 0.3 * rim.sum()
    assert stickers.halo_pixels(Image.fromarray(pale.astype(np.uint8), "RGBA"))[0] == 0


def test_outline_is_drawn_under_the_sticker_in_the_chosen_colour():
    """Tried: a x4 sticker with a 6 px black outline. The canvas grows by 6 px a side, the ring just outside the
    disc is opaque black, the corners stay clear, and the disc's middle keeps its red."""
    sticker = stickers.make_sticker(disc_on_white(), scale=4, outline_width=6, outline_colour="#000")
    arr = np.asarray(sticker).astype(int)
    assert sticker.size == (140, 140)
    assert arr[0, 0, 3] == 0 and arr[70, 70 - 51, 3] == 255 and arr[70, 70 - 51, :3].max() < 40
    assert abs(arr[40, 70, :3] - RED).max() < 30


def test_palette_reduction_gives_at_most_k_flat_colours():
    """Tried: a noisy gradient sticker reduced to 6 colours. The opaque pixels use at most 6 distinct colours,
    alpha is only 0 or 255, and 1 colour or 99 is refused with a clear StickerError."""
    rng = np.random.default_rng(1)
    arr = np.zeros((64, 64, 4), np.uint8)
    arr[..., 0] = np.linspace(0, 255, 64)[None, :]
    arr[..., 1] = np.linspace(0, 255, 64)[:, None]
    arr[..., 2] = rng.integers(0, 60, (64, 64))
    arr[..., 3] = 255
    arr[:8, :8, 3] = 0
    flat, palette = stickers.reduce_palette(Image.fromarray(arr, "RGBA"), 6)
    out = np.asarray(flat)
    assert len(palette) == 6 and set(np.unique(out[..., 3])) == {0, 255}
    assert len(np.unique(out[out[..., 3] == 255][:, :3], axis=0)) <= 6
    for bad in (1, 99):
        with pytest.raises(stickers.StickerError, match="colours"):
            stickers.reduce_palette(flat, bad)


def test_svg_of_a_demo_animal_is_small():
    """Tried: a demo animal (a 128 px original brought to 32 px on white, as a run sees it) as a x8 sticker with an
    outline, traced with 8 colours. The SVG stays under 30 KB and has at most 8 fill colours."""
    from tests.conftest import DEMO_IMAGES
    path = sorted((DEMO_IMAGES / "frog").glob("*.png"))[0]
    with Image.open(path) as img:
        flat = Image.new("RGB", img.size, "white")
        flat.paste(img.convert("RGBA"), mask=img.convert("RGBA"))
    small = flat.resize((32, 32), Image.LANCZOS)
    svg = stickers.trace_svg(stickers.make_sticker(small, scale=8, outline_width=6), colours=8)
    assert len(svg.encode()) < 30 * 1024
    assert len(set(fills(svg))) <= 8


def test_bad_sticker_options_are_clear_errors():
    """Tried: an outline of -1 px and of 'wide', an outline colour with a NUL and 'not-a-colour', a 1x1 image.
    Each is a StickerError saying what is wrong."""
    for width in (-1, "wide"):
        with pytest.raises(stickers.StickerError, match="outline width"):
            stickers.make_sticker(disc_on_white(), outline_width=width)
    for colour in ("whi\x00te", "not-a-colour"):
        with pytest.raises(stickers.StickerError, match="not a colour"):
            stickers.make_sticker(disc_on_white(), outline_width=2, outline_colour=colour)
    with pytest.raises(stickers.StickerError, match="too small"):
        stickers.make_sticker(Image.new("RGB", (1, 1)))


def test_stray_specks_beside_the_animal_are_dropped_and_real_pieces_stay():
    """Tried: a 32 px sample on white with a 12x12 body, a detached 6x5 tail two pixels beside it (21 % of the
    body) and two stray dots (one pixel, and two pixels) in the corners. The matte makes the dots background, keeps
    the body and the tail; the finished sticker has nothing visible where the dots were, and the outline rings no
    dot."""
    img = Image.new("RGB", (32, 32), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    draw.rectangle([8, 8, 19, 19], fill=(40, 160, 60))
    draw.rectangle([22, 12, 27, 16], fill=(40, 160, 60))
    img.putpixel((2, 29), (200, 40, 40))
    img.putpixel((29, 2), (30, 30, 30))
    img.putpixel((30, 2), (30, 30, 30))
    alpha, _ = stickers.matte_alpha(np.asarray(img, dtype=np.float64))
    assert alpha[29, 2] == 0 and alpha[2, 29] == 0 and alpha[2, 30] == 0
    assert alpha[13, 13] == 1 and alpha[14, 25] == 1
    sticker = np.asarray(stickers.make_sticker(img, scale=4, outline_width=4))
    a = sticker[..., 3]
    pad = 4  # the outline grows the canvas by its width
    assert a[pad + 29 * 4 - 6: pad + 30 * 4 + 6, pad + 2 * 4 - 6: pad + 3 * 4 + 6].max() == 0
    assert a[pad + 14 * 4, pad + 25 * 4] == 255


def test_drop_specks_keeps_a_single_piece_and_two_comparable_ones():
    """Tried: alpha maps of one piece, and of two pieces of 16 and 9 pixels: nothing is dropped from either."""
    one = np.zeros((10, 10)); one[2:6, 2:6] = 1
    assert np.array_equal(stickers.drop_specks(one), one)
    two = one.copy(); two[7:10, 7:10] = 0.6
    assert np.array_equal(stickers.drop_specks(two), two)


def body_alpha(size: int = 32) -> np.ndarray:
    """A synthetic alpha mask: a 12x12 solid body with a one-pixel anti-aliased edge (alpha 0.5 would be solid,
    so 0.4)."""
    a = np.zeros((size, size))
    a[9:23, 9:23] = 0.4
    a[10:22, 10:22] = 1.0
    return a


def test_drop_specks_keeps_real_parts_ears_tails_fins_and_a_second_animal():
    """Tried, on synthetic alpha masks: an ear (3x3, 6 % of the body) one empty pixel above the body, a fin
    touching the body only at a corner, a thin diagonal tail, a 5x6 piece (21 %) one pixel beside the body, and a
    second animal (10x6, 42 %) far away. drop_specks changes nothing."""
    a = body_alpha()
    a[6:9, 12:15] = 1.0  # ear: rows 6-8; row 9 is the body's faint edge, a gap of one pixel
    a[22, 9] = a[23, 8] = a[24, 7] = a[25, 6] = a[26, 5] = 1.0  # thin diagonal tail from the corner
    fin = body_alpha()
    fin[22:24, 22:24] = 1.0  # fin touching the body diagonally at (21, 21)
    tail = body_alpha()
    tail[12:18, 24:29] = 1.0  # one empty (faint) column, 23, between it and the body
    twin = body_alpha(48)
    twin[36:46, 30:36] = 1.0
    for mask in (a, fin, tail, twin):
        assert np.array_equal(stickers.drop_specks(mask), mask)


def test_drop_specks_removes_strays_the_old_rule_kept():
    """Tried, on synthetic alpha masks, what slipped through the old rule (pieces of alpha > 0.02 under 5 % of the
    largest): a 2x2 speck joined to the body by a trail of faint pixels (one piece by the old rule); a 4x4 piece
    (11 %) in the corner touching the frame; a 5x6 piece (21 %) six pixels away. Each is dropped with its faint
    trail, and the body with its anti-aliased edge is untouched."""
    trail = body_alpha()
    trail[15, 23:28] = 0.1
    trail[14:16, 28:30] = 1.0
    corner = body_alpha()
    corner[28:32, 0:4] = 1.0
    far = body_alpha()
    far[12:18, 27:32] = 1.0
    for mask in (trail, corner, far):
        out = stickers.drop_specks(mask)
        assert np.array_equal(out[8:24, 8:24], body_alpha()[8:24, 8:24])
        assert out.sum() == pytest.approx(body_alpha().sum())


def test_finished_sticker_has_no_island_at_the_full_size():
    """Tried: finishing a x4 and a x8 sticker from a coverage that still holds a 2x2 speck three pixels from the
    body (as if the native-size rule had missed it: the smooth upscaled coverage can also raise islands of its
    own). The speck rule runs again at the full size: the opaque part is one piece, the body all there."""
    alpha = body_alpha()
    alpha[14:16, 25:27] = 1.0
    flat = Image.new("RGB", (32, 32), (40, 160, 60))
    for scale in (4, 8):
        big = flat.resize((32 * scale, 32 * scale))
        a = np.asarray(stickers.finish(big, alpha, np.array([255.0, 255, 255]), scale))[..., 3]
        _, pieces = stickers.label(a >= 128, diagonal=True)
        assert pieces == 1
        assert (a[11 * scale:21 * scale, 11 * scale:21 * scale] == 255).all()


def test_label_matches_a_flood_fill():
    """Tried: 30 random masks, 4- and 8-connected. label() finds the same pieces as a plain flood fill."""
    rng = np.random.default_rng(1)
    for diagonal in (False, True):
        steps = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy or dx) and (diagonal or not dy or not dx)]
        for _ in range(15):
            mask = rng.random((17, 19)) < 0.45
            labels, n = stickers.label(mask, diagonal=diagonal)
            seen, count = np.zeros(mask.shape, int), 0
            for y0, x0 in zip(*np.nonzero(mask)):
                if seen[y0, x0]:
                    continue
                count += 1
                stack, seen[y0, x0] = [(y0, x0)], count
                while stack:
                    y, x = stack.pop()
                    for dy, dx in steps:
                        ny, nx = y + dy, x + dx
                        if 0 <= ny < 17 and 0 <= nx < 19 and mask[ny, nx] and not seen[ny, nx]:
                            seen[ny, nx] = count
                            stack.append((ny, nx))
            assert n == count and len(set(zip(labels[mask].tolist(), seen[mask].tolist()))) == count


def test_pinholes_in_the_full_size_silhouette_are_filled_and_real_holes_stay():
    """Tried: finishing a x4 sticker from a coverage with a one-pixel transparent pinhole inside the body (what a
    thin channel of background into a pale animal leaves once the smooth coverage closes it), and a 7x7 hole (5 %
    of the picture: a gap between a tail and a body). The pinhole is opaque in the sticker, the big hole still
    transparent."""
    alpha = np.zeros((32, 32))
    alpha[2:30, 2:30] = 1.0
    alpha[8, 8] = 0.0
    alpha[16:23, 16:23] = 0.0
    flat = Image.new("RGB", (32, 32), (230, 220, 230))
    a = np.asarray(stickers.finish(flat.resize((128, 128)), alpha, np.array([255.0, 255, 255]), 4))[..., 3]
    assert (a[4 * 7:4 * 10, 4 * 7:4 * 10] == 255).all()
    assert (a[4 * 17:4 * 22, 4 * 17:4 * 22] == 0).all()
