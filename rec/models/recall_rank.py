"""The recall-then-rank two-tower (组合推荐): the default network of `rec train`.

User tower, from the user's training history and the course's demographics:
  - the bag of movies the user rated (binary, L2-normalised; while training a dropout of
    `history_dropout` over it, as in a denoising autoencoder, so the tower learns to name
    movies that are *not* in its input: the caller drops the bag's nonzero entries before
    it builds the dense bag, rec.twotower.fullstep, 30x cheaper than F.dropout over it),
  - the bag of their ratings (centred on the training mean, normalised the same way),
  - gender, age and occupation embeddings (index 0 = unknown).
The user id is not an input: a user is what they rated, so a new user is computed from
their ratings (fold-in) the same way as a known one.

Movie tower, the course's features: movie id embedding, genres (mean of the real genres'
embeddings, padding ignored) and title words (TextConv, the course's text convolution).

Both towers are linear after their embeddings, and two heads share them:
  pick   u . m + b_m           logits of a softmax over the catalogue: which movie the
                               user picks (recall)
  rating mean + r_u . r_m + b_u + b'_m   the stars the user would give (rank)

`user_vectors` / `movie_vectors` return what save-features stores, [u, 1, r_u, b_u, 1] and
[m, b_m, r_m, 1, b'_m]: the pick score is the dot product of the first tower_dim + 1
components, the rating the global mean plus the dot product of the rest.
Inputs are index arrays and dense bags built by the caller (rec.twotower.recall_rank): the
network reads no files.
"""

from __future__ import annotations

from dataclasses import dataclass

import paddle
import paddle.nn as nn

from rec.models.two_tower import MovieContent, MovieLensConfig


@dataclass
class RecallRankConfig(MovieLensConfig):
    # vocabulary sizes (from vocab.json) and padded widths (from the arrays)
    n_movies: int
    n_genders: int
    n_ages: int
    n_occupations: int
    n_genres: int
    n_title_words: int
    genre_len: int
    title_len: int
    # architecture
    match: str = "softmax"
    tower_dim: int = 64  # the pick (taste) vectors
    rating_dim: int = 32  # the rating head's vectors
    feature_dim: int = 16  # demographic, genre and title word embeddings
    title_windows: tuple = (2, 3)
    title_channels: int = 16
    history_dropout: float = 0.5
    global_mean: float = 3.5
    rating_range: tuple = (1.0, 5.0)
    like_weight: float = 0.25  # the order's weight of log P(like), chosen on the tuning slice
    # the catalogue-sized tables (movies, title words) give row-sparse gradients: a sampled
    # step (rec.twotower.sampled) touches a sixth of ml-25m's 62k movies, and a lazy Adam
    # then updates only those rows instead of every row of every table
    sparse_embeddings: bool = False


class HistoryUserTower(nn.Layer):
    def __init__(self, c: RecallRankConfig):
        super().__init__()
        self.history_emb = nn.Embedding(c.n_movies, c.tower_dim,  # used as a matrix
                                        sparse=c.sparse_embeddings)
        self.rated_emb = nn.Embedding(c.n_movies, c.tower_dim, sparse=c.sparse_embeddings)
        self.gender_emb = nn.Embedding(c.n_genders, c.feature_dim)
        self.age_emb = nn.Embedding(c.n_ages, c.feature_dim)
        self.occupation_emb = nn.Embedding(c.n_occupations, c.feature_dim)
        width = c.tower_dim + 3 * c.feature_dim
        self.pick = nn.Linear(width, c.tower_dim)
        self.rating = nn.Linear(width + c.tower_dim, c.rating_dim + 1)  # [r_u, b_u]

    def forward(self, demographics, watched, rated, columns=None):
        """demographics (B, 3) [gender, age, occupation]; watched (B, M) 0/1 and rated (B, M)
        centred ratings, each row already divided by sqrt(its count), and while training
        already dropped out (history_dropout) by the caller. -> (u, [r_u, b_u]).
        With `columns` (K,) movie ids the bags are (B, K) over those movies only (every
        movie of the users' bags among them): the same function, no (B, n_movies) matrix."""
        demo = paddle.concat([self.gender_emb(demographics[:, 0]), self.age_emb(demographics[:, 1]),
                              self.occupation_emb(demographics[:, 2])], axis=-1)
        if columns is None:
            history, rated_table = self.history_emb.weight, self.rated_emb.weight
        else:
            history, rated_table = self.history_emb(columns), self.rated_emb(columns)
        z = paddle.concat([paddle.matmul(watched, history), demo], axis=-1)
        rz = paddle.concat([z, paddle.matmul(rated, rated_table)], axis=-1)
        return self.pick(z), self.rating(rz)


class ContentMovieTower(nn.Layer, MovieContent):
    def __init__(self, c: RecallRankConfig):
        super().__init__()
        self.movie_emb = nn.Embedding(c.n_movies, c.tower_dim, sparse=c.sparse_embeddings)
        width = c.tower_dim + self.add_content_layers(c)
        self.pick = nn.Linear(width, c.tower_dim + 1)  # [m, b_m]
        self.rating = nn.Linear(width, c.rating_dim + 1)  # [r_m, b'_m]

    def forward(self, movie_ids, genres, titles):
        z = paddle.concat([self.movie_emb(movie_ids), self.content(genres, titles)], axis=-1)
        return self.pick(z), self.rating(z)


