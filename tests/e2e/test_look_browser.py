"""The look in Chromium: the dark scheme follows the system, and gallery tiles keep long file names inside."""
from __future__ import annotations


def colours(page) -> dict:
    return page.evaluate("""() => {
        const body = getComputedStyle(document.body), nav = getComputedStyle(document.querySelector('nav.top'));
        return {bg: body.backgroundColor, fg: body.color, nav: nav.backgroundColor};
    }""")


def luminance(rgb: str) -> float:
    r, g, b = (int(v) for v in rgb[rgb.index("(") + 1:rgb.index(")")].split(",")[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_dark_scheme_follows_the_system(page, dataset):
    """Tried: the dataset and a gallery under the light, then the dark colour scheme of the system: the page's
    background turns dark and its text light (the tokens of static/style.css change), and back."""
    dataset({"cat": 2}, imported="cli")
    for url in ("/", "/gallery/cat"):
        page.emulate_media(color_scheme="light")
        page.goto(url)
        light = colours(page)
        page.emulate_media(color_scheme="dark")
        dark = colours(page)
        assert light["bg"] != dark["bg"] and luminance(light["bg"]) > 200 > 60 > luminance(dark["bg"]), (url, light, dark)
        assert luminance(dark["fg"]) > 180 and luminance(light["fg"]) < 60
        page.emulate_media(color_scheme="light")
        assert colours(page) == light


def test_tile_names_never_spill_out_of_their_tiles(page, app, dataset):
    """Tried: files whose names are far longer than a tile, next to short ones. Every tile has the same width, and
    no name is wider than its tile: a long one is cut with an ellipsis, the whole name in the tile's title."""
    dataset({"cat": 3}, name="an-extremely-long-file-name-straight-from-a-camera-roll-export-{i}.png", imported="cli")
    dataset({"cat": 2}, seed=10, name="c{i}.png", imported="cli")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto("/gallery/cat")
    sizes = page.evaluate("""() => Array.from(document.querySelectorAll('.tile')).map(t => {
        const name = t.querySelector('.name'), box = t.getBoundingClientRect();
        return {w: Math.round(box.width), h: Math.round(box.height), scroll: name.scrollWidth, client: name.clientWidth,
                tileScroll: t.scrollWidth, tileClient: t.clientWidth,
                right: name.getBoundingClientRect().right, tileRight: box.right, title: t.title,
                overflow: getComputedStyle(name).textOverflow};
    })""")
    assert len(sizes) == 5
    assert len({(s["w"], s["h"]) for s in sizes}) == 1, sizes  # one tile size, long name or short
    long = [s for s in sizes if s["title"].startswith("an-extremely")]
    assert len(long) == 3 and all(s["overflow"] == "ellipsis" for s in long)
    for s in sizes:
        assert s["tileScroll"] <= s["tileClient"], s  # nothing spills out of the tile
        assert s["right"] <= s["tileRight"], s  # the name's box stays inside the tile
    assert all(s["scroll"] > s["client"] for s in long)  # cut, not squeezed: the title keeps the rest
