"""What killed imports and uploads leave behind, found on disk: stored files no index row names, and spool folders
no running job uses. Pure (paths in, paths out); `curator.imports.service.sweep` says what is referenced and removes.

Why an age limit: an import writes each file before its row (a crash then leaves a harmless unreferenced file, never
a row without a file), so a file written a moment ago may be about to be referenced. Nothing younger than `min_age_s`
is ever listed.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

STORE_FOLDERS = ("images", "thumbs")
SPOOL_FOLDER = "spool"
OLD_SPOOL_PREFIX = ".upload-"  # request-time spool folders of earlier versions, directly in the instance folder


@dataclass
class Orphans:
    files: list[Path] = field(default_factory=list)  # unreferenced stored files and thumbnails, and temp files
    spools: list[Path] = field(default_factory=list)  # abandoned upload spool folders


def _old_enough(path: Path, now: float, min_age_s: float) -> bool:
    try:
        return now - path.lstat().st_mtime >= min_age_s
    except FileNotFoundError:
        return False


def find_orphans(instance: Path, referenced_paths: set[str], referenced_shas: set[str], spools_in_use: set[str],
                 min_age_s: float, now: float | None = None) -> Orphans:
    """Files under images/ and thumbs/ that no row references (by relative path, or for thumbnails by sha256),
    and spool folders no unfinished job uses, all older than `min_age_s`."""
    instance = Path(instance)
    now = time.time() if now is None else now
    out = Orphans()
    for top in STORE_FOLDERS:
        root = instance / top
        if not root.is_dir():
            continue
        for dirpath, _dirs, names in os.walk(root):
            for name in names:
                path = Path(dirpath) / name
                rel = path.relative_to(instance).as_posix()
                if top == "images":
                    used = rel in referenced_paths
                else:
                    used = name.split(".", 1)[0] in referenced_shas and not name.startswith(".")
                if not used and _old_enough(path, now, min_age_s):
                    out.files.append(path)
    spools = list((instance / SPOOL_FOLDER).glob("*")) if (instance / SPOOL_FOLDER).is_dir() else []
    spools += list(instance.glob(OLD_SPOOL_PREFIX + "*"))
    for folder in spools:
        if folder.is_dir() and str(folder) not in spools_in_use and _old_enough(folder, now, min_age_s):
            out.spools.append(folder)
    return out
