"""`rec pipeline`: every stage in order, download -> preprocess -> train -> save-features
-> ctr-train (the rank stage over the recall channels' candidates) -> evaluate (each channel,
the candidates' recall and the ranked list, beside EASE) -> recommend, each with the
options that concern it; `--skip STAGE` leaves stages out (checked, like every option,
before the first stage runs). bin/pipeline is a thin wrapper over it.

Each stage runs as its own `rec` process (`python -m rec STAGE ...`), exactly as typed by
hand: the manifest records that stage's own command line (what `rec status` shows and a
rerun repeats), a failing stage ends with its own one-line error and exit code, paddle's
process-wide state (device, seeds, allocator) starts clean for every stage, and training's
memory is returned before the next. It costs paddle's import per stage, seconds against
the minutes of training. The stages' results go to /dev/null, except recommend's: stdout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Optional

import typer

import rec
from rec.process import interrupts, parent_death
from rec.console import error_line, is_quiet, is_verbose, log, warn
from rec.datasets import registry
from rec.errors import UsageError
from rec.stages import get_paths, stage
from rec.stages.options import SEED_RANGE
from rec.storage import lock
from rec.twotower import kinds

HELP = ("Run every stage in order: download, preprocess, train, save-features, ctr-train "
        "(the rank stage), evaluate and recommend for one user, each stage as its own `rec` "
        "command. Options go to the stages that take them; --skip leaves stages out.")
PACKAGE_PARENT = Path(rec.__file__).resolve().parent.parent
GRACE_S = 10.0  # a stage stopped by Ctrl-C or SIGTERM gets this long to finish cleanly
STAGES = ("download", "preprocess", "train", "save-features", "ctr-train", "evaluate",
          "recommend")  # in the order they run
TRAINERS = ("train", "save-features", "ctr-train", "evaluate")
OPTION_STAGES = {"--dataset": ("download", "preprocess"),  # --source names the dataset too
                 "--source": ("download", "preprocess"),  # --match picks ctr-train's model
                 "--seed": ("download", "preprocess", "train"), "--split": ("preprocess",),
                 "--device": TRAINERS, "--epochs": ("train",), "--match": ("train", "ctr-train"),
                 "--user": ("recommend",), "--top": ("recommend",)}  # the stages each reaches


def stage_commands(dataset: str, source: Optional[str], seed: Optional[int],
                   split: Optional[str], device: str, epochs: Optional[int],
                   match: Optional[str], named: bool = True) -> list[list[str]]:
    """The `rec` command lines of the stages before recommend (without global options).
    --seed seeds synthetic data, the split and training; a real dataset takes no seed.
    `named`: --dataset was given; else the one the --source holds, which download takes
    itself (and says so, or what to do when the source is not that dataset)."""
    def given(*pairs) -> list[str]:
        return [str(word) for flag, value in pairs if value is not None for word in (flag, value)]

    download_seed = seed if registry.get(dataset).generated else None
    # the rank stage stacks on a kind that recalls; the course's rating models (--match dot,
    # cosine) get the course's CTR view instead (an unknown --match: check_options says so)
    kind = kinds.KINDS.get(match or kinds.DEFAULT)
    ctr_model = [] if kind is not None and kind.recalls else ["--model", "wide_deep"]
    return [
        ["download", *(["--dataset", dataset] if named or source is None else []),
         *given(("--source", source), ("--seed", download_seed))],
        ["preprocess", "--dataset", dataset, *given(("--split", split), ("--seed", seed))],
        ["train", "--device", device, *given(("--seed", seed), ("--epochs", epochs),
                                             ("--match", match))],
        ["save-features", "--device", device],
        ["ctr-train", "--data", "movielens", "--device", device, *ctr_model],
        ["evaluate", "--device", device],
    ]


def _real_file(stream) -> bool:
    try:
        stream.fileno()
        return True
    except (AttributeError, OSError, ValueError):  # a test runner's buffer
        return False


def run_stage(global_args: list[str], args: list[str], show_stdout: bool = False,
              env: dict | None = None, pass_fds: tuple = ()) -> None:
    """Run `rec GLOBAL ARGS` to the end; its stderr is ours, its stdout ours or nothing.
    A failure ends this command with the stage's exit code (the stage said why). Ctrl-C or
    SIGTERM (rec.process.interrupts: raised here) lets the stage stop cleanly (its files complete
    or untouched), then stops with the stage's 130 or 143. Killed with SIGKILL, this command
    cannot stop the stage: the kernel sends it SIGTERM (rec.process.parent_death)."""
    log(f"== rec {' '.join(args)}")
    env = {**os.environ, **(env or {}), "PYTHONPATH": os.pathsep.join(
        filter(None, [str(PACKAGE_PARENT), os.environ.get("PYTHONPATH")]))}  # this rec
    out = subprocess.DEVNULL
    if show_stdout:
        out = None if _real_file(sys.stdout) else subprocess.PIPE
    err = None if _real_file(sys.stderr) else subprocess.PIPE
    sys.stdout.flush()
    sys.stderr.flush()
    proc = subprocess.Popen([sys.executable, "-m", "rec", *global_args, *args], env=env,
                            stdout=out, stderr=err, text=True, pass_fds=pass_fds,
                            preexec_fn=parent_death.child_setup())
    try:
        stdout, stderr = proc.communicate()
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (rec.process.interrupts.Terminated)
        try:
            _stop(proc, getattr(e, "signum", signal.SIGINT))
        except KeyboardInterrupt:  # a second one while it stops: killed, and waited for
            proc.kill()  # (the output folder's lock is let go only once it is gone)
            proc.wait()
        if proc.returncode in (0, -signal.SIGKILL):  # it finished first, or ignored the signal
            raise  # and said nothing of it: one line from rec.stages.stage
        # The stage said how it stopped (its 130 or 143; or a signal it died of, the one
        # passed on after a second, cut its clean-up short): a second line would repeat it.
        raise typer.Exit(interrupts.exit_code(e))
    sys.stdout.write(stdout or "")
    sys.stderr.write(stderr or "")
    if proc.returncode < 0:
        error_line(f"rec {args[0]} was stopped by signal {-proc.returncode}")
        raise typer.Exit(1)
    if proc.returncode != 0:
        raise typer.Exit(proc.returncode)


def _stop(proc: subprocess.Popen, signum: int = signal.SIGINT) -> None:
    """Pass the signal that stopped this command on to the stage, and kill it only if it
    still runs after GRACE_S. SIGINT first gets a second for the stage to finish on its
    own: Ctrl-C on a terminal reached it too (a second SIGINT would cut its clean-up)."""
    first = (None, signal.SIGINT) if signum == signal.SIGINT else (signum,)
    for sig in (*first, signal.SIGKILL):
        if sig is not None and proc.poll() is None:
            proc.send_signal(sig)
        try:
            proc.communicate(timeout=1.0 if sig is None else GRACE_S)
            return
        except subprocess.TimeoutExpired:
            continue


@stage
def command(
    ctx: typer.Context,
    dataset: Optional[str] = typer.Option(
        None, "--dataset", "-d", show_default=False,
        help="download, preprocess: the dataset [default: the one --source holds, by its "
        "folder's name, as download takes it; synthetic (generated offline) without "
        "--source]."),
    source: Optional[str] = typer.Option(None, "--source", metavar="PATH_OR_URL",
                                         help="download: a mirror URL, .zip or folder."),
    seed: Optional[int] = typer.Option(None, "--seed", **SEED_RANGE,
                                       help="download (synthetic), preprocess, train."),
    split: Optional[str] = typer.Option(None, "--split", help="preprocess: random, time, "
                                        "time-user or users."),
    device: str = typer.Option("cpu", "--device", help="train, evaluate, save-features, "
                               "ctr-train: cpu, gpu or gpu:N."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=0, help="train."),
    match: Optional[str] = typer.Option(None, "--match",
                                        help=f"train: {kinds.match_help(described=False)}"),
    user: Optional[str] = typer.Option(None, "--user", help="recommend for this user "
                                       "[default: the first user in the data]."),
    top: int = typer.Option(10, "--top", "-n", min=1, help="recommend: movies."),
    skip: Optional[list[str]] = typer.Option(None, "--skip", metavar="STAGE", help="Leave this "
                                             "stage out (repeatable), e.g. --skip ctr-train."),
) -> None:
    for skipped in skip or ():
        if skipped not in STAGES:
            raise UsageError(f"unknown --skip {skipped!r}: choose among {', '.join(STAGES)}")
    given = {"--dataset": dataset, "--source": source, "--seed": seed, "--split": split,
             "--device": None if device.strip().lower() == "cpu" else device, "--epochs": epochs,
             "--match": match, "--user": user, "--top": None if top == 10 else top}
    for option, value in given.items():  # a value no stage that runs would read
        takers = OPTION_STAGES[option]
        if value is not None and all(t in (skip or ()) for t in takers):
            warn(f"{option} is not used: {', '.join(takers)} skipped (--skip)")
    named, dataset = dataset is not None, chosen_dataset(dataset, source)
    stages = stage_commands(dataset, source, seed, split, device, epochs, match, named)
    check_options(ctx, dataset, source, split, match, device, user,
                  [*stages, recommend_command(user or "1", top)])
    paths = get_paths(ctx)
    global_args = ["--data-dir", str(paths.data_dir), "--output-dir", str(paths.output_dir),
                   *(["--quiet"] if is_quiet() else []), *(["-v"] if is_verbose() else [])]
    # the output folder held from the first stage to the last: between two stages another
    # writer (a preprocess, a second pipeline) got in, and the run went on, "fine", on its
    # data. Each stage knows its parent holds it (rec.storage.lock.held_by_parent) and
    # inherits the lock; the lock file names the stage running (for `rec status`). The
    # data folder, shared by projects, stays download's to lock, for as long as it runs.
    with lock.hold(paths.output_dir, "rec pipeline") as fd:
        held = lock.for_children([paths.output_dir])

        def run(args: list[str], **kwargs) -> None:
            lock.write_note(fd, f"rec {args[0]} in rec pipeline")
            run_stage(global_args, args, env=held, pass_fds=() if fd is None else (fd,),
                      **kwargs)

        for args in stages:
            if args[0] in (skip or ()):
                log(f"== rec {args[0]}: skipped (--skip)")
            else:
                run(args)
        if "recommend" in (skip or ()):
            log("== rec recommend: skipped (--skip)")
            return
        if user is None:
            from rec.datasets.contract import load_vocab

            user = str(load_vocab(paths).user_ids[0])
        run(recommend_command(user, top), show_stdout=True)


def chosen_dataset(dataset: Optional[str], source: Optional[str]) -> str:
    """--dataset, else the one --source holds as download takes it (the folder's name in
    the archive or path, else ml-1m), else synthetic: `rec pipeline --source ml-1m.zip`
    stopped at "--source does not apply to --dataset synthetic"."""
    if dataset is not None:
        return dataset
    if source is None:
        return "synthetic"
    from rec.datasets.download import dataset_in

    return dataset_in(source) or registry.DEFAULT


def recommend_command(user: str, top: int) -> list[str]:
    """recommend's command line; a negative id (-5) after `--`, or it would read as an option."""
    return ["recommend", user, "--top", str(top)] if not user.startswith("-") else \
        ["recommend", "--top", str(top), "--", user]


