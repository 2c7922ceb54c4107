"""One writer per folder: a writing stage holds an exclusive, non-blocking `fcntl.flock` on
FOLDER/.lock while it runs; a second writer stops at once with one line naming the running
command and its pid (written into the lock file). Readers never wait for the lock; they
take it, only if free at once, to finish a folder swap a killed run left halfway
(rec.storage.recovery).

The kernel releases a flock when its holder dies (kill -9 included), so a lock file left
behind by a killed run never blocks the next one: the file's existence means nothing, only
the lock on it does. A run that finishes removes the file. Workers of a `--nproc` run (PADDLE_TRAINERS_NUM is set) take no lock:
the launching process holds it for them. So do the stages `rec pipeline` runs (`for_children`:
it holds the output folder from the first stage to the last, and no other writer gets in
between): a stage takes no lock on a folder its parent process holds and names in HELD_ENV.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
from pathlib import Path
from typing import Iterator

from rec.errors import EXIT_USAGE, RecError, environment_error

LOCK = ".lock"
HELD_ENV = "REC_HELD_LOCKS"  # {"pid": the holder, "folders": [real paths]}: for_children

try:
    import fcntl
except ImportError:  # not POSIX: no locking
    fcntl = None


class Busy(RecError):
    """Another writer holds the folder (exit 2: retry when it has finished)."""

    def __init__(self, message: str):
        super().__init__(message, EXIT_USAGE)


def is_worker() -> bool:
    """A process started by paddle.distributed.launch (its launcher holds the locks)."""
    return bool(os.environ.get("PADDLE_TRAINERS_NUM"))


def for_children(folders: list[Path]) -> dict:
    """The environment entry by which child processes know that this process holds the
    locks of `folders` for them (held_by_parent). A child should also inherit the lock's
    descriptor (subprocess's pass_fds): the flock then lasts while either holds it, and a
    stage still finishing after its parent was killed keeps the folder its own."""
    return {HELD_ENV: json.dumps({"pid": os.getpid(),
                                  "folders": [os.path.realpath(f) for f in folders]})}


def held_by_parent(folder: Path | str) -> bool:
    """Whether this process's parent holds `folder`'s lock for it: HELD_ENV names the
    parent and the folder, and the lock file names the parent as its holder now (an
    environment inherited further down, or left over, never skips a lock)."""
    try:
        held = json.loads(os.environ.get(HELD_ENV) or "{}")
        pid, folders = int(held["pid"]), held["folders"]
    except (ValueError, KeyError, TypeError):
        return False
    if pid != os.getppid() or os.path.realpath(folder) not in folders:
        return False
    holder = running(folder) or ""
    return holder.endswith(f"(pid {pid})")


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "another rec command"


def _acquire(path: Path) -> int:
    """An open descriptor of `path` holding its exclusive flock, or Busy. The file is removed
    when its holder finishes, so a lock taken on a file already unlinked is retried on the
    current one (checked by inode): two writers never hold locks on two different files."""
    while True:
        try:  # never through a symlink: the lock file is rewritten, then removed
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
        except OSError as e:
            if e.errno != errno.ELOOP:
                raise
            raise RecError(f"{path} is a symbolic link, not rec's lock file: remove it (rec "
                           "writes and removes that file itself)", EXIT_USAGE) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            st = os.fstat(fd)
            try:
                current = os.stat(path)
            except FileNotFoundError:
                current = None
            if current is not None and (current.st_ino, current.st_dev) == (st.st_ino, st.st_dev):
                return fd
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise Busy(f"{path.parent} is in use by `{holder}`: wait for it to finish "
                       "(one writer per folder)")
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # the holder before us removed this file: lock the new one


def write_note(fd: int | None, command: str) -> None:
    """Name the lock's holder in its file: "COMMAND (pid N)", N this process (what `rec
    status` and a refused writer read; `rec pipeline` renames it for each stage). None: no
    lock taken here (hold's), nothing to name."""
    if fd is None:
        return
    note = f"{command} (pid {os.getpid()})\n".encode("utf-8")
    with contextlib.suppress(OSError):  # the lock holds without the note
        os.pwrite(fd, note, 0)
        os.ftruncate(fd, len(note))


@contextlib.contextmanager
def hold(folder: Path | str, command: str | None = None) -> Iterator[int | None]:
    """Own `folder` (created if missing) for the block, or raise Busy at once; the lock
    file's descriptor is yielded (None where no lock is taken here). A folder created here
    that holds nothing but the lock file at the end (the command failed before writing, say
    `rec train` before `rec preprocess`) is removed with it."""
    if fcntl is None or is_worker() or held_by_parent(folder):
        yield None
        return
    path = Path(folder) / LOCK
    if path.parent.is_symlink() and not path.parent.exists():
        raise RecError(f"cannot use {folder} for output: it is a symlink to "
                       f"{os.path.realpath(folder)}, which does not exist (create it, or "
                       "remove the link)")
    created = not os.path.lexists(path.parent)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = _acquire(path)
    except OSError as e:  # read-only, forbidden, a file where the folder should be, ...
        if e.filename is not None and os.fsdecode(e.filename) == str(path):
            e.filename = str(folder)  # the folder is what cannot be written
        raise environment_error(e, nothing_changed=True) or e
    try:
        write_note(fd, command or " ".join(["rec", *sys.argv[1:]]))
        yield fd
    finally:
        with contextlib.suppress(OSError):
            path.unlink()  # while still locked: see _acquire
            if created:
                path.parent.rmdir()  # only if empty
        os.close(fd)  # releases the lock


def same_folder(a: Path | str, b: Path | str) -> bool:
    """Whether two folder names are one folder (symlinks followed): one lock file for both."""
    return os.path.realpath(a) == os.path.realpath(b)


@contextlib.contextmanager
def hold_all(folders: list[Path], command: str | None = None) -> Iterator[None]:
    """Own every folder of `folders` (in order) for the block. A folder named twice (the
    same folder for --data-dir and --output-dir, or a link to it) is locked once: a second
    flock of the same file would find the first one and call the command busy with itself."""
    with contextlib.ExitStack() as stack:
        held: list[Path] = []
        for folder in folders:
            if not any(same_folder(folder, other) for other in held):
                stack.enter_context(hold(folder, command))
                held.append(folder)
        yield


def running(folder: Path | str) -> str | None:
    """The command that holds `folder`'s lock now, as its lock file names it ("rec train
    (pid 12)"), or None when no writer runs. Asked without ever waiting: a shared lock
    taken and dropped at once (a writer starting in that instant is told the folder is busy,
    as with any reader's repair, rec.storage.recovery)."""
    if fcntl is None:
        return None
    try:
        fd = os.open(Path(folder) / LOCK, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:  # no lock file: nobody holds it (a holder keeps the file until it ends)
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder(fd)
    except OSError:
        return None
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
