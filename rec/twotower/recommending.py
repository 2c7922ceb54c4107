"""Recommendations on the saved vectors: numpy only (no paddle, no console, no files).

Top-N. A chunk of users (chunk_users at a time, to bound memory) is scored against every movie
with one matrix product through `rec.scoring.score`, the model's own matching function. Movies
the user rated (train and validation) and movies outside the --genre/--year filters are set to
-inf; `argpartition` picks the best candidates and only those few are sorted.

Explore (the course's freshness trick): take the best 3N candidates, keep the best N-K and draw
K at random from the rest. Each user's draw is seeded by the seed and that user's row, so a
user gets the same list whether asked alone or among others.

Reasons for each pick are chosen in rec/twotower/reasons.py.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

import numpy as np

from rec.datasets.contract import VAL, Dataset, id_key
from rec.errors import UsageError, shown
from rec.lanes import whole_lanes
from rec.metrics import RANK_CHUNK_USERS, dense_chunk
from rec.scoring import stars_pairs
from rec.twotower.features import Features
from rec.twotower.titles import display_title, find_movie  # noqa: F401 (their home before)
from rec.twotower.topscores import best_columns, best_scored

CHUNK_USERS = 1024  # users scored per matrix product: 1024 x 3883 float32 is 16 MB


def chunk_users(n_movies: int, ranked: bool = False) -> int:
    """Users per chunk of `rec recommend`: CHUNK_USERS (RANK_CHUNK_USERS when the rank
    stage orders the list), fewer on a large catalogue (rec.metrics.dense_chunk: 96 at
    ml-25m's 62k movies), in whole rec.lanes.LANES (its products keyed as they are)."""
    return whole_lanes(dense_chunk(n_movies, RANK_CHUNK_USERS if ranked else CHUNK_USERS))


EXPLORE_POOL = 3  # --explore draws from the best EXPLORE_POOL * N candidates
MOVIE_PRIOR = 10.0  # a movie's mean rating is shrunk towards the global mean by 10 ratings

INT_RE = re.compile(r"-?\d+")  # an id that is a number (negative ones too) prints and sorts as one


@dataclass
class Catalog:
    """Saved vectors and the dataset, aligned: movie row i is features.movie_ids[i], user row j
    is features.user_ids[j]. Ratings keep only users and movies that have vectors."""

    features: Features
    taste: np.ndarray  # (M, k) unit vectors in the taste space, centred (build_catalog)
    titles: list[str]
    years: np.ndarray  # (M,) int64, -1 = unknown
    movie_genres: np.ndarray  # (M, Gmax) vocab genre ids, 0 = padding
    genre_names: list[str]  # vocab.genres, [0] is "<pad>"
    user_gender: np.ndarray  # (U,) index into gender_labels, 0 = unknown
    user_age: np.ndarray  # (U,) index into age_labels, 0 = unknown
    user_occupation: np.ndarray  # (U,) index into occupation_labels, 0 = unknown
    user_group: np.ndarray  # (U,) age-and-occupation group, -1 when either is unknown
    age_labels: list[str]
    occupation_labels: list[str]
    gender_labels: list[str]
    has_demographics: bool
    rating_user: np.ndarray  # (R,) user row
    rating_movie: np.ndarray  # (R,) movie row
    rating_value: np.ndarray  # (R,) float32
    rating_train: np.ndarray  # (R,) bool: training (or a held-out user's given) rating
    rating_time: np.ndarray  # (R,) int64 when it was rated (a new user's: the order given)
    movie_mean: np.ndarray  # (M,) mean rating shrunk towards the global mean
    global_mean: float
    dataset: Dataset | None = None  # what it was built from (the rank stage reads it)

    @property
    def n_movies(self) -> int:
        return len(self.titles)

    def genre_text(self, row: int) -> str:
        return "|".join(self.genre_names[g] for g in self.movie_genres[row] if g)

    def group_stats(self, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(sum, count) of ratings per (group, movie), shape (n_groups, M), filled in for the
        given groups (and those of earlier calls) only: a single user's request reads just
        their group's ratings, and `--all` reads each group's once, not once per chunk.
        Safe from several threads (recommend explains chunks in its scoring threads): the
        filling is done under a lock, or two threads would both add a group's ratings (a
        later filling adds 0 to the rows of groups already filled: they never change)."""
        with _GROUP_STATS:
            return self._group_stats(groups)

    def _group_stats(self, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n_groups = len(self.age_labels) * len(self.occupation_labels)
        if not hasattr(self, "_group_cache"):
            self._group_cache = (np.zeros((n_groups, self.n_movies)),
                                 np.zeros((n_groups, self.n_movies), np.int64),
                                 np.zeros(n_groups + 1, dtype=bool))  # last slot: group -1
        sums, counts, done = self._group_cache
        wanted = np.zeros(n_groups + 1, dtype=bool)
        wanted[groups[groups >= 0]] = True
        wanted &= ~done
        if wanted.any():
            sel = wanted[self.user_group][self.rating_user]
            key = self.user_group[self.rating_user[sel]] * self.n_movies + self.rating_movie[sel]
            size = n_groups * self.n_movies
            sums += np.bincount(key, weights=self.rating_value[sel],
                                minlength=size).reshape(n_groups, -1)
            counts += np.bincount(key, minlength=size).reshape(n_groups, -1)
            done |= wanted
        return sums, counts

    def rating_rows(self, user_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(indices of the ratings of users `user_rows`, their user's position in it): user
        by user, each user's in rating order, from an index of the ratings by user built
        once (a pass over every rating per chunk took 10 of 1,024 ml-1m users' 100 ms)."""
        users = self.rating_user
        with _BY_USER:  # built again if the ratings changed (a folded-in user's added)
            if getattr(self, "_by_user", (None,))[0] is not users:
                order = None if (users[1:] >= users[:-1]).all() else \
                    np.argsort(users, kind="stable")
                ordered = users if order is None else users[order]
                self._by_user = users, order, np.searchsorted(ordered, np.arange(
                    len(self.features.user_ids) + 1))
            _, order, starts = self._by_user
        lo, hi = starts[user_rows], starts[user_rows + 1]
        counts = hi - lo
        pos = np.repeat(np.arange(len(user_rows)), counts)
        # lo of each rating's user, plus its place among the user's ratings
        at = np.repeat(lo - np.cumsum(counts) + counts, counts) + np.arange(len(pos))
        return (at if order is None else order[at]), pos


_GROUP_STATS = threading.Lock()  # Catalog.group_stats' filling, one thread at a time
_BY_USER = threading.Lock()  # Catalog.rating_rows' index, built once


def _rows_by_id(feature_ids: list[str], raw_ids: list) -> np.ndarray:
    """For each dataset index, the feature row with the same raw id (-1 when none)."""
    row = {s: i for i, s in enumerate(feature_ids)}
    return np.array([row.get(str(r), -1) for r in raw_ids], dtype=np.int64)


def _inverse(ds_to_feature: np.ndarray, n_features: int) -> np.ndarray:
    out = np.full(n_features, -1, dtype=np.int64)
    found = np.flatnonzero(ds_to_feature >= 0)
    out[ds_to_feature[found]] = found
    return out


def _translate(index: np.ndarray, mapping: np.ndarray) -> np.ndarray:
    """mapping[index], without the gather when mapping is the identity (the usual case)."""
    if len(mapping) == 0 or (mapping[0] == 0 and (np.diff(mapping) == 1).all()):
        return index
    return mapping[index]


def build_catalog(features: Features, dataset: Dataset) -> Catalog:
    vocab = dataset.vocab
    n_movies, n_users = len(features.movie_ids), len(features.user_ids)
    movie_to_feat = _rows_by_id(features.movie_ids, vocab.movie_ids)
    user_to_feat = _rows_by_id(features.user_ids, vocab.user_ids)
    movie_ds = _inverse(movie_to_feat, n_movies)
    user_ds = _inverse(user_to_feat, n_users)
    if (movie_ds < 0).any() or (user_ds < 0).any():  # vectors for ids the dataset lacks
        raise UsageError("output/features and output/dataset describe different users or "
                       "movies: run `rec save-features` again")

    taste = features.taste().astype(np.float32)
    # centred on the catalogue's mean vector before the cosine: a direction every movie
    # shares (on ml-latest-small the mean pairwise cosine was 0.88, every pair above 0.5)
    # says nothing about which two are alike, and left "because you liked X" true of any X
    taste = taste - taste.mean(axis=0, keepdims=True)
    taste = taste / np.maximum(np.linalg.norm(taste, axis=1, keepdims=True), 1e-12)
    genres = np.where((movie_ds >= 0)[:, None], np.asarray(dataset.movie_genres)[movie_ds], 0)
    users = np.asarray(dataset.users)
    gender = np.where(user_ds >= 0, users[user_ds, 1], 0)
    age = np.where(user_ds >= 0, users[user_ds, 2], 0)
    occupation = np.where(user_ds >= 0, users[user_ds, 3], 0)
    known = (age > 0) & (occupation > 0) & bool(vocab.has_demographics)
    group = np.where(known, age * len(vocab.occupations) + occupation, -1)

    r_user = _translate(np.asarray(dataset.rating_users), user_to_feat)
    r_movie = _translate(np.asarray(dataset.rating_movies), movie_to_feat)
    r_value = np.asarray(dataset.rating_values, dtype=np.float32)
    r_time = np.asarray(dataset.rating_times, dtype=np.int64)
    r_train = np.asarray(dataset.split) != VAL  # what the saved user vectors were made from
    if (r_user < 0).any() or (r_movie < 0).any():  # users or movies without vectors
        keep = (r_user >= 0) & (r_movie >= 0)
        r_user, r_movie, r_value, r_train, r_time = (r_user[keep], r_movie[keep], r_value[keep],
                                                     r_train[keep], r_time[keep])
    global_mean = float(r_value.mean()) if len(r_value) else 0.0
    sums = np.bincount(r_movie, weights=r_value, minlength=n_movies)
    counts = np.bincount(r_movie, minlength=n_movies)
    movie_mean = (sums + MOVIE_PRIOR * global_mean) / (counts + MOVIE_PRIOR)

    return Catalog(
        features=features, taste=taste,
        titles=[vocab.titles[d] if d >= 0 else "" for d in movie_ds],
        years=np.array([(vocab.years[d] or -1) if d >= 0 else -1 for d in movie_ds], dtype=np.int64),
        movie_genres=genres, genre_names=list(vocab.genres), user_gender=gender, user_age=age,
        user_occupation=occupation, user_group=group, age_labels=list(vocab.ages),
        occupation_labels=list(vocab.occupations), gender_labels=list(vocab.genders),
        has_demographics=bool(vocab.has_demographics),
        rating_user=r_user, rating_movie=r_movie, rating_value=r_value, rating_train=r_train,
        rating_time=r_time, movie_mean=movie_mean,
        global_mean=global_mean, dataset=dataset)


# --- looking things up ----------------------------------------------------------------------


def find_users(cat: Catalog, tokens: list[str]) -> np.ndarray:
    """User rows for raw user ids given as text, in order, each once; UsageError otherwise."""
    return rows_of_user_ids(cat.features.user_ids, tokens,
                            "; for someone new, give their movies: --like, --rated")


def rows_of_user_ids(user_ids: list[str], tokens: list[str], hint: str = "") -> np.ndarray:
    """Rows (indices into `user_ids`, raw ids as text) of user ids typed as `tokens`, in
    order, each once; one line naming the unknown ones (and the ids there are, `hint`
    after) otherwise. recommend's (the saved vectors') and history's (the dataset's)."""
    row = {u: i for i, u in enumerate(user_ids)}
    rows, unknown = {}, []
    for token in tokens:
        key = id_key(token)
        if key is None:  # a line of stdin says which (rec.stages.recommend.FromStdin)
            where = getattr(token, "where", None)
            raise UsageError(f"{where + ': ' if where else ''}not a user id: {shown(token)}")
        if key in row:
            rows.setdefault(row[key], None)
        else:
            unknown.append(shown(key, 40, quote=False))
    if unknown:
        more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
        raise UsageError(f"unknown user id {', '.join(unknown[:3])}{more} "
                         f"({users_span(user_ids)}{hint})")
    return np.fromiter(rows, dtype=np.int64, count=len(rows))


def users_span(ids: list[str]) -> str:
    """"the dataset's 6,040 users have ids 1 to 6040" (the span where every id is a number)."""
    numbers = [int(i) for i in ids if i.isascii() and i.isdigit()]  # not '²
    if not numbers or len(numbers) < len(ids):
        return f"not among the dataset's {len(ids):,} users"
    return f"the dataset's {len(ids):,} users have ids {min(numbers)} to {max(numbers)}"


def all_users(cat: Catalog) -> np.ndarray:
    """Every user row, in ascending id order."""
    ids = cat.features.user_ids
    key = [(0, int(i), i) if INT_RE.fullmatch(i) else (1, 0, i) for i in ids]
    return np.array(sorted(range(len(ids)), key=key.__getitem__), dtype=np.int64)


def movie_mask(cat: Catalog, genres: list[str], year_from: int | None,
               year_to: int | None) -> np.ndarray:
    """Movies allowed by --genre (any of them) and the year range (unknown years excluded)."""
    allowed = np.ones(cat.n_movies, dtype=bool)
    if genres:
        ids = {name.casefold(): i for i, name in enumerate(cat.genre_names) if i}
        wanted = []
        for g in genres:
            if g.casefold() not in ids:
                raise UsageError(f"unknown genre {g!r}: choose from {', '.join(cat.genre_names[1:])}")
            wanted.append(ids[g.casefold()])
        allowed &= np.isin(cat.movie_genres, wanted).any(axis=1)
    if year_from is not None:
        allowed &= cat.years >= year_from
    if year_to is not None:
        allowed &= (cat.years <= year_to) & (cat.years >= 0)
    return allowed


# --- ranking --------------------------------------------------------------------------------


@dataclass
class ChunkRatings:
    """The ratings of one chunk of users, sorted by user position, best rating first."""

    pos: np.ndarray  # position of the user in the chunk
    movie: np.ndarray
    value: np.ndarray
    time: np.ndarray | None = None  # when each was rated (None: the order given)


def chunk_ratings(cat: Catalog, user_rows: np.ndarray, train_only: bool = False) -> ChunkRatings:
    """The chunk's ratings (rows must be distinct), Catalog.rating_rows'; with
    `train_only`, only those in the training part of the split (as of the training cut)."""
    sel, pos = cat.rating_rows(np.asarray(user_rows, np.int64))
    if train_only:
        keep = cat.rating_train[sel]
        sel, pos = sel[keep], pos[keep]
    order = np.lexsort((-cat.rating_value[sel], pos))  # stable: equals in rating order
    sel, pos = sel[order], pos[order]
    return ChunkRatings(pos, cat.rating_movie[sel], cat.rating_value[sel], cat.rating_time[sel])


@dataclass
class Picks:
    """Recommendations for a chunk of users: movie rows best first, -1 where fewer were found."""

    movies: np.ndarray  # (B, N) int64
    scores: np.ndarray  # (B, N) float32 the order score (rec.scoring.score)
    stars: np.ndarray  # (B, N) float32 predicted ratings (clipped as the model clips)
    explored: np.ndarray  # (B, N) bool: drawn at random by --explore
    counts: np.ndarray  # (B,) how many of the N are real


def recommend_chunk(cat: Catalog, user_rows: np.ndarray, ratings: ChunkRatings, top: int,
                    allowed: np.ndarray, include_seen: bool = False, explore: int = 0,
                    seed: int = 0) -> Picks:
    """Top `top` allowed movies for each user: one matrix product, then argpartition."""
    f = cat.features

    def blocked(scores: np.ndarray) -> None:  # -inf: not to be recommended
        scores[:, ~allowed] = -np.inf
        if not include_seen:
            scores[ratings.pos, ratings.movie] = -np.inf
    pool = top * EXPLORE_POOL if explore else top
    cand, cand_scores = best_scored(f.users[user_rows], f.movies, f.scoring, blocked, pool,
                                    keys=user_rows)
    available = np.isfinite(cand_scores).sum(axis=1)
    width = min(top, cand.shape[1])
    movies = np.full((len(user_rows), top), -1, dtype=np.int64)
    picked = np.full((len(user_rows), top), -np.inf, dtype=np.float32)
    explored = np.zeros((len(user_rows), top), dtype=bool)
    if not explore:
        movies[:, :width], picked[:, :width] = cand[:, :width], cand_scores[:, :width]
    else:
        positions, explored = explore_positions(available, user_rows, top, explore, seed)
        for b, idx in enumerate(positions):
            idx = idx[idx >= 0]
            movies[b, : len(idx)], picked[b, : len(idx)] = cand[b, idx], cand_scores[b, idx]
    counts = np.minimum(available, top)
    movies[np.arange(top)[None, :] >= counts[:, None]] = -1
    return Picks(movies, picked, predicted_stars(f, user_rows, movies), explored, counts)


def explore_positions(available: np.ndarray, user_rows: np.ndarray, top: int, explore: int,
                      seed: int) -> tuple[np.ndarray, np.ndarray]:
    """--explore over each user's best-first pool of `available` movies (EXPLORE_POOL * top
    long): (positions (B, top) into the pool, -1 where fewer; explored (B, top) bool). The
    best top - explore stay; `explore` more are drawn from the rest of the pool by a
    generator seeded with (seed, user), and every pick keeps its pool order."""
    positions = np.full((len(user_rows), top), -1, dtype=np.int64)
    explored = np.zeros((len(user_rows), top), dtype=bool)
    keep = top - explore
    for b, user in enumerate(user_rows):
        idx = np.arange(min(top, available[b]))
        if available[b] > keep:
            rng = np.random.default_rng([seed, int(user)])
            drawn = rng.choice(np.arange(keep, available[b]),
                               size=min(explore, available[b] - keep), replace=False)
            idx = np.sort(np.concatenate([np.arange(keep), drawn]))
            explored[b, : len(idx)] = idx >= keep
        positions[b, : len(idx)] = idx
    return positions, explored


def explored_picks(picks: Picks, texts: list[list[str]], user_rows: np.ndarray, top: int,
                   explore: int, seed: int) -> tuple[Picks, list[list[str]]]:
    """The rank stage's list under --explore: `picks` (and their found-by `texts`) is each
    user's best EXPLORE_POOL * top in rank order; the top - explore best stay, the rest
    are drawn from the pool as the two-tower's list draws them (explore_positions)."""
    positions, explored = explore_positions(picks.counts, user_rows, top, explore, seed)
    ok = positions >= 0
    safe = np.maximum(positions, 0)

    def take(values: np.ndarray, missing) -> np.ndarray:
        return np.where(ok, np.take_along_axis(values, safe, 1), missing)

    chosen = Picks(take(picks.movies, -1), take(picks.scores, -np.inf).astype(np.float32),
                   take(picks.stars, 0).astype(np.float32), explored, ok.sum(axis=1))
    return chosen, [[row[p] if p >= 0 else "" for p in at]
                    for row, at in zip(texts, positions.tolist())]


def predicted_stars(f: Features, user_rows: np.ndarray, movies: np.ndarray) -> np.ndarray:
    """(B, N) predicted ratings of each user's picked movies (-1 slots get 0), clipped."""
    b, n = movies.shape
    values = stars_pairs(np.repeat(f.users[user_rows], n, axis=0), f.movies[movies.clip(0).ravel()],
                         f.scoring).reshape(b, n)
    clip = f.scoring.get("clip")
    if clip:
        values = np.clip(values, clip[0], clip[1])
    return np.where(movies >= 0, values, 0).astype(np.float32)


def similar_movies(cat: Catalog, row: int, top: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The `top` movies closest to movie `row` by taste cosine, best first, with the cosines."""
    sims = cat.taste @ cat.taste[row]
    sims[~allowed] = -np.inf
    sims[row] = -np.inf
    movies, values = best_columns(sims[None, :], top)
    found = np.isfinite(values[0])
    return movies[0][found], values[0][found]
