"""Download archives: only the files the dataset reads are extracted, each no larger than such
a file can be and exactly as large as its header says; encrypted or exotic members are refused
in one line, and data/ stays as it was."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import pytest

from rec.datasets import registry

from conftest import one_line_error, rec


# --- archives: only what the dataset reads, each member no larger than it can be --------------

ML1M = {"users.dat": "1::F::1::10::48067\n2::M::56::16::70072\n",
        "movies.dat": "1::Toy Story (1995)::Animation\n",
        "ratings.dat": "1::1::5::978300760\n2::1::3::978302109\n"}


@pytest.fixture
def tiny_ml1m(monkeypatch):
    rows = {name: text.count("\n") for name, text in ML1M.items()}
    monkeypatch.setitem(registry.SPECS, "ml-1m", registry.SPECS["ml-1m"].with_rows(rows))


def crafted_zip(extra: dict[str, bytes] = {}, sizes: dict[str, int] = {},
                stored: bool = False, flags: dict[str, int] = {},
                methods: dict[str, int] = {}) -> bytes:
    """ml-1m/ with ML1M and `extra`; `sizes`, `flags` and `methods` overwrite members'
    unpacked sizes, flag bits and compression methods in the central directory (what
    zipfile trusts), as a lying or exotic archive would."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED) as zf:
        for name, data in {**{k: v.encode() for k, v in ML1M.items()}, **extra}.items():
            zf.writestr(f"ml-1m/{name}", data)
    data = bytearray(buf.getvalue())
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        size = struct.unpack_from("<H", data, at + 28)[0]
        name = data[at + 46: at + 46 + size].decode().removeprefix("ml-1m/")
        if name in sizes:
            struct.pack_into("<I", data, at + 24, sizes[name])
        if name in flags:
            struct.pack_into("<H", data, at + 8, flags[name])
        if name in methods:
            struct.pack_into("<H", data, at + 10, methods[name])
        at = data.find(b"PK\x01\x02", at + 46)
    return bytes(data)


def download_zip(tmp_path: Path, archive: bytes):
    (tmp_path / "ml-1m.zip").write_bytes(archive)
    return rec(tmp_path, "download", "--dataset", "ml-1m", "--source", str(tmp_path / "ml-1m.zip"))


def test_members_the_dataset_never_reads_are_not_extracted(tmp_path, tiny_ml1m):
    genome = b"0" * (64 << 20)  # 64 MB that deflate to 64 kB
    r = download_zip(tmp_path, crafted_zip({"genome-scores.csv": genome, "README": b"hi"}))
    assert r.exit_code == 0, r.stderr
    folder = tmp_path / "data" / "ml-1m"
    assert sorted(p.name for p in folder.iterdir()) == sorted([*ML1M, registry.MARKER])


@pytest.mark.parametrize("sizes,stored,message", [
    ({"ratings.dat": 2 ** 31 - 1}, False, "would be 2,147,483,647 bytes unpacked, more than a "
                                          "ratings.dat can be"),
    ({"ratings.dat": len(ML1M["ratings.dat"]) + 5}, False, "holds 38 bytes, not the 43"),
    ({"ratings.dat": len(ML1M["ratings.dat"]) - 5}, False, "cannot extract 'ml-1m/ratings.dat'"),
    ({"users.dat": 10}, True, "is stored as 39 bytes but its header says 10 unpacked"),
], ids=["over its cap", "shorter than its header", "longer than its header", "stored, lying"])
def test_members_larger_than_a_file_can_be_or_than_their_header_are_refused(
        tmp_path, tiny_ml1m, sizes, stored, message):
    r = download_zip(tmp_path, crafted_zip(sizes=sizes, stored=stored))
    assert message in one_line_error(r, 1)
    assert not (tmp_path / "data" / "ml-1m").exists()
    assert not list((tmp_path / "data").glob(".ml-1m*"))  # (data/ itself goes when left empty)


@pytest.mark.parametrize("crafted,message", [
    (dict(flags={"ratings.dat": 1}), "is encrypted"),
    (dict(methods={"ratings.dat": 99}), "uses compression method 99"),
    (dict(methods={"ratings.dat": 6}), "uses compression method 6"),
], ids=["encrypted", "AES (99)", "implode (6)"])
def test_encrypted_or_unreadable_members_are_refused_in_one_line(tmp_path, tiny_ml1m, crafted,
                                                                message):
    r = download_zip(tmp_path, crafted_zip(**crafted))
    assert message in one_line_error(r, 1)
    assert not (tmp_path / "data" / "ml-1m").exists()
