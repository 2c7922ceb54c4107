"""One exception type for every expected failure: the CLI turns it into one line and an exit code.

Faults of the environment (a full disk, a read-only or forbidden folder, a file where a
folder should be, ...) arrive as OSError from wherever a file was written; `environment_error`
is the one place that turns them into that line, naming the path.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

EXIT_FAILURE = 1  # something went wrong while working
EXIT_USAGE = 2  # bad usage or missing inputs
# The reader of standard output went away (`rec recommend --all | head -1`): the status of a
# Unix tool killed by SIGPIPE (128 + 13), as the shell reports it for `yes | head -1`, so a
# pipeline under `set -o pipefail` treats rec like cat, grep or git.
EXIT_PIPE_CLOSED = 141


class RecError(Exception):
    """An expected failure with a message meant for the user (no traceback)."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE):
        super().__init__(message)
        self.exit_code = exit_code


class UsageError(RecError):
    def __init__(self, message: str):
        super().__init__(message, EXIT_USAGE)


class ReaderGone(Exception):
    """Standard output is a pipe whose reader has gone (EPIPE): stop quietly."""


def shown(text: str, limit: int = 60, quote: bool = True) -> str:
    """`text` for an error line (quoted unless `quote` is False), cut to `limit` characters:
    a 5000-digit id or a pasted file must not make the line 5000 characters long."""
    cut = text if len(text) <= limit else text[:limit]
    cut = repr(cut) if quote else cut
    return cut if len(text) <= limit else f"{cut}... ({len(text):,} characters)"


# errno -> the exit code of the fault; every other OSError is not the environment's doing.
_NOT_A_FOLDER = (errno.ENOTDIR, errno.EEXIST)
_WRITES_ONLY = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)
ENVIRONMENT_FAULTS = {
    errno.ENOSPC: EXIT_FAILURE, errno.EDQUOT: EXIT_FAILURE, errno.EFBIG: EXIT_FAILURE,
    errno.EROFS: EXIT_FAILURE, errno.EACCES: EXIT_FAILURE, errno.EPERM: EXIT_FAILURE,
    errno.EIO: EXIT_FAILURE, errno.EBUSY: EXIT_FAILURE, errno.EPIPE: EXIT_FAILURE,
    errno.ENOTDIR: EXIT_USAGE, errno.EEXIST: EXIT_USAGE, errno.EISDIR: EXIT_USAGE,
    errno.ENAMETOOLONG: EXIT_USAGE, errno.ELOOP: EXIT_USAGE,
}


def _not_a_folder(path: Path) -> Path | None:
    """The first of `path` and its parents that exists and is not a folder."""
    for p in (path, *path.parents):
        try:
            if p.exists() and not p.is_dir():
                return p
        except OSError:
            continue
    return None


def environment_error(e: OSError, nothing_changed: bool = False) -> RecError | None:
    """One line for a fault of the environment met while writing, naming the path (exit 1;
    2 when the path given is not usable as it is: a file where a folder is needed); None
    for an OSError that is not one (a bug). `nothing_changed`: found before any work."""
    code = ENVIRONMENT_FAULTS.get(e.errno)
    if code is None:
        return None
    name = e.filename2 if e.errno == errno.EISDIR and e.filename2 else e.filename
    path = Path(os.fsdecode(name)) if isinstance(name, (str, bytes, os.PathLike)) else None
    kept = "nothing was changed" if nothing_changed else "the previous artifacts are kept"
    reason = e.strerror or str(e)
    if path is None:
        return RecError(f"cannot write: {reason}; {kept}", code)
    if e.errno in _NOT_A_FOLDER:
        blocker = _not_a_folder(path)
        if blocker is not None:
            return RecError(f"{blocker} is a file, not a folder: move it away or choose "
                            f"another folder; {kept}", EXIT_USAGE)
        if e.errno == errno.EEXIST:
            return RecError(f"cannot write {path}: {reason}; {kept}", EXIT_FAILURE)
    if e.errno == errno.EISDIR:
        return RecError(f"{path} is a folder where a file is written: move it away; {kept}",
                        code)
    if e.errno == errno.EBUSY:
        return RecError(f"cannot replace {path}: {reason} (a mount point cannot be replaced: "
                        f"mount the folder above it instead); {kept}", code)
    # A full or read-only disk only stops a write; a refused or failing access may have been
    # a read (an input file) outside the preflight, which only writes.
    verb = "write" if nothing_changed or e.errno in _WRITES_ONLY else "access"
    return RecError(f"cannot {verb} {path}: {reason}; {kept}", code)
