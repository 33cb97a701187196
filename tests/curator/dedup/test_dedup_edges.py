"""Added borders: the import cuts them whole (curator.imports.hashing), and the confirm stage's retry without the
thumbnails' edge (curator.dedup.matching.confirm_scores) finds a copy whose border left a thin blended line; what tells
look-alikes apart is not cut."""
import io
import random

import numpy as np
import pytest
from PIL import Image, ImageDraw

from curator.dedup.matching import DEFAULT_CONFIRM_THRESHOLD as T
from curator.dedup.matching import _confirm_scores, confirm_scores, find_duplicate_groups
from curator.imports.hashing import content_size, fingerprint_bytes, thumb_array


def encoded(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def scene(seed: int, w: int = 240, h: int = 190) -> Image.Image:
    """A detailed, photo-sized picture: 60 coloured rectangles on a light field."""
    rng = random.Random(seed)
    img = Image.new("RGB", (w, h), (235, 225, 200))
    draw = ImageDraw.Draw(img)
    for _ in range(60):
        x, y = rng.randrange(-20, w), rng.randrange(-20, h)
        draw.rectangle((x, y, x + rng.randrange(8, 40), y + rng.randrange(8, 40)),
                       fill=tuple(rng.randrange(256) for _ in range(3)))
    return img


def bordered(img: Image.Image, margin: int, colour=(0, 0, 0)) -> Image.Image:
    out = Image.new("RGB", (img.width + 2 * margin, img.height + 2 * margin), colour)
    out.paste(img, (margin, margin))
    return out


def fp(data: bytes):
    return fingerprint_bytes(data, "x")


def test_a_black_border_is_cut_whole_on_a_large_picture():
    # tried: a detailed 240x190 picture (JPEG) against itself with an 8 or 14 px black border, as PNG and as JPEG 75:
    # cut on the reduced work image alone, the border left a 1 px dark line that brought the score to about 0.6
    # (fingerprint version 3); cut again at 192 px, with the line that blends border and picture, it leaves none
    # (at most that line of the picture goes too), and a grouping run joins all of them
    original = scene(1)
    a = fp(encoded(original, "JPEG", quality=90))
    copies = [fp(encoded(bordered(original, m), fmt, **kw))
              for m in (8, 14) for fmt, kw in (("PNG", {}), ("JPEG", {"quality": 75}))]
    assert all(238 <= w <= 240 and 188 <= h <= 190 for w, h in (content_size(c.thumb) for c in copies))
    plain = _confirm_scores([a.thumb] * len(copies), [c.thumb for c in copies])
    assert (plain >= T + 0.05).all(), plain
    groups = find_duplicate_groups([a, *copies])
    assert [g.members for g in groups] == [[0, 1, 2, 3, 4]]


@pytest.mark.parametrize("colour", [(230, 60, 60), (0, 0, 0), (128, 128, 128)], ids=["red", "black", "grey"])
def test_a_border_around_a_large_photo_is_cut_whole(colour):
    # tried: an 800x600 picture (JPEG 90) against itself with a 24 px (4 %) border, JPEG 85, decoded at half size:
    # its 85x65 work image holds the border's last line blended with the picture, which alone held the score at
    # 0.63-0.71 (fingerprint version 3); cut at 192 px it scores as a plain re-encode
    original = scene(7, 800, 600)
    a = fp(encoded(original, "JPEG", quality=90))
    copy = fp(encoded(bordered(original, 24, colour), "JPEG", quality=85))
    w, h = content_size(copy.thumb)
    assert 790 <= w <= 800 and 590 <= h <= 600
    assert _confirm_scores([a.thumb], [copy.thumb])[0] >= T + 0.2


def test_a_thin_line_left_at_the_edge_is_retried_without_it():
    # tried: the thumbnail of a detailed picture against itself with a 1 px dark line around it (what a border
    # blended into the content by a smoothing resize leaves after the trim): the line alone refuses the pair, the
    # retry without the outer 2 px finds it; a 2 px frame is more than the retry cuts and stays refused
    x = thumb_array(fp(encoded(scene(1), "JPEG", quality=90)).thumb)
    size = np.array([190])
    for width, found in ((1, True), (2, False)):
        y = x.copy()
        y[:width], y[-width:], y[:, :width], y[:, -width:] = 20, 20, 20, 20
        assert _confirm_scores(x[None], y[None], sizes_a=size, sizes_b=size)[0] < T
        assert (confirm_scores(x[None], y[None], sizes_a=size, sizes_b=size)[0] >= T + 0.1) == found


def test_resized_jpeg_and_bordered_copies_are_found_and_other_pictures_are_not_joined():
    # tried: the picture resized to 160 px, re-encoded as JPEG 60, with a white 12 px margin, with a black 10 px
    # border and resized; against two other pictures of the same kind (one of them with the same black border)
    original = scene(1)
    copies = [original.resize((160, 127), Image.Resampling.LANCZOS), original, bordered(original, 12, (255, 255, 255)),
              bordered(original, 10).resize((200, 160), Image.Resampling.LANCZOS)]
    fps = [fp(encoded(original))] + [fp(encoded(c, "JPEG", quality=60)) for c in copies]
    others = [fp(encoded(scene(2), "JPEG", quality=85)), fp(encoded(bordered(scene(3), 10)))]
    groups = find_duplicate_groups(fps + others)
    assert [g.members for g in groups] == [[0, 1, 2, 3, 4]]


def icon(filled: bool, side: int = 48) -> Image.Image:
    """A regular (outlined) or filled square-and-dot icon, grey on white: two look-alike pictures of one family."""
    img = Image.new("RGB", (side, side), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    draw.rounded_rectangle((4, 4, side - 5, side - 5), radius=6, outline=(66, 66, 66), width=3,
                           fill=(66, 66, 66) if filled else None)
    draw.ellipse((18, 18, 30, 30), fill=(255, 255, 255) if filled else (66, 66, 66))
    return img


def test_the_edge_retry_does_not_join_an_outlined_icon_and_its_filled_twin():
    # tried: the outlined icon against its filled twin, each also with a 2 px black border (the retry's case: one
    # thumbnail has a dark frame the other lacks); and a JPEG and a 96 px copy of the outlined one, which are found
    regular, filled = icon(False), icon(True)
    fps = [fp(encoded(regular)), fp(encoded(regular, "JPEG", quality=75)),
           fp(encoded(regular.resize((96, 96), Image.Resampling.LANCZOS))),
           fp(encoded(filled)), fp(encoded(bordered(filled, 2))), fp(encoded(bordered(regular, 2)))]
    twins = confirm_scores([fps[k].thumb for k in (0, 0, 5, 3)], [fps[k].thumb for k in (3, 4, 3, 5)])
    assert (twins < T).all(), twins
    members = [g.members for g in find_duplicate_groups(fps)]
    assert not any({0, 3} <= set(m) or {0, 4} <= set(m) for m in members), members
    assert any({0, 1, 2} <= set(m) for m in members), members


def test_thumbnails_decoded_once_per_search_score_as_the_stored_bytes_do():
    # tried: the search decodes every thumbnail once into one array (matching.Thumbs) and compares rows of it; each
    # pair (copies, a bordered copy that needs the edge retry, other pictures) must score exactly as its stored
    # fingerprints compared directly do, and signatures asked for twice, in another order, must not change
    from curator.dedup.matching import Thumbs, signatures

    original = scene(3)
    fps = [fp(encoded(original, "JPEG", quality=90)), fp(encoded(bordered(original, 14), "JPEG", quality=75)),
           fp(encoded(original.resize((120, 95)))), fp(encoded(scene(4))), fp(encoded(bordered(scene(5), 8)))]
    thumbs = Thumbs(fps)
    a, b = (x.ravel() for x in np.meshgrid(np.arange(5), np.arange(5)))
    direct = confirm_scores([fps[i].thumb for i in a], [fps[j].thumb for j in b])
    cached = confirm_scores(thumbs.stack[a], thumbs.stack[b], sizes_a=thumbs.sizes[a], sizes_b=thumbs.sizes[b])
    np.testing.assert_allclose(cached, direct, atol=1e-6)
    assert cached[1] >= T  # the bordered copy (found by the retry) is among them
    np.testing.assert_allclose(thumbs.signatures(np.array([4, 0, 4])), signatures([fps[k].thumb for k in (4, 0, 4)]))
    np.testing.assert_allclose(thumbs.signatures(np.arange(5)), signatures([f.thumb for f in fps]))


def wallpaper(w: int = 640, h: int = 400) -> Image.Image:
    """A wallpaper-like picture: a plain blue sky over the top 40 % and the left 30 %, a detailed scene in the rest."""
    img = scene(11, w, h)
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, w, int(h * 0.4)), fill=(70, 130, 200))
    draw.rectangle((0, 0, int(w * 0.3), h), fill=(70, 130, 200))
    return img


