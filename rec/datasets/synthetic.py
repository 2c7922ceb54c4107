"""A synthetic MovieLens: files in exactly the ml-1m format, with planted structure.

Ratings follow a known recipe, so tests can check that a model learned it:

    rating = round(clip(3.55 + user_bias + movie_quality + mean_g(leaning[user, g])
                        + 1.6 * [favourite genre of user in the movie's genres] + noise, 1, 5))

and which movies a user rates follows log(popularity) + mean_g(leaning[user, g]) +
[favourite genre in the movie's genres] + Gumbel noise (the top `count` of each user),

so a user likes every movie of one favourite genre (drawn mostly from their age bucket and
gender) and leans mildly towards the genres of their demographic group. Titles
contain genre signature words, so the title tower has something to learn as well. The
planted favourite genres are written to `truth.json` beside the data (preprocess ignores it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rec.storage.atomic import write_bytes, write_json
from rec.datasets.contract import GENRES, ML1M_AGES

AGE_CODES = list(ML1M_AGES)  # 1, 18, 25, ...
# Genres a demographic group leans towards: age bucket index -> genres, gender -> genres.
AGE_LEANINGS = [["Animation", "Children's"], ["Comedy", "Horror"], ["Action", "Sci-Fi"],
                ["Thriller", "Crime"], ["Drama", "Mystery"], ["War", "Western"],
                ["Film-Noir", "Musical"]]
GENDER_LEANINGS = {"M": ["Action", "War"], "F": ["Romance", "Musical"]}
FILLER_WORDS = ["the", "of", "a", "night", "return", "last", "city", "man", "story", "day",
                "love", "house", "world", "blue", "king", "road", "summer", "dark", "time"]
FAVOURITE_BONUS = 1.6  # stars added to any movie of the user's favourite genre
CHOICE_AFFINITY = 1.0  # how much a user's tastes raise the odds that they rate a movie
GENRE_WORDS = {g: [f"{g.lower().replace(chr(39), '').replace('-', '')}{i}" for i in range(3)]
               for g in GENRES}


BLOCK_PAIRS = 1 << 22  # user-movie pairs scored at a time (about 100 MB of working arrays)


# Limits (the command line refuses others): about ml-32m's users and movies, ml-10m's
# ratings; every user-movie pair is scored, about 10 million pairs a second, so their
# product is capped too (a minute or two at the cap). truth.json grows with the users.
USERS = (2, 200_000)
MOVIES = (20, 100_000)
RATINGS = (10, 10_000_000)
MAX_PAIRS = 1_000_000_000


@dataclass
class SyntheticSpec:
    users: int = 600
    movies: int = 400
    ratings: int = 90000  # 150 per user: enough for a model to pick up the planted tastes
    seed: int = 42

    def problem(self) -> str | None:
        """Why these sizes cannot be generated, or None."""
        for name, value, (low, high) in (("users", self.users, USERS),
                                         ("movies", self.movies, MOVIES),
                                         ("ratings", self.ratings, RATINGS)):
            if not low <= value <= high:
                return f"--{name} must be in {low:,}..{high:,} (got {value:,})"
        if self.users * self.movies > MAX_PAIRS:
            return (f"--users x --movies must be at most {MAX_PAIRS:,} user-movie pairs "
                    f"(got {self.users * self.movies:,})")
        if self.ratings < self.users * 5:
            return (f"--ratings must be at least 5 per user ({self.users * 5:,} for "
                    f"{self.users:,} users; got {self.ratings:,})")
        if self.ratings > self.users * self.movies // 2:
            return (f"--ratings must be at most half of all user-movie pairs "
                    f"({self.users * self.movies // 2:,}; got {self.ratings:,})")
        return None


def generate(out_dir: Path, spec: SyntheticSpec) -> dict:
    """Write users.dat, movies.dat, ratings.dat (ml-1m format) and truth.json to out_dir."""
    why = spec.problem()
    if why:
        raise ValueError(f"synthetic data: {why}")
    rng = np.random.default_rng(spec.seed)
    n_u, n_m, n_g = spec.users, spec.movies, len(GENRES)
    gidx = {g: i for i, g in enumerate(GENRES)}

    # users: demographics, then tastes that depend on them
    gender = rng.choice(["M", "F"], size=n_u, p=[0.7, 0.3])
    age_bucket = rng.choice(len(AGE_CODES), size=n_u, p=[.05, .18, .35, .2, .09, .08, .05])
    occupation = rng.integers(0, 21, size=n_u)
    leaning = np.zeros((n_u, n_g))
    for u in range(n_u):
        for g in AGE_LEANINGS[age_bucket[u]]:
            leaning[u, gidx[g]] += 0.5
        for g in GENDER_LEANINGS[gender[u]]:
            leaning[u, gidx[g]] += 0.3
    # The favourite genre follows the strongest leaning 60% of the time, else it is random.
    fav_demo = np.argmax(leaning + rng.random((n_u, n_g)) * 0.1, axis=1)
    favourite = np.where(rng.random(n_u) < 0.6, fav_demo, rng.integers(0, n_g, size=n_u))
    taste = leaning - 0.35 + rng.normal(0, 0.15, size=(n_u, n_g))
    user_bias = rng.normal(0, 0.3, size=n_u)

    # movies: 1-3 genres, a quality, a popularity, a title with genre words and a year
    n_genres = rng.choice([1, 2, 3], size=n_m, p=[0.5, 0.35, 0.15])
    movie_genres = [rng.choice(n_g, size=k, replace=False) for k in n_genres]
    quality = rng.normal(0, 0.45, size=n_m)
    popularity = rng.zipf(1.6, size=n_m).clip(1, 200).astype(float)
    years = rng.integers(1930, 2001, size=n_m)
    titles = []
    for m in range(n_m):
        words = list(rng.choice(FILLER_WORDS, size=rng.integers(1, 3), replace=False))
        words.insert(int(rng.integers(0, len(words) + 1)),
                     str(rng.choice(GENRE_WORDS[GENRES[movie_genres[m][0]]])))
        titles.append(" ".join(words).title() + f" {m}")
    genre_mask = np.zeros((n_m, n_g))
    for m, gs in enumerate(movie_genres):
        genre_mask[m, gs] = 1.0 / len(gs)

    # who rates what: each user rates at least 5 movies, more popular ones more often, and
    # movies of their favourite genre and leanings more often too (people pick what they
    # expect to like: the recall model has a choice to learn, not only popularity)
    counts = rng.multinomial(spec.ratings - 5 * n_u, np.full(n_u, 1.0 / n_u)) + 5
    counts = np.minimum(counts, n_m // 2)
    genre_sets = np.zeros((n_m, n_g), dtype=bool)  # movie -> its genres
    for m, gs in enumerate(movie_genres):
        genre_sets[m, gs] = True
    picked = []
    # A block of users at a time (the same random draws, in the same order, as one users x
    # movies matrix): memory stays at BLOCK_PAIRS pairs whatever the sizes.
    block = max(1, BLOCK_PAIRS // n_m)
    for lo in range(0, n_u, block):
        users = np.arange(lo, min(lo + block, n_u))
        fav_mask = genre_sets[:, favourite[users]].T  # favourite genre among the movie's
        keys = (np.log(popularity)[None, :] + CHOICE_AFFINITY * (taste[users] @ genre_mask.T
                                                                 + fav_mask)
                + rng.gumbel(size=(len(users), n_m)))
        top = int(counts[users].max())  # each user's best `count` movies, best first
        best = np.argpartition(-keys, top - 1, axis=1)[:, :top] if top < n_m else \
            np.broadcast_to(np.arange(n_m), keys.shape)
        best = np.take_along_axis(best, np.argsort(-np.take_along_axis(keys, best, axis=1),
                                                   axis=1), axis=1)
        picked += [best[i, :c] for i, c in enumerate(counts[users])]
    u_idx = np.repeat(np.arange(n_u), counts)
    m_idx = np.concatenate(picked)
    has_favourite = np.array([favourite[u] in movie_genres[m] for u, m in zip(u_idx, m_idx)])
    affinity = (taste[u_idx] * genre_mask[m_idx]).sum(axis=1) + FAVOURITE_BONUS * has_favourite
    raw = 3.55 + user_bias[u_idx] + quality[m_idx] + affinity + rng.normal(0, 0.5, size=len(u_idx))
    rating = np.clip(np.rint(raw), 1, 5).astype(int)
    start = rng.integers(956_700_000, 1_040_000_000, size=n_u)
    times = start[u_idx] + np.concatenate([np.sort(rng.integers(0, 5_000_000, size=c))
                                           for c in counts])

    # write in ml-1m format (ids are 1-based, movies.dat is latin-1)
    users_txt = "".join(f"{u + 1}::{gender[u]}::{AGE_CODES[age_bucket[u]]}::{occupation[u]}::"
                        f"{10000 + u}\n" for u in range(n_u))
    movies_txt = "".join(f"{m + 1}::{titles[m]} ({years[m]})::"
                         f"{'|'.join(GENRES[g] for g in movie_genres[m])}\n" for m in range(n_m))
    ratings_txt = "".join(f"{u + 1}::{m + 1}::{r}::{t}\n"
                          for u, m, r, t in zip(u_idx, m_idx, rating, times))
    out_dir.mkdir(parents=True, exist_ok=True)
    write_bytes(out_dir / "users.dat", users_txt.encode("latin-1"))
    write_bytes(out_dir / "movies.dat", movies_txt.encode("latin-1"))
    write_bytes(out_dir / "ratings.dat", ratings_txt.encode("latin-1"))
    truth = {
        "spec": spec.__dict__,
        "favourite_genre": {str(u + 1): GENRES[favourite[u]] for u in range(n_u)},
        "favourite_bonus": FAVOURITE_BONUS,
        "leaning": {str(u + 1): dict(zip(GENRES, np.round(taste[u], 4).tolist())) for u in range(n_u)},
        "user_bias": {str(u + 1): round(float(user_bias[u]), 4) for u in range(n_u)},
        "movie_quality": {str(m + 1): round(float(quality[m]), 4) for m in range(n_m)},
        "movie_popularity": {str(m + 1): float(popularity[m]) for m in range(n_m)},
        "choice_affinity": CHOICE_AFFINITY,
    }
    write_json(out_dir / "truth.json", truth)
    return {"users": n_u, "movies": n_m, "ratings": int(len(u_idx))}
