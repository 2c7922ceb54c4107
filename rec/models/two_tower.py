"""The course's two-tower rating network, with its faults fixed.

User tower: embeddings of user id, gender, age bucket, occupation -> one FC per feature ->
concat -> FC. Movie tower: embeddings of movie id, genres (mean over the real genres; the 0
padding is ignored) and title words (a text convolution over the padded word sequence, then
a max over the real positions) -> FC per feature -> concat -> FC. The towers share nothing.

Matching:
  cosine  the course's score: 5 * cos(u, m)
  dot     mean + u.m + b_u + b_m, where the bias terms ride along as two extra vector
          components ([u, b_u, 1] . [m, 1, b_m]), so recommendation stays a vector search.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F


class MovieLensConfig:
    """JSON round trip of a MovieLens network's config dataclass (the tuples come back as
    tuples): what output/model/config.json holds under "model"."""

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict):
        obj = dict(obj)
        obj["title_windows"] = tuple(obj.get("title_windows", (2, 3)))
        obj["rating_range"] = tuple(obj.get("rating_range", (1.0, 5.0)))
        return cls(**obj)


@dataclass
class TwoTowerConfig(MovieLensConfig):
    # vocabulary sizes (from vocab.json) and padded widths (from the arrays)
    n_users: int
    n_genders: int
    n_ages: int
    n_occupations: int
    n_movies: int
    n_genres: int
    n_title_words: int
    genre_len: int
    title_len: int
    # architecture
    match: str = "dot"  # dot | cosine
    id_dim: int = 32  # user and movie id embeddings
    feature_dim: int = 16  # demographic, genre and title word embeddings
    title_windows: tuple = (2, 3)  # text convolution widths (words)
    title_channels: int = 16
    tower_dim: int = 32  # size of each tower's output vector
    dropout: float = 0.1
    cosine_scale: float = 5.0
    global_mean: float = 3.5  # training-set mean rating, the dot match's offset
    rating_range: tuple = (1.0, 5.0)


class TextConv(nn.Layer):
    """A text convolution over a padded word sequence: for each window width k, every run of
    k consecutive words -> ReLU(Linear(concat of their embeddings)) -> max over positions.

    The same function as the course's Conv2D with a (k, dim) kernel, built differently for
    speed on CPU: the windows are gathered as word *ids* (no gradient), embedded in one
    lookup, and pooled with a 2-D max pool. (Slicing float tensors and Tensor.max have slow
    backward passes in Paddle 3.3 on CPU: 100 ms instead of 3 ms per batch of 1024.)"""

    def __init__(self, n_words: int, dim: int, windows: tuple, channels: int, length: int,
                 sparse: bool = False):
        super().__init__()
        self.word_emb = nn.Embedding(n_words, dim, padding_idx=0, sparse=sparse)
        self.windows = tuple(min(k, length) for k in windows)
        self.projections = nn.LayerList([nn.Linear(k * dim, channels) for k in self.windows])
        for k in self.windows:  # word positions of every window, position-major
            n_pos = length - k + 1
            positions = np.stack([np.arange(i, i + k) for i in range(n_pos)]).reshape(-1)
            self.register_buffer(f"positions_{k}", paddle.to_tensor(positions), persistable=False)

    def forward(self, titles: paddle.Tensor) -> paddle.Tensor:
        # titles: (B, T) word ids, 0 = padding
        batch, dim = titles.shape[0], self.word_emb._embedding_dim
        pooled = []
        for k, proj in zip(self.windows, self.projections):
            windows = paddle.index_select(titles, getattr(self, f"positions_{k}"), axis=1)
            n_pos = windows.shape[1] // k
            windows = windows.reshape([batch, n_pos, k])
            # 2-D matmul: faster than Linear over a 3-D tensor on CPU
            h = F.relu(proj(self.word_emb(windows).reshape([batch * n_pos, k * dim])))
            h = h.reshape([batch, 1, n_pos, -1])
            # A window counts if its first word is real; ReLU output is >= 0, so zeroing the
            # others leaves the max over real windows (0 for a title with no known words).
            h = h * (windows[:, :, :1] > 0).astype(h.dtype).unsqueeze(1)
            # max over positions as a (n_pos, 1) 2-D pool: no transpose, and 5 ms against
            # max_pool1d's 20 (Tensor.max: 160) forward + backward for ml-1m's 3,883 titles
            pooled.append(F.max_pool2d(h, kernel_size=(n_pos, 1)).reshape([batch, -1]))
        return paddle.concat(pooled, axis=-1)


class UserTower(nn.Layer):
    def __init__(self, c: TwoTowerConfig):
        super().__init__()
        self.user_emb = nn.Embedding(c.n_users, c.id_dim)
        self.gender_emb = nn.Embedding(c.n_genders, c.feature_dim)
        self.age_emb = nn.Embedding(c.n_ages, c.feature_dim)
        self.occupation_emb = nn.Embedding(c.n_occupations, c.feature_dim)
        self.user_fc = nn.Linear(c.id_dim, c.id_dim)
        self.demo_fc = nn.Linear(3 * c.feature_dim, c.id_dim)
        self.out = nn.Linear(2 * c.id_dim, c.tower_dim)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, users: paddle.Tensor) -> paddle.Tensor:
        # users: (B, 4) int64 rows of users.npy [id, gender, age, occupation]
        uid = F.relu(self.user_fc(self.user_emb(users[:, 0])))
        demo = paddle.concat([self.gender_emb(users[:, 1]), self.age_emb(users[:, 2]),
                              self.occupation_emb(users[:, 3])], axis=-1)
        demo = F.relu(self.demo_fc(demo))
        return self.out(self.dropout(paddle.concat([uid, demo], axis=-1)))


class MovieContent:
    """The course's movie content features, shared by both movie towers: genres (mean of
    the real genres' embeddings, padding ignored) and title words (TextConv). A mixin: the
    layers stay attributes of the tower, so saved weights keep their names."""

    def add_content_layers(self, c) -> int:
        """Create genre_emb and title_conv; return the width of `content()`."""
        self.genre_emb = nn.Embedding(c.n_genres, c.feature_dim, padding_idx=0)
        self.title_conv = TextConv(c.n_title_words, c.feature_dim, c.title_windows,
                                   c.title_channels, c.title_len,
                                   getattr(c, "sparse_embeddings", False))
        return c.feature_dim + len(c.title_windows) * c.title_channels

    def content(self, genres: paddle.Tensor, titles: paddle.Tensor) -> paddle.Tensor:
        genre_mask = (genres > 0).astype("float32")
        genre = self.genre_emb(genres).sum(axis=1) / genre_mask.sum(axis=1, keepdim=True).clip(min=1.0)
        return paddle.concat([genre, self.title_conv(titles)], axis=-1)


class MovieTower(nn.Layer, MovieContent):
    def __init__(self, c: TwoTowerConfig):
        super().__init__()
        self.movie_emb = nn.Embedding(c.n_movies, c.id_dim)
        self.add_content_layers(c)
        self.movie_fc = nn.Linear(c.id_dim, c.id_dim)
        self.content_fc = nn.Linear(c.feature_dim + len(c.title_windows) * c.title_channels,
                                    c.id_dim)
        self.out = nn.Linear(2 * c.id_dim, c.tower_dim)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, movie_ids: paddle.Tensor, genres: paddle.Tensor,
                titles: paddle.Tensor) -> paddle.Tensor:
        mid = F.relu(self.movie_fc(self.movie_emb(movie_ids)))
        content = F.relu(self.content_fc(self.content(genres, titles)))
        return self.out(self.dropout(paddle.concat([mid, content], axis=-1)))


class TwoTower(nn.Layer):
    """Predicts a rating from a user's feature row and a movie's id, genres and title."""

    def __init__(self, c: TwoTowerConfig):
        super().__init__()
        if c.match not in ("dot", "cosine"):
            raise ValueError(f"unknown match {c.match!r}")
        self.config = c
        self.user_tower = UserTower(c)
        self.movie_tower = MovieTower(c)
        if c.match == "dot":
            zeros = nn.initializer.Constant(0.0)
            self.user_bias = nn.Embedding(c.n_users, 1, weight_attr=paddle.ParamAttr(initializer=zeros))
            self.movie_bias = nn.Embedding(c.n_movies, 1, weight_attr=paddle.ParamAttr(initializer=zeros))

    def user_vectors(self, users: paddle.Tensor) -> paddle.Tensor:
        """What save-features stores per user: [u, b_u, 1] (dot) or u (cosine)."""
        u = self.user_tower(users)
        if self.config.match == "cosine":
            return u
        return paddle.concat([u, self.user_bias(users[:, 0]), paddle.ones_like(u[:, :1])], axis=-1)

    def movie_vectors(self, movie_ids, genres, titles) -> paddle.Tensor:
        """What save-features stores per movie: [m, 1, b_m] (dot) or m (cosine)."""
        m = self.movie_tower(movie_ids, genres, titles)
        if self.config.match == "cosine":
            return m
        return paddle.concat([m, paddle.ones_like(m[:, :1]), self.movie_bias(movie_ids)], axis=-1)

    def match(self, u: paddle.Tensor, m: paddle.Tensor) -> paddle.Tensor:
        c = self.config
        if c.match == "cosine":
            return c.cosine_scale * F.cosine_similarity(u, m, axis=-1)
        return c.global_mean + (u * m).sum(axis=-1)

    def forward(self, users, movie_ids, genres, titles, user_index=None,
                movie_index=None) -> paddle.Tensor:
        """Predicted ratings. With `user_index` / `movie_index`, the user (movie) inputs are
        the batch's distinct users (movies) and index[i] says which one sample i has: a batch
        holds many repeats, so each tower runs once per distinct user or movie."""
        u = self.user_vectors(users)
        m = self.movie_vectors(movie_ids, genres, titles)
        if user_index is not None:
            u = paddle.gather(u, user_index)
        if movie_index is not None:
            m = paddle.gather(m, movie_index)
        return self.match(u, m)

    def scoring(self) -> dict:
        """How features.score() reproduces `match` from the saved vectors."""
        c = self.config
        if c.match == "cosine":
            return {"match": "cosine", "scale": c.cosine_scale, "offset": 0.0,
                    "clip": list(c.rating_range), "taste_dims": c.tower_dim}
        return {"match": "dot", "scale": 1.0, "offset": c.global_mean,
                "clip": list(c.rating_range), "taste_dims": c.tower_dim}
