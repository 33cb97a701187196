"""A run's favourite images: `runs/<id>/favourites.json`, the one list galleries, generations and sticker packs share.

A favourite names a PNG inside the run (a training sample `samples/epoch_NNNN/<class>/<i>.png` or a generated one
`generated/<job>/<class>/<i>.png`) and keeps what regenerates it: class, index, and the epoch or the generation's
seed, steps, sampler and guidance. A file, not a table: favourites belong to the run and travel with its folder.
Writes are read-modify-write under a file lock (several server workers) and atomic (core.files).
"""
from __future__ import annotations

import contextlib
import fcntl
import io
import json
import re
import time
import zipfile
from pathlib import Path, PurePosixPath

from core.files import write_atomic

FILE = "favourites.json"
VERSION = 1
MAX_FAVOURITES = 2000
_SAMPLE = re.compile(r"^samples/epoch_(\d{4,})/([^/]+)/(\d+)\.png$")
_GENERATED = re.compile(r"^generated/([^/]+)/([^/]+)/(\d+)\.png$")


class FavouriteError(ValueError):
    """The picture cannot be a favourite (not an image of this run); the message says why."""


def favourites_path(run_dir: Path) -> Path:
    return Path(run_dir) / FILE


def describe(run_dir: Path, rel: str) -> dict:
    """What a run-relative PNG path says about the picture (raises FavouriteError for anything else)."""
    if not isinstance(rel, str) or not rel or "\x00" in rel or "\\" in rel or len(rel) > 500:
        raise FavouriteError(f"{rel!r} is not a picture of this run")
    parts = PurePosixPath(rel).parts
    if rel.startswith("/") or ".." in parts or any(p.startswith(".") for p in parts):
        raise FavouriteError(f"{rel!r} is not a picture of this run")
    if m := _SAMPLE.match(rel):
        item = {"png": rel, "source": "samples", "epoch": int(m.group(1)), "class": m.group(2),
                "index": int(m.group(3))}
    elif m := _GENERATED.match(rel):
        item = {"png": rel, "source": "generated", "generation": m.group(1), "class": m.group(2),
                "index": int(m.group(3))}
        request = _read_json(Path(run_dir) / "generated" / m.group(1) / "request.json") or {}
        for key in ("seed", "steps", "sampler", "guidance", "which"):
            if key in request:
                item[key] = request[key]
    else:
        raise FavouriteError(f"{rel!r} is not a training sample or a generated picture of this run")
    if not (Path(run_dir) / rel).is_file():
        raise FavouriteError(f"the run has no picture {rel}")
    return item


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def read(run_dir: Path) -> list[dict]:
    """The favourites, oldest first ([] when none, or when the file is unreadable)."""
    data = _read_json(favourites_path(run_dir))
    items = data.get("items") if isinstance(data, dict) else None
    return [i for i in items if isinstance(i, dict) and isinstance(i.get("png"), str)] if isinstance(items, list) \
        else []


def is_favourite(run_dir: Path, rel: str) -> bool:
    return any(i["png"] == rel for i in read(run_dir))


@contextlib.contextmanager
def _locked(run_dir: Path):
    with open(Path(run_dir) / ".favourites.lock", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _write(run_dir: Path, items: list[dict]) -> None:
    write_atomic(favourites_path(run_dir), json.dumps({"version": VERSION, "items": items}, indent=2,
                                                      sort_keys=True))


def add(run_dir: Path, rel: str) -> list[dict]:
    """Mark a picture of the run as a favourite (again is a no-op); returns the list."""
    item = describe(run_dir, rel)
    with _locked(run_dir):
        items = read(run_dir)
        if any(i["png"] == rel for i in items):
            return items
        if len(items) >= MAX_FAVOURITES:
            raise FavouriteError(f"a run keeps at most {MAX_FAVOURITES} favourites; remove some first")
        items.append({**item, "added": time.time()})
        _write(run_dir, items)
        return items


def remove(run_dir: Path, rel: str) -> list[dict]:
    """Unmark a picture (absent is a no-op); returns the list. The picture itself is never touched."""
    with _locked(run_dir):
        items = read(run_dir)
        kept = [i for i in items if i["png"] != rel]
        if len(kept) != len(items):
            _write(run_dir, kept)
        return kept


def picture_name(item: dict) -> str:
    """`<class>/<epoch0001 or generation id>-<index>.png`: a favourite's file name in a zip or a curator batch,
    unique within the run and saying where the picture came from."""
    origin = f"epoch{item['epoch']:04d}" if "epoch" in item else str(item.get("generation", "generated"))
    return f"{item['class']}/{origin}-{item['index']}.png"


def checked(run_dir: Path, items: list[dict]) -> list[dict]:
    """The items that still name a picture of the run (favourites.json is a file anyone could edit, and a
    picture may have been removed since it was marked)."""
    out = []
    for item in items:
        try:
            describe(run_dir, item.get("png"))
        except FavouriteError:
            continue
        out.append(item)
    return out


def zip_bytes(run_dir: Path, run_id: str, items: list[dict]) -> bytes:
    """The favourites as one zip: each PNG as `picture_name(item)` and manifest.json listing, for each, what
    regenerates it (run, class, index, and the epoch or the generation's seed, steps, sampler and guidance)."""
    entries = []
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for item in checked(run_dir, items):
            name = picture_name(item)
            zf.write(Path(run_dir) / item["png"], name)
            entries.append({"file": name, "run": run_id, "source_png": item["png"],
                            **{k: v for k, v in item.items() if k not in ("png", "added")}})
        zf.writestr("manifest.json", json.dumps({"run": run_id, "favourites": entries}, indent=1, sort_keys=True))
    return buffer.getvalue()
