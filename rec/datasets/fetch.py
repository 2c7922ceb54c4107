"""Getting an archive onto disk, safely: HTTP with resume and checksums (what goes from an
archive into the new folder is rec/datasets/archive.py's; rec.storage.atomic.atomic_dir then swaps
the folder into data/).

Standard library only (urllib), so `rec download` needs nothing beyond the package itself.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from rec import __version__
from rec.storage.atomic import file_hash
from rec.console import log, progress
from rec.errors import RecError, environment_error

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
        if e.filename is None:
            e.filename = str(path)
        raise environment_error(e) or RecError(f"cannot write {path}: {e.strerror or e}") \
            from None


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

        try:
            return _with_retries(url, policy, attempt)
        except BaseException:
            if not part.exists():  # nothing arrived: no empty data/.downloads left behind
                try:
                    part.parent.rmdir()
                except OSError:  # other partial downloads there (kept to resume)
                    pass
            raise


