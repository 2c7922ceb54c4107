"""Training glue shared by train, evaluate and save-features: device set-up, feeding the
preprocessed arrays to the network in batches, rebuilding a saved model, running the towers.

Imports paddle: only the training stages import this module (inside their commands).
"""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path

import numpy as np

from rec.datasets.contract import Dataset
from rec.errors import RecError, UsageError
from rec.metrics import rmse_mae  # noqa: F401  (train.py calls training.rmse_mae)
from rec.manifest import fingerprint
from rec.paths import Paths, read_json, reading, require

warnings.filterwarnings("ignore", message=".*ccache.*")  # paddle's import-time noise
import paddle  # noqa: E402

from rec.models.two_tower import TwoTower, TwoTowerConfig  # noqa: E402

GPU_HELP = ("this PaddlePaddle is a CPU-only build, so --device gpu cannot work. Install the "
            "CUDA build instead: `pip uninstall -y paddlepaddle && pip install paddlepaddle-gpu` "
            "(pick the wheel for your CUDA version at https://www.paddlepaddle.org.cn/install), "
            "or use --device cpu")
MODEL_FILE, CONFIG_FILE = "model.pdparams", "config.json"
EVAL_BATCH = 16384


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


def setup_device(device: str, distributed: bool = False) -> str:
    """Select the device; a GPU request on a CPU-only build is a usage error (exit 2).
    Under the launcher each process uses the GPU it was given (FLAGS_selected_gpus)."""
    d = device.strip().lower()
    if d == "cpu":
        paddle.set_device("cpu")
        # Paddle on CPU runs its math on one thread unless told otherwise (measured: using
        # both cores here is worth up to ~2x); data-parallel processes share the cores.
        paddle.base.core.set_num_threads(max(1, available_cores() // world_size()))
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


def describe_build() -> str:
    """'CPU build' or 'CUDA build, N GPU(s)': for `rec --version` and the run summary."""
    if not paddle.is_compiled_with_cuda():
        return f"paddlepaddle {paddle.__version__}, CPU build"
    return (f"paddlepaddle {paddle.__version__}, CUDA build, "
            f"{paddle.device.cuda.device_count()} GPU(s)")


def model_config(ds: Dataset, match: str, global_mean: float, **sizes) -> TwoTowerConfig:
    """Network sizes from the dataset itself: vocabularies and padded widths."""
    v = ds.vocab
    return TwoTowerConfig(
        n_users=ds.n_users, n_genders=len(v.genders), n_ages=len(v.ages),
        n_occupations=len(v.occupations), n_movies=ds.n_movies, n_genres=len(v.genres),
        n_title_words=len(v.title_words), genre_len=int(ds.movie_genres.shape[1]),
        title_len=int(ds.movie_titles.shape[1]), match=match, global_mean=global_mean, **sizes)


class Feeder:
    """Keeps the feature tables on the device and turns index arrays into model inputs."""

    def __init__(self, ds: Dataset):
        self.users = paddle.to_tensor(np.ascontiguousarray(ds.users, dtype=np.int64))
        self.genres = paddle.to_tensor(np.ascontiguousarray(ds.movie_genres, dtype=np.int64))
        self.titles = paddle.to_tensor(np.ascontiguousarray(ds.movie_titles, dtype=np.int64))

    def inputs(self, users: np.ndarray, movies: np.ndarray) -> tuple:
        """Model inputs for (user, movie) index pairs: the distinct users' feature rows, the
        distinct movies' ids, genres and titles, and the two index tensors that map each
        pair back to them (see TwoTower.forward)."""
        distinct_users, user_index = np.unique(users, return_inverse=True)
        distinct_movies, movie_index = np.unique(movies, return_inverse=True)
        u = paddle.to_tensor(distinct_users.astype(np.int64))
        m = paddle.to_tensor(distinct_movies.astype(np.int64))
        return (paddle.gather(self.users, u), m, paddle.gather(self.genres, m),
                paddle.gather(self.titles, m), paddle.to_tensor(user_index.astype(np.int64)),
                paddle.to_tensor(movie_index.astype(np.int64)))

    def all_users(self) -> paddle.Tensor:
        return self.users

    def all_movies(self) -> tuple:
        m = paddle.arange(self.genres.shape[0], dtype="int64")
        return m, self.genres, self.titles


def predict(model: TwoTower, feeder: Feeder, users: np.ndarray, movies: np.ndarray,
            batch: int = EVAL_BATCH) -> np.ndarray:
    """Raw model outputs (unclipped) for (user, movie) index pairs."""
    model.eval()
    out = []
    with paddle.no_grad():
        for i in range(0, len(users), batch):
            out.append(model(*feeder.inputs(users[i: i + batch], movies[i: i + batch])).numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def tower_vectors(model: TwoTower, feeder: Feeder, batch: int = EVAL_BATCH) -> tuple[np.ndarray, np.ndarray]:
    """The vectors save-features stores: every user's and every movie's, as float32."""
    model.eval()
    with paddle.no_grad():
        users = feeder.all_users()
        u = np.concatenate([model.user_vectors(users[i: i + batch]).numpy()
                            for i in range(0, users.shape[0], batch)])
        ids, genres, titles = feeder.all_movies()
        m = np.concatenate([model.movie_vectors(ids[i: i + batch], genres[i: i + batch],
                                                titles[i: i + batch]).numpy()
                            for i in range(0, ids.shape[0], batch)])
    return u.astype(np.float32), m.astype(np.float32)


def load_trained(paths: Paths, ds: Dataset | None = None) -> tuple[TwoTower, dict]:
    """Rebuild the network from output/model/config.json alone and load its best weights."""
    model_dir = paths.model_dir
    require([model_dir / CONFIG_FILE, model_dir / MODEL_FILE], "rec train")
    config = read_json(model_dir / CONFIG_FILE, "rec train", keys=("model",))
    with reading(model_dir / CONFIG_FILE, "rec train"):
        model = TwoTower(TwoTowerConfig.from_json(config["model"]))
        trained_on = (config.get("dataset") or {}).get("fingerprint")  # split.npy's
    if ds is None:
        pass
    elif (ds.n_users, ds.n_movies) != (model.config.n_users, model.config.n_movies) or \
            trained_on not in (None, fingerprint(paths.dataset_file("split.npy"))):
        raise UsageError("output/model was trained on another dataset than output/dataset: "
                         "run `rec train` again")
    try:
        model.set_state_dict(paddle.load(str(model_dir / MODEL_FILE)))
    except Exception as e:  # a damaged file: say which, not a traceback
        raise RecError(f"cannot load {model_dir / MODEL_FILE}: {e}")
    model.eval()
    return model, config


def save_paddle(obj, path: Path) -> None:
    """paddle.save through a temporary file + rename (atomic)."""
    from rec.atomic import atomic_path

    with atomic_path(path) as tmp:
        paddle.save(obj, str(tmp))


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
    state_file = ckpt_dir / "state.json"
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
