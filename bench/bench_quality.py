"""Recommendation quality: what `rec recommend` outputs against popularity and EASE.

For each dataset in ../shared/data (fresh processes, the real CLI, defaults):

    rec download --source <zip>; rec preprocess --split S --val-ratio 0.1 --seed 7
    rec train                        (wall time, peak RSS)
    rec evaluate --format json       HR@10, NDCG@10, long_tail@10, coverage@10, RMSE, MAE
                                     of rec and of the baselines, same users, same run

Targets on ml-1m random 90/10 (issue 10): HR@10 >= 0.75, NDCG@10 >= 0.26, long tail <= 2 %,
RMSE <= 0.85, train <= 120 s on a 2-core machine; and rec above popularity and close to
EASE on every dataset.

    .venv/bin/python bench/bench_quality.py [--only ml-1m] [--time-split] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from bench_train import ROOT, rec

import os
import subprocess
import sys
import time


def timed_train(root: Path) -> tuple[float, float]:
    """`rec train` in a fresh process: (wall seconds, its own peak RSS in MiB). Measured by
    a wrapper process, since RUSAGE_CHILDREN here keeps the peak of every earlier child."""
    env = {**os.environ, "REC_DATA_DIR": str(root / "data"), "REC_OUTPUT_DIR": str(root / "out"),
           "PYTHONPATH": str(ROOT)}
    wrapper = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", wrapper, sys.executable, "-m", "rec", "--quiet",
                           "train", "--format", "json"], env=env, cwd=ROOT, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        sys.exit(f"rec train failed:\n{proc.stderr}")
    return time.perf_counter() - t0, int(proc.stdout.strip().splitlines()[-1]) / 1024

DATA = ROOT.parent / "shared" / "data"
DATASETS = {"ml-1m": "ml-1m.zip", "ml-100k": "ml-100k.zip", "ml-latest-small": "ml-latest-small.zip"}
KEYS = ["hr@10", "ndcg@10", "long_tail@10", "coverage@10", "rmse"]


def run(root: Path, name: str, split: str) -> list[str]:
    rec(root, "download", "--dataset", name, "--source", str(DATA / DATASETS[name]))
    rec(root, "preprocess", "--dataset", name, "--split", split, "--val-ratio", "0.1",
        "--seed", "7")
    wall, rss = timed_train(root)
    _, _, out = rec(root, "evaluate", "--format", "json")
    report = json.loads(out)
    label = f"{name} {split}"
    lines = []
    for model, m in [("rec", report), *[(k, report["baselines"][k]) for k in ("popularity", "ease")
                                        if k in report["baselines"]]]:
        cells = [f"{m[k]:.4f}" if k in m else "" for k in KEYS]
        extra = f"\t{wall:.1f}\t{rss:.0f}" if model == "rec" else "\t\t"
        lines.append(f"{label}\t{model}\t" + "\t".join(cells) + extra)
    ease = report["baselines"].get("ease", {})
    pop = report["baselines"]["popularity"]
    lines.append(f"{label}\tratio rec/popularity ndcg {report['ndcg@10'] / pop['ndcg@10']:.2f}x"
                 + (f", rec/EASE ndcg {report['ndcg@10'] / ease['ndcg@10']:.2f}x, "
                    f"hr {report['hr@10'] / ease['hr@10']:.2f}x" if ease else ""))
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=list(DATASETS), action="append")
    ap.add_argument("--time-split", action="store_true", help="also ml-1m with --split time")
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it")
    opts = ap.parse_args()
    base = opts.keep or Path(tempfile.mkdtemp(prefix="bench-quality-"))
    jobs = [(name, "random") for name in (opts.only or DATASETS)]
    if opts.time_split:
        jobs.append(("ml-1m", "time"))
    print("dataset\tmodel\t" + "\t".join(KEYS) + "\ttrain_s\tpeak_rss_mib")
    for name, split in jobs:
        if not (DATA / DATASETS[name]).exists():
            print(f"{name}\tskipped: {DATA / DATASETS[name]} not found")
            continue
        for line in run(base / f"{name}-{split}", name, split):
            print(line, flush=True)
    if not opts.keep:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
