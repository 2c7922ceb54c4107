"""Shared test setup and helpers (test modules import them: `from conftest import rec`)."""

import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

# A suite started in the background (`pytest ... &` in a script) inherits SIGINT ignored, and
# so would every rec it starts: the tests that send SIGINT (Ctrl-C) need it handled as usual.
signal.signal(signal.SIGINT, signal.default_int_handler)

# Import `rec` from this checkout even when it is not installed (plain `pytest` does not put
# the repository root on sys.path).
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from typer.testing import CliRunner  # noqa: E402

from rec.cli import app  # noqa: E402


def rec(root: Path | None, *args: str, input: str | None = None, env: dict | None = None,
        out: str = "output"):
    """Run `rec --data-dir ROOT/data --output-dir ROOT/OUT ARGS` in-process (no folder
    options when `root` is None). A failure must be a handled one, never a traceback."""
    dirs = [] if root is None else ["--data-dir", str(Path(root) / "data"),
                                    "--output-dir", str(Path(root) / out)]
    result = CliRunner().invoke(app, [*dirs, *args], input=input, env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    assert "Traceback" not in result.stderr
    return result


def assert_paddle_free(*commands: list[str], imports: tuple[str, ...] = (),
                       forbidden: tuple[str, ...] = ("paddle",)) -> None:
    """Run each `rec` command line (in one fresh interpreter, after importing rec.cli and
    `imports`): every one must succeed without importing any of `forbidden` (packages or
    modules, e.g. paddle, rec.models)."""
    code = f"""
import importlib, json, sys
from typer.testing import CliRunner
from rec.cli import app
for name in {list(imports)!r}:
    importlib.import_module(name)
for args in json.loads(sys.argv[1]):
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, (args, r.output)
loaded = sorted(m for m in sys.modules for f in {list(forbidden)!r} if m == f or m.startswith(f + "."))
assert not loaded, loaded
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(list(commands))], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def run_stages(root: Path, *stages: list[str]) -> Path:
    """Run each `rec` command line in ROOT in turn; every one must succeed. Returns ROOT."""
    for args in stages:
        result = rec(root, *args)
        assert result.exit_code == 0, (args, result.output)
    return root


# A small synthetic world (the fault tests build one per module, then copy it per test).
SMALL = ["--users", "80", "--movies", "60", "--ratings", "2000"]
SMALL_WORLD = (["download", "--dataset", "synthetic", *SMALL], ["preprocess"],
               ["train", "--epochs", "1"], ["save-features"])


def copy_world(world: Path, tmp_path: Path) -> Path:
    """A test's own copy of a module's world."""
    import shutil

    shutil.copytree(world, tmp_path / "w")
    return tmp_path / "w"


# --- faults: what the artifacts look like after one -----------------------------------------


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def reseal(folder: Path) -> None:
    """Seal `folder` (a rec.storage.unit) again after a test edited its files on purpose:
    its unit.json then lists them as they are now, under the same run id."""
    import hashlib
    import json

    record = json.loads((folder / "unit.json").read_text())
    names = list(record["sha256"])
    record["sha256"] = {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in names}
    record["bytes"] = {n: (folder / n).stat().st_size for n in names}
    (folder / "unit.json").write_text(json.dumps(record))


def one_line_error(result, code: int | None = None) -> str:
    assert result.exit_code != 0 if code is None else result.exit_code == code, result.output
    lines = result.stderr.splitlines()  # progress logs may come first
    assert lines and lines[-1].startswith("error: "), result.stderr
    assert sum(line.startswith("error: ") for line in lines) == 1, result.stderr
    return lines[-1]


def no_leftovers(out: Path) -> None:
    from rec.storage import lock

    assert not [p.name for p in out.rglob(".*") if p.name != lock.LOCK], "temporary files left"


def fail_at(monkeypatch, name: str, n: int, error: int = errno.ENOSPC) -> None:
    """The n-th call of os.<name> (replace: a file published; rename: a folder swapped)
    fails with `error` (ENOSPC: a full disk, EROFS: a file system gone read-only)."""
    real, calls = getattr(os, name), []

    def faulty(src, dst, *args, **kwargs):
        calls.append(dst)
        if len(calls) == n:
            raise OSError(error, os.strerror(error), str(dst))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, name, faulty)
