"""From a downloaded archive (or an extracted folder) into a staging folder, safely: only the
files the dataset's reader reads, nothing outside the folder, nothing larger than such a file
can be.

A zip is checked whole before anything is written: absolute paths, drive letters, `..`
components and symlinks refuse the archive. Then only the members the dataset reads are
extracted (the registry names them, with a size cap each: `DatasetSpec.member_caps`);
MovieLens 20M and later also hold tags and a genome of several hundred MB that no stage
reads. A member is refused when its header says more than its cap, and while it is written
a byte counter stops it as soon as it holds more than its header said (and refuses it when
it holds less): the header is what the cap was checked against.
"""

from __future__ import annotations

import re
import shutil
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from rec.errors import RecError, UsageError

CHUNK = 1 << 16


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def _member_parts(name: str) -> tuple[str, ...]:
    return tuple(p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("", "."))


def safe_members(zf: zipfile.ZipFile, archive: str) -> list[tuple[zipfile.ZipInfo, tuple]]:
    """Every member with its path parts, after refusing anything that could escape.

    Refused (the whole archive, before anything is written): absolute paths, drive letters,
    `..` components and symlinks. macOS's __MACOSX/ metadata folder is skipped.
    """
    out = []
    for info in zf.infolist():
        name = info.filename
        parts = _member_parts(name)
        if not parts or parts[0] == "__MACOSX":
            continue
        if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts:
            raise RecError(f"refusing {archive}: member {name!r} would land outside the "
                           f"dataset folder")
        if _is_symlink(info):
            raise RecError(f"refusing {archive}: member {name!r} is a symlink")
        out.append((info, parts))
    return out


def _strip_top(members: list[tuple[zipfile.ZipInfo, tuple]]) -> int:
    """1 if every member sits under one top folder (ml-1m/...), which is then dropped."""
    tops = {parts[0] for _, parts in members}
    nested = all(len(parts) > 1 or info.is_dir() for info, parts in members)
    return 1 if len(tops) == 1 and nested else 0


READABLE_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)


def _copy_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, archive: Path) -> None:
    """Write one member, counting bytes: refused past its header's size (at header + 1) or
    short of it."""
    def refuse(what: str) -> RecError:
        return RecError(f"refusing {archive}: member {info.filename!r} {what}")

    if info.flag_bits & 0x1:
        raise refuse("is encrypted: rec reads plain archives only")
    if info.compress_type not in READABLE_METHODS:
        raise refuse(f"uses compression method {info.compress_type}, which Python's zipfile "
                     "cannot read (stored, deflate, bzip2 and lzma can be)")
    if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
        raise refuse(f"is stored as {info.compress_size:,} bytes but its header says "
                     f"{info.file_size:,} unpacked")
    written = 0
    try:
        with zf.open(info) as src, open(target, "wb") as out:
            while block := src.read(min(CHUNK, info.file_size + 1 - written)):
                written += len(block)
                if written > info.file_size:
                    raise refuse(f"holds more than the {info.file_size:,} bytes its header says")
                out.write(block)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, RuntimeError,
            NotImplementedError, ValueError) as e:  # whatever else zipfile meets in a member
        raise RecError(f"{archive}: cannot extract {info.filename!r}: {e}") from None
    if written != info.file_size:
        raise refuse(f"holds {written:,} bytes, not the {info.file_size:,} its header says")


def extract_zip(archive: Path, dest: Path, wanted: dict[str, int]) -> None:
    """Extract the members named in `wanted` (file name -> the most bytes it may hold) from
    `archive` into the (empty) folder `dest`, dropping a single top folder; the others are
    skipped. A member over its cap is refused before anything is written."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as e:
        raise RecError(f"{archive} is not a readable zip archive: {e}") from None
    with zf:
        members = safe_members(zf, str(archive))
        strip = _strip_top(members)
        chosen = [(info, "/".join(parts[strip:])) for info, parts in members
                  if not info.is_dir() and "/".join(parts[strip:]) in wanted]
        for info, name in chosen:
            if info.file_size > wanted[name]:
                raise RecError(f"refusing {archive}: member {info.filename!r} would be "
                               f"{info.file_size:,} bytes unpacked, more than a {name} can be "
                               f"({wanted[name]:,})")
        root = dest.resolve()
        for info, name in chosen:
            target = dest.joinpath(*name.split("/"))
            # Belt and braces: the checks above should make this impossible.
            if not target.resolve().is_relative_to(root):
                raise RecError(f"refusing {archive}: member {info.filename!r} escapes")
            target.parent.mkdir(parents=True, exist_ok=True)
            _copy_member(zf, info, target, archive)


def copy_folder(src: Path, dest: Path, expected: list[str]) -> None:
    """Copy the `expected` files of an already-extracted dataset (the folder itself, or a
    folder holding it); nothing else in it is read, so nothing else is copied."""
    if dest.resolve().is_relative_to(src.resolve()):
        raise UsageError(f"--source {src} contains the data folder itself; point it at the "
                         f"dataset folder")
    if not all((src / name).is_file() for name in expected):
        subdirs = [p for p in src.iterdir() if p.is_dir() and not p.name.startswith(".")]
        if len(subdirs) == 1 and any((subdirs[0] / n).exists() for n in expected):
            src = subdirs[0]
    for name in expected:
        path = src / name
        if path.is_symlink():
            raise RecError(f"refusing {src}: {name} is a symlink")
        if path.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
