"""Fingerprints of the files and folders the manifest records (rec.storage.manifest).

A file's fingerprint is a hash of its bytes; a folder's (CONTENT) a hash over its files'
names and fingerprints, so that a copy or a `touch` leaves it as it was. Beside each, the
manifest records its stats (a file's size and mtime; a folder's `folder_stats`, a hash over
its files' names, sizes and mtimes): `rec status` hashes only what changed since (as make
and git do), so it reads none of the dataset's or the models' megabytes on every run. A
folder recorded by an older rec by its files' stats alone is compared by them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

FOLDER_FILES = 10_000  # a folder fingerprint stops here: rec's folders hold a few files
TOO_MANY = "more-files-than-rec-writes"  # the fingerprint of a folder beyond FOLDER_FILES


def file_fingerprint(f) -> str:
    """`fingerprint` of an open file (binary, read from where it is to its end)."""
    h = hashlib.blake2b(digest_size=12)
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
    return h.hexdigest()


CONTENT = "c1:"  # a folder's fingerprint over its files' contents (an older rec's: their stats)


def fingerprint(path: Path) -> str | None:
    """Content hash of a file; for a folder, CONTENT and a hash over its files' names and
    contents (TOO_MANY past FOLDER_FILES files: a manifest naming / is not a reason to walk
    the disk); None for anything else (missing, a device, a pipe)."""
    path = Path(path)
    try:
        if path.is_file():
            with open(path, "rb") as f:
                return file_fingerprint(f)
        files = _folder_files(path)
        if not isinstance(files, list):
            return files
        h = hashlib.blake2b(digest_size=12)
        for child in files:
            with open(child, "rb") as f:
                h.update(f"{child.relative_to(path)}\0{file_fingerprint(f)}\n".encode())
    except OSError:  # unreadable now: it cannot be what was recorded
        return None
    return CONTENT + h.hexdigest()


def _folder_files(path: Path) -> list[Path] | str | None:
    """A folder's files, sorted; TOO_MANY past FOLDER_FILES; None when it is no folder."""
    if not path.is_dir():
        return None
    files = []
    for child in path.rglob("*"):
        if child.is_file():
            files.append(child)
            if len(files) > FOLDER_FILES:
                return TOO_MANY
    return sorted(files)


def folder_stats(path: Path) -> str | None:
    """A hash over a folder's files' names, sizes and mtimes: what spares `rec status` the
    hash of its contents while none of them changed (and an older rec's folder fingerprint);
    TOO_MANY past FOLDER_FILES files, None when it is no folder or unreadable."""
    path = Path(path)
    h = hashlib.blake2b(digest_size=12)
    try:
        files = _folder_files(path)
        if not isinstance(files, list):
            return files
        for child in files:
            st = child.stat()
            h.update(f"{child.relative_to(path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    except OSError:
        return None
    return h.hexdigest()


def file_stat(path: Path) -> list[int] | str | None:
    """[size, mtime_ns] of a file, folder_stats of a folder; None for a missing path."""
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return folder_stats(path) if Path(path).is_dir() else [st.st_size, st.st_mtime_ns]


class Read(str):
    """A fingerprint taken as a stage read the path (`read_version`), with `stats`: the
    path's stats taken just before, which vouch for the version read and no later one (a
    folder another output folder's `rec download` replaced meanwhile)."""

    stats: list[int] | str | None


def read_version(path: Path) -> Read | None:
    """The fingerprint of `path` as it is now, its stats taken first (Read); None as
    `fingerprint` gives it."""
    stats = file_stat(path)
    fp = fingerprint(path)
    if fp is None:
        return None
    read = Read(fp)
    read.stats = stats
    return read


def unchanged(p: str, fp, stats, hashed: dict) -> bool:
    """Whether path `p` is still what fingerprint `fp` was (`stats`: those recorded with it,
    or None; `hashed`: path -> fingerprint, the ones computed already, filled in)."""
    if stats is not None and stats == file_stat(Path(p)):
        return True
    if isinstance(fp, str) and not fp.startswith(CONTENT) and fp != TOO_MANY and \
            Path(p).is_dir():  # an older rec's folder fingerprint: its files' stats
        return fp == folder_stats(Path(p))
    if p not in hashed:
        hashed[p] = fingerprint(Path(p))
    return hashed[p] == fp
