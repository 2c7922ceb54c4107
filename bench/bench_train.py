"""Training on ml-1m: throughput, epoch time, peak memory, validation RMSE.

Runs the real CLI in fresh processes on ../shared/data/ml-1m.zip (random 90/10 split):

    rec download --source ml-1m.zip; rec preprocess
    rec train                      default model (target: tune RMSE <= 0.86,
                                   >= 90,000 samples/s, whole run <= 3 minutes)
    rec evaluate                   the bias and global-mean baselines, same split, same run
    rec train --match cosine       the course's configuration, reported beside it

    .venv/bin/python bench/bench_train.py [--epochs N] [--skip-cosine] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ML1M_ZIP = ROOT.parent / "shared" / "data" / "ml-1m.zip"


def rec(root: Path, *args: str) -> tuple[float, float, str]:
    """Run `python -m rec` in a fresh process: (wall seconds, peak RSS MiB, stdout)."""
    env = {**os.environ, "REC_DATA_DIR": str(root / "data"), "REC_OUTPUT_DIR": str(root / "out"),
           "PYTHONPATH": str(ROOT)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "rec", "--quiet", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"rec {' '.join(args)} failed:\n{proc.stderr}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before) / 1024, proc.stdout


def train_figures(root: Path, label: str, args: list[str]) -> dict:
    wall, rss, _ = rec(root, "train", *args)
    m = json.loads((root / "out" / "model" / "metrics.json").read_text())
    hist = json.loads((root / "out" / "model" / "history.json").read_text())
    epoch_s = sorted(h["epoch_seconds"] for h in hist)[len(hist) // 2]
    return {"run": label, "tune_rmse": m["tune_rmse"], "tune_mae": m["tune_mae"],
            "best_epoch": m["best_epoch"], "epochs": m["epochs_run"],
            "samples_per_s": m["samples_per_s"], "median_epoch_s": round(epoch_s, 2),
            "wall_s": round(wall, 1), "peak_rss_mib": round(rss)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=None, help="override the default epochs")
    ap.add_argument("--skip-cosine", action="store_true")
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it")
    opts = ap.parse_args()
    if not ML1M_ZIP.exists():
        print(f"skipped: {ML1M_ZIP} not found")
        return
    root = opts.keep or Path(tempfile.mkdtemp(prefix="bench-train-"))
    print(f"machine: {os.cpu_count()} cores; work dir {root}")
    rec(root, "download", "--source", str(ML1M_ZIP))
    wall, _, _ = rec(root, "preprocess", "--split", "random", "--val-ratio", "0.1", "--seed", "42")
    print(f"preprocess ml-1m: {wall:.2f} s (process wall)")
    extra = ["--epochs", str(opts.epochs)] if opts.epochs else []
    rows = [train_figures(root, "default (dot)", extra)]
    _, _, out = rec(root, "evaluate", "--format", "json")
    report = json.loads(out)
    if not opts.skip_cosine:
        rows.append(train_figures(root, "course (--match cosine)", ["--match", "cosine", *extra]))
    cols = list(rows[0])
    print("\t".join(cols))
    for row in rows:
        print("\t".join(str(row[c]) for c in cols))
    print(f"evaluate (default model): rmse {report['rmse']:.4f}  mae {report['mae']:.4f}  "
          f"hr@10 {report['hr@10']:.4f}  ndcg@10 {report['ndcg@10']:.4f}")
    for name, b in report["baselines"].items():
        print(f"  baseline {name}: rmse {b['rmse']:.4f}  mae {b['mae']:.4f}  "
              f"hr@10 {b['hr@10']:.4f}  ndcg@10 {b['ndcg@10']:.4f}  "
              f"(model/baseline rmse ratio {report['rmse'] / b['rmse']:.3f})")
    d = rows[0]
    print(f"targets: tune RMSE {d['tune_rmse']:.4f} <= 0.86: {d['tune_rmse'] <= 0.86}; "
          f"{d['samples_per_s']:,.0f} samples/s >= 90,000: {d['samples_per_s'] >= 90000}; "
          f"train wall {d['wall_s']} s <= 180: {d['wall_s'] <= 180}")
    if not opts.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
