"""The whole 组合推荐 fit on a MovieLens-25M-sized synthetic dataset: time and peak memory of
each stage (issue 19: every channel bounded in memory, <= 4 GB peak for the whole fit).

Generates the ml-25m layout with bench_large.generate (25,000,095 ratings, 162,541 users,
62,423 movies, skewed popularity), then runs each stage as a fresh process (peak RSS from
a launcher process of its own, bench_large.measure: earlier stages cannot mask it):

    rec preprocess --dataset ml-25m
    rec train --epochs E            (E = 1 by default: an epoch is minutes here; the figure
                                     that matters for the channels is the stages after it)
    rec save-features               (EASE over the most-rated movies, PureSVD, fold-in)
    rec ctr-train --data movielens  (the rank stage over every channel's candidates)
    rec recommend 1 --top 10        (serving one known user: recall then rank)

and prints wall seconds, CPU seconds and peak MiB per stage, with the load average.

    .venv/bin/python bench/bench_rank_large.py [--rows N] [--movies M] [--epochs E] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
from pathlib import Path

import bench_large
from bench_large import ROOT, measure


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=bench_large.ROWS)
    ap.add_argument("--movies", type=int, default=bench_large.MOVIES)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--keep", help="work in this folder and keep it (reused when present)")
    opts = ap.parse_args()
    root = Path(opts.keep) if opts.keep else Path(tempfile.mkdtemp(prefix="rec-rank-large-"))
    folder = root / "data" / "ml-25m"
    try:
        if not (folder / "ratings.csv").exists():
            bench_large.generate(folder, opts.rows, opts.movies)
        stages = [["preprocess", "--dataset", "ml-25m"], ["train", "--epochs", str(opts.epochs)],
                  ["save-features"], ["ctr-train", "--data", "movielens"],
                  ["recommend", "1", "--top", "10"]]
        print(f"{opts.rows:,} ratings, {opts.movies:,} movies; load {os.getloadavg()[0]:.1f}")
        print(f"{'stage':<28} {'wall s':>8} {'CPU s':>8} {'peak MiB':>9}  load")
        fit = 0.0
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        for stage in stages:
            cpu = cpu_seconds()
            wall, peak, _ = measure([sys.executable, "-m", "rec", "--data-dir", str(root / "data"),
                                     "--output-dir", str(root / "out"), "--quiet", *stage], env)
            fit += wall if stage[0] in ("train", "save-features", "ctr-train") else 0
            print(f"{' '.join(stage):<28} {wall:8.0f} {cpu_seconds() - cpu:8.0f} {peak:9.0f}  "
                  f"{os.getloadavg()[0]:.1f}", flush=True)
        print(f"whole fit (train + save-features + ctr-train): {fit:.0f} s")
    finally:
        if not opts.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
