"""`rec download` end to end on tiny archives, served by a local HTTP server (never the internet).

The registry's specs are swapped for ones that point at the local server and expect the tiny
row counts, so the real download, verification and placement code runs unchanged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import socket
import stat
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rec.datasets import fetch, registry

from conftest import assert_paddle_free
from conftest import rec as run_rec

# --- tiny datasets in the real layouts ------------------------------------------------------

TINY = {
    "ml-1m": {
        "users.dat": "1::F::1::10::48067\n2::M::56::16::70072\n3::M::25::15::55117-1234\n",
        "movies.dat": "1::Toy Story (1995)::Animation|Children's|Comedy\n"
                      "2::Jumanji (1995)::Adventure|Children's|Fantasy\n",
        "ratings.dat": "1::1::5::978300760\n2::2::3::978302109\n3::1::4::978301968\n"
                       "3::2::2::978301969\n",
        "README": "tiny ml-1m\n",
    },
    "ml-100k": {
        "u.user": "1|24|M|technician|85711\n2|53|F|other|94043\n",
        "u.item": "1|Toy Story (1995)|01-Jan-1995||http://x/Toy|" + "|".join("0" * 18 + "1")
                  + "\n2|GoldenEye (1995)|01-Jan-1995||http://x/Gold|" + "|".join("01" + "0" * 17)
                  + "\n",
        "u.data": "1\t1\t3\t881250949\n2\t1\t4\t891717742\n2\t2\t5\t891717743\n",
        "u.genre": "unknown|0\nAction|1\n\n",
        "u.occupation": "other\nwriter\n",
    },
    "ml-latest-small": {
        "movies.csv": 'movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n'
                      '11,"American President, The (1995)",Comedy|Drama\n',
        "ratings.csv": "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,11,3.5,964981247\n"
                       "2,1,5,964981248\n",
    },
}
ROWS = {"ml-1m": {"users.dat": 3, "movies.dat": 2, "ratings.dat": 4},
        "ml-100k": {"u.user": 2, "u.item": 2, "u.data": 3, "u.genre": 2, "u.occupation": 2},
        "ml-latest-small": {"movies.csv": 2, "ratings.csv": 3}}


def make_zip(files: dict[str, str], top: str | None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        if top:
            zf.writestr(top + "/", "")
        for name, text in files.items():
            zf.writestr(f"{top}/{name}" if top else name, text.encode("latin-1"))
    return buf.getvalue()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# --- a local HTTP server with misbehaving routes -------------------------------------------


class Handler(BaseHTTPRequestHandler):
    """routes[path] = (kind, body); kinds: ok, trunc-once, trunc-always, stall-once, 500, 404,
    slow. "ok" (and every kind once it behaves) honours Range."""

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        srv = self.server
        rng = self.headers.get("Range")
        srv.log.append((self.path, rng))
        kind, body = srv.routes.get(self.path, ("404", b""))
        hits = sum(1 for p, _ in srv.log if p == self.path)
        if kind in ("500", "404"):
            self.send_error(int(kind))
            return
        if kind == "slow":
            time.sleep(0.6)
        if kind == "stall-once" and hits == 1:  # half the body, then silence
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            time.sleep(0.6)
            return
        if kind == "trunc-always" or (kind == "trunc-once" and hits == 1):
            # Promise everything, send half, hang up (and ignore Range).
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        if start >= len(body) and rng:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(body)}")
            self.end_headers()
            return
        self.send_response(206 if rng else 200)
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:])


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        pass  # a client that hung up (the timeout test) is expected, not worth a traceback


@pytest.fixture
def server():
    srv = QuietServer(("127.0.0.1", 0), Handler)
    srv.routes, srv.log = {}, []
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def tiny(server, monkeypatch):
    """Point every real dataset at the local server, serving its tiny archive ("ok")."""
    monkeypatch.setattr(fetch, "DEFAULT_BACKOFF_S", 0.01)
    archives = {}
    for name, files in TINY.items():
        data = make_zip(files, top=name)
        archives[name] = data
        server.routes[f"/{name}.zip"] = ("ok", data)
        spec = registry.SPECS[name].with_rows(ROWS[name])
        pinned = md5(data) if spec.md5 else None
        md5_url = None if pinned else f"{server.url}/{name}.zip.md5"
        server.routes[f"/{name}.zip.md5"] = ("ok", f"MD5 ({name}.zip) = {md5(data)}\n".encode())
        monkeypatch.setitem(registry.SPECS, name, dataclasses.replace(
            spec, url=f"{server.url}/{name}.zip", md5=pinned, md5_url=md5_url))
    return archives


def rec(tmp_path: Path, *args: str):
    return run_rec(tmp_path, "download", *args, out="out")


def one_error(result) -> str:
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def json_out(result) -> dict:
    return json.loads(result.stdout)


def leftovers(tmp_path: Path) -> list[str]:
    data = tmp_path / "data"
    hidden = [p.name for p in data.iterdir() if p.name.startswith(".") and p.is_dir()
              and p.name != ".downloads"] if data.exists() else []
    cache = data / ".downloads"
    return hidden + ([p.name for p in cache.iterdir()] if cache.exists() else [])


# --- official downloads --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ml-1m", "ml-100k", "ml-latest-small"])
def test_download_verifies_and_places(tmp_path, tiny, server, name):
    r = rec(tmp_path, "--dataset", name, "--format", "json")
    assert r.exit_code == 0, r.stderr
    folder = tmp_path / "data" / name
    read = {f.name for f in registry.SPECS[name].files}
    for file_name, text in TINY[name].items():
        if file_name in read:
            assert (folder / file_name).read_text(encoding="latin-1") == text  # top stripped
    assert sorted(p.name for p in folder.iterdir()) == sorted(read | {registry.MARKER})
    marker = registry.read_marker(folder)
    assert marker["verified_by"] == "md5+structure" and marker["md5"] == md5(tiny[name])
    out = json_out(r)
    assert out["status"] == "downloaded" and out["ratings"] == max(ROWS[name].values())
    assert leftovers(tmp_path) == []  # no .part, no staging folder
    stages = json.loads((tmp_path / "out" / "manifest.json").read_text())["stages"]
    assert stages["download"]["params"]["dataset"] == name
    if name == "ml-latest-small":  # no pinned MD5: the published .md5 was read
        assert f"/{name}.zip.md5" in [p for p, _ in server.log]


def test_second_run_says_already_and_does_nothing(tmp_path, tiny, server):
    assert rec(tmp_path).exit_code == 0
    folder = tmp_path / "data" / "ml-1m"
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    requests = len(server.log)
    time.sleep(0.01)
    r = rec(tmp_path, "--format", "json")
    assert r.exit_code == 0
    assert "already" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert json_out(r)["status"] == "already present"
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before
    assert len(server.log) == requests
    # --force fetches again
    r = rec(tmp_path, "--force")
    assert r.exit_code == 0 and len(server.log) > requests


def test_changed_dataset_is_fetched_again(tmp_path, tiny):
    assert rec(tmp_path).exit_code == 0
    ratings = tmp_path / "data" / "ml-1m" / "ratings.dat"
    ratings.write_text("1::1::5::978300760\n")  # truncated by accident
    r = rec(tmp_path)
    assert r.exit_code == 0 and "not verified" in r.stderr
    assert ratings.read_text() == TINY["ml-1m"]["ratings.dat"]


def test_truncated_transfer_is_resumed(tmp_path, tiny, server):
    server.routes["/ml-1m.zip"] = ("trunc-once", tiny["ml-1m"])
    r = rec(tmp_path)
    assert r.exit_code == 0, r.stderr
    ranges = [rng for p, rng in server.log if p == "/ml-1m.zip"]
    assert ranges == [None, f"bytes={len(tiny['ml-1m']) // 2}-"]
    assert "retrying" in r.stderr


def test_partial_download_is_kept_and_resumed_next_run(tmp_path, tiny, server):
    server.routes["/ml-1m.zip"] = ("trunc-always", tiny["ml-1m"])
    r = rec(tmp_path, "--retries", "0")
    assert r.exit_code == 1 and "cut short" in one_error(r)
    assert not (tmp_path / "data" / "ml-1m").exists()
    parts = list((tmp_path / "data" / ".downloads").glob("*.part"))
    assert len(parts) == 1 and parts[0].stat().st_size == len(tiny["ml-1m"]) // 2
    server.routes["/ml-1m.zip"] = ("ok", tiny["ml-1m"])
    r = rec(tmp_path, "--retries", "0")
    assert r.exit_code == 0, r.stderr
    assert server.log[-1] == ("/ml-1m.zip", f"bytes={len(tiny['ml-1m']) // 2}-")


def test_complete_part_from_an_interrupted_run_is_used(tmp_path, tiny, server):
    server.routes["/ml-1m.zip"] = ("trunc-always", tiny["ml-1m"])
    assert rec(tmp_path, "--retries", "0").exit_code == 1
    part, = (tmp_path / "data" / ".downloads").glob("*.part")
    part.write_bytes(tiny["ml-1m"])  # as if killed after the last byte, before verifying
    server.routes["/ml-1m.zip"] = ("ok", tiny["ml-1m"])
    r = rec(tmp_path, "--retries", "0")
    assert r.exit_code == 0, r.stderr  # the server answered 416: nothing left to send
    assert server.log[-1] == ("/ml-1m.zip", f"bytes={len(tiny['ml-1m'])}-")


def test_truncated_every_time_fails_clearly(tmp_path, tiny, server):
    server.routes["/ml-1m.zip"] = ("trunc-always", tiny["ml-1m"])
    r = rec(tmp_path, "--retries", "2")
    assert r.exit_code == 1
    assert "cut short" in one_error(r) and "--source" in one_error(r)
    assert len([p for p, _ in server.log if p == "/ml-1m.zip"]) == 3


def test_wrong_checksum(tmp_path, tiny, monkeypatch):
    spec = registry.SPECS["ml-1m"]
    monkeypatch.setitem(registry.SPECS, "ml-1m", dataclasses.replace(spec, md5="0" * 32))
    r = rec(tmp_path)
    assert r.exit_code == 1
    assert "checksum mismatch" in one_error(r)
    assert not (tmp_path / "data" / "ml-1m").exists()
    assert leftovers(tmp_path) == []  # the bad archive is not kept for a later "resume"


@pytest.mark.parametrize("status,tries", [("500", 3), ("404", 1)])
def test_http_error_status(tmp_path, tiny, server, status, tries):
    server.routes["/ml-1m.zip"] = (status, b"")
    r = rec(tmp_path, "--retries", "2")
    assert r.exit_code == 1
    assert f"HTTP {status}" in one_error(r)
    assert len([p for p, _ in server.log if p == "/ml-1m.zip"]) == tries  # 4xx is not retried


def test_unreachable_names_source(tmp_path, tiny, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec = registry.SPECS["ml-1m"]
    url = f"http://127.0.0.1:{port}/ml-1m.zip"
    monkeypatch.setitem(registry.SPECS, "ml-1m", dataclasses.replace(spec, url=url))
    r = rec(tmp_path, "--retries", "1")
    assert r.exit_code == 1
    line = one_error(r)
    assert line.startswith(f"error: cannot reach {url}: ") and "--source PATH_OR_URL" in line
    assert r.stdout == ""
    # nothing arrived: no empty data/.downloads left behind (a newcomer's find)
    assert not (tmp_path / "data" / ".downloads").exists()


def test_timeout(tmp_path, tiny, server):
    server.routes["/ml-1m.zip"] = ("slow", tiny["ml-1m"])
    r = rec(tmp_path, "--retries", "0", "--timeout", "0.2")
    assert r.exit_code == 1 and "timed out" in one_error(r)


def test_stalled_transfer_times_out_and_resumes(tmp_path, tiny, server):
    server.routes["/ml-1m.zip"] = ("stall-once", tiny["ml-1m"])
    r = rec(tmp_path, "--retries", "1", "--timeout", "0.2")
    assert r.exit_code == 0, r.stderr
    assert server.log[-1] == ("/ml-1m.zip", f"bytes={len(tiny['ml-1m']) // 2}-")


def test_failure_keeps_the_existing_dataset(tmp_path, tiny, server):
    assert rec(tmp_path).exit_code == 0
    folder = tmp_path / "data" / "ml-1m"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    server.routes["/ml-1m.zip"] = ("ok", make_zip({**TINY["ml-1m"], "ratings.dat": "bad\n"},
                                                  "ml-1m"))
    r = rec(tmp_path, "--force", "--retries", "0")  # wrong md5 now
    assert r.exit_code == 1
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert leftovers(tmp_path) == []


def test_interrupted_swap_is_repaired(tmp_path, tiny):
    assert rec(tmp_path).exit_code == 0
    data = tmp_path / "data"
    # As if killed between the two renames of a --force run, with its staging folder left.
    (data / "ml-1m").rename(data / ".ml-1m.dead.old")
    (data / ".ml-1m.beef.staging").mkdir()
    r = rec(tmp_path)
    assert r.exit_code == 0 and "already" in r.stderr
    assert leftovers(tmp_path) == []


# --- --source ------------------------------------------------------------------------------


def test_source_zip(tmp_path, tiny):
    archive = tmp_path / "mirror" / "ml-1m.zip"
    archive.parent.mkdir()
    archive.write_bytes(tiny["ml-1m"])
    r = rec(tmp_path, "--source", str(archive), "--format", "json")
    assert r.exit_code == 0, r.stderr
    assert json_out(r)["verified"] == "structure" and json_out(r)["users"] == 3
    assert (tmp_path / "data" / "ml-1m" / "ratings.dat").read_text() == TINY["ml-1m"]["ratings.dat"]
    assert archive.exists()  # the user's archive is theirs: never removed


def test_status_shows_a_long_source_path_by_its_file_name_at_80_columns(tmp_path, tiny):
    archive = tmp_path / "a-mirror-folder-with-a-long-name" / "and-another-one" / "ml-1m.zip"
    archive.parent.mkdir(parents=True)
    archive.write_bytes(tiny["ml-1m"])
    assert rec(tmp_path, "--source", str(archive), "--force").exit_code == 0
    result = run_rec(tmp_path, "status", "--format", "table", out="out", env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(map(len, lines)) <= 80
    row = lines.index(next(line for line in lines if line.startswith("download ")))
    # the dataset --source holds is what --dataset defaults to: not a change
    assert lines[row + 1] == " " * 15 + "source=…/ml-1m.zip force=True"
    result = run_rec(tmp_path, "status", "--format", "tsv", out="out")
    assert f"\tsource={archive} force=True\n" in result.stdout  # whole


def test_a_source_for_a_dataset_already_present_is_said_to_be_unused(tmp_path, tiny):
    archive = tmp_path / "mirror.zip"
    archive.write_bytes(tiny["ml-1m"])
    assert rec(tmp_path, "--source", str(archive)).exit_code == 0
    other = tmp_path / "other.zip"
    other.write_bytes(tiny["ml-100k"])
    r = rec(tmp_path, "--dataset", "ml-1m", "--source", str(other), "--format", "json")
    assert r.exit_code == 0 and json_out(r)["status"] == "already present"
    assert r.stderr == (f"warning: --source {other} was not used: data/ml-1m is already "
                        "present and verified (structure); --force replaces it with the "
                        "--source\n".replace("data/", f"{tmp_path / 'data'}/"))


def test_a_source_names_its_dataset_when_no_dataset_is_given(tmp_path, tiny):
    archive = tmp_path / "mirror.zip"
    archive.write_bytes(tiny["ml-latest-small"])  # its members are under ml-latest-small/
    r = rec(tmp_path, "--source", str(archive), "--format", "json")
    assert r.exit_code == 0, r.stderr
    assert f"--source {archive}: taken as --dataset ml-latest-small\n" in r.stderr
    assert json_out(r)["dataset"] == "ml-latest-small"
    assert (tmp_path / "data" / "ml-latest-small" / "ratings.csv").exists()
    flat = tmp_path / "flat.zip"  # no folder to name its dataset: taken as ml-1m, the default
    flat.write_bytes(make_zip(TINY["ml-latest-small"], top=None))
    r = rec(tmp_path, "--source", str(flat))
    assert r.exit_code == 2  # the user's own file: bad input, not a failure while working
    assert one_error(r) == (f"error: --source {flat} is not a valid ml-1m dataset: "
                            "ml-1m/users.dat is missing; is it another dataset? name it with "
                            "--dataset")
    r = rec(tmp_path, "--dataset", "ml-1m", "--source", str(archive))
    assert one_error(r).endswith("users.dat is missing")


@pytest.mark.parametrize("name", ["trunc.zip", "trunc.bin"])
def test_a_truncated_zip_source_is_called_one(tmp_path, tiny, name):
    archive = tmp_path / name
    archive.write_bytes(tiny["ml-1m"][:200])
    r = rec(tmp_path, "--source", str(archive))
    assert r.exit_code == 2
    assert one_error(r) == (f"error: --source {archive} looks like a damaged or truncated zip "
                            "archive (its table of contents, at its end, cannot be read): "
                            "download it again")


@pytest.mark.parametrize("nested", [False, True])
def test_source_folder(tmp_path, tiny, nested):
    src = tmp_path / "unpacked"
    folder = src / "ml-100k" if nested else src
    folder.mkdir(parents=True)
    for name, text in TINY["ml-100k"].items():
        (folder / name).write_text(text, encoding="latin-1")
    r = rec(tmp_path, "--dataset", "ml-100k", "--source", str(src), "--format", "json")
    assert r.exit_code == 0, r.stderr
    assert json_out(r)["ratings"] == 3
    assert (tmp_path / "data" / "ml-100k" / "u.data").read_text() == TINY["ml-100k"]["u.data"]


def test_source_url_is_checked_by_structure(tmp_path, tiny, server):
    server.routes["/mirror/ml-1m.zip"] = ("ok", tiny["ml-1m"])
    r = rec(tmp_path, "--source", server.url + "/mirror/ml-1m.zip", "--format", "json")
    assert r.exit_code == 0, r.stderr
    assert json_out(r)["verified"] == "structure"
    assert "/ml-1m.zip.md5" not in [p for p, _ in server.log]


@pytest.mark.parametrize("files,message", [
    ({k: v for k, v in TINY["ml-1m"].items() if k != "users.dat"}, "users.dat is missing"),
    ({**TINY["ml-1m"], "ratings.dat": "1::1::5::978300760\n1::x::5::978300760\n"},
     "ratings.dat line 2 cannot be parsed"),
    ({**TINY["ml-1m"], "users.dat": "1::F::1::10::48067\n"}, "users.dat has 1 rows, expected 3"),
])
def test_malformed_source(tmp_path, tiny, files, message):
    archive = tmp_path / "bad.zip"
    archive.write_bytes(make_zip(files, "ml-1m"))
    r = rec(tmp_path, "--source", str(archive))
    assert r.exit_code in (1, 2)
    assert message in one_error(r) and "--source" in one_error(r)
    assert not (tmp_path / "data" / "ml-1m").exists() and leftovers(tmp_path) == []


def test_source_that_is_not_an_archive(tmp_path, tiny):
    assert rec(tmp_path, "--source", str(tmp_path / "nope.zip")).exit_code == 2
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    r = rec(tmp_path, "--source", str(text))
    assert r.exit_code == 2 and "zip" in one_error(r)
    # an empty --source named the working folder; the data folder itself was exit 1
    r = rec(tmp_path, "--source", "")
    assert r.exit_code == 2 and one_error(r) == "error: --source is empty: give a .zip, a " \
        "folder or a URL"
    (tmp_path / "data").mkdir(exist_ok=True)
    r = rec(tmp_path, "--source", str(tmp_path / "data"), "--force")
    assert r.exit_code == 2 and "contains the data folder itself" in one_error(r)


def _evil_zip(kind: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in TINY["ml-1m"].items():
            zf.writestr(f"ml-1m/{name}", text)
        if kind == "symlink":
            info = zipfile.ZipInfo("ml-1m/link")
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "../../../evil.txt")
        else:
            zf.writestr(zipfile.ZipInfo(kind), "pwned")
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["../evil.txt", "ml-1m/../../evil.txt", "/tmp/evil-rec.txt",
                                  "symlink"])
def test_zip_slip_refused(tmp_path, tiny, kind):
    archive = tmp_path / "evil.zip"
    archive.write_bytes(_evil_zip(kind))
    r = rec(tmp_path, "--source", str(archive))
    assert r.exit_code == 1 and "refusing" in one_error(r)
    assert not (tmp_path / "data" / "ml-1m").exists() and leftovers(tmp_path) == []
    written = {p.name for p in tmp_path.rglob("*")}
    assert "evil.txt" not in written and "link" not in written
    assert not Path("/tmp/evil-rec.txt").exists()


# --- synthetic, usage ----------------------------------------------------------------------


def _synthetic(tmp_path: Path, seed: str, *more: str) -> dict[str, bytes]:
    r = rec(tmp_path, "--dataset", "synthetic", "--seed", seed, "--users", "20", "--movies", "40",
            "--ratings", "200", "--format", "json", *more)
    assert r.exit_code == 0, r.stderr
    assert "same options generate the same data" in r.stderr and json_out(r)["ratings"] == 200
    folder = tmp_path / "data" / "synthetic"
    return {n: (folder / n).read_bytes() for n in ("users.dat", "movies.dat", "ratings.dat")}


def test_synthetic_is_deterministic_by_seed(tmp_path):
    first = _synthetic(tmp_path, "1")
    assert _synthetic(tmp_path, "1", "--force") == first
    assert _synthetic(tmp_path, "2") != first


def test_synthetic_with_the_same_options_is_already_present(tmp_path):
    """Generated again, it was the same data with a new time in its marker, and `rec status`
    called download modified and every later stage stale (an adversarial trial's find)."""
    _synthetic(tmp_path, "1")
    marker = (tmp_path / "data" / "synthetic" / ".rec-verified.json").read_bytes()
    r = rec(tmp_path, "--dataset", "synthetic", "--seed", "1", "--users", "20", "--movies",
            "40", "--ratings", "200", "--format", "json")
    assert r.exit_code == 0 and json_out(r)["status"] == "already present", r.stderr
    assert (tmp_path / "data" / "synthetic" / ".rec-verified.json").read_bytes() == marker
    # a project sharing the data folder regenerates it with other options; this one, asked
    # for those, finds them present and records them (its manifest said seed 1: 'modified')
    options = ["--users", "20", "--movies", "40", "--ratings", "200"]
    assert run_rec(tmp_path, "download", "--dataset", "synthetic", "--seed", "2", *options,
                   out="other").exit_code == 0
    assert json_out(rec(tmp_path, "--dataset", "synthetic", "--seed", "2", *options,
                        "--format", "json"))["status"] == "already present"
    rows = run_rec(tmp_path, "status", "--format", "json", out="out").stdout.splitlines()
    assert json.loads(rows[0])["state"] == "fresh" and json.loads(rows[0])["params"]["seed"] == 2
    (tmp_path / "data" / "synthetic" / "ratings.dat").write_text("cut short")  # not what it was
    assert "same options generate" in rec(tmp_path, "--dataset", "synthetic", "--seed", "1",
                                          "--users", "20", "--movies", "40", "--ratings",
                                          "200").stderr


def test_synthetic_bad_options(tmp_path):
    r = rec(tmp_path, "--dataset", "synthetic", "--users", "1")
    assert r.exit_code == 2 and "--users" in one_error(r) and "greater than or equal to 2" in one_error(r)
    r = rec(tmp_path, "--dataset", "ml-1m", "--seed", "3")
    assert r.exit_code == 2 and "synthetic" in one_error(r)


def test_unknown_dataset(tmp_path):
    r = rec(tmp_path, "--dataset", "ml-5x")
    assert r.exit_code == 2
    assert all(n in one_error(r) for n in ("ml-1m", "ml-100k", "ml-latest-small", "synthetic"))


def test_download_does_not_import_paddle():
    assert_paddle_free(imports=("rec.stages.download", "rec.datasets.fetch"))
