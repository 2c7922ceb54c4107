"""Why a movie is recommended: one short sentence built from evidence.

For each recommended movie three kinds of evidence are measured, each as a strength on
a common scale (1.0 = "as strong as a liked movie pointing the same way"), and the strongest
one that qualifies is printed, less REPEAT_COST for each pick higher in the user's list
that gave the same sentence (so a list does not say one thing ten times); ties go to the
earlier kind in this list:

  1. similar  "because you rated Heat 5 stars": of the movies the user liked (rated
              RELEVANT, 4 stars, or at least their own average, and at least 3 stars: a
              generous rater's 4 counted too, or someone who gave Heat 5 and Aladdin 4 had
              their animated picks explained by Heat), the one closest to the
              recommendation in the taste space (cosine of `Features.taste()` vectors, the
              pick vectors of the recall model, less the catalogue's mean vector:
              Catalog.taste; ties go to the higher rating).
              Strength = the cosine; qualifies from 0.5. A new user's top rating (--like,
              or --rated at the top of the scale) reads "because you liked Heat". Down a
              user's list, a liked movie already cited costs REPEAT_COST of cosine per
              citation against the others that qualify too: a movie close to everything
              (The Sixth Sense on ml-1m) was the reason for 9 of some users' 10 picks.
  2. genre    "you like Thrillers": the recommendation's genre the user rates furthest above
              their own average, lift = sum(rating - user mean) / (count + 3) over their ratings
              in that genre (the +3 shrinks the lift of a genre rated only once or twice).
              Strength = the lift in stars; qualifies from 0.25 with at least 3 ratings.
  3. group    "popular with 25-34 year-old programmers": users of the same age bucket and
              occupation rate the movie above its overall mean. Their mean, shrunk towards the
              movie's mean by 5 ratings, minus the global mean rating = the strength in stars;
              qualifies from 0.25 with at least 5 ratings from the group. Only for datasets with
              demographics, and users whose age and occupation are both known.

When nothing qualifies the reason is still true: "highly rated overall" (the movie's mean,
shrunk by 10 ratings, beats the global mean by half a star), else "predicted from your ratings"
(the user has some), "predicted from your age and occupation" (none, demographics known) or
"predicted from everyone's ratings". A seen movie (--include-seen) says "you rated it 4 stars";
an explored pick adds "; a random pick for variety".
"""

from __future__ import annotations

import numpy as np

from rec.datasets.contract import RELEVANT
from rec.twotower.foldin import NEW_USER
from rec.twotower.recommending import Catalog, ChunkRatings, Picks, display_title

SIMILAR_MIN = 0.5
REPEAT_COST = 0.1  # cosine a liked movie loses per time it was cited higher in the list
LIKED_MIN = 3.0  # a movie rated below this is never cited as liked
GENRE_PRIOR, GENRE_MIN_COUNT, GENRE_MIN_LIFT = 3.0, 3, 0.25
GROUP_PRIOR, GROUP_MIN_COUNT, GROUP_MIN_LIFT = 5.0, 5, 0.25
OVERALL_MIN_LIFT = 0.5
SIMILAR, GENRE, GROUP = 0, 1, 2  # evidence kinds, in tie-break order

GENRE_PLURALS = {"Action": "Action movies", "Adventure": "Adventures", "Children's": "Children's movies",
                 "Comedy": "Comedies", "Documentary": "Documentaries", "Drama": "Dramas",
                 "Musical": "Musicals", "Mystery": "Mysteries", "Thriller": "Thrillers",
                 "War": "War movies", "Western": "Westerns"}
OCCUPATION_PLURALS = {
    "other": "people", "academic/educator": "academics", "artist": "artists",
    "clerical/admin": "clerical workers", "college/grad student": "college students",
    "customer service": "customer service workers", "doctor/health care": "health workers",
    "executive/managerial": "managers", "farmer": "farmers", "homemaker": "homemakers",
    "K-12 student": "school students", "lawyer": "lawyers", "programmer": "programmers",
    "retired": "retirees", "sales/marketing": "sales people", "scientist": "scientists",
    "self-employed": "self-employed people", "technician/engineer": "engineers",
    "tradesman/craftsman": "craftspeople", "unemployed": "unemployed people", "writer": "writers",
}


def stars(value: float) -> str:
    text = f"{value:g}"
    return f"{text} star" if text == "1" else f"{text} stars"


def group_phrase(age: str, occupation: str) -> str:
    """('25-34', 'programmer') -> '25-34 year-old programmers'."""
    people = OCCUPATION_PLURALS.get(occupation, f"people in {occupation}")
    if age.lower().startswith("under"):
        return f"{people} {age.lower()}"
    return f"{age} year-old {people}"


