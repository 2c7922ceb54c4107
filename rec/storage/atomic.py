"""Atomic file writes: a temporary file in the same folder, flushed to disk (fsync), then
os.replace, then the folder flushed too.

An interrupted stage (or a power cut) therefore leaves either the old file or the new one,
never half of one. Every JSON file goes through `write_json`, which never writes NaN or
Infinity (they become null). A multi-file artifact is a folder swapped in whole
(`atomic_dir`); a swap killed halfway is finished by `repair` (see rec.storage.recovery).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from rec.jsontext import dumps, finite  # noqa: F401  (re-exported: files are written with it)

if TYPE_CHECKING:  # numpy is imported where an array is written (`rec status` needs none)
    import numpy as np


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp/mkdtemp create private (0600/0700) entries; artifacts get the usual permissions.
FILE_MODE = 0o666 & ~_umask()
DIR_MODE = 0o777 & ~_umask()


def file_hash(path: Path | str, algorithm: str = "sha256") -> str:
    """The hex digest of a file's content (read in 1 MiB blocks)."""
    with open(path, "rb") as f:
        return stream_hash(f, algorithm)


def stream_hash(f, algorithm: str = "sha256") -> str:
    """The hex digest of what is left to read in the binary file `f` (1 MiB blocks)."""
    h = hashlib.new(algorithm)
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
    return h.hexdigest()


def fsync_file(path: Path | str) -> None:
    """Flush a written file's content to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path | str) -> None:
    """Flush a folder's entries (names created, renamed or removed in it) to disk."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # a platform that cannot open folders: nothing more to do
        return
    try:
        os.fsync(fd)
    except OSError as e:  # some file systems refuse fsync on a folder
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """Flush every file and folder under `root` (and `root` itself) to disk."""
    for folder, _dirs, files in os.walk(root):
        for name in files:
            fsync_file(os.path.join(folder, name))
        fsync_dir(folder)


