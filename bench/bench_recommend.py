"""Wall time of `rec recommend` from the shell, on ml-1m-sized inputs.

Builds a preprocessed ml-1m dataset (from ../shared/data/ml-1m.zip when present, else a
synthetic one of the same size) and random ml-1m-sized feature files (32 taste + 2 bias
components), then times, as fresh processes:

    python -m rec recommend 42 --top 10                       target <= 0.5 s
    python -m rec recommend --all --top 10 --format tsv       target <= 5 s (6,040 users)

next to bare `python -c "import numpy"` and `python -c "import rec.cli"` (start-up only).

    .venv/bin/python bench/bench_recommend.py [--repeat 5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rec.datasets.movielens import parse_folder  # noqa: E402
from rec.datasets.synthetic import SyntheticSpec, generate  # noqa: E402
from rec.twotower.features import save_features  # noqa: E402
from rec.paths import Paths  # noqa: E402
from rec.stages.preprocess import build, write_dataset  # noqa: E402

ML1M_ZIP = ROOT.parent / "shared" / "data" / "ml-1m.zip"
TASTE_DIMS = 32


def prepare(root: Path) -> tuple[Paths, str]:
    paths = Paths(root / "data", root / "output")
    if ML1M_ZIP.exists():
        with zipfile.ZipFile(ML1M_ZIP) as z:
            z.extractall(paths.data_dir)
        folder, source = paths.raw("ml-1m"), f"real ml-1m ({ML1M_ZIP})"
    else:
        folder, source = paths.raw("synthetic"), "synthetic, ml-1m sized"
        generate(folder, SyntheticSpec(users=6040, movies=3883, ratings=1_000_209, seed=7))
    arrays, vocab, _ = build(parse_folder(folder), folder.name, "random", 0.1, 42)
    write_dataset(paths.dataset_dir, arrays, vocab)

    # random vectors: taste components, then [bias, 1] for movies and [1, bias] for users
    rng = np.random.default_rng(0)
    n_u, n_m = len(vocab.user_ids), len(vocab.movie_ids)
    users = np.c_[rng.normal(0, 0.2, (n_u, TASTE_DIMS)), np.ones(n_u), rng.normal(0, 0.3, n_u)]
    movies = np.c_[rng.normal(0, 0.2, (n_m, TASTE_DIMS)), rng.normal(0, 0.4, n_m), np.ones(n_m)]
    save_features(paths.features_dir, vocab.user_ids, users, vocab.movie_ids, movies,
                  {"match": "dot", "scale": 1.0, "offset": 3.58, "clip": [1, 5],
                   "taste_dims": TASTE_DIMS})
    return paths, source


def wall(command: list[str], repeat: int, stdout=subprocess.DEVNULL) -> float:
    """Median wall seconds of `repeat` fresh runs (after one warm-up for the file cache)."""
    times = []
    for i in range(repeat + 1):
        t0 = time.perf_counter()
        subprocess.run(command, check=True, cwd=ROOT, stdout=stdout)
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="build the inputs here and keep them")
    args = parser.parse_args()

    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-recommend."))
    t0 = time.perf_counter()
    paths, source = prepare(root)
    print(f"inputs: {source}, built in {time.perf_counter() - t0:.1f}s under {root}")

    py = sys.executable
    rec = [py, "-m", "rec", "--output-dir", str(paths.output_dir)]
    numpy_start = wall([py, "-c", "import numpy"], args.repeat)
    cli_start = wall([py, "-c", "import rec.cli"], args.repeat)
    one = wall(rec + ["recommend", "42", "--top", "10"], args.repeat, stdout=subprocess.PIPE)
    every = wall(rec + ["recommend", "--all", "--top", "10", "--format", "tsv"], args.repeat)
    rows = subprocess.run(rec + ["recommend", "--all", "--top", "10"], check=True, cwd=ROOT,
                          capture_output=True, text=True).stdout.count("\n") - 1

    print(f"{'what':44} {'seconds':>8} {'x numpy start-up':>17}")
    for name, seconds, target in [
        ('python -c "import numpy"', numpy_start, None),
        ('python -c "import rec.cli"', cli_start, None),
        ("rec recommend 42 --top 10", one, 0.5),
        (f"rec recommend --all --top 10 ({rows:,} rows)", every, 5.0),
    ]:
        verdict = "" if target is None else ("  ok" if seconds <= target else f"  OVER {target}s")
        print(f"{name:44} {seconds:8.3f} {seconds / numpy_start:17.1f}{verdict}")


if __name__ == "__main__":
    main()
