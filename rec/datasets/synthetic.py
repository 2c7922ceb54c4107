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

from rec.atomic import write_bytes, write_json
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


@dataclass
class SyntheticSpec:
    users: int = 600
    movies: int = 400
    ratings: int = 90000  # 150 per user: enough for a model to pick up the planted tastes
    seed: int = 42


def generate(out_dir: Path, spec: SyntheticSpec) -> dict:
    """Write users.dat, movies.dat, ratings.dat (ml-1m format) and truth.json to out_dir."""
    if spec.users < 2 or spec.movies < 20 or spec.ratings < spec.users * 5:
        raise ValueError("synthetic data needs at least 2 users, 20 movies and 5 ratings per user")
    if spec.ratings > spec.users * spec.movies // 2:
        raise ValueError("synthetic data: too many ratings for so few users and movies "
                         "(at most half of all user-movie pairs)")
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
    fav_mask = np.zeros((n_u, n_m))
    for m, gs in enumerate(movie_genres):
        fav_mask[np.isin(favourite, gs), m] = 1.0
    keys = (np.log(popularity)[None, :] + CHOICE_AFFINITY * (taste @ genre_mask.T + fav_mask)
            + rng.gumbel(size=(n_u, n_m)))
    order = np.argsort(-keys, axis=1)
    u_idx = np.repeat(np.arange(n_u), counts)
    m_idx = np.concatenate([order[u, :c] for u, c in enumerate(counts)])
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
