"""Atomic file writes: a temporary file in the same folder, flushed to disk (fsync), then
os.replace, then the folder flushed too.

An interrupted stage (or a power cut) therefore leaves either the old file or the new one,
never half of one. Every JSON file goes through `write_json`, which never writes NaN or
Infinity (they become null).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

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
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp",
                                   dir=path.parent)
    except OSError as e:  # it names a random temporary name: name the file instead
        e.filename, e.filename2 = str(path), None
        raise
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, FILE_MODE)
        fsync_file(tmp_path)
        os.replace(tmp_path, path)
        fsync_dir(path.parent)
    except OSError as e:
        _name_target(e, tmp_path, path)
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _name_target(e: OSError, tmp: Path, target: Path) -> None:
    """Make the error name what was being written (`target`, or the file of it that was),
    not the temporary name beside it, nor nothing (paddle and numpy raise OSError without a
    file name on a full disk)."""
    name = e.filename
    if name is None:
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


def replace_together(files: dict[Path, Path]) -> None:
    """Copy each source file onto its target ({target: source}) so that the targets end
    all old or all new, for files that belong together but are not one folder (weights and
    the config naming them): every copy is written and flushed beside its target first;
    then the targets are replaced one by one, each old one kept under a hard link until
    all are in, and put back if a later replace fails."""
    import shutil

    staged: dict[Path, Path] = {}
    kept: dict[Path, Path] = {}
    done: list[Path] = []
    current = None
    try:
        for current, source in files.items():
            current.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f".{current.name}.", suffix=".tmp",
                                        dir=current.parent)
            os.close(fd)
            staged[current] = Path(name)
            shutil.copyfile(source, name)
            os.chmod(name, FILE_MODE)
            fsync_file(name)
        for current, tmp in staged.items():
            if current.exists():
                kept[current] = current.with_name(f".{current.name}.{os.getpid()}.kept")
                os.link(current, kept[current])
            os.replace(tmp, current)
            done.append(current)
        fsync_dir(current.parent)
    except OSError as e:
        for target in done:  # back to the old files
            with contextlib.suppress(OSError):
                if target in kept:
                    os.replace(kept.pop(target), target)
                else:
                    target.unlink()
        if current is not None:
            _name_target(e, staged.get(current, current), current)
        raise
    finally:
        for path in [*staged.values(), *kept.values()]:
            with contextlib.suppress(OSError):
                path.unlink()


def write_bytes(path: Path | str, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: Path | str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def finite(obj: Any) -> Any:
    """`obj` with every NaN or infinite float (numpy's too) replaced by None, numpy scalars
    as Python numbers: what JSON can hold."""
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    if type(obj).__module__ == "numpy" and getattr(obj, "ndim", None) == 0:
        obj = obj.item()  # a numpy scalar (numpy itself is not imported for this)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def dumps(obj: Any, **kwargs) -> str:
    """JSON text of `obj`, NaN and Infinity written as null (never invalid JSON)."""
    return json.dumps(finite(obj), allow_nan=False, ensure_ascii=False, **kwargs)


def write_json(path: Path | str, obj: Any) -> None:
    write_text(path, dumps(obj, indent=2) + "\n")


def save_npy(path: Path | str, array: np.ndarray) -> None:
    import numpy as np

    # np.save appends ".npy" to names without it, so hand it an open file instead.
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array, allow_pickle=False)


@contextlib.contextmanager
def atomic_dir(path: Path | str) -> Iterator[Path]:
    """Yield a fresh temporary folder beside `path`; swap it in for `path` if the block
    succeeds. Readers see the old folder or the new one, never a mix of files."""
    import shutil
    import time

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as e:
        e.filename, e.filename2 = str(path), None
        raise
    try:
        yield tmp
        os.chmod(tmp, DIR_MODE)
        fsync_tree(tmp)
        old = None
        if path.exists():
            old = path.parent / f".{path.name}.old.{time.time_ns()}"
            path.rename(old)
        try:
            tmp.rename(path)
        except OSError:
            if old is not None:  # the second rename failed: put the old folder back
                old.rename(path)
            raise
        fsync_dir(path.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        _name_target(e, tmp, path)
        raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
