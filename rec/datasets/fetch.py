"""Getting an archive onto disk, safely: HTTP with resume, checksums, and extraction that
cannot write outside its folder (rec.atomic.atomic_dir then swaps the folder into data/).

Standard library only (urllib), so `rec download` needs nothing beyond the package itself.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import shutil
import socket
import stat
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterator

from rec import __version__
from rec.atomic import file_hash
from rec.console import log, progress
from rec.errors import RecError

CHUNK = 1 << 16
DEFAULT_BACKOFF_S = 1.0  # first pause between tries; doubles each time (tests shrink it)
SOURCE_HINT = "download it elsewhere and pass --source PATH_OR_URL"


@dataclass
class Policy:
    """How hard to try: per-request timeout, tries after the first, pause before a retry."""

    timeout: float = 30.0
    retries: int = 3
    backoff: float = field(default_factory=lambda: DEFAULT_BACKOFF_S)


class _Retry(Exception):
    """A failure worth another try (network trouble, a 5xx, a short transfer)."""


def md5_of(path: Path) -> str:
    return file_hash(path, "md5")


def _reason(e: BaseException) -> str:
    if isinstance(e, urllib.error.URLError) and not isinstance(e, urllib.error.HTTPError):
        e = e.reason if isinstance(e.reason, BaseException) else e
    if isinstance(e, (socket.timeout, TimeoutError)):
        return "timed out"
    text = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return text


def _open(url: str, policy: Policy, headers: dict[str, str]):
    try:
        req = urllib.request.Request(url, headers={"User-Agent": f"rec/{__version__}", **headers})
        return urllib.request.urlopen(req, timeout=policy.timeout)
    except ValueError as e:  # malformed URL (http.client.InvalidURL is one too)
        raise RecError(f"invalid URL {url}: {e}") from None


def _with_retries(url: str, policy: Policy, attempt_fn):
    """Run attempt_fn() until it succeeds, retrying _Retry/network errors with backoff."""
    last: BaseException | None = None
    for attempt in range(policy.retries + 1):
        if attempt:
            pause = policy.backoff * 2 ** (attempt - 1)
            log(f"retrying in {pause:.1f}s ({attempt}/{policy.retries}): {_reason(last)}")
            time.sleep(pause)
        try:
            return attempt_fn()
        except urllib.error.HTTPError as e:
            # 4xx will not change by asking again; 5xx and 429 might.
            if e.code < 500 and e.code != 429:
                raise RecError(f"HTTP {e.code} {e.reason} from {url}; {SOURCE_HINT}") from None
            last = e
        except (_Retry, urllib.error.URLError, http.client.HTTPException, OSError) as e:
            last = e
            if isinstance(getattr(e, "reason", None), socket.gaierror):
                break  # the name does not resolve: offline, most likely; waiting won't help
    if isinstance(last, urllib.error.HTTPError):
        raise RecError(f"HTTP {last.code} {last.reason} from {url} "
                       f"(after {policy.retries + 1} tries); {SOURCE_HINT}")
    if isinstance(last, _Retry):
        raise RecError(f"download of {url} failed after {policy.retries + 1} tries: {last}; "
                       f"{SOURCE_HINT}")
    # (HTTP errors and short transfers were handled above: the server was reachable.)
    raise RecError(f"cannot reach {url}: {_reason(last)}; {SOURCE_HINT}")


def fetch_text(url: str, policy: Policy, limit: int = 1 << 16) -> str:
    """A small text file (e.g. a published .md5)."""
    def attempt() -> str:
        with _open(url, policy, {}) as resp:
            return resp.read(limit).decode("utf-8", "replace")
    return _with_retries(url, policy, attempt)


def published_md5(url: str, policy: Policy) -> str:
    """The MD5 in a publisher's .md5 file ("MD5 (x.zip) = <hex>" or "<hex>  x.zip")."""
    m = re.search(r"\b[0-9a-fA-F]{32}\b", fetch_text(url, policy))
    if not m:
        raise RecError(f"no MD5 found in {url}; {SOURCE_HINT}")
    return m.group(0).lower()


@contextlib.contextmanager
def _disk(path: Path) -> Iterator[None]:
    """Local file errors are not network errors: report them at once, without retries."""
    try:
        yield
    except OSError as e:
        raise RecError(f"cannot write {path}: {e.strerror or e}") from None


