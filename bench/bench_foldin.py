"""Fold-in on held-out users (issue 11): users the model never saw, recommended from their
given ratings, against popularity and EASE on the same users; and the start-up cost of
`rec recommend --rated FILE` against `rec recommend 42`.

On ml-1m (fresh processes, the real CLI, defaults; skipped when the zip is absent):

    rec download --source ml-1m.zip; rec preprocess --split users --val-ratio 0.1 --seed 7
    rec train; rec evaluate --format json; rec save-features
    rec recommend --rated FILE (20 movies of a held-out user) and rec recommend 42,
    alternately, median of --repeat wall times each

Targets: fold-in HR@10 >= 1.5x popularity's and >= 0.9x EASE's; --rated within the
start-up budget of `rec recommend 42`.

    .venv/bin/python bench/bench_foldin.py [--data DIR] [--repeat 5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
from pathlib import Path

import numpy as np

from bench_train import ROOT, rec

PROFILE = 20  # movies in the --rated file


def rated_file(root: Path) -> Path:
    """The first PROFILE given ratings of the first held-out user with that many."""
    dataset = root / "out" / "dataset"
    vocab = json.loads((dataset / "vocab.json").read_text())
    split = np.load(dataset / "split.npy")
    users, movies = np.load(dataset / "rating_users.npy"), np.load(dataset / "rating_movies.npy")
    values = np.load(dataset / "rating_values.npy")
    given = split == 2
    counts = np.bincount(users[given], minlength=len(vocab["user_ids"]))
    user = int(np.flatnonzero(counts >= PROFILE)[0])
    mine = np.flatnonzero(given & (users == user))[:PROFILE]
    path = root / "profile.tsv"
    path.write_text("".join(f"{vocab['movie_ids'][movies[i]]}\t{values[i]:g}\n" for i in mine))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data",
                    help="folder holding ml-1m.zip")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it")
    opts = ap.parse_args()
    source = opts.data / "ml-1m.zip"
    if not source.exists():
        print(f"ml-1m\tskipped: {source} not found")
        return
    root = opts.keep or Path(tempfile.mkdtemp(prefix="bench-foldin-"))
    rec(root, "download", "--dataset", "ml-1m", "--source", str(source))
    rec(root, "preprocess", "--dataset", "ml-1m", "--split", "users", "--val-ratio", "0.1",
        "--seed", "7")
    train_s, rss, _ = rec(root, "train")
    report = json.loads(rec(root, "evaluate", "--format", "json")[2])
    rec(root, "save-features")
    b = report["baselines"]
    print(f"ml-1m users split: {report['held_out_users']:,} held-out users, "
          f"{report['given_ratings']:,} given, {report['validation_ratings']:,} to predict; "
          f"train {train_s:.1f} s, peak RSS {rss:.0f} MiB")
    print("model\thr@10\tndcg@10\trmse\tmae")
    for name, m in [("rec fold-in", report), *[(k, b[k]) for k in ("popularity", "ease", "bias")
                                              if k in b]]:
        print(f"{name}\t{m['hr@10']:.4f}\t{m['ndcg@10']:.4f}\t" +
              "\t".join(f"{m[k]:.4f}" if k in m else "" for k in ("rmse", "mae")))
    for name, target in (("popularity", 1.5), ("ease", 0.9)):
        if name in b:
            hr, nd = report["hr@10"] / b[name]["hr@10"], report["ndcg@10"] / b[name]["ndcg@10"]
            verdict = "ok" if hr >= target else "MISSED"
            print(f"fold-in / {name}: HR@10 {hr:.2f}x (target >= {target}x: {verdict}), "
                  f"NDCG@10 {nd:.2f}x")
    profile = rated_file(root)
    times = {"--rated": [], "42": []}
    for _ in range(opts.repeat):  # alternately, so both see the same machine state
        times["--rated"].append(rec(root, "recommend", "--rated", str(profile))[0])
        times["42"].append(rec(root, "recommend", "42")[0])
    rated, known = (statistics.median(times[k]) for k in ("--rated", "42"))
    print(f"rec recommend --rated ({PROFILE} movies): {rated:.3f} s; rec recommend 42: "
          f"{known:.3f} s (median of {opts.repeat}); ratio {rated / known:.2f}")
    if not opts.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