GROUP_USERS = 64  # users whose likes are compared with their picks in one batched product


def _closest_liked(cat: Catalog, picks: Picks, ratings: ChunkRatings, user_mean: np.ndarray):
    """For each pick, of the movies the user liked (RELEVANT stars or at least their own
    average, and at least LIKED_MIN stars), the one closest to it, less REPEAT_COST for each
    pick higher in the list it was cited for (among those qualifying as similar when the
    closest does): (cosine, movie, rating). Users are taken GROUP_USERS at a time, those whose likes pad
    to the same width (the next power of two of their count) together, and each group's
    (picks x likes) cosines are one batched product (a product per user cost 30x more in
    Python overhead than in arithmetic)."""
    shape = picks.movies.shape
    cosine = np.full(shape, -np.inf, dtype=np.float32)
    movie = np.full(shape, -1, dtype=np.int64)
    rating = np.zeros(shape, dtype=np.float32)
    liked = ratings.value >= np.maximum(np.minimum(user_mean[ratings.pos], RELEVANT), LIKED_MIN)
    pos, lm, lv = ratings.pos[liked], ratings.movie[liked], ratings.value[liked]
    bounds = np.searchsorted(pos, np.arange(shape[0] + 1))
    n_liked = np.diff(bounds)
    users = np.flatnonzero(n_liked > 0)
    # each user's likes padded to a width of their own (the next power of two), users of
    # one width together: BLAS's bits depend on a product's shape, and padded to the
    # group's widest a user's cosines, and so at a near-tie their reasons, changed with the
    # users asked for beside them (`rec recommend 9` against `--all`)
    widths = 1 << np.ceil(np.log2(np.maximum(n_liked, 1))).astype(np.int64)
    users = users[np.lexsort((n_liked[users], widths[users]))]
    pick_taste = cat.taste[picks.movies.clip(0)]  # (B, N, k)
    starts = np.flatnonzero(np.r_[True, widths[users][1:] != widths[users][:-1]])
    groups = [users[a:b][g:g + GROUP_USERS] for a, b in zip(starts, np.r_[starts[1:], len(users)])
              for g in range(0, b - a, GROUP_USERS)]
    for us in groups:
        width = int(widths[us[0]])
        real = np.arange(width)[None, :] < n_liked[us][:, None]  # (G, L)
        at = np.where(real, bounds[us][:, None] + np.arange(width)[None, :], bounds[us][:, None])
        sims = np.matmul(pick_taste[us], cat.taste[lm[at]].transpose(0, 2, 1))  # (G, N, L)
        # never explain a movie by itself, nor by padding
        sims[~real[:, None, :] | (picks.movies[us][:, :, None] == lm[at][:, None, :])] = -np.inf
        j = _spread_citations(sims, picks.movies[us] >= 0)
        cosine[us] = np.take_along_axis(sims, j[..., None], 2)[..., 0]
        found = np.take_along_axis(at, j, 1)
        movie[us], rating[us] = lm[found], lv[found]
    empty = picks.movies < 0
    cosine[empty], movie[empty], rating[empty] = -np.inf, -1, 0
    return cosine, movie, rating


def _spread_citations(sims: np.ndarray, real: np.ndarray) -> np.ndarray:
    """(G, N) index of the liked movie each pick cites, from the (G, N, L) cosines of picks
    (in list order) and liked movies: the closest, less REPEAT_COST per earlier citation of
    the same movie, among the liked movies qualifying (SIMILAR_MIN) when the closest does;
    first of equals = the higher rating (likes sorted best first). `real`: (G, N) picks
    that are movies (not padding)."""
    g, n, _ = sims.shape
    best = sims.max(axis=2)
    cited = np.zeros((g, sims.shape[2]), np.float32)
    out = np.empty((g, n), np.int64)
    users = np.arange(g)
    for i in range(n):
        s = sims[:, i, :]
        floor = np.minimum(best[:, i], SIMILAR_MIN)[:, None]
        j = np.where(s >= floor, s - REPEAT_COST * cited, -np.inf).argmax(axis=1)
        out[:, i] = j
        cited[users, j] += real[:, i] & (s[users, j] >= SIMILAR_MIN)
    return out


