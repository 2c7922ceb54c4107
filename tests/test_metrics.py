"""rec.metrics.ranking_metrics scoring several models from one shared computation."""

from __future__ import annotations

import numpy as np

from rec.metrics import ranking_metrics


def test_several_models_scored_at_once_get_what_each_gets_alone():
    rng = np.random.default_rng(3)
    n_users, n_movies = 40, 25
    seen = rng.integers(0, n_users, 200), rng.integers(0, n_movies, 200)
    rel = rng.integers(0, n_users, 60), rng.integers(0, n_movies, 60)
    models = {name: rng.normal(size=(n_users, n_movies)) for name in ("a", "b", "c")}
    args = dict(n_users=n_users, n_movies=n_movies, seen_users=seen[0], seen_movies=seen[1],
                relevant_users=rel[0], relevant_movies=rel[1], k=5, chunk=7,
                movie_counts=np.bincount(seen[1], minlength=n_movies))
    calls = []

    def together(users):
        calls.append(len(users))
        return {name: s[users] for name, s in models.items()}

    both = ranking_metrics(together, **args)
    assert sum(calls) == len(np.unique(rel[0]))  # each chunk scored once for all three
    for name, s in models.items():
        alone = ranking_metrics(lambda users: s[users], **args)
        assert both[name] == alone
        assert 0 < alone["hr@5"] <= 1 and set(alone) == {"hr@5", "ndcg@5", "ranked_users",
                                                          "long_tail@5", "coverage@5"}
