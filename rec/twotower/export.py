"""The two towers as servable networks (imports paddle): each tower wrapped in a layer whose
forward is the model's user_vectors / movie_vectors, so the exported outputs are exactly the
vectors save-features stores; real rows to verify them on; how their vectors score. The
user tower's inputs, and so its layer, are the model's kind's (rec.twotower.kind.user_tower).
"""

from __future__ import annotations

import numpy as np

from rec.datasets.contract import Dataset
from rec.paths import MOVIE_VECTORS, USER_VECTORS
from rec.engine.inference import Network

import paddle  # noqa: E402

from rec.twotower import kinds  # noqa: E402

CHECK_USERS = 64


class _Tower(paddle.nn.Layer):
    """A tower of `model` whose output is what save-features stores. paddle.jit needs a
    forward with one named argument per input, hence one small class per input set."""

    def __init__(self, model):
        super().__init__()
        self.model = model


class MovieTower(_Tower):
    def forward(self, movie_ids, genres, titles):
        return self.model.movie_vectors(movie_ids, genres, titles)


class RecallUserTower(_Tower):
    def forward(self, demographics, watched, rated):
        return self.model.user_vectors(demographics, watched, rated)


class RatingUserTower(_Tower):
    def forward(self, users):
        return self.model.user_vectors(users)


def movie_rows(ds: Dataset) -> tuple[list, list]:
    rows = [np.arange(ds.n_movies, dtype=np.int64),
            np.ascontiguousarray(ds.movie_genres, dtype=np.int64),
            np.ascontiguousarray(ds.movie_titles, dtype=np.int64)]
    return [("movie_ids", "int64", [None]), ("genres", "int64", [None, rows[1].shape[1]]),
            ("titles", "int64", [None, rows[2].shape[1]])], rows


def own_outputs(method, rows: list) -> np.ndarray:
    with paddle.no_grad():
        return method(*[paddle.to_tensor(r) for r in rows]).numpy().astype(np.float32)


def networks(model, ds: Dataset, features=None) -> list[Network]:
    """The user tower (on CHECK_USERS users drawn with a fixed seed) and the movie tower (on
    every movie), each to reproduce the model's own outputs and, given `features`
    (rec.twotower.features.Features), the saved vectors."""
    model.eval()
    n = min(CHECK_USERS, ds.n_users)
    users = np.sort(np.random.default_rng(0).permutation(ds.n_users)[:n])
    kind = kinds.of_model(model)
    user_tower, u_specs, u_rows = kind.user_tower(model, ds, users)
    m_specs, m_rows = movie_rows(ds)
    u_expected = {"the trained model": own_outputs(model.user_vectors, u_rows)}
    m_expected = {"the trained model": own_outputs(model.movie_vectors, m_rows)}
    if features is not None:
        user_row, movie_row = features.user_row(), features.movie_row()
        try:
            u_expected[USER_VECTORS] = features.users[
                [user_row[str(u)] for u in np.asarray(ds.vocab.user_ids)[users]]]
            m_expected[MOVIE_VECTORS] = features.movies[
                [movie_row[str(m)] for m in ds.vocab.movie_ids]]
        except KeyError as e:
            from rec.errors import RecError

            raise RecError(f"output/features lacks id {e} of output/dataset: "
                           "run `rec save-features` again; nothing written")
    user_about = {"index": "rows are users; output/dataset/vocab.json maps raw ids",
                  "how_to_build_inputs": kind.user_inputs}
    movie_about = {"index": "movie_ids are movie indices 0..n_movies-1 (vocab.json "
                            "movie_ids); genres and titles are output/dataset's "
                            "movie_genres.npy and movie_titles.npy rows"}
    return [Network("user_tower", user_tower, u_specs, f"user vectors (as {USER_VECTORS})",
                    u_rows, u_expected, user_about),
            Network("movie_tower", MovieTower(model), m_specs,
                    f"movie vectors (as {MOVIE_VECTORS})", m_rows, m_expected, movie_about)]


def scoring(model, features=None) -> dict:
    """How a user vector u and a movie vector m combine: output/features/scoring.json (it
    has the like-calibration) when given, else the model's own; with the formulas."""
    base = dict(features.scoring) if features is not None else model.scoring()
    base = {k: v for k, v in base.items() if k not in ("run_id", "dataset_fingerprint")}
    return {**base, "formulas": list(kinds.kind(base["match"]).formulas),
            "from": "output/features/scoring.json" if features is not None else "the model"}