def _content_range_start(value: str | None) -> int | None:
    m = re.match(r"bytes (\d+)-\d+/(?:\d+|\*)", value or "")
    return int(m.group(1)) if m else None


def download(url: str, part: Path, policy: Policy, label: str) -> Path:
    """Download url into `part`, resuming what is already there (HTTP Range).

    Returns `part` once the server's full length has arrived. A short transfer is retried
    from where it stopped; the partial file is kept on failure so a later run resumes it.
    """
    part.parent.mkdir(parents=True, exist_ok=True)
    with progress("bytes") as bar:
        task = bar.add_task(label, total=None)

        def attempt() -> Path:
            have = part.stat().st_size if part.exists() else 0
            headers = {"Range": f"bytes={have}-"} if have else {}
            try:
                resp = _open(url, policy, headers)
            except urllib.error.HTTPError as e:
                if e.code == 416 and have:
                    # Nothing left to send: either the file is complete or the part is junk
                    # (e.g. from a different file). Only the checksum can tell; start over
                    # unless the server says the total is exactly what we have.
                    total = re.search(r"/(\d+)", e.headers.get("Content-Range", "") or "")
                    if total and int(total.group(1)) == have:
                        return part
                    part.unlink()
                    raise _Retry("server refused to resume; starting over") from None
                raise
            with resp:
                if have and resp.status == 206:
                    if _content_range_start(resp.headers.get("Content-Range")) != have:
                        part.unlink()
                        raise _Retry("server resumed at the wrong offset; starting over")
                    mode = "ab"
                else:
                    have, mode = 0, "wb"  # 200: the server sends everything again
                length = resp.headers.get("Content-Length")
                total = have + int(length) if length is not None else None
                bar.update(task, total=total, completed=have)
                with _disk(part):
                    f = open(part, mode)
                with f:
                    more = True
                    while more:
                        try:  # network trouble here is retried ...
                            # read1: what has arrived, so a stall loses nothing already received
                            block = resp.read1(CHUNK)
                            more = bool(block)
                        except http.client.IncompleteRead as e:  # connection closed early
                            block, more = e.partial, False
                        with _disk(part):  # ... a full disk is not
                            f.write(block)
                        bar.advance(task, len(block))
                    got = f.tell()
                if total is not None and got < total:
                    raise _Retry(f"transfer cut short at {got} of {total} bytes")
            return part

        return _with_retries(url, policy, attempt)


# --- extraction --------------------------------------------------------------------------


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


def extract_zip(archive: Path, dest: Path) -> None:
    """Extract `archive` into the (empty) folder `dest`, dropping a single top folder."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as e:
        raise RecError(f"{archive} is not a readable zip archive: {e}") from None
    with zf:
        members = safe_members(zf, str(archive))
        strip = _strip_top(members)
        root = dest.resolve()
        for info, parts in members:
            rel = parts[strip:]
            if not rel:
                continue
            target = dest.joinpath(*rel)
            # Belt and braces: the checks above should make this impossible.
            if not target.resolve().is_relative_to(root):
                raise RecError(f"refusing {archive}: member {info.filename!r} escapes")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, CHUNK)
            except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, OSError,
                    EOFError) as e:
                raise RecError(f"{archive}: cannot extract {info.filename!r}: {e}") from None


def copy_folder(src: Path, dest: Path, expected: list[str]) -> None:
    """Copy an already-extracted dataset (the folder itself, or a folder holding it)."""
    if dest.resolve().is_relative_to(src.resolve()):
        raise RecError(f"--source {src} contains the data folder itself; point it at the "
                       f"dataset folder")
    if not all((src / name).is_file() for name in expected):
        subdirs = [p for p in src.iterdir() if p.is_dir() and not p.name.startswith(".")]
        if len(subdirs) == 1 and any((subdirs[0] / n).exists() for n in expected):
            src = subdirs[0]
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if rel.parts[0].startswith(".rec-") or rel.parts[0] == "__MACOSX":
            continue
        if path.is_symlink():
            raise RecError(f"refusing {src}: {rel} is a symlink")
        target = dest / rel
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif path.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
