"""Reading a folder that a writer swaps in whole (rec.storage.atomic.atomic_dir) while its readers take
no lock (rec.storage.lock): output/features, output/dataset, output/model/best,
output/ctr/model, output/export (rec.storage.unit.read checks such a folder's files against
its seal).

Opened by name one after the other, the files of such a folder can come from two runs: a
swap between two opens gives the new folder's second file beside the old one's first (a
silent mixture), the folder is missing for the instant between the swap's two renames, and
the old folder's files vanish when it is removed after the swap. So a reader opens the
folder once (`Snapshot`: a directory descriptor) and every file relative to it: all come
from that one folder, even once it is renamed aside. What a swap can still do is remove the
old folder's files under the reader (FileNotFoundError), or leave no folder at the name for
an instant: `read` then reads the whole folder again, from the one now in place.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import time
from pathlib import Path
from typing import BinaryIO, Callable, TypeVar

import numpy as np

from rec.errors import RecError, UsageError

T = TypeVar("T")
TRIES = 10  # a swap takes milliseconds: this many reads span about a quarter of a second
PAUSE = 0.005  # seconds before the second try, growing by as much each time


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


class Snapshot:
    """The folder at `path` as it is when opened: files read through it come from that
    folder. A missing folder (or not a folder) reads as one with no files in it, so the
    reader's own message names the file it needs."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.loaded: dict[str, bytes] = {}  # what read_bytes returned: a unit's check hashes it
        try:
            self.fd: int | None = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        except (FileNotFoundError, NotADirectoryError):
            self.fd, self.identity = None, None
        else:
            self.identity = _identity(os.fstat(self.fd))

    def __enter__(self) -> "Snapshot":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def open(self, name: str) -> BinaryIO:
        """`name` in the folder, opened for reading (binary)."""
        if self.fd is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(self.path / name))
        try:
            fd = os.open(name, os.O_RDONLY, dir_fd=self.fd)
        except OSError as e:
            e.filename = str(self.path / name)  # the full path in messages, not the bare name
            raise
        return os.fdopen(fd, "rb")

    def is_file(self, name: str) -> bool:
        if self.fd is None:
            return False
        try:
            return stat.S_ISREG(os.stat(name, dir_fd=self.fd).st_mode)
        except OSError:
            return False

    def size(self, name: str) -> int | None:
        """The size in bytes of the file `name`, None when there is none."""
        return os.stat(name, dir_fd=self.fd).st_size if self.is_file(name) else None

    def read_bytes(self, name: str) -> bytes:
        with self.open(name) as f:
            self.loaded[name] = f.read()
        return self.loaded[name]

    def map(self, name: str):
        """The file `name` mapped read-only (an mmap: what read_bytes returns, as a buffer
        and a file object, without reading it; bytes for an empty file): a reader of part
        of a big file (EASE's B, rec.rank.easefile) touches only the pages it reads. The
        mapping keeps the file as opened here, swapped aside or not; rec only ever
        replaces a unit's files whole (rec.storage.atomic), never rewrites them in place."""
        import mmap

        with self.open(name) as f:
            if os.fstat(f.fileno()).st_size == 0:
                self.loaded[name] = b""
            else:
                self.loaded[name] = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        return self.loaded[name]

    def read_text(self, name: str) -> str:
        return self.read_bytes(name).decode("utf-8")

    def sha256(self, name: str) -> str:
        """The sha256 of `name`, read in blocks (not kept in memory)."""
        from rec.storage.atomic import stream_hash

        with self.open(name) as f:
            return stream_hash(f)

    def load_npy(self, name: str, mmap: bool = False) -> np.ndarray:
        """A .npy file of the folder (no pickles); with `mmap`, mapped read-only rather than
        read (np.load cannot map an open file, np.memmap can)."""
        with self.open(name) as f:
            if not mmap:
                return np.load(f, allow_pickle=False)
            version = np.lib.format.read_magic(f)
            header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                      else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = header(f)
            if dtype.hasobject:
                raise ValueError("the array holds Python objects (pickles are not read)")
            if not int(np.prod(shape)) * dtype.itemsize:  # nothing to map
                return np.zeros(shape, dtype)
            return np.memmap(f, dtype=dtype, mode="r", shape=shape,
                             order="F" if fortran else "C", offset=f.tell())

    def replaced(self) -> bool:
        """Whether the name now holds another folder than the one read (a swap ran since),
        or none while a swap's folders wait beside it (one is under way)."""
        from rec.storage import atomic

        try:
            now = _identity(os.stat(self.path))
        except OSError:
            now = None
        return now != self.identity or (now is None and bool(atomic.leftovers(self.path)))


def npy_bytes(data: bytes) -> np.ndarray:
    """An array from the bytes of a .npy file already read (no pickles)."""
    return np.load(io.BytesIO(data), allow_pickle=False)


def read(path: Path | str, load: Callable[[Snapshot], T], tries: int = TRIES) -> T:
    """load(a Snapshot of `path`). When it fails (RecError or OSError) and a swap replaced
    the folder meanwhile, or one is under way, the whole load runs again on the folder in
    place, up to `tries` times; a failure the folder itself causes is raised at once (a
    file missing from it: a UsageError naming it, which the caller completes with the
    stage to run, not an internal error)."""
    attempt = 1
    while True:
        with Snapshot(path) as snapshot:
            try:
                return load(snapshot)
            except (RecError, OSError) as e:
                if not snapshot.replaced():
                    if isinstance(e, FileNotFoundError) and \
                            Path(str(e.filename or "")).parent == Path(snapshot.path):
                        raise UsageError(f"missing {e.filename}") from None  # not a swap's
                    raise
                if attempt >= tries:  # swapped again and again: not the reader's fault
                    raise RecError(f"{path} was replaced {tries} times while being read (a "
                                   "writing command is running): try again") from e
        time.sleep(PAUSE * attempt)
        attempt += 1


def read_unchanged(path: Path | str, load: Callable[[], T], changed: Callable[[], None],
                   tries: int = TRIES) -> T:
    """load(), which reads the files of the folder `path` by name (a parser handed paths),
    as one version of that folder: while it runs the folder is held open (so its identity
    cannot be taken by another), and when it was replaced meanwhile (a writer swapped a new
    folder in: what was read may mix both) `changed()` is told and the whole load runs again
    on the folder now in place, up to `tries` times. How `rec preprocess` reads
    data/<dataset>, which a `rec download` for another output folder may replace."""
    for attempt in range(1, tries + 1):
        with Snapshot(path) as snapshot:
            try:
                result = load()
            except (RecError, OSError):
                if not snapshot.replaced():
                    raise
            else:
                if not snapshot.replaced():
                    return result
        changed()
        time.sleep(PAUSE * attempt)
    raise RecError(f"{path} was replaced {tries} times while being read (a writing command "
                   "is running): try again")