def check_options(ctx: typer.Context, dataset: str, source: Optional[str],
                  split: Optional[str], match: Optional[str], device: str,
                  user: Optional[str], commands: list[list[str]]) -> None:
    """Every option the pipeline passes on, checked before the first stage runs (minutes
    of download and training must not end in a typo): the values the stages check in their
    bodies here (as they do), and each stage's command line through that stage's own parser
    (types, ranges), as if typed. Whether --user is in the data is known only once the data
    is: recommend says so at the end."""
    from rec.build_info import device_problem
    from rec.cli import load_command
    from rec.datasets.contract import id_key
    from rec.errors import shown
    from rec.datasets.download import check_source
    from rec.datasets.splits import SPLITS

    check_source(registry.get(dataset), source)
    if split is not None and split not in SPLITS:
        raise UsageError(f"unknown --split {split!r}: choose {', '.join(SPLITS)}")
    if match is not None:
        kinds.kind(match)
    if device_problem(device):
        raise UsageError(device_problem(device))
    if user is not None and id_key(user) is None:
        raise UsageError(f"--user {shown(user)} is not a user id (a whole number)")
    for args in commands:
        try:
            load_command(args[0]).make_context(f"rec {args[0]}", list(args[1:]),
                                               parent=ctx.find_root())
        except typer.TyperException as e:  # click's usage and parameter errors
            raise UsageError(f"rec {args[0]}: {' '.join(e.format_message().split())} "
                             "(nothing was run)") from None
