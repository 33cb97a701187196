"""Turn what a user points at (files, class folders, zip archives, uploads) into a flat list of candidate files.

Layout rule, the same everywhere: a file inside a first-level subfolder belongs to the class named after that
subfolder; a loose file belongs to the class the user chose (or none). Unsafe archive entries (absolute paths,
`..`, links, oversized members) become rejections, never files on disk.
"""
from __future__ import annotations

import errno
import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator

from curator.imports.validation import Limits, Rejected

SKIP_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}


@dataclass
class Candidate:
    """One file to import: `read()` returns its bytes or raises Rejected."""
    name: str  # what the user recognises: path within the source
    class_name: str | None
    read: Callable[[], bytes]
    path: Path | None = None  # a plain file, which a worker process can read itself (read_limited)


class SourceError(Exception):
    """The whole source is unusable (missing, outside the allowed roots, not a folder/file/zip)."""


def is_within(path: Path, roots: list[Path]) -> bool:
    real = Path(os.path.realpath(path))
    return any(real == Path(os.path.realpath(r)) or Path(os.path.realpath(r)) in real.parents for r in roots)


NAME_MAX = 255  # bytes in one path component (Linux, macOS and Windows file systems)


def check_path_name(path: Path) -> None:
    """Refuse a path no file system can hold (a NUL, a component over NAME_MAX bytes) with the reason."""
    text = str(path)
    if "\0" in text:
        raise SourceError("the path contains a NUL character: no file or folder can be named so")
    for part in Path(text).parts:
        if len(os.fsencode(part)) > NAME_MAX:
            raise SourceError(f"a part of the path is {len(os.fsencode(part))} bytes long; file and folder names "
                              f"have at most {NAME_MAX}: {part[:40]}…")


def check_allowed(path: Path, roots: list[Path] | None) -> None:
    """Refuse paths outside the allowed import roots (symlinks are resolved first). None means no restriction."""
    if roots is not None and not is_within(path, roots):
        allowed = ", ".join(str(r) for r in roots) or "(none configured)"
        raise SourceError(f"{path} is outside the allowed import folders: {allowed}")


def _skip(name: str) -> bool:
    parts = PurePosixPath(name).parts
    hidden = any(p.startswith(".") and p not in (".", "..") or p == "__MACOSX" for p in parts)
    return hidden or parts[-1].lower() in SKIP_NAMES