def _spread_kinds(strength: np.ndarray, liked_movie: np.ndarray,
                  genre_id: np.ndarray) -> np.ndarray:
    """(B, N) kind of evidence each pick's reason gives, from the kinds' (B, N, 3)
    strengths (-inf: does not qualify), down each list: the strongest less REPEAT_COST for
    each pick higher up that gave the same sentence (the same liked movie, the same genre,
    the user's group); first of equals wins: similar, then genre, then group. "Popular
    with 35-44 year-old customer service workers" was 9 of some users' 10 reasons."""
    b, n, _ = strength.shape
    kind = np.zeros((b, n), np.int64)
    for i in range(n):
        before = kind[:, :i]
        same = np.stack([((before == SIMILAR) & (liked_movie[:, :i] == liked_movie[:, i:i + 1])),
                         ((before == GENRE) & (genre_id[:, :i] == genre_id[:, i:i + 1])),
                         before == GROUP], axis=2).sum(axis=1)  # (B, 3)
        kind[:, i] = (strength[:, i, :] - REPEAT_COST * same).argmax(axis=1)
    return kind


def _genre_lift(cat: Catalog, picks: Picks, ratings: ChunkRatings, user_mean: np.ndarray):
    """For each pick, its genre the user rates furthest above their average: (lift, genre id)."""
    n_users, n_genres = len(user_mean), len(cat.genre_names)
    genres = cat.movie_genres[ratings.movie]  # (R, Gmax)
    deviation = np.repeat(ratings.value - user_mean[ratings.pos], genres.shape[1])
    key = (ratings.pos[:, None] * n_genres + genres).ravel()
    real = genres.ravel() > 0
    key = key[real]
    sums = np.bincount(key, weights=deviation[real], minlength=n_users * n_genres)
    counts = np.bincount(key, minlength=n_users * n_genres)
    lift = (sums / (counts + GENRE_PRIOR)).reshape(n_users, n_genres)
    lift[counts.reshape(n_users, n_genres) < GENRE_MIN_COUNT] = -np.inf  # also kills padding 0
    pick_genres = cat.movie_genres[picks.movies]  # (B, N, Gmax); rows of -1 picks are ignored
    pick_lift = lift[np.arange(n_users)[:, None, None], pick_genres]
    best = pick_lift.argmax(axis=2)
    return (np.take_along_axis(pick_lift, best[..., None], 2)[..., 0],
            np.take_along_axis(pick_genres, best[..., None], 2)[..., 0])


def _group_lift(cat: Catalog, user_rows: np.ndarray, picks: Picks) -> np.ndarray:
    """For each pick, how far the user's age-and-occupation group rates it above the global mean."""
    lift = np.full(picks.movies.shape, -np.inf)
    group = cat.user_group[user_rows]
    if not (group >= 0).any():
        return lift
    sums, counts = cat.group_stats(group)
    g, m = np.maximum(group, 0)[:, None], picks.movies
    n, movie_mean = counts[g, m], cat.movie_mean[m]
    shrunk = (sums[g, m] + GROUP_PRIOR * movie_mean) / (n + GROUP_PRIOR)
    ok = (group[:, None] >= 0) & (n >= GROUP_MIN_COUNT) & (shrunk > movie_mean)
    return np.where(ok, shrunk - cat.global_mean, -np.inf)


