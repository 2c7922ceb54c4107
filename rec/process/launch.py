"""`--nproc N`: start Paddle's own launcher (paddle.distributed.launch) for the user.

The launcher starts N copies of `rec train` (or `rec ctr-train`) on this host, each with
the environment that tells it its rank; the stage then trains data-parallel (see
rec.engine.runtime.init_distributed). Its logs go to stderr and to a log folder; the result is
read back from the files rank 0 wrote. Across hosts, run the launcher yourself (README).
"""

from __future__ import annotations

import json
import os
import contextlib
import signal
import subprocess
import time
import sys
from pathlib import Path

import rec
from rec.process import parent_death
from rec.errors import RecError, UsageError

PACKAGE_PARENT = Path(rec.__file__).resolve().parent.parent


def stage_args(paths, stage: str, params: dict, device: str, resume: bool, quiet: bool,
               run_options: dict | None = None) -> list[str]:
    """The `rec` arguments that repeat this stage's run in each worker: global folders,
    then every parameter spelled out (booleans as --name / --no-name, None left out), then
    `run_options` (such as threads: how, not what, to train) the same way."""
    args = ["--data-dir", str(paths.data_dir), "--output-dir", str(paths.output_dir)]
    if quiet:
        args.append("--quiet")
    args += [stage, "--device", "gpu" if device.lower().startswith("gpu") else device,
             "--format", "json"]
    for name, value in {**params, **(run_options or {})}.items():
        flag = "--" + name.replace("_", "-")
        if value is None:
            continue
        if isinstance(value, bool):
            args.append(flag if value else "--no-" + name.replace("_", "-"))
        else:
            args += [flag, str(value)]
    if resume:
        args.append("--resume")
    return args


def launcher_command(nproc: int, device: str, log_dir: Path, stage_args: list[str]) -> list[str]:
    """The command line that runs `rec <stage_args>` in `nproc` data-parallel processes."""
    if nproc < 1:
        raise UsageError("--nproc must be at least 1")
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", str(nproc),
           "--log_dir", str(log_dir)]
    if device.lower().startswith("gpu"):
        first = int(device.split(":")[1]) if ":" in device else 0
        cmd += ["--devices", ",".join(str(first + i) for i in range(nproc))]
    return cmd + [str(Path(rec.__file__).resolve().parent / "__main__.py"), *stage_args]


def run_launcher(nproc: int, device: str, log_dir: Path, stage_args: list[str]) -> None:
    """Run the launcher to completion; its output (and rank 0's logs) go to our stderr."""
    log_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_PARENT), env.get("PYTHONPATH")]))
    env.pop("PADDLE_TRAINERS_NUM", None)  # never nest inside another job's environment
    env[parent_death.LAUNCHED_BY] = str(os.getpid())  # the workers check they are still ours
    # paddle warns about a missing ccache at every import: noise in every worker's log
    env["PYTHONWARNINGS"] = ",".join(filter(None, [
        env.get("PYTHONWARNINGS"), "ignore::UserWarning:paddle.utils.cpp_extension.extension_utils"]))
    cmd = launcher_command(nproc, device, log_dir, stage_args)
    sys.stderr.flush()
    direct = _has_fileno()  # stream straight to our stderr: nothing reaches our stdout
    try:
        # The launcher and its workers get a process group of their own, so that stopping
        # this command (Ctrl-C, kill) stops all of them, not just the launcher; killed with
        # SIGKILL, this command cannot: the kernel kills the launcher then, and each worker
        # when the launcher ends (rec.process.parent_death).
        proc = subprocess.Popen(cmd, env=env, start_new_session=True, text=True,
                                preexec_fn=parent_death.child_setup(signal.SIGKILL),
                                stdout=sys.stderr.fileno() if direct else subprocess.PIPE,
                                stderr=None if direct else subprocess.STDOUT)
    except OSError as e:
        raise RecError(f"cannot start paddle.distributed.launch: {e}")
    from rec.process.interrupts import sigterm_interrupts

    try:
        with sigterm_interrupts():
            out, _ = proc.communicate()
        if out:  # stderr is not a real file (e.g. a test runner): relay when done
            sys.stderr.write(out)
        rc = proc.returncode
    except BaseException:  # KeyboardInterrupt (also SIGTERM, above) or anything else
        _stop_group(proc)
        raise
    if rc != 0:
        raise RecError(f"data-parallel training failed (exit {rc}): see the worker logs in "
                       f"{log_dir}")


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, their children, ...), read from /proc: paddle's
    launcher may start its workers in sessions of their own, out of its process group."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (found := parent_death.proc_state(int(entry))) is not None:
            children.setdefault(found[1], []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _stop_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM to the launcher, its process group and every process below it, SIGKILL to
    what is left after `grace` seconds: no worker goes on training and writing once this
    command is stopped."""
    family = [proc.pid, *_descendants(proc.pid)] if os.path.isdir("/proc") else [proc.pid]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        for pid in family:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_running(pid) for pid in family):
            time.sleep(0.1)
            proc.poll()  # reap the launcher
        if not any(_running(pid) for pid in family):
            return


def _running(pid: int) -> bool:
    found = parent_death.proc_state(pid)
    return found is not None and found[0] != "Z"  # a zombie has stopped


def run_stage(paths, stage: str, params: dict, device: str, resume: bool, nproc: int,
              folder, run_options: dict | None = None) -> dict:
    """`--nproc N`: run `rec STAGE` with these parameters in N data-parallel processes; rank
    0 writes the usual files into `folder` (a paths.TrainingFolder, whose launch-logs/ gets
    the workers' logs) and its metrics.json is read back as the result."""
    from rec.console import is_quiet

    args = stage_args(paths, stage, params, device, resume, is_quiet(), run_options)
    run_launcher(nproc, device, folder.launch_logs, args)
    return json.loads(folder.metrics.read_text())


def _has_fileno() -> bool:
    try:
        sys.stderr.fileno()
        return True
    except (AttributeError, OSError, ValueError):
        return False
