"""Wall time of `rec recommend` from the shell, on ml-1m-sized inputs.

Builds a preprocessed ml-1m dataset (from ../shared/data/ml-1m.zip when present, else a
synthetic one of the same size) and random ml-1m-sized feature files (32 taste + 2 bias
components), then times, as fresh processes:

    python -m rec recommend 42 --top 10                       target <= 0.5 s
    python -m rec recommend --all --top 10 --format tsv       target <= 5 s (6,040 users)

next to bare `python -c "import numpy"` and `python -c "import rec.cli"` (start-up only).

Then the start-up ratios, measured in the same run: the CPU time (user + sys of the child,
from getrusage(RUSAGE_CHILDREN) deltas; median of --cpu-repeat runs) of

    rec recommend 42 --top 10 --format tsv, rec --help, rec status    target <= 2x

over that of `python -c "import numpy"`, with rec's modules compiled first (as `pip install`
does: numpy's are).

    .venv/bin/python bench/bench_recommend.py [--repeat 5] [--keep DIR | --output-dir DIR]

--output-dir uses an existing output folder (e.g. a real `rec train` + `save-features` on
ml-1m) instead of building random inputs.
"""

from __future__ import annotations

import argparse
import compileall
import resource
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
from rec.datasets.build import build, write_dataset  # noqa: E402

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


def cpu(command: list[str], repeat: int) -> float:
    """Median CPU seconds (user + sys) of `repeat` fresh runs, after one warm-up."""
    times = []
    for i in range(repeat + 1):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if i:
            times.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(times)


def startup_ratios(rec: list[str], repeat: int, target: float = 2.0) -> None:
    """CPU time of the quick commands over `python -c "import numpy"`, in one sitting."""
    numpy_cpu = cpu([sys.executable, "-c", "import numpy"], repeat)
    print(f"\n{'CPU time (user+sys), median of ' + str(repeat):44} {'seconds':>8} "
          f"{'x numpy':>8}")
    bare = 'python -c "import numpy"'
    print(f"{bare:44} {numpy_cpu:8.3f} {1:8.2f}")
    for name, args in [("rec recommend 42 --top 10 --format tsv",
                        ["recommend", "42", "--top", "10", "--format", "tsv"]),
                       ("rec --help", ["--help"]), ("rec status", ["status"])]:
        seconds = cpu(rec + args, repeat)
        ratio = seconds / numpy_cpu
        verdict = "  ok" if ratio <= target else f"  OVER {target}x"
        print(f"{name:44} {seconds:8.3f} {ratio:8.2f}{verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cpu-repeat", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="build the inputs here and keep them")
    parser.add_argument("--output-dir", type=Path, help="use this existing output folder")
    parser.add_argument("--startup-only", action="store_true", help="only the CPU ratios")
    args = parser.parse_args()

    if args.output_dir:
        paths = Paths(args.output_dir.parent / "data", args.output_dir)
        print(f"inputs: the existing {args.output_dir}")
    else:
        root = args.keep or Path(tempfile.mkdtemp(prefix="bench-recommend."))
        t0 = time.perf_counter()
        paths, source = prepare(root)
        print(f"inputs: {source}, built in {time.perf_counter() - t0:.1f}s under {root}")

    # rec's .pyc files, as `pip install` writes them: without them (PYTHONDONTWRITEBYTECODE
    # set, as in some sandboxes) every run compiles rec's modules from source, a cost that
    # numpy, compiled at its install, does not pay
    compileall.compile_dir(ROOT / "rec", quiet=1)
    py = sys.executable
    rec = [py, "-m", "rec", "--output-dir", str(paths.output_dir)]
    if args.startup_only:
        startup_ratios(rec, args.cpu_repeat)
        return
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
    startup_ratios(rec, args.cpu_repeat)


if __name__ == "__main__":
    main()