def read_limited(path: Path, limits: Limits) -> bytes:
    """A regular file's bytes, refusing one over the size limit before reading it. What was put in its place since
    it was listed is refused too: a symbolic link (not followed), or a pipe, socket or device (a pipe would block)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:  # gone since it was listed, not readable by this user, or a link
        if exc.errno == errno.ELOOP:
            raise Rejected("symbolic link: links are not followed") from None
        raise Rejected(f"cannot read the file: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Rejected("not a regular file (a pipe, socket or device)")
        if info.st_size > limits.max_file_bytes:
            raise Rejected(f"file too large: {info.st_size / 2**20:.1f} MiB exceeds the "
                           f"{limits.max_file_bytes / 2**20:.0f} MiB limit")
        try:
            return f.read()
        except OSError as exc:
            raise Rejected(f"cannot read the file: {exc.strerror or exc}") from None


def _file_reader(path: Path, limits: Limits) -> Callable[[], bytes]:
    return lambda: read_limited(path, limits)


def _class_from(parts: tuple[str, ...], default: str | None) -> str | None:
    return parts[0] if len(parts) > 1 else default


def iter_folder(folder: Path, default_class: str | None, limits: Limits) -> Iterator[Candidate]:
    """Files under `folder` in sorted order, each folder's files before its subfolders; hidden ones skipped, linked
    folders not entered. One scandir per folder and plain strings: pathlib's parsing cost more per file than the
    listing itself."""
    yield from _walk(str(folder), [], default_class, limits)


def _walk(directory: str, parts: list[str], default_class: str | None, limits: Limits) -> Iterator[Candidate]:
    try:
        with os.scandir(directory) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
    except OSError as exc:  # not readable by this user: said, and the rest is imported
        name = "/".join(parts) or os.path.basename(directory)
        yield Candidate(f"{name}/", None, _raiser(f"cannot read the folder: {exc.strerror or exc}"))
        return
    subfolders = []
    for entry in entries:
        rel_parts = [*parts, entry.name]
        rel = "/".join(rel_parts)
        if _skip(entry.name):  # hidden files and folders (a hidden folder is not even entered)
            continue
        if entry.is_dir(follow_symlinks=False):
            subfolders.append(entry)
            continue
        if entry.is_symlink():
            yield Candidate(rel, None, _raiser("symbolic link: links are not followed"))
            continue
        if not entry.is_file(follow_symlinks=False):
            yield Candidate(rel, None, _raiser("not a regular file (a pipe, socket or device)"))
            continue
        path = Path(entry.path)
        if entry.name.lower().endswith(".zip") and zipfile.is_zipfile(path):  # the cheap test first: one per file
            yield Candidate(rel, None, _raiser("zip archive inside a folder: import the archive itself"))
            continue
        yield Candidate(rel, _class_from(tuple(rel_parts), default_class), _file_reader(path, limits), path)
    for entry in subfolders:
        yield from _walk(entry.path, [*parts, entry.name], default_class, limits)


def _raiser(reason: str) -> Callable[[], bytes]:
    def read() -> bytes:
        raise Rejected(reason)
    return read


def unsafe_entry_reason(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return "symbolic link inside the archive: refused"
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "absolute path inside the archive: refused"
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        return "path escapes the archive ('..'): refused"
    return None


def iter_zip(path: Path, default_class: str | None, limits: Limits, display: str | None = None) -> Iterator[Candidate]:
    prefix = display or path.name
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise SourceError(f"{prefix}: not a readable zip archive ({exc})") from None
    infos = [i for i in zf.infolist() if not i.is_dir() and not _skip(i.filename)]
    if len(infos) > limits.max_zip_entries:
        raise SourceError(f"{prefix}: {len(infos)} entries exceed the limit of {limits.max_zip_entries}")
    for info in infos:
        name = f"{prefix}/{info.filename}"
        reason = unsafe_entry_reason(info)
        if reason:
            yield Candidate(name, None, _raiser(reason))
            continue
        parts = PurePosixPath(info.filename).parts
        yield Candidate(name, _class_from(parts, default_class), _zip_reader(zf, info, limits))


def _zip_reader(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limits: Limits) -> Callable[[], bytes]:
    def read() -> bytes:
        if info.file_size > limits.max_file_bytes:
            raise Rejected(f"file too large: {info.file_size / 2**20:.1f} MiB exceeds the "
                           f"{limits.max_file_bytes / 2**20:.0f} MiB limit")
        try:
            with zf.open(info) as f:
                data = f.read(limits.max_file_bytes + 1)  # never trust the declared size of a zip bomb
        except (zipfile.BadZipFile, OSError, EOFError, RuntimeError) as exc:
            raise Rejected(f"damaged archive entry: {exc}") from None
        if len(data) > limits.max_file_bytes:
            raise Rejected("file too large once decompressed: refused")
        return data
    return read


def iter_paths(paths: list[Path], default_class: str | None, limits: Limits,
               roots: list[Path] | None = None) -> Iterator[Candidate]:
    """Every candidate under the given files, folders and zip archives. Raises SourceError for a bad path."""
    for path in paths:
        check_path_name(path)
        check_allowed(path, roots)
        try:
            exists, is_dir = path.exists(), path.is_dir()
        except OSError as exc:  # e.g. a name the file system cannot hold: said, never a crash
            raise SourceError(f"{path}: cannot be read ({exc.strerror or exc})") from None
        if not exists:
            raise SourceError(f"{path}: no such file or folder")
        if is_dir:
            yield from iter_folder(path, default_class, limits)
        elif path.suffix.lower() == ".zip":
            yield from iter_zip(path, default_class, limits)
        else:
            real = Path(os.path.realpath(path))  # a file named by the user may be a link: read what it points to
            yield Candidate(path.name, default_class, _file_reader(real, limits), real)
