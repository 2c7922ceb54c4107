"""Serving speed (issue 18): `rec evaluate` and `rec recommend --all` on fitted outputs.

For each fitted root given (a folder with data/ and output/, e.g. ml-1m and
ml-latest-small after download, preprocess, train, save-features and ctr-train), as fresh
processes, interleaved, --repeat times each, and the median:

    rec evaluate --format json                              wall, CPU, peak RSS
    rec recommend --all --top 10 --format tsv               (the rank stage, when fitted)
    rec recommend --all --top 10 --format tsv --recall-only

Targets (ml-1m at load ~1 on the 2-core VM): evaluate <= 5 s, ranked --all <= 3 s,
--recall-only <= 1 s; ml-latest-small evaluate <= 12 s and <= 1.5 GB. Every line carries
the 1-minute load average before it, and the machine's matmul speed is measured at the
start and the end: this is a shared machine, read the figures beside them.

--baseline DIR runs the same commands from another checkout of rec (say a worktree of the
commit before a change) in the same sitting, each baseline run right before the matching
run of this one, and says whether their stdout is byte for byte the same. Where the two
need different fitted outputs (a rank model of another feature layout, which the other
refuses), --baseline-root gives the baseline's root for each root, in order: a copy of the
root whose ctr-train ran with the baseline's code (their outputs are then not compared:
they come from different models). rec's modules
are compiled first in each checkout, as `pip install` does (PYTHONDONTWRITEBYTECODE, set
in some sandboxes, would make every run compile them from source: 0.2 s).

    .venv/bin/python bench/bench_serving.py ROOT [ROOT ...] [--repeat 3] [--baseline DIR
                                            [--baseline-root ROOT ...]]
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# a small parent whose only child is the measured command: its RUSAGE_CHILDREN is that one
# process's peak RSS and CPU time
LAUNCHER = ("import resource, subprocess, sys; rc = subprocess.run(sys.argv[3:], "
            "stdout=open(sys.argv[2], 'wb')).returncode; "
            "r = resource.getrusage(resource.RUSAGE_CHILDREN); "
            "open(sys.argv[1], 'w').write(f'{r.ru_maxrss} {r.ru_utime + r.ru_stime}'); "
            "sys.exit(rc)")
COMMANDS = {
    "evaluate": ["evaluate", "--format", "json"],
    "recommend --all (ranked)": ["recommend", "--all", "--top", "10", "--format", "tsv"],
    "recommend --all --recall-only": ["recommend", "--all", "--top", "10", "--format", "tsv",
                                      "--recall-only"],
}


def load() -> float:
    return os.getloadavg()[0]


MATMUL = ("import numpy as np, time; a = np.random.default_rng(0).random((2048, 2048), "
          "np.float32); [a @ a for _ in range(3)]; t = time.perf_counter(); "
          "[a @ a for _ in range(10)]; print(2 * 2048 ** 3 * 10 / (time.perf_counter() - t) / 1e9)")


def machine_speed() -> str:
    """The machine's own speed now, in a fresh process (every core): numpy's fp32 2048²
    matmul, the same reference as bench_speed.py's. It moved 139-187 GFLOP/s between
    sittings of one week at a similar load average: read the timings beside it."""
    out = subprocess.run([sys.executable, "-c", MATMUL], capture_output=True, text=True)
    return f"numpy fp32 2048² matmul {float(out.stdout):.0f} GFLOP/s, load {load():.2f}"


def run(checkout: Path, root: Path, args: list[str]) -> tuple[float, float, float, str]:
    """(wall s, CPU s, peak RSS MB, sha256 of stdout) of one fresh `rec` from `checkout`."""
    with tempfile.TemporaryDirectory() as tmp:
        stats, out = Path(tmp) / "stats", Path(tmp) / "stdout"
        command = [sys.executable, "-m", "rec", "--data-dir", str(root / "data"),
                   "--output-dir", str(root / "output"), "--quiet", *args]
        t0 = time.perf_counter()
        # cwd: `python -m rec` imports rec from the current folder first
        proc = subprocess.run([sys.executable, "-c", LAUNCHER, str(stats), str(out), *command],
                              cwd=checkout, env={**os.environ, "PYTHONPATH": str(checkout)},
                              stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            sys.exit(f"{' '.join(args)} in {checkout} failed:\n{proc.stderr[-3000:]}")
        peak, cpu = stats.read_text().split()
        digest = hashlib.sha256(out.read_bytes()).hexdigest()
    return wall, float(cpu), int(peak) / 1024, digest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", type=Path, nargs="+", help="fitted roots (data/, output/)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with")
    parser.add_argument("--baseline-root", type=Path, action="append", default=[],
                        help="the baseline's root for each root, in order (repeatable)")
    parser.add_argument("--only", choices=list(COMMANDS), action="append",
                        help="just these commands (repeatable)")
    args = parser.parse_args()
    checkouts = {"this": ROOT}
    if args.baseline:
        checkouts = {"baseline": args.baseline.resolve(), "this": ROOT}
    if args.baseline_root and (not args.baseline or len(args.baseline_root) != len(args.roots)):
        parser.error("--baseline-root needs --baseline and one for each root")
    baseline_roots = dict(zip(args.roots, args.baseline_root))
    for checkout in checkouts.values():
        compileall.compile_dir(checkout / "rec", quiet=1)
    print(f"machine at start: {machine_speed()}")
    print(f"{'root':16} {'command':30} {'checkout':9} {'wall s':>7} {'cpu s':>6} "
          f"{'peak MB':>8} {'load':>5}  (medians of {args.repeat}; load: before each run)")
    for root in args.roots:
        for name, command in COMMANDS.items():
            if args.only and name not in args.only:
                continue
            results = {label: [] for label in checkouts}
            for _ in range(args.repeat):
                for label, checkout in checkouts.items():  # interleaved
                    before = load()
                    where = baseline_roots.get(root, root) if label == "baseline" else root
                    results[label].append((*run(checkout, where, command), before))
            digests = {label: {r[3] for r in rows} for label, rows in results.items()}
            for label, rows in results.items():
                wall, cpu, peak = (statistics.median(r[i] for r in rows) for i in range(3))
                loads = statistics.median(r[4] for r in rows)
                same = ""
                if len(checkouts) > 1 and label == "this" and root not in baseline_roots:
                    same = "  same output" if digests["this"] == digests["baseline"] \
                        else "  OUTPUT DIFFERS"
                print(f"{root.name:16} {name:30} {label:9} {wall:7.2f} {cpu:6.2f} "
                      f"{peak:8.0f} {loads:5.2f}{same}", flush=True)
    print(f"machine at end: {machine_speed()}")


if __name__ == "__main__":
    main()
