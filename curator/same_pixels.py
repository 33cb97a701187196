"""Which near duplicates are really the same pixels in another encoding, for images without a pixel hash.

The import decodes JPEGs at reduced size (curator.validation.reduced_decode), so they get no pixel hash there. Two
files with the same pixels are always proposed and confirmed as near duplicates (their fingerprints differ by at
most the rounding of two reduced decodes), and only pictures of the same size can have the same pixels. So the exact
check is done afterwards, on confirmed near pairs of equal size only: the missing pixel hashes are computed from a
full decode of the stored file, and an equal pair becomes a `same-pixels` match. That costs a few full decodes per
such pair instead of a full decode and a hash of every pixel of every JPEG at import.
"""
from __future__ import annotations

import dataclasses
import io
from typing import Callable, Hashable, Iterable, Mapping

from PIL import Image as PILImage
from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Image
from .storage import ImageStore

CHUNK = 500  # ids per IN (...) query


def _sizes_and_hashes(session: Session, ids: list[int]) -> dict[int, tuple[tuple[int, int], str | None, str]]:
    out = {}
    for lo in range(0, len(ids), CHUNK):
        rows = session.execute(select(Image.id, Image.width, Image.height, Image.pixel_hash, Image.path)
                               .where(Image.id.in_(ids[lo:lo + CHUNK])))
        out.update({i: (tuple(sorted((w, h))), px, path) for i, w, h, px, path in rows})
    return out


def upgrade_same_pixels(session: Session, store: ImageStore, matches: Iterable,
                        unsaved: Mapping[Hashable, Callable[[], bytes]] | None = None) -> list:
    """`matches` (curator.dedup.Match) with each near pair of equal size and equal pixels relabelled `same-pixels`.

    Ids are stored image ids, or keys of `unsaved` (files not stored yet, e.g. a merge dry run: key -> reader of the
    file's bytes). A file that cannot be read or decoded any more keeps its `near` label.
    """
    from .hashing import pixel_hash_of_bytes  # numpy/scipy only when a search runs

    matches = list(matches)
    unsaved = unsaved or {}
    near = [m for m in matches if m.kind == "near"]
    if not near:
        return matches
    info = _sizes_and_hashes(session, sorted({x for m in near for x in (m.a, m.b) if x not in unsaved}))
    computed: dict = {}

    def size_of(key) -> tuple[int, int] | None:
        if key in unsaved:
            if key not in computed:
                try:
                    data = unsaved[key]()
                    with PILImage.open(io.BytesIO(data)) as img:
                        computed[key] = (tuple(sorted(img.size)), pixel_hash_of_bytes(data))
                except Exception:  # unreadable now: it stays a near duplicate
                    computed[key] = (None, None)
            return computed[key][0]
        return info[key][0] if key in info else None

    def pixels_of(key) -> str | None:
        if key in unsaved:
            size_of(key)
            return computed[key][1]
        size, pixel_hash, path = info[key]
        if pixel_hash is None and key not in computed:
            try:
                computed[key] = pixel_hash_of_bytes(store.absolute(path).read_bytes())
            except Exception:  # a missing or damaged file: it stays a near duplicate
                computed[key] = None
        return pixel_hash or computed.get(key)

    out = []
    for m in matches:
        if m.kind == "near":
            size_a, size_b = size_of(m.a), size_of(m.b)
            if size_a is not None and size_a == size_b:
                px_a, px_b = pixels_of(m.a), pixels_of(m.b)
                if px_a is not None and px_a == px_b:
                    m = dataclasses.replace(m, kind="same-pixels", score=1.0)
        out.append(m)
    return out
