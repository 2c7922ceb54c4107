"""EASE's file, output/features/ease.npz, written by save-features and read for serving:
B mapped from the file rather than read, and checked as much as the reader reads of it.

The file is np.savez's, uncompressed (every member stored as it is):

    items         (n,) int64      the movies EASE models
    b             (n, n) float32  EASE's B
    lam           λ
    svd           (n, rank)       PureSVD's V
    run_id        the save-features run (rec.twotower.features checks it against the unit)
    b_rows_crc32  (n,) uint32     the CRC-32 of each row of B's bytes (written since the
                                  file is mapped; a file without it is read as before)

`load_item_models(data, path, rows_only)` over the file mapped (rec.storage.snapshot's
Snapshot.map; bytes work too). B is a read-only view of the mapping: only the pages a
reader touches are read from the page cache. What is checked:

  - always: the zip's directory, B's local and .npy headers (a truncated file fails
    there) and the small members, read whole through zipfile, which checks their CRC-32
    (b_rows_crc32 among them);
  - a reader of all of B (recommend for more than FEW_USERS users, evaluate: they copy B
    into blocks of columns and sum every row many times): B's CRC-32 from the zip over all
    of it, at once (rows_only=False);
  - a reader of a few users (rows_only=True: `rec recommend 42`): each row of B the
    first time it is summed, against its b_rows_crc32 entry (an ml-1m user's 165 rated
    movies on average: 2.4 MB of B's 55 MB; reading the whole file and its CRC-32 was
    0.13 s of the 0.2 s the rank stage added to `recommend 42 --recall-only`); all of B
    if anything asks for its blocks. A file without the entries is checked whole at
    once, as for a reader of all of B.

Why rows: a user's EASE scores are x_u B, the sum of the rows of the movies the user rated,
so a row is what is read; the table costs 4 bytes a row (15 KB on ml-1m) and is checked
by zipfile as read. A damaged row that no one reads changes no output, and the first reader
of it refuses it. A mismatch anywhere is a RecError naming the file (run `rec save-features`
again). The mapping is read-only and the file is only ever replaced whole, by a rename
(rec.storage.atomic), never rewritten in place under a reader.
"""

from __future__ import annotations

import io
import threading
import zipfile
import zlib

import numpy as np

from rec.errors import RecError
from rec.metrics import ColumnBlocks
from rec.rank.channels import Ease, PureSvd, sorted_distinct

ROW_CRCS = "b_rows_crc32"
SAVE_FEATURES = "rec save-features"


def row_crcs(b: np.ndarray) -> np.ndarray:
    """The CRC-32 of each row of B's bytes as np.savez stores them (float32, C order)."""
    b = np.ascontiguousarray(b, np.float32)
    return np.array([zlib.crc32(row) for row in b], np.uint32)


def ease_file(items: np.ndarray, b: np.ndarray, lam: float, svd: np.ndarray,
              run_id: str) -> bytes:
    """The bytes of ease.npz (the layout above)."""
    buffer = io.BytesIO()
    np.savez(buffer, items=items, b=b, lam=np.float64(lam), svd=svd,
             run_id=np.array(run_id), **{ROW_CRCS: row_crcs(b)})
    return buffer.getvalue()


def as_file(data) -> io.RawIOBase:
    """A file object over `data` (bytes or a mapping), without a copy of it (io.BytesIO
    copies anything but bytes; zipfile and np.load need a seekable file)."""
    return _BufferFile(data)


class _BufferFile(io.RawIOBase):
    """A read-only, seekable file over a buffer."""

    def __init__(self, data):
        self._view, self._at = memoryview(data).cast("B"), 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, into) -> int:
        n = max(0, min(len(into), len(self._view) - self._at))
        into[:n] = self._view[self._at:self._at + n]
        self._at += n
        return n

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._at, io.SEEK_END: len(self._view)}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._at = base + offset
        return self._at

    def tell(self) -> int:
        return self._at


