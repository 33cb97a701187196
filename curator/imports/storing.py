"""Storing files, the part of an import that needs no database: validate, fingerprint, write the file and its
thumbnail (`store_one`), on forked workers when there are many (`stored_files`). Class names are checked here too.

Files are written before rows (curator.imports.service indexes them): a stored file without a row is harmless,
content-addressed and reused by the next import of the same bytes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Iterator

from curator.imports.forking import forking_is_safe, map_in_forks
from curator.imports.sources import Candidate, read_limited
from curator.imports.storage import THUMB_SIZE, ImageStore, make_thumbnail_bytes, write_file
from curator.imports.validation import Limits, Rejected, validate_image_bytes

CLASS_NAME = re.compile(r"^[a-z0-9][a-z0-9 _-]{0,63}$")
FORK_FROM = 32  # smaller batches are stored in this process
CLI_WORKERS = 2  # worker processes the command line stores files on: both cores
WORKER_DIED = ("a worker process storing the files died (killed, or out of memory); nothing joined the dataset: "
               "run it again")
TASK_SIZE = 16  # files per task sent to a worker process


def normalise_class_name(name: str) -> str:
    """Class names are folder-friendly lowercase words; raise ValueError with the rule otherwise."""
    clean = name.strip().lower()
    if not CLASS_NAME.match(clean):
        shown = name if len(name) <= 70 else f"{name[:60]}…"  # echoed into a page: not a whole pasted paragraph
        raise ValueError(f"invalid class name {shown!r}: use 1–64 letters, digits, spaces, '-' or '_', "
                         "starting with a letter or digit")
    return clean


@dataclass
class Stored:
    """Everything the index needs about one valid file, whose bytes are already in the store."""
    sha256: str
    path: str
    file_size: int
    format: str
    width: int
    height: int
    has_alpha: bool
    pixel_hash: str
    phash: int
    dhash: int
    fingerprint: bytes
    notes: list[str] = field(default_factory=list)


def fingerprint_valid(data: bytes, limits: Limits):
    """(ValidImage, ImageFingerprint) of a file's bytes, decoded as the import decodes them; raises Rejected."""
    from curator.imports.hashing import fingerprint_image  # numpy/scipy: loaded only by what imports files
    valid = validate_image_bytes(data, limits, reduced=True)
    return valid, fingerprint_image(valid.image, data, full_size=valid.full_size)


def store_one(data: bytes, limits: Limits, instance: Path) -> Stored:
    """Validate, fingerprint and store one file's bytes (and its thumbnail if it is large); raises Rejected.

    JPEGs are decoded at reduced size (all that the thumbnail and the fingerprints need): their pixel hash is filled
    in later, only if the duplicate search needs it (curator.dedup.service).
    """
    valid, fp = fingerprint_valid(data, limits)
    store = ImageStore(instance)
    rel = store.put(fp.sha256, valid.format, data)
    thumb = store.thumb_path(fp.sha256, valid.has_alpha)
    if max(valid.width, valid.height) > THUMB_SIZE and not thumb.exists():
        write_file(thumb, make_thumbnail_bytes(valid.image, valid.has_alpha))
    return Stored(sha256=fp.sha256, path=rel, file_size=len(data), format=valid.format, width=valid.width,
                  height=valid.height, has_alpha=valid.has_alpha, pixel_hash=fp.pixel_hash, phash=fp.phash,
                  dhash=fp.dhash, fingerprint=fp.thumb, notes=valid.notes)


def _store_or_reject(source: bytes | Path | Rejected, limits: Limits, instance: Path) -> Stored | Rejected:
    """Store one file given as its bytes, or as the path of a plain file to read here; or pass its rejection on."""
    if isinstance(source, Rejected):
        return source
    try:
        return store_one(read_limited(source, limits) if isinstance(source, Path) else source, limits, instance)
    except Rejected as rejection:
        return rejection


def _read(candidate: Candidate) -> bytes | Rejected:
    try:
        return candidate.read()
    except Rejected as rejection:
        return rejection


def stored_files(candidates: list[Candidate], limits: Limits, instance: Path,
                 workers: int = 1) -> Iterator[Stored | Rejected]:
    """Each candidate stored (or rejected), in input order.

    With `workers` > 1, at least FORK_FROM files and a single-threaded process, on `workers` forked processes
    (curator.imports.forking); otherwise here. Not threads, by measurement (bench/import_speed.py sets on the 2-vCPU test
    machine): two threads made 600 stickers take 0.89 s instead of 0.57 s in one thread, while two forked processes
    took 0.57 s down to 0.33 s.
    """
    store = partial(_store_or_reject, limits=limits, instance=instance)
    if workers <= 1 or len(candidates) < FORK_FROM or not forking_is_safe():
        yield from map(store, map(_read, candidates))
        return
    from curator.imports import hashing  # noqa: F401  imported before forking, so no child imports it again
    # plain files are read by the workers; zip members and uploads here, in order (a zip's members share one handle)
    sources = (c.path if c.path is not None else _read(c) for c in candidates)
    yield from map_in_forks(store, sources, workers, TASK_SIZE)