def explain(cat: Catalog, user_rows: np.ndarray, picks: Picks, ratings: ChunkRatings) -> list[list[str]]:
    """One short reason per pick (see the module docstring for the rule)."""
    n_users = len(user_rows)
    n_rated = np.bincount(ratings.pos, minlength=n_users)
    user_mean = np.bincount(ratings.pos, weights=ratings.value, minlength=n_users) / np.maximum(n_rated, 1)
    cosine, liked_movie, liked_rating = _closest_liked(cat, picks, ratings, user_mean)
    genre_lift, genre_id = _genre_lift(cat, picks, ratings, user_mean)
    group_lift = _group_lift(cat, user_rows, picks)
    strength = np.stack([np.where(cosine >= SIMILAR_MIN, cosine, -np.inf),
                         np.where(genre_lift >= GENRE_MIN_LIFT, genre_lift, -np.inf),
                         np.where(group_lift >= GROUP_MIN_LIFT, group_lift, -np.inf)], axis=2)
    kind = _spread_kinds(strength, liked_movie, genre_id)
    has_reason = np.isfinite(strength.max(axis=2))
    # a seen movie's own rating (for --include-seen): look (user, movie) up among the ratings
    rated_key = ratings.pos * cat.n_movies + ratings.movie
    order = np.argsort(rated_key, kind="stable")
    rated_key, rated_value = rated_key[order], ratings.value[order]
    pick_key = np.arange(n_users)[:, None] * cat.n_movies + picks.movies
    at = np.searchsorted(rated_key, pick_key).clip(0, max(len(order) - 1, 0))
    seen = (rated_key[at] == pick_key) if len(order) else np.zeros(pick_key.shape, bool)
    group = cat.user_group[user_rows]

    # The sentence of each pick from a code and what it cites, built once per distinct
    # sentence: a key of (code, cited movie, genre or user, stars) per pick, np.unique over
    # them, and the texts gathered back. A call per pick was a tenth of `recommend --all`.
    code = np.select([seen, has_reason & (kind == SIMILAR), has_reason & (kind == GENRE),
                      has_reason, (cat.movie_mean[picks.movies.clip(0)] - cat.global_mean
                                   >= OVERALL_MIN_LIFT), (n_rated > 0)[:, None],
                      (group >= 0)[:, None]], [0, 1, 2, 3, 4, 5, 6], 7)
    rated_stars = rated_value[at] if len(order) else np.zeros(at.shape, np.float32)
    shown = np.arange(picks.movies.shape[1])[None, :] < picks.counts[:, None]
    row = np.broadcast_to(np.arange(n_users)[:, None], shown.shape)[shown]
    code, liked_movie, genre_id = code[shown], liked_movie[shown], genre_id[shown]
    cited = np.select([code == 1, code == 2, code == 3], [liked_movie, genre_id, row], 0)
    star_value = np.select([code == 0, code == 1], [rated_stars[shown], liked_rating[shown]], 0)
    ids = cat.features.user_ids
    new_user = np.array([ids[u] == NEW_USER for u in user_rows.tolist()], bool)  # "liked"
    key = ((code.astype(np.int64) << 59) | (((code == 1) & new_user[row]).astype(np.int64) << 58)
           | (cited.astype(np.int64) << 32) | star_value.astype(np.float32).view(np.uint32))
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    pieces = _Pieces.of(cat)
    users = user_rows[row[first]].tolist()
    texts = np.array([pieces.text(c, u, s, m, s, g) for c, u, s, m, g in zip(
        code[first].tolist(), users, star_value[first].tolist(), liked_movie[first].tolist(),
        genre_id[first].tolist())], dtype=object)
    flat = texts[inverse.reshape(-1)]
    explored = picks.explored[shown]
    if explored.any():  # --explore's draws
        flat[explored] = [f"{t}; a random pick for variety" for t in flat[explored].tolist()]
    flat = flat.tolist()
    bounds = np.concatenate([[0], np.cumsum(picks.counts)]).tolist()
    return [flat[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:])]


CONSTANT = {4: "highly rated overall", 5: "predicted from your ratings",
            6: "predicted from your age and occupation", 7: "predicted from everyone's ratings"}


class _Pieces:
    """Reason texts by code (explain's np.select), each piece built once per catalogue:
    `--all`'s chunks share them (the same liked movies and ratings recur), a dict's reads
    and writes are atomic, and two threads building one text build the same text."""

    def __init__(self, cat: Catalog):
        self.cat, self.similar, self.genre, self.group, self.seen = cat, {}, {}, {}, {}
        self.top_stars = cat.features.scoring.get("clip", [1.0, 5.0])[1]  # what --like gives

    @classmethod
    def of(cls, cat: Catalog) -> "_Pieces":
        pieces = cat.__dict__.get("_reason_pieces")
        if pieces is None:
            pieces = cat.__dict__["_reason_pieces"] = cls(cat)
        return pieces

    def text(self, code: int, user: int, rated: float, liked: int, liked_rating: float,
             genre: int) -> str:
        if code == 1:
            # a new user's --like is the top of the scale: "liked", not "rated ... stars"
            said_liked = (self.cat.features.user_ids[user] == NEW_USER
                          and liked_rating >= self.top_stars)
            key = (liked, liked_rating, said_liked)
            if key not in self.similar:
                title = display_title(self.cat.titles[liked])
                self.similar[key] = (f"because you liked {title}" if said_liked else
                                     f"because you rated {title} {stars(liked_rating)}")
            return self.similar[key]
        if code == 2:
            if genre not in self.genre:
                name = self.cat.genre_names[genre]
                self.genre[genre] = f"you like {GENRE_PLURALS.get(name, name)}"
            return self.genre[genre]
        if code == 3:
            cat = self.cat
            group = (int(cat.user_age[user]), int(cat.user_occupation[user]))
            if group not in self.group:
                self.group[group] = "popular with " + group_phrase(
                    cat.age_labels[group[0]], cat.occupation_labels[group[1]])
            return self.group[group]
        if code == 0:
            if rated not in self.seen:
                self.seen[rated] = f"you rated it {stars(rated)}"
            return self.seen[rated]
        return CONSTANT[code]
