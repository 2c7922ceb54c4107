"""The Paddle runtime, for every model: device set-up, data-parallel processes, the
finite-check, atomic paddle.save, loading weights, and checkpoint files (weights, optimizer
state, state.json) read and written so that --resume works across processes.

Imports paddle: only the stages that train or run a network import this module (inside their
commands), and `rec --version`. It knows no model: domain glue (rec/twotower, rec/ctr) and
the training loop (rec/engine/trainer.py) build on it.
"""

from __future__ import annotations

import io
import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rec.errors import RecError, UsageError
from rec.paths import CONFIG, PARAMS, STATE

from rec.process import interrupts  # noqa: E402


def _mkl_full_speed_on_amd() -> None:
    """Paddle's CPU wheel does its matmuls in Intel MKL (libmklml), which on an AMD CPU
    takes a generic code path unless told the CPU has AVX2: measured on a 2-core EPYC, one
    thread, 2048^2 fp32 matmul 26 -> 65 GFLOP/s (numpy's OpenBLAS: 83), and a whole
    `rec train` epoch 1.9x faster. MKL reads the variable when it first runs, so it is set
    before paddle is imported; an Intel CPU (where it would cap AVX-512 at AVX2) or a value
    the user set is left alone."""
    if "MKL_DEBUG_CPU_TYPE" in os.environ:
        return
    try:
        with open("/proc/cpuinfo") as f:
            head = f.read(8192)
    except OSError:
        return
    if "AuthenticAMD" in head and " avx2" in head:
        os.environ["MKL_DEBUG_CPU_TYPE"] = "5"


def _idle_math_threads_sleep() -> None:
    """MKL's OpenMP threads (Intel's libiomp5, loaded with paddle) spin for 200 ms after
    each parallel region by default, waiting for the next one; a training step runs many
    small regions between single-threaded kernels, so the second thread spun through the
    rest of the step, and on a shared machine took a core from other work and from this
    process's own main thread. KMP_BLOCKTIME=0 puts it to sleep at once. The runtime reads
    the variable when it starts (set from Python after paddle's import it had no effect),
    so it is set here, before paddle is imported; a value the user set is left alone.
    Measured on a 2-core EPYC at load 2.6-2.8, an ml-1m step on 2 threads: 150-313 ms
    wall -> 115-126."""
    os.environ.setdefault("KMP_BLOCKTIME", "0")


_mkl_full_speed_on_amd()
_idle_math_threads_sleep()
warnings.filterwarnings("ignore", message=".*ccache.*")  # paddle's import-time noise
with interrupts.held_during_import():  # paddle's import replaces rec's SIGTERM handler
    import paddle  # noqa: E402

from rec.build_info import GPU_HELP  # noqa: E402,F401 (also told before paddle is imported)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def world_size() -> int:
    """Processes in this data-parallel job (set by paddle.distributed.launch), else 1."""
    return int(os.environ.get("PADDLE_TRAINERS_NUM", "1") or 1)


def init_distributed() -> tuple[int, int]:
    """(rank, world size); joins the process group when started by the launcher."""
    world = world_size()
    if world <= 1:
        return 0, 1
    import paddle.distributed as dist

    dist.init_parallel_env()
    return dist.get_rank(), dist.get_world_size()


@dataclass(frozen=True)
class Job:
    """This process's place in a run: `world` data-parallel processes, of which this is
    `rank`; rank 0 (`main`) alone writes files and talks to the user."""

    rank: int
    world: int
    device: str  # as set up: "cpu" or "gpu:N"
    threads: int = 1  # CPU threads of this process's math

    @property
    def main(self) -> bool:
        return self.rank == 0


def start(device: str, threads: int | None = None) -> Job:
    """Join the data-parallel group when started by the launcher, silence the other ranks,
    and set up the device (a GPU request on a CPU-only build is a usage error, exit 2) and
    the CPU threads of each process (`threads`, default: default_threads())."""
    from rec.console import set_quiet

    rank, world = init_distributed()
    if rank != 0:
        set_quiet(True)
    device = setup_device(device, distributed=world > 1, threads=threads)
    return Job(rank, world, device, _threads)


def seed_all(seed: int) -> None:
    """Seed paddle and numpy's global generators (initialisation of the networks)."""
    paddle.seed(seed)
    np.random.seed(seed)


def sum_across_ranks(value: float, world: int) -> float:
    if world <= 1:
        return value
    import paddle.distributed as dist

    t = paddle.to_tensor([value], dtype="float64")
    dist.all_reduce(t)
    return float(t.numpy()[0])


