"""CTR on ml-1m and on synthetic Criteo: AUC vs the logistic-regression baseline, samples/s,
and recall (two-tower) vs recall + rank (two-tower top 200 reordered by the CTR model).

Runs the real CLI in fresh processes:

    rec download --source ../shared/data/ml-1m.zip; rec preprocess (random 90/10, seed 42)
    rec train; rec save-features          the recall model, for the recall+rank comparison
    rec ctr-train --model wide_deep       target: val AUC >= 0.80, above the LR baseline;
                                          rerank HR@10 and NDCG@10 >= recall alone
    rec ctr-train --negatives 0           the "will like" model, for comparison
    rec ctr-train --model deepfm
    synthetic Criteo (N lines): parse rate, rec ctr-train --data criteo (3 epochs) samples/s,
    rec ctr-predict lines/s

    .venv/bin/python bench/bench_ctr.py [--epochs N] [--criteo-lines N] [--skip-deepfm]
                                        [--skip-criteo] [--skip-movielens] [--keep DIR]
                                        [--skip-like-only]
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

ROOT = Path(__file__).resolve().parents[1]
ML1M_ZIP = ROOT.parent / "shared" / "data" / "ml-1m.zip"
sys.path.insert(0, str(ROOT))


def rec(root: Path, *args: str, stdout=subprocess.PIPE) -> tuple[float, str]:
    """Run `python -m rec` in a fresh process: (wall seconds, stdout)."""
    env = {**os.environ, "REC_DATA_DIR": str(root / "data"), "REC_OUTPUT_DIR": str(root / "out"),
           "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "rec", "--quiet", *args], env=env, cwd=ROOT,
                          stdout=stdout, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"rec {' '.join(args)} failed:\n{proc.stderr}")
    return wall, proc.stdout if stdout == subprocess.PIPE else ""


def ctr_run(root: Path, label: str, args: list[str]) -> dict:
    wall, out = rec(root, "ctr-train", *args, "--format", "json")
    m = json.loads(out)
    return {"run": label, **m, "wall_s": round(wall, 1)}


def movielens(root: Path, opts) -> list[dict]:
    if not (root / "out" / "dataset" / "split.npy").exists():
        rec(root, "download", "--source", str(ML1M_ZIP))
        rec(root, "preprocess", "--split", "random", "--val-ratio", "0.1", "--seed", "42")
    if not (root / "out" / "features" / "usr_feat.pkl").exists():
        wall, _ = rec(root, "train")
        print(f"two-tower train (recall model): {wall:.0f} s")
        rec(root, "save-features")
    # --model wide_deep: MovieLens' default is the rank stage, which takes no --negatives
    extra = ["--model", "wide_deep", *(["--epochs", str(opts.epochs)] if opts.epochs else [])]
    rows = [ctr_run(root, "wide_deep", extra)]
    if not opts.skip_like_only:
        rows.append(ctr_run(root, "wide_deep --negatives 0", ["--negatives", "0", *extra]))
        ctr_run(root, "wide_deep", extra)  # leave the default model in place
    if not opts.skip_deepfm:
        rows.append(ctr_run(root, "deepfm", ["--model", "deepfm", *extra[2:]]))
    return rows


def criteo_figures(root: Path, lines: int, epochs: int) -> dict:
    from rec.datasets import criteo, criteo_synthetic

    path = root / "criteo_synthetic.txt"
    t0 = time.perf_counter()
    truth = criteo_synthetic.generate(path, criteo_synthetic.SyntheticCriteoSpec(lines=lines, seed=1,
                                                             max_cardinality=2000))
    gen_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    n = sum(len(c) for c in criteo.read_chunks(path))
    parse_s = time.perf_counter() - t0
    out = {}
    for model in ("wide_deep", "deepfm"):
        m = ctr_run(root, f"criteo {model}", ["--data", "criteo", "--input", str(path),
                                              "--model", model, "--epochs", str(epochs)])
        out[model] = m
    t0 = time.perf_counter()
    rec(root, "ctr-predict", str(path), stdout=subprocess.DEVNULL)
    predict_s = time.perf_counter() - t0
    return {"lines": n, "bayes_auc": truth["bayes_auc"], "generate_s": gen_s,
            "parse_lines_per_s": n / parse_s, "runs": out, "predict_lines_per_s": n / predict_s,
            "size_mb": path.stat().st_size / 2**20}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=None, help="override the default epochs")
    ap.add_argument("--criteo-lines", type=int, default=500_000)
    ap.add_argument("--criteo-epochs", type=int, default=3)
    ap.add_argument("--skip-deepfm", action="store_true")
    ap.add_argument("--skip-like-only", action="store_true", help="skip --negatives 0")
    ap.add_argument("--skip-criteo", action="store_true")
    ap.add_argument("--skip-movielens", action="store_true")
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it")
    opts = ap.parse_args()
    root = opts.keep or Path(tempfile.mkdtemp(prefix="bench-ctr-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} cores; work dir {root}")
    if opts.skip_movielens:
        pass
    elif ML1M_ZIP.exists():
        rows = movielens(root, opts)
        cols = ["run", "auc", "logloss", "baseline_auc", "baseline_logloss", "best_epoch",
                "samples_per_s", "recall_hr@10", "rerank_hr@10", "recall_ndcg@10",
                "rerank_ndcg@10", "wall_s"]
        print("ml-1m as CTR (label = rating >= 4 against lower ratings and --negatives "
              "unrated movies, random 90/10 split):")
        print("\t".join(cols))
        for row in rows:
            print("\t".join(str(row.get(c, "")) for c in cols))
        d = rows[0]
        print(f"target: val AUC {d['auc']:.4f} >= 0.80: {d['auc'] >= 0.80}; above the LR "
              f"baseline {d['baseline_auc']:.4f}: {d['auc'] > d['baseline_auc']}")
        if "rerank_hr@10" in d:
            helps = (d["rerank_hr@10"] >= d["recall_hr@10"]
                     and d["rerank_ndcg@10"] >= d["recall_ndcg@10"])
            print(f"target: rerank helps recall (HR@10 {d['recall_hr@10']:.4f} -> "
                  f"{d['rerank_hr@10']:.4f}, NDCG@10 {d['recall_ndcg@10']:.4f} -> "
                  f"{d['rerank_ndcg@10']:.4f}): {helps}")
    else:
        print(f"ml-1m skipped: {ML1M_ZIP} not found")
    if not opts.skip_criteo:
        c = criteo_figures(root, opts.criteo_lines, opts.criteo_epochs)
        print(f"synthetic Criteo: {c['lines']:,} lines ({c['size_mb']:.0f} MB), generated in "
              f"{c['generate_s']:.1f} s; reader {c['parse_lines_per_s']:,.0f} lines/s; "
              f"ctr-predict {c['predict_lines_per_s']:,.0f} lines/s (process wall)")
        for model, m in c["runs"].items():
            print(f"  ctr-train --data criteo --model {model} ({m['epochs_run']} epochs, 90/10): "
                  f"{m['samples_per_s']:,.0f} samples/s (model + baseline, reading included); "
                  f"AUC {m['auc']:.4f} vs LR {m['baseline_auc']:.4f} "
                  f"(Bayes-optimal {c['bayes_auc']:.4f})")
    if not opts.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