class CheckedRows(ColumnBlocks):
    """ColumnBlocks over B mapped from its file: each row is checked against its CRC-32
    the first time row_sums reads it; the blocks (all of B) only after `check_all`, B's
    CRC-32 over all of it. Safe from several threads (a row checked twice meanwhile is
    checked twice)."""

    def __init__(self, matrix: np.ndarray, crcs: np.ndarray, check_all, path):
        super().__init__(matrix)
        self._crcs, self._check_all, self._path = crcs, check_all, path
        self._checked = np.zeros(len(matrix), bool)
        self._checking = threading.Lock()

    @property
    def blocks(self) -> list[np.ndarray]:
        with self._checking:
            if self._check_all is not None:
                try:
                    self._check_all()
                except ValueError as e:
                    raise RecError(f"{self._path} is damaged ({e}): run `{SAVE_FEATURES}` "
                                   "again")
                self._check_all = None
        return super().blocks

    def row_sums(self, rows: np.ndarray) -> np.ndarray:
        matrix = self._matrix
        if matrix is not None:
            for row in sorted_distinct(rows[~self._checked[rows]]).tolist():
                if zlib.crc32(np.ascontiguousarray(matrix[row])) != int(self._crcs[row]):
                    raise RecError(f"{self._path} is damaged (bad CRC-32 of row {row} of "
                                   f"b.npy): run `{SAVE_FEATURES}` again")
                self._checked[row] = True
        return super().row_sums(rows)


def load_item_models(data, path, rows_only: bool = False):
    """(Ease, PureSvd) of features' EASE file: `data` its bytes or its mapping, B a view
    of them (ColumnBlocks), checked as the module says: B whole now, or (rows_only, for a
    reader of a few users, when the file has b_rows_crc32) each row as it is read."""
    try:
        with np.load(as_file(data), allow_pickle=False) as z:
            items = np.asarray(z["items"], np.int64)
            crcs = np.asarray(z[ROW_CRCS], np.uint32) if rows_only and ROW_CRCS in z.files \
                else None
            matrix, check_all = member_view(z, "b", data)
            matrix = np.asarray(matrix, np.float32)
            if crcs is None:
                check_all()
                b = ColumnBlocks(matrix)
            elif crcs.shape != matrix.shape[:1]:
                raise ValueError(f"{ROW_CRCS}.npy does not match b.npy")
            else:
                b = CheckedRows(matrix, crcs, check_all, path)
            return (Ease(items, b, float(z["lam"])),
                    PureSvd(items, np.asarray(z["svd"], np.float32)))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise RecError(f"{path} is damaged ({e}): run `{SAVE_FEATURES}` again")


def stored_member(npz, name: str, data) -> np.ndarray:
    """Array `name` of np.load's `npz` over `data` (bytes or a mapping): a read-only view
    of `data` when np.savez stored it uncompressed (EASE's B, 55 MB on ml-1m: np.load
    copied it twice), its CRC-32 checked as zipfile checks it, else npz[name]."""
    array, check = member_view(npz, name, data)
    check()
    return array


def member_view(npz, name: str, data):
    """(stored_member's array, unchecked, the check of its CRC-32: a ValueError when it
    does not match; a no-op for an array read by npz[name], which zipfile checked)."""
    info = npz.zip.getinfo(f"{name}.npy")
    if info.compress_type != zipfile.ZIP_STORED:
        return npz[name], lambda: None
    at = info.header_offset  # the local header: 30 bytes, the name, an extra field
    start = at + 30 + int.from_bytes(data[at + 26:at + 28], "little") + \
        int.from_bytes(data[at + 28:at + 30], "little")
    member = memoryview(data)[start:start + info.file_size]
    if len(member) != info.file_size:
        raise ValueError(f"{name}.npy is cut short")

    def check() -> None:
        if zlib.crc32(member) != info.CRC:
            raise ValueError(f"bad CRC-32 of {name}.npy")
    fmt = np.lib.format
    read_header = {1: fmt.read_array_header_1_0, 2: fmt.read_array_header_2_0}.get(member[6])
    if read_header is None:  # a .npy format of another version
        return npz[name], lambda: None
    size = 2 if member[6] == 1 else 4  # the magic (8 bytes), the header's length, the header
    header = io.BytesIO(member[:8 + size + int.from_bytes(member[8:8 + size], "little")])
    fmt.read_magic(header)
    shape, fortran, dtype = read_header(header)
    if dtype.hasobject:
        raise ValueError(f"{name}.npy holds objects")
    array = np.frombuffer(member, dtype, int(np.prod(shape)), header.tell())
    return array.reshape(shape, order="F" if fortran else "C"), check