def test_a_pictures_own_plain_field_is_not_cut_as_a_border():
    # tried: a 640x400 picture with a plain blue sky along its top and left sides, against itself with a 20 px black
    # and a 16 px grey border (JPEG 85): the sky was cut from the original as a margin (its content 450x240) but not
    # from the copies, where the border is the first margin and only white follows it; an added border is as thick
    # on every side, the sky is not, so no picture loses it now and all three are one picture
    original = wallpaper()
    fps = [fp(encoded(original, "JPEG", quality=90))] + [
        fp(encoded(bordered(original, m, colour), "JPEG", quality=85)) for m, colour in ((20, (0, 0, 0)),
                                                                                       (16, (128, 128, 128)))]
    for f in fps:
        w, h = content_size(f.thumb)
        assert 634 <= w <= 644 and 394 <= h <= 404, (w, h)  # the whole picture (sizes are rounded)
    assert (confirm_scores([fps[0].thumb] * 2, [f.thumb for f in fps[1:]]) >= T + 0.2).all()
    assert [g.members for g in find_duplicate_groups(fps)] == [[0, 1, 2]]


def glyph_icon(side: int = 24) -> Image.Image:
    """A small grey line icon on a transparent canvas."""
    img = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    draw.rectangle((4, 5, side - 5, side - 6), outline=(94, 94, 94, 255), width=2)
    draw.line((7, side // 2, side - 8, side // 2), fill=(94, 94, 94, 255), width=2)
    return img


def test_a_thin_coloured_border_broken_by_jpeg_is_still_cut():
    # tried: a 24 px grey icon on white with a 1 px blue or red border, saved as JPEG 75 (chroma subsampling moves
    # the border's colour by up to ~40 levels): a coloured margin is cut as thick as its thinnest side, which JPEG's
    # ringing must not bring to nothing; the copy keeps the icon's own content size and is found. (At JPEG 60 such a
    # border is not found as a margin at all, before this rule as after it.)
    icon = glyph_icon()
    base = fp(encoded(icon))
    on_white = Image.new("RGB", icon.size, (255, 255, 255))
    on_white.paste(icon, mask=icon.getchannel("A"))
    for colour in ((38, 110, 190), (230, 60, 60)):
        framed = Image.new("RGB", (26, 26), colour)
        framed.paste(on_white, (1, 1))
        copy = fp(encoded(framed, "JPEG", quality=75))
        assert content_size(copy.thumb) == content_size(base.thumb), colour
        assert confirm_scores([base.thumb], [copy.thumb])[0] >= T, colour


def test_a_star_field_keeps_its_canvas():
    # tried: a dark 300x280 sky with 400 small stars: nine lines in ten of it hold the sky's colour on 90 % of their
    # pixels, so "as deep as the colour goes" alone would cut it to a small box in the middle (the benchmark's Hubble
    # deep field lost 60 % of each side that way); the stars reach every side, so only the lines a JPEG's ringing
    # may hide in a thin border go (two of the 75x70 work image, and the line a resampled edge moves: about 5 % of
    # each side, as for every copy of it)
    rng = np.random.default_rng(3)
    sky = np.full((280, 300, 3), 8, dtype=np.uint8)
    for y, x in zip(rng.integers(0, 279, 400), rng.integers(0, 299, 400)):
        sky[y:y + 2, x:x + 2] = 230
    w, h = content_size(fp(encoded(Image.fromarray(sky))).thumb)
    assert w >= 0.9 * 300 and h >= 0.9 * 280, (w, h)