@contextlib.contextmanager
def atomic_path(path: Path | str, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it into place only if the block succeeds."""
    from rec.process.interrupts import deferred

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = None
    try:
        with deferred():  # Ctrl-C or SIGTERM here acts inside the try: the file is removed
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp",
                                       dir=path.parent)
            os.close(fd)
            tmp_path = Path(tmp)
        yield tmp_path
        os.chmod(tmp_path, FILE_MODE)
        fsync_file(tmp_path)
        os.replace(tmp_path, path)
        fsync_dir(path.parent)
    except OSError as e:
        _name_target(e, tmp_path, path)
        raise
    finally:
        with deferred():
            if tmp_path is not None and tmp_path.exists():
                tmp_path.unlink()


def _name_target(e: OSError, tmp: Path | None, target: Path) -> None:
    """Make the error name what was being written (`target`, or the file of it that was),
    not the temporary name beside it, nor nothing (paddle and numpy raise OSError without a
    file name on a full disk)."""
    name = e.filename
    if name is None or tmp is None:  # nothing named, or the temporary could not be created
        e.filename, e.filename2 = str(target), None
        return
    try:
        rel = Path(os.fsdecode(name)).relative_to(tmp)
    except (TypeError, ValueError):
        return
    e.filename, e.filename2 = str(target.joinpath(rel)), None


PROBE = ".rec-write-check"  # created and removed by check_writable


def check_writable(folder: Path | str) -> None:
    """Raise the OSError a stage would meet late (read-only, forbidden, a file where the
    folder should be, a disk too full for a block) by writing one small file into `folder`
    the way every artifact is written (temporary file, fsync, rename), then removing it.
    Folders created for the check are removed again."""
    folder = Path(folder)
    created = [p for p in (folder, *folder.parents) if not p.exists() and not p.is_symlink()]
    try:
        with atomic_path(folder / PROBE) as tmp:
            tmp.write_bytes(b"\0" * 4096)
        (folder / PROBE).unlink()
    except OSError as e:
        if e.filename is not None and Path(os.fsdecode(e.filename)).name == PROBE:
            e.filename = str(folder)  # the folder is what cannot be written
        raise
    finally:
        for path in created:  # the deepest first
            with contextlib.suppress(OSError):
                path.rmdir()


def write_bytes(path: Path | str, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: Path | str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: Path | str, obj: Any) -> None:
    write_text(path, dumps(obj, indent=2) + "\n")


def save_npy(path: Path | str, array: np.ndarray) -> None:
    import numpy as np

    # np.save appends ".npy" to names without it, so hand it an open file instead; through
    # a plain writer, since numpy's tofile (its path for real files) raises a full disk as an
    # OSError without errno, which no error message could name.
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(_Writer(f), array, allow_pickle=False)


class _Writer:
    """A file object numpy does not recognise as a real file: it writes through write()."""

    def __init__(self, f):
        self.write = f.write


# A folder swap, beside the target (named NAME): the new folder is built in .NAME.XXXX.tmp,
# renamed .NAME.new.<ns> once it is complete and on disk, the old folder is renamed
# .NAME.old.<ns>, the new one takes NAME, the old one is removed. A run killed midway
# (kill -9, a power cut) leaves names that say what each folder is: `repair` restores the
# newest complete one and removes the rest. (`rec download` left .NAME.<hex>.staging and
# .NAME.<hex>.old before: repair knows those too.)
BUILDING, COMPLETE, PREVIOUS = "tmp", "new", "old"


@contextlib.contextmanager
def atomic_dir(path: Path | str) -> Iterator[Path]:
    """Yield a fresh temporary folder beside `path`; swap it in for `path` if the block
    succeeds. Readers see the old folder or the new one, never a mix of files.

    A `path` that is a symlink to a folder stays one: the swap happens where it points
    (write-through), so a dataset on a bigger disk stays there. SIGINT and SIGTERM wait for
    the renames; only kill -9 can fall between them, and `repair` finishes that swap."""
    from rec.process.interrupts import deferred

    path = Path(path)
    real = swap_location(path)
    tmp = new = old = None
    try:
        with deferred():  # as in atomic_path
            tmp = Path(tempfile.mkdtemp(prefix=f".{real.name}.", suffix=f".{BUILDING}",
                                        dir=real.parent))
        yield tmp
        os.chmod(tmp, DIR_MODE)
        fsync_tree(tmp)
        with deferred():
            new = _aside(real, COMPLETE)
            os.rename(tmp, new)  # from here on the new folder counts as complete
            if os.path.lexists(real):
                old = _aside(real, PREVIOUS)
                os.rename(real, old)
            try:
                os.rename(new, real)
            except OSError:
                if old is not None:  # the last rename failed: put the old folder back
                    os.rename(old, real)
                raise
            fsync_dir(real.parent)
    except OSError as e:
        _name_target(e, tmp, path)
        raise
    finally:
        # Unless the old folder is aside and could not be put back (`repair` will), what
        # is left is not wanted: the old folder replaced, or a new one that did not make it.
        # A signal waits for the removal too: stopped midway, it would leave half a folder.
        keep = old is not None and not os.path.lexists(real)
        with deferred():
            for leftover in (tmp,) if keep else (tmp, new, old):
                if leftover is not None and os.path.lexists(leftover):
                    _remove(leftover)


def swap_location(path: Path) -> Path:
    """Where a swap of `path` happens: `path` itself, or the folder a symlink `path` points
    to. A symlink into a missing folder, or a target that is not a folder, is refused."""
    from rec.errors import RecError

    if path.is_symlink():
        real = Path(os.path.realpath(path))
        if not real.parent.is_dir():
            raise RecError(f"{path} is a symlink to {real}, in a folder that does not exist: "
                           f"create {real.parent} or remove the link")
    else:
        real = path
        real.parent.mkdir(parents=True, exist_ok=True)
    if os.path.lexists(real) and not real.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path))
    return real


def _aside(real: Path, kind: str) -> Path:
    import time

    while True:
        name = real.parent / f".{real.name}.{kind}.{time.time_ns()}"
        if not os.path.lexists(name):
            return name


def _remove(path: Path) -> None:
    """Remove a leftover: a symlink or a file itself, a folder with what is in it."""
    import shutil

    if os.path.islink(path) or not os.path.isdir(path):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    else:
        shutil.rmtree(path, ignore_errors=True)


def _leftovers(real: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """The swap leftovers beside `real`: (complete new folders, previous folders, folders
    never completed), the first two newest first."""
    complete, previous, building = [], [], []
    prefix = f".{real.name}."
    try:
        entries = [e for e in os.listdir(real.parent) if e.startswith(prefix)]
    except OSError:
        return [], [], []
    for entry in entries:
        rest, leftover = entry[len(prefix):], real.parent / entry
        kind, _, stamp = rest.partition(".")
        if kind in (COMPLETE, PREVIOUS) and stamp.isdigit():
            (complete if kind == COMPLETE else previous).append((int(stamp), leftover))
        elif stamp in (BUILDING, "staging", "old") and "." not in kind:
            if stamp == "old":  # rec download's former name for the previous folder
                previous.append((os.lstat(leftover).st_ctime_ns, leftover))
            else:
                building.append(leftover)
    newest = lambda found: [p for _, p in sorted(found, reverse=True)]  # noqa: E731
    return newest(complete), newest(previous), building


def leftovers(path: Path | str) -> list[Path]:
    """Everything swaps of `path` left beside it (none once a swap has ended)."""
    complete, previous, building = _leftovers(Path(os.path.realpath(path)))
    return complete + previous + building


def needs_repair(path: Path | str) -> bool:
    """`path` is missing and a killed swap left a complete copy of it beside it."""
    real = Path(os.path.realpath(path))
    if os.path.lexists(real):
        return False
    complete, previous, _ = _leftovers(real)
    return bool(complete or previous)


def repair(path: Path | str) -> Path | None:
    """Finish a folder swap of `path` that a killed run left halfway, and remove every
    leftover of swaps beside it. Returns the leftover put in place of a missing `path`
    (the newest complete one: a new folder before a previous one), or None.

    Call it only while holding the folder's lock (rec.storage.lock): a running swap's names look
    just like a killed one's."""
    from rec.process.interrupts import deferred

    real = Path(os.path.realpath(path))
    complete, previous, building = _leftovers(real)
    if not (complete or previous or building):
        return None
    restored = None
    with deferred():
        if not os.path.lexists(real) and (complete or previous):
            restored = (complete or previous)[0]
            os.rename(restored, real)
        for leftover in complete + previous + building:
            if leftover != restored:
                _remove(leftover)
        fsync_dir(real.parent)
    return restored


def temporaries(folder: Path | str) -> list[Path]:
    """The temporary files and folders (.NAME.XXXX.tmp) in `folder`."""
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [Path(folder) / n for n in names if n.startswith(".") and n.endswith(f".{BUILDING}")]


def sweep(folder: Path | str) -> list[Path]:
    """Remove the temporary files and folders a killed run left in `folder`; returns them.
    Only while holding the folder's lock (see `repair`)."""
    from rec.process.interrupts import deferred

    found = temporaries(folder)
    with deferred():
        for path in found:
            _remove(path)
    return found
