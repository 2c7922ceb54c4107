"""Wall time and memory of `rec preprocess` on MovieLens-1M, from the shell.

Extracts ../shared/data/ml-1m.zip (relative to the repository root) with
`rec download --source` into a temporary data folder, then times, as fresh processes,

    python -m rec --quiet preprocess --dataset ml-1m --format json     target <= 3 s

reporting min/median wall seconds, the command's own figure (parse + build + write, from its
JSON "seconds"), the interpreter + import start-up (`python -c "import rec.cli"`), peak RSS of
the preprocess processes (resource.getrusage(RUSAGE_CHILDREN)), and an in-process breakdown
into parse / build / write. Skips with a message when the archive is absent.

    .venv/bin/python bench/bench_preprocess.py [--repeat 5] [--split random|time] [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rec.cli import app  # noqa: E402
from rec.datasets.movielens import parse_folder  # noqa: E402
from rec.datasets.build import build, write_dataset  # noqa: E402

ML1M_ZIP = ROOT.parent / "shared" / "data" / "ml-1m.zip"
TARGET_S = 3.0


def extract(data: Path, out: Path) -> None:
    """`rec download --source ml-1m.zip`, in-process so its memory is not a child's."""
    args = ["--data-dir", str(data), "--output-dir", str(out), "--quiet", "download",
            "--dataset", "ml-1m", "--source", str(ML1M_ZIP), "--format", "json"]
    with contextlib.redirect_stdout(io.StringIO()) as buf:
        code = app(args, standalone_mode=False)
    if code not in (None, 0):
        sys.exit(f"rec download --source {ML1M_ZIP} failed (exit {code})")
    print(f"extracted: {json.loads(buf.getvalue())['ratings']:,} ratings into {data / 'ml-1m'}")


def run(cmd: list[str], env: dict) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{proc.stderr}")
    return wall, proc.stdout


def in_process(folder: Path, out: Path, split: str, repeat: int) -> dict[str, float]:
    best = {"parse": float("inf"), "build": float("inf"), "write": float("inf")}
    for _ in range(repeat):
        t0 = time.perf_counter()
        raw = parse_folder(folder)
        t1 = time.perf_counter()
        arrays, vocab, _ = build(raw, "ml-1m", split, 0.1, 42)
        t2 = time.perf_counter()
        write_dataset(out / "dataset", arrays, vocab)
        t3 = time.perf_counter()
        for key, seconds in (("parse", t1 - t0), ("build", t2 - t1), ("write", t3 - t2)):
            best[key] = min(best[key], seconds)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--split", choices=["random", "time"], default="random")
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = ap.parse_args()
    if not ML1M_ZIP.exists():
        print(f"skipped: {ML1M_ZIP} not found (the bench needs the real ml-1m archive)")
        return

    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-preprocess-"))
    data, out = root / "data", root / "output"
    try:
        extract(data, out)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        python = sys.executable
        startup = min(run([python, "-c", "import rec.cli"], env)[0] for _ in range(3))
        cmd = [python, "-m", "rec", "--data-dir", str(data), "--output-dir", str(out), "--quiet",
               "preprocess", "--dataset", "ml-1m", "--split", args.split, "--format", "json"]
        walls, own = [], []
        for _ in range(args.repeat):
            wall, stdout = run(cmd, env)
            walls.append(wall)
            own.append(json.loads(stdout)["seconds"])
        result = json.loads(stdout)
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
        parts = in_process(data / "ml-1m", root / "inproc", args.split, args.repeat)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)

    median = statistics.median(walls)
    print(f"dataset: ml-1m, {result['users']:,} users, {result['movies']:,} movies, "
          f"{result['ratings']:,} ratings; split {args.split}: {result['train']:,} train, "
          f"{result['validation']:,} validation")
    print(f"python:  {sys.version.split()[0]}, {os.cpu_count()} cpus, {args.repeat} runs")
    print()
    print(f"rec preprocess, wall (fresh process)   min {min(walls):6.3f} s   "
          f"median {median:6.3f} s")
    print(f"  its own figure (parse+build+write)   min {min(own):6.3f} s   "
          f"median {statistics.median(own):6.3f} s")
    print(f"  start-up: python -c 'import rec.cli' min {startup:6.3f} s")
    print(f"  in-process, best of {args.repeat}:  parse {parts['parse']:.3f} s   "
          f"build {parts['build']:.3f} s   write {parts['write']:.3f} s")
    print(f"  peak RSS of the preprocess processes  {peak_mb:6.0f} MiB")
    verdict = "OK" if median <= TARGET_S else "OVER TARGET"
    print(f"target: median wall <= {TARGET_S:.0f} s  ->  {verdict}")


if __name__ == "__main__":
    main()