class RecallRankTwoTower(nn.Layer):
    def __init__(self, c: RecallRankConfig):
        super().__init__()
        self.config = c
        self.user_tower = HistoryUserTower(c)
        self.movie_tower = ContentMovieTower(c)

    def forward(self, demographics, watched, rated, movie_ids, genres, titles, columns=None,
                centred: bool = False):
        """(pick logits (B, n), predicted ratings (B, n)) for B users and n movies; `columns`:
        see HistoryUserTower.forward (the sampled softmax passes its candidate movies).
        `centred`: the ratings less the global mean, for a caller that adds it to the few
        entries it reads (training: the same numbers, without a pass over the B x n matrix
        forward and backward, 3-5 ms of an ml-1m step)."""
        u, ru = self.user_tower(demographics, watched, rated, columns)
        m, rm = self.movie_tower(movie_ids, genres, titles)
        return self.pick_logits(u, m), self.ratings(ru, rm, centred)

    # Each head is one matmul of the vectors save-features stores ([u, 1] . [m, b_m] and
    # [r_u, b_u, 1] . [r_m, 1, b'_m]): the bias terms ride inside the product instead of
    # being added over the (B, n) result, which costs as much as the product on CPU.
    @staticmethod
    def pick_logits(u, m):
        return paddle.matmul(paddle.concat([u, paddle.ones_like(u[:, :1])], axis=-1), m,
                             transpose_y=True)

    # The rating head as [r_u, 1, b_u] . [r_m, b'_m, 1]: the same sum as the saved vectors'
    # [r_u, b_u, 1] . [r_m, 1, b'_m], with the reordering done on the batch's user rows, not
    # on the catalogue's (Paddle's slice and concat gradients over n rows cost 7 ms a step
    # at ml-25m's 11k candidates: 8 % of a sampled step, 3 % of a full ml-1m one).
    def ratings(self, ru, rm, centred: bool = False):
        user = paddle.concat([ru[:, :-1], paddle.ones_like(ru[:, :1]), ru[:, -1:]], axis=-1)
        movie = paddle.concat([rm, paddle.ones_like(rm[:, :1])], axis=-1)
        product = paddle.matmul(user, movie, transpose_y=True)
        return product if centred else self.config.global_mean + product

    def user_vectors(self, demographics, watched, rated, columns=None):
        u, ru = self.user_tower(demographics, watched, rated, columns)
        ones = paddle.ones_like(u[:, :1])
        return paddle.concat([u, ones, ru, ones], axis=-1)

    def movie_vectors(self, movie_ids, genres, titles):
        m, rm = self.movie_tower(movie_ids, genres, titles)
        ones = paddle.ones_like(m[:, :1])
        return paddle.concat([m, rm[:, :-1], ones, rm[:, -1:]], axis=-1)

    def scoring(self) -> dict:
        """How rec.scoring reads the saved vectors (the like-calibration is added by training)."""
        c = self.config
        return {"match": "softmax", "taste_dims": c.tower_dim, "split": c.tower_dim + 1,
                "offset": c.global_mean, "clip": list(c.rating_range)}

    def fold_in_parts(self) -> dict:
        """The user tower as per-movie and per-demographic pieces (numpy), so a user's
        vectors are a sum over what they rated: for ratings r_j of movies j (n of them) and
        demographics (g, a, o),
            u   = sum_j watched_pick[j] / sqrt(n) + gender_pick[g] + age_pick[a]
                  + occupation_pick[o] + bias_pick
            r_u = sum_j (watched_rating[j] + (r_j - mean) rated_rating[j]) / sqrt(n)
                  + gender_rating[g] + age_rating[a] + occupation_rating[o] + bias_rating
        exactly the tower in evaluation mode (rec.twotower.foldin computes it)."""
        t, c = self.user_tower, self.config
        d, f = c.tower_dim, c.feature_dim
        wp, wr = t.pick.weight.numpy(), t.rating.weight.numpy()  # (in, out)
        hist, rated = t.history_emb.weight.numpy(), t.rated_emb.weight.numpy()
        parts = {"watched_pick": hist @ wp[:d], "watched_rating": hist @ wr[:d],
                 "rated_rating": rated @ wr[d + 3 * f:], "bias_pick": t.pick.bias.numpy(),
                 "bias_rating": t.rating.bias.numpy()}
        for i, name in enumerate(("gender", "age", "occupation")):
            table = getattr(t, f"{name}_emb").weight.numpy()
            parts[f"{name}_pick"] = table @ wp[d + i * f: d + (i + 1) * f]
            parts[f"{name}_rating"] = table @ wr[d + i * f: d + (i + 1) * f]
        return {k: v.astype("float32") for k, v in parts.items()}
