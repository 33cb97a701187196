"""Which near duplicates are really the same pixels in another encoding, for images without a pixel hash.

The import decodes JPEGs at reduced size (curator.imports.validation.reduced_decode), so they get no pixel hash there (nor
do images indexed before the pixel hash became xxh3-128: migration 0003 cleared theirs). Two
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

from core.models import Image
from curator.imports.storage import ImageStore

CHUNK = 500  # ids per IN (...) query


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
    """`matches` (curator.dedup.matching.Match) with each near pair of equal size and equal pixels relabelled `same-pixels`.

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
