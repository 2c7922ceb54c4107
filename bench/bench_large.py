"""Peak memory and time of `rec preprocess` on a MovieLens-25M-sized synthetic dataset.

Writes, with numpy in chunks (no Python loop per rating), a dataset in the ml-25m layout into
a temporary data folder: `ml-25m/ratings.csv` (userId,movieId,rating,timestamp with its
header; 25,000,095 rows by default, users in ascending order as in the real file, half-star
ratings, skewed movie popularity) and `ml-25m/movies.csv` (62,423 movies, some titles quoted).
Then runs, each as a fresh process whose peak RSS is resource.getrusage(RUSAGE_CHILDREN) of
a small launcher process whose only child it is (see LAUNCHER):

    the structure check `rec download --source` would run (registry.check_structure)
    python -m rec preprocess --dataset ml-25m --format json

and prints seconds, peak RSS, the total size of the arrays written to output/dataset/ (the
"final arrays": the least any in-memory preprocess must hold) and the ratio peak / arrays.
`--train` then trains one epoch of the default model on it, as a fresh process measured the
same way (python -m rec train --epochs 1: the sampled softmax of rec.twotower.sampled above
20,000 movies), and prints training users/s and ratings/s (the trainer's own clock, the
epoch's training steps only), the epoch's wall time with validation, and peak RSS.
`--compare REV` runs the preprocess of another revision (e.g. the one before chunked reading)
on the same files, from `git archive REV rec`; use it with fewer rows (--rows 5000000).

    .venv/bin/python bench/bench_large.py [--rows N] [--split random|time] [--no-check]
                                          [--compare REV] [--keep DIR] [--train]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ROWS, MOVIES, USERS, MAX_MOVIE_ID = 25_000_095, 62_423, 162_541, 209_171  # ml-25m's figures
T0, T1 = 789_652_009, 1_574_327_703  # ml-25m's first and last timestamps
HALF_STARS = [0.016, 0.033, 0.016, 0.071, 0.049, 0.197, 0.130, 0.266, 0.088, 0.134]  # 0.5 .. 5
GENRES = ["Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary",
          "Drama", "Fantasy", "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance",
          "Sci-Fi", "Thriller", "War", "Western"]
CHUNK_ROWS = 500_000


# --- the synthetic files ---------------------------------------------------------------------


def _digits(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative integers as an (n, width) matrix of ASCII digits and the mask of the
    digits to print (no leading zeros; "0" for zero)."""
    a = a.astype(np.int64)
    width = len(str(int(a.max()))) if a.size else 1
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    digits = ((a[:, None] // powers) % 10 + 48).astype(np.uint8)
    mask = a[:, None] >= powers
    mask[:, -1] = True
    return digits, mask


def text_rows(parts: list) -> bytes:
    """Lines made of integer columns (arrays) and literal bytes, vectorised: the pieces are
    laid side by side in one byte matrix, and the mask drops the unused leading digits."""
    n = next(len(p) for p in parts if not isinstance(p, bytes))
    mats, masks = [], []
    for part in parts:
        if isinstance(part, bytes):
            mats.append(np.broadcast_to(np.frombuffer(part, np.uint8), (n, len(part))))
            masks.append(np.ones((n, len(part)), dtype=bool))
        else:
            mat, mask = _digits(part)
            mats.append(mat)
            masks.append(mask)
    return np.concatenate(mats, axis=1)[np.concatenate(masks, axis=1)].tobytes()


def generate(folder: Path, rows: int, movies: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    movie_ids = np.sort(rng.choice(np.arange(1, max(MAX_MOVIE_ID, movies) + 1), movies,
                                   replace=False))
    with open(folder / "movies.csv", "w", encoding="utf-8") as f:  # 62k lines: a loop is fine
        f.write("movieId,title,genres\n")
        for i, mid in enumerate(movie_ids.tolist()):
            year = 1900 + i % 120
            title = f'"Movie {mid}, The ({year})"' if i % 7 == 0 else f"Movie {mid} ({year})"
            picks = rng.choice(len(GENRES), 1 + i % 3, replace=False)
            genres = "|".join(GENRES[g] for g in picks) if i % 50 else "(no genres listed)"
            f.write(f"{mid},{title},{genres}\n")
    # users 1..U in file order, each with a skewed number of ratings (at least one)
    users = min(rows, max(1, round(USERS * rows / ROWS)))
    weights = rng.lognormal(0.0, 1.0, users)
    counts = np.floor(weights / weights.sum() * (rows - users)).astype(np.int64) + 1
    counts[: rows - counts.sum()] += 1
    ends = np.cumsum(counts)
    popularity = 1.0 / (rng.permutation(movies) + 10.0) ** 0.9
    popularity /= popularity.sum()
    with open(folder / "ratings.csv", "wb") as f:
        f.write(b"userId,movieId,rating,timestamp\n")
        for start in range(0, rows, CHUNK_ROWS):
            n = min(CHUNK_ROWS, rows - start)
            user = np.searchsorted(ends, np.arange(start, start + n), side="right") + 1
            movie = movie_ids[rng.choice(movies, n, p=popularity)]
            half = rng.choice(10, n, p=HALF_STARS) + 1  # 1..10 half stars
            stamp = rng.integers(T0, T1 + 1, n)
            f.write(text_rows([user, b",", movie, b",", half // 2, b".", (half % 2) * 5, b",",
                               stamp, b"\n"]))


# --- measuring a child process ---------------------------------------------------------------


# A child's ru_maxrss starts from its parent's RSS at fork (Linux counts the copied address
# space), and this process holds what `generate` used; so each command runs under a small
# launcher whose only child is the command, and the launcher reports RUSAGE_CHILDREN.
LAUNCHER = ("import resource, subprocess, sys; rc = subprocess.run(sys.argv[2:]).returncode; "
            "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN)"
            ".ru_maxrss)); sys.exit(rc)")


def measure(cmd: list[str], env: dict, cwd: Path = ROOT) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MiB, stdout) of one fresh process. `python -m rec` imports
    rec from `cwd` (sys.path[0]) before PYTHONPATH: run it where the wanted rec/ is."""
    with tempfile.TemporaryDirectory() as tmp:
        rss_file = Path(tmp) / "maxrss"
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", LAUNCHER, str(rss_file), *cmd], env=env,
                              cwd=cwd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{proc.stderr}")
        return wall, int(rss_file.read_text()) / 1024, proc.stdout  # ru_maxrss: KiB on Linux


def preprocess_cmd(data: Path, out: Path, split: str) -> list[str]:
    return [sys.executable, "-m", "rec", "--data-dir", str(data), "--output-dir", str(out),
            "--quiet", "preprocess", "--dataset", "ml-25m", "--split", split, "--format", "json"]


def train_cmd(data: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "rec", "--data-dir", str(data), "--output-dir", str(out),
            "--quiet", "train", "--epochs", "1", "--format", "json"]


def bench_train(data: Path, out: Path, env: dict, ratings: int, users: int) -> None:
    """One epoch of the default model: throughput and peak RSS of the train process."""
    wall, peak, stdout = measure(train_cmd(data, out), env)
    result = json.loads(stdout.strip().splitlines()[-1])
    history = json.loads((out / "model" / "history.json").read_text())[-1]
    users_s = history["samples_per_s"]
    train_s = history.get("epoch_seconds", result["seconds"])
    print(f"rec train --epochs 1 (default model, {ratings:,} training ratings): {wall:6.1f} s "
          f"wall, peak RSS {peak:6.0f} MiB")
    print(f"  {users_s:,.0f} users/s = {users_s * ratings / max(users, 1):,.0f} "
          f"ratings/s in the training steps; epoch with validation {train_s:.1f} s; "
          f"tune NDCG@10 {history.get('tune_ndcg@10', float('nan')):.4f}, "
          f"tune RMSE {history.get('tune_rmse', float('nan')):.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=ROWS)
    ap.add_argument("--movies", type=int, default=MOVIES)
    ap.add_argument("--split", choices=["random", "time"], default="random")
    ap.add_argument("--no-check", action="store_true", help="skip the structure check")
    ap.add_argument("--compare", metavar="REV", help="also run this git revision's preprocess")
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it")
    ap.add_argument("--train", action="store_true", help="also train one epoch of the default "
                    "model and report users/s, ratings/s and peak RSS")
    args = ap.parse_args()

    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-large-"))
    data, out, folder = root / "data", root / "output", root / "data" / "ml-25m"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        if not (folder / "ratings.csv").exists():
            t0 = time.perf_counter()
            generate(folder, args.rows, args.movies)
            print(f"generated {args.rows:,} ratings of {args.movies:,} movies in "
                  f"{time.perf_counter() - t0:.1f} s: ratings.csv "
                  f"{(folder / 'ratings.csv').stat().st_size / 2**20:,.0f} MiB")
        _, startup_mb, _ = measure([sys.executable, "-c", "import rec.cli"], env)
        print(f"python {sys.version.split()[0]}, numpy {np.__version__}, {os.cpu_count()} cpus; "
              f"peak RSS of `python -c 'import rec.cli'`: {startup_mb:.0f} MiB")
        if not args.no_check:
            code = ("import sys; from pathlib import Path; from rec.datasets import registry; "
                    "spec = registry.get('ml-25m').with_rows({'ratings.csv': int(sys.argv[2]), "
                    "'movies.csv': int(sys.argv[3])}); "
                    "print(registry.check_structure(spec, Path(sys.argv[1])))")
            wall, peak, _ = measure([sys.executable, "-c", code, str(folder), str(args.rows),
                                     str(args.movies)], env)
            print(f"structure check (what `rec download --source` runs): {wall:6.1f} s, "
                  f"peak RSS {peak:6.0f} MiB")
        wall, peak, stdout = measure(preprocess_cmd(data, out, args.split), env)
        result = json.loads(stdout)
        arrays = {p.name: p.stat().st_size for p in (out / "dataset").glob("*.npy")}
        total = sum(arrays.values()) / 2**20
        print(f"rec preprocess ({args.split} split): {wall:6.1f} s wall "
              f"({result['seconds']:.1f} s its own), peak RSS {peak:6.0f} MiB")
        print(f"  final arrays {total:6.0f} MiB (" + ", ".join(
            f"{name[:-4]} {size / 2**20:.0f}" for name, size in sorted(arrays.items())
            if size > 2**20) + ")")
        print(f"  peak / arrays = {peak / total:.2f}   "
              f"(peak - start-up) / arrays = {(peak - startup_mb) / total:.2f}")
        print(f"  {result['users']:,} users, {result['movies']:,} movies, "
              f"{result['ratings']:,} ratings, {result['validation']:,} validation")
        if args.train:
            bench_train(data, out, env, result["ratings"] - result["validation"],
                        result["users"])
        if args.compare:
            old = root / "old"
            shutil.rmtree(old, ignore_errors=True)
            old.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.compare, "rec"],
                                     capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
            probe = "import rec, sys; sys.stdout.write(rec.__file__)"
            where = subprocess.run([sys.executable, "-c", probe], cwd=old, capture_output=True,
                                   text=True, env={**os.environ, "PYTHONPATH": str(old)}).stdout
            assert where.startswith(str(old)), f"{args.compare}'s rec is not the one imported"
            wall, peak, stdout = measure(preprocess_cmd(data, root / "output-old", args.split),
                                         {**os.environ, "PYTHONPATH": str(old)}, cwd=old)
            print(f"{args.compare} rec preprocess: {wall:6.1f} s wall, peak RSS {peak:6.0f} MiB,"
                  f" peak / arrays = {peak / total:.2f}")
            same = all(np.array_equal(np.load(out / "dataset" / n),
                                      np.load(root / "output-old" / "dataset" / n))
                       for n in arrays)
            print(f"  arrays identical to this revision's: {same}")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