def check_finite(epoch: int, **values: float) -> None:
    """Stop the run (exit 1) when an epoch's loss or metric is nan or infinite: the network
    diverged, and saving it would replace a good model with a useless one."""
    bad = {k: v for k, v in values.items() if not np.isfinite(v)}
    if bad:
        what = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in bad.items())
        raise RecError(f"training diverged at epoch {epoch} ({what}); nothing of this epoch "
                       "was saved: try a lower --lr")


def default_threads() -> int:
    """CPU threads of each process when --threads is not given: the cores this process may
    run on, shared among this host's data-parallel processes. Measured on a 2-core machine
    by bench/bench_speed.py (which prints both each run): at load 1-2 an ml-1m epoch took
    1.48-1.80 s on 2 threads against 1.63-2.06 on 1; with the cores busy with other work
    (load 4.5-6) one thread was faster, 2.2-2.5 s against 2.8-3.4 (and 25M ratings 198 s an
    epoch against 229), as MKL's second thread waits for a core: there, pass --threads 1.
    Those figures were taken while that thread spun between parallel regions
    (_idle_math_threads_sleep ends it): since, at load 1.4-2.8, 4-epoch ml-1m runs on 2
    threads took 1.91-2.09 s an epoch against 2.38-2.99 before, interleaved, and one thread
    2.37-2.67 against 2.29-2.62 (unchanged). The thread count changes float rounding (not
    the quality), so runs compare bit for bit at the same --threads."""
    local = int(os.environ.get("PADDLE_LOCAL_SIZE", "0") or 0) or world_size()
    return max(1, available_cores() // local)


def set_threads(threads: int | None) -> int:
    """Run Paddle's CPU math (MKL and its own kernels) on `threads` threads (None: the
    default); returns the number set."""
    global _threads
    _threads = threads or default_threads()
    paddle.base.core.set_num_threads(_threads)
    return _threads


_threads = 1  # what set_threads set last (paddle cannot be asked)


def math_threads() -> int:
    """The CPU threads set_threads set (1 until it runs: on a GPU), for numpy work that
    runs beside Paddle's, such as a validation pass split among threads."""
    return _threads


def setup_device(device: str, distributed: bool = False, threads: int | None = None) -> str:
    """Select the device; a GPU request on a CPU-only build is a usage error (exit 2).
    Under the launcher each process uses the GPU it was given (FLAGS_selected_gpus).
    On CPU, Paddle runs its math on `threads` threads (default_threads() when None)."""
    d = device.strip().lower()
    if d == "cpu":
        paddle.set_device("cpu")
        set_threads(threads)
        return "cpu"
    m = re.fullmatch(r"gpu(?::(\d+))?", d)
    if not m:
        raise UsageError(f"--device must be cpu, gpu or gpu:N (got {device!r})")
    if not paddle.is_compiled_with_cuda():
        raise UsageError(GPU_HELP)
    count = paddle.device.cuda.device_count()
    index = int(m.group(1) or 0)
    if distributed and os.environ.get("FLAGS_selected_gpus"):
        index = int(os.environ["FLAGS_selected_gpus"].split(",")[0])
    if count == 0:
        raise UsageError("no CUDA device is visible (check nvidia-smi and CUDA_VISIBLE_DEVICES)")
    if index >= count:
        raise UsageError(f"--device {device}: only {count} GPU(s) visible (gpu:0..gpu:{count - 1})")
    paddle.set_device(f"gpu:{index}")
    return f"gpu:{index}"


def host_tensor(array: np.ndarray):
    """A Paddle tensor of a numpy array, for a step's inputs. On the CPU it is the array's
    own memory (DLPack, no copy): paddle.to_tensor copies at about 1 GB/s here, 10 ms for
    one 512 x 3,883 float32 bag (measured on a 2-core EPYC, Paddle 3.3), a third of an ml-1m
    step for its three dense inputs. The caller must not write the array while the tensor
    is in use (a step builds fresh arrays). On a GPU (or for an array DLPack cannot share:
    read-only, not contiguous) it is paddle.to_tensor's copy."""
    array = np.asarray(array)
    if paddle.get_device() == "cpu" and array.flags.c_contiguous and array.flags.writeable:
        try:
            return paddle.utils.dlpack.from_dlpack(array)
        except (BufferError, TypeError, RuntimeError):  # a dtype DLPack has no code for
            pass
    return paddle.to_tensor(array)


def describe_build() -> str:
    """'CPU build' or 'CUDA build, N GPU(s)': for `rec --version` and the run summary."""
    if not paddle.is_compiled_with_cuda():
        return f"paddlepaddle {paddle.__version__}, CPU build"
    return (f"paddlepaddle {paddle.__version__}, CUDA build, "
            f"{paddle.device.cuda.device_count()} GPU(s)")


def load_weights(model, path: Path | io.BytesIO, name: Path | None = None,
                 run: str | None = None) -> None:
    """A saved state_dict (a file, or its bytes already read: then `name` is the file's
    path, for messages) into `model` (then in eval mode); a damaged file is one clear error
    naming it and `run`, the stage that writes it, not a traceback."""
    try:
        model.set_state_dict(paddle.load(path if isinstance(path, io.BytesIO) else str(path)))
    except Exception as e:  # paddle raises many kinds
        # paddle names the buffer it was given ("<_io.BytesIO object at 0x7f...>"): the
        # file is named here instead
        why = " ".join(re.sub(r":?\s*<_io\.BytesIO object at 0x[0-9a-fA-F]+>", "",
                              str(e)).split()).rstrip(".")
        rerun = f": run `{run}` again" if run else ""
        raise RecError(f"{name or path} is damaged ({why}){rerun}")
    model.eval()


def save_paddle(obj, path: Path) -> None:
    """paddle.save through a temporary file + rename (atomic)."""
    from rec.storage.atomic import atomic_path

    with atomic_path(path) as tmp:
        paddle.save(obj, str(tmp))


def save_model(folder: Path, net, config: dict) -> None:
    """A network as rec publishes it, into `folder` (the one rec.engine.trainer.fit hands an
    objective's save_best): its weights (PARAMS) and CONFIG, from which it is rebuilt."""
    from rec.storage.atomic import write_json

    paddle.save(net.state_dict(), str(folder / PARAMS))
    write_json(folder / CONFIG, config)


def _param_names(model) -> dict[str, str]:
    """Paddle's unique parameter names (embedding_72.w_0, counted per process) -> the
    structured names (user_tower.user_emb.weight) that stay the same across processes."""
    return {p.name: name for name, p in model.named_parameters()}


def optimizer_state(model, optimizer) -> dict:
    """The optimizer's state keyed by structured parameter names, so it can be loaded into
    a model built in another process (Paddle keys it by the per-process unique names)."""
    names = _param_names(model)
    out = {}
    for key, value in optimizer.state_dict().items():
        for unique, structured in names.items():
            if isinstance(key, str) and key.startswith(unique + "_"):
                key = structured + "::" + key[len(unique) + 1:]
                break
        out[key] = value
    return out


def read_checkpoint(ckpt_dir: Path, run: str, fresh: dict, files: list[str], make_params):
    """(state, params) of the checkpoint `--resume` continues from. A missing checkpoint or
    file of it stops with exit 2, a damaged state.json with exit 1; both name `run`, the
    command that starts over. `make_params(saved params)` rebuilds the run's parameters."""
    state_file = ckpt_dir / STATE
    if not state_file.exists():
        raise UsageError(f"nothing to resume: {ckpt_dir} has no checkpoint (run `{run}`)")
    for name in files:
        if not (ckpt_dir / name).exists():
            raise UsageError(f"missing {ckpt_dir / name}: the checkpoint is incomplete, "
                             f"train from scratch (run `{run}` without --resume)")
    try:
        state = json.loads(state_file.read_text())
        missing = [k for k in [*fresh, "params", "data_fingerprint"] if k not in state]
        if missing:
            raise ValueError(f"no {', '.join(missing)}")
        params = make_params(state["params"])
    except (ValueError, TypeError, AttributeError) as e:  # JSONDecodeError is a ValueError
        raise RecError(f"{state_file} is damaged ({e}): train from scratch (run `{run}` "
                       "without --resume)")
    return state, params


def save_weights(folder: Path, model, optimizer, params_file: str, opt_file: str) -> None:
    """A model's weights and its optimizer's state into `folder` (restore() reads them)."""
    paddle.save(model.state_dict(), str(folder / params_file))
    paddle.save(optimizer_state(model, optimizer), str(folder / opt_file))


def restore(ckpt_dir: Path, run: str, model, optimizer, params_file: str, opt_file: str) -> None:
    """Load a checkpoint's weights and optimizer state; a damaged file is one clear error."""
    path = ckpt_dir / params_file
    try:
        model.set_state_dict(paddle.load(str(path)))
        path = ckpt_dir / opt_file
        load_optimizer_state(model, optimizer, paddle.load(str(path)))
    except Exception as e:  # paddle raises many kinds on a damaged file
        raise RecError(f"cannot load {path} ({type(e).__name__}: {e}): train from scratch "
                       f"(run `{run}` without --resume)")


def load_optimizer_state(model, optimizer, state: dict) -> None:
    back = {structured: unique for unique, structured in _param_names(model).items()}
    fixed = {}
    for key, value in state.items():
        if isinstance(key, str) and "::" in key:
            structured, rest = key.split("::", 1)
            key = back[structured] + "_" + rest
        fixed[key] = value
    optimizer.set_state_dict(fixed)
