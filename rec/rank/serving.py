"""Serving recall then rank in numpy (no paddle): `rec recommend` and `rec evaluate`.

`load_ranker(paths, features, dataset)` reads output/ctr/model when it holds a rank model
built for exactly these features and this dataset (fresh), None when there is none, an
error saying why otherwise: recommend then serves the two-tower's order alone and says why,
evaluate measures the channels alone and says why.
`serving_stack` builds the Stack of rec.rank.features for the real dataset: EASE as
save-features fitted it (all training ratings, the λ chosen on the tuning slice),
popularity from the training counts. `ranked(stack, ranker, block)` gives each user's
candidates and their rank logits.

Safe to call from several threads at once (recommend --all and evaluate score two blocks
of users in parallel; numpy and scipy release the GIL): nothing here keeps state between
blocks but evaluation_scorer's count of candidate hits, taken under a lock (and EASE's
B, copied into blocks of columns once, under a lock: rec.metrics.ColumnBlocks).
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass

import numpy as np

from rec.datasets.contract import Dataset, is_dataset
from rec.errors import RecError, UsageError
from rec.metrics import dense_chunk
from rec.paths import EASE, read_json, reading
from rec.rank.easefile import load_item_models
from rec.rank.features import (LAYOUT, Block, Stack, known_block,
                               popularity_penalised, two_tower_blended)
from rec.rank.forward import NumpyRanker
from rec.rank.ordering import descending_order
from rec.shortlists import Shortlist
from rec.storage import snapshot as snapshots, unit

RUN = "rec ctr-train --data movielens"
# the note of a rank model evaluate refused (stale, damaged, not finite): a warning, as
# recommend's, where the other notes are progress (--quiet hides those)
NOT_EVALUATED = "rank stage not evaluated: "
# what a features folder without EASE's file says, wherever it is found (recommend, evaluate,
# ctr-train): saved by an older rec, or the file removed
NO_EASE = (f"output/features has no EASE channel ({EASE} missing: saved by an older rec, or "
           "removed): run `rec save-features` again")


@dataclass
class RankModel:
    net: NumpyRanker
    config: dict

    @property
    def k(self) -> int:
        """Each channel's top k it ranks (its candidates)."""
        return int(self.config["features"]["k"])

    @property
    def scale_k(self) -> int:
        """The top k it was trained with, which scales its log-rank features (its k for a
        model saved before the two could differ)."""
        return int(self.config["features"].get("scale_k", self.k))

    @property
    def penalty(self) -> float:
        """The order's popularity penalty (0 for a model saved before there was one)."""
        return float(self.config.get("order", {}).get("popularity_penalty", 0.0))

    @property
    def blend(self) -> float:
        """The order's two-tower blend (0 for a model saved before there was one)."""
        return float(self.config.get("order", {}).get("two_tower_blend", 0.0))

    def order(self, x: np.ndarray, keys=None) -> np.ndarray:
        """The rank stage's order of candidates x (rows, n_features): the network's logits
        less the model's popularity penalty (older models) plus its two-tower blend.
        `keys`: each row's (its user's and movie's: rec.lanes), None for a plain product."""
        return two_tower_blended(popularity_penalised(self.net.logits(x, keys), x,
                                                      self.penalty), x, self.blend)


def has_item_models(features) -> bool:
    """Whether saved features hold the EASE and PureSVD channels (EASE's file and the
    channels' settings): else NO_EASE, wherever they are needed."""
    return EASE in features.extra and "svd_rank" in features.scoring.get("channels", {})


def load_ranker(paths, features, dataset: Dataset) -> RankModel | None:
    """The rank model of output/ctr/model, or None when there is none (or a CTR model of
    another kind); a UsageError when it was built for other features, another dataset or
    an older layout, or holds weights that are not finite numbers; a RecError when its
    files are damaged or not of one run."""
    best = paths.ctr
    if not best.config.is_file():
        return None
    return snapshots.read(best.best, lambda snapshot: _load(snapshot, paths, features, dataset))


def _load(snapshot, paths, features, dataset) -> RankModel | None:
    best = paths.ctr
    if not snapshot.is_file(best.config.name):
        return None
    config = read_json(best.config, RUN, keys=("features", "model"), snapshot=snapshot)
    with reading(best.config, RUN):
        if config["features"].get("kind") != "rank":
            return None
        features_run = config["features"]["features_run"]
    if config["features"].get("layout") != LAYOUT:
        raise UsageError("the rank model was built with another feature layout (an older "
                         f"rec): run `{RUN}` again")
    if features_run != features.scoring.get("run_id"):
        raise UsageError("the rank model was trained on other saved features: " +
                         _rerun(features))
    if not is_dataset(config.get("data_fingerprint"), paths, dataset):
        raise UsageError(f"the rank model was trained on another output/dataset: run `{RUN}` "
                         "again")
    if not snapshot.is_file(best.weights.name):
        raise UsageError(f"missing {best.weights}: run `{RUN}` first")
    with reading(best.weights, RUN):
        with np.load(io.BytesIO(snapshot.read_bytes(best.weights.name)),
                     allow_pickle=False) as z:
            net = NumpyRanker({k: z[k] for k in z.files})
    # checked once it is known to be a rank model (another kind is not read further)
    unit.check(snapshot, RUN, {}, snapshot.loaded)
    model = RankModel(net, config)
    # a whole run's model can still hold NaN (a diverged run, a file written by other means
    # and resealed): NaN logits, or a NaN penalty or blend, would order every list by nothing
    if not (net.all_finite() and np.isfinite(model.penalty) and np.isfinite(model.blend)):
        raise UsageError(f"{best.best} holds weights that are not finite numbers: run "
                         f"`{RUN}` again")
    return model


def _rerun(features) -> str:
    """What to run for a rank model the saved features outdate: ctr-train again, unless
    they are a model of a kind it cannot stack on (`rec train --match dot`), where that
    refuses: then the way back to the default two-tower, or out of the rank stage."""
    from rec.twotower.kinds import KINDS

    kind = KINDS.get(features.scoring.get("match"))
    if kind is None or kind.recalls:
        return f"run `{RUN}` again"
    return (f"the rank stage stacks on the default two-tower, not on these (--match "
            f"{kind.name}): `rec train` without --match, or remove output/ctr/model (a CTR "
            f"model instead: `{RUN} --model wide_deep`)")


def serving_stack(features, dataset: Dataset, k: int, few_users: bool = False,
                  scale_k: int = 0) -> Stack:
    """The Stack over the real dataset (feature rows must be the dataset's indices), each
    channel's top `k` the candidates (`scale_k`: the rank model's, Stack.scale_k).
    `few_users`: it scores at most FEW_USERS users (rec.rank.channels), which read a few
    rows of EASE's B, each checked as read (rec.rank.easefile), not all of it at once."""
    if not has_item_models(features):
        raise UsageError(f"{NO_EASE}, or `rec recommend --recall-only` for the two-tower's "
                         "order alone")
    stack = Stack.over(dataset, features.movies, features.scoring,
                       load_item_models(features.extra[EASE], f"output/features/{EASE}",
                                        rows_only=few_users), k)
    stack.scale_k = scale_k
    return stack


def ranked(stack: Stack, model: RankModel, block: Block, scores: dict | None = None,
           tops: dict | None = None):
    """(candidates (B, C) padded with -1, logits (B, C) with -inf on padding, the channels
    that rank each candidate best (B, C, n channels) bool). `scores`: the block's
    channel_scores when already computed; `tops`: Stack.select's, filled in."""
    if scores is None:
        scores = stack.channel_scores(block)
    cand, by = stack.select(scores, tops=tops)
    ranks = {}
    x = stack.features(block, cand, by, scores, ranks)
    valid = cand >= 0
    logits = np.full(cand.shape, -np.inf, np.float32)
    # padding is a quarter of the rows on ml-1m. A candidate's row is keyed by its user and
    # movie (rec.lanes), spread over the lanes: by the movie alone a movie everyone gets
    # filled one lane, and the padded rows were twice the candidates
    keys = None if block.keys is None else \
        np.asarray(block.keys, np.int64)[np.nonzero(valid)[0]] * 67 + cand[valid]
    logits[valid] = model.order(x[valid], keys)
    return cand, logits, best_channels(ranks, by)


def best_channels(ranks: dict, found_by: np.ndarray) -> np.ndarray:
    """For each candidate, the channels (among those whose top K found it) that rank it
    highest among the user's candidates: what a reason names. `ranks`: each channel's
    log-rank column (Stack.features' `ranks`, x's rank_columns on the candidates: read
    there, not gathered from x's rows)."""
    from rec.rank.channels import CHANNELS

    ranks = np.stack([ranks[name] for name in CHANNELS], axis=-1)
    ranks = np.where(found_by, ranks, np.inf)
    return found_by & (ranks <= ranks.min(axis=-1, keepdims=True) + 1e-6)


def evaluation_scorer(stack: Stack, model: RankModel | None, dataset: Dataset,
                      user_vecs: np.ndarray, relevant: tuple):
    """ranking_metrics' score_chunk for evaluate, one pass over the users: each channel
    alone and (with a rank model) the ranked list, from one channel_scores per block of
    users ({name: (B, n_movies)}; the ranked list is -inf off the ranked candidates, so it
    is exactly them). With a rank model each comes as a rec.shortlists.Shortlist: a
    channel's top k, the candidates. It counts on the way how many of the `relevant`
    (users, movies) pairs are among their user's candidates (`hits`: the candidate
    recall's numerator)."""
    order = np.argsort(relevant[0], kind="stable")
    rel_users, rel_movies = relevant[0][order], relevant[1][order]
    state = {"hits": 0}
    counting = threading.Lock()  # ranking_metrics may score chunks in several threads

    def score_chunk(users: np.ndarray) -> dict:
        block = known_block(dataset, user_vecs, users)
        block.keys = users  # as recommend keys them: the same scores (rec.lanes)
        scores = stack.channel_scores(block)
        out = {name: scores[name] for name in ("two_tower", "ease", "svd", "popularity")}
        if model is None:
            return out
        tops = {}
        cand, logits, _ = ranked(stack, model, block, scores, tops)
        # each channel's top 10 is among its top k (select's), the ranked list's among
        # the candidates: ranked there alone (rec.shortlists), the same metrics
        for name, top in tops.items():
            values = np.take_along_axis(scores[name], top, 1)
            out[name] = Shortlist(top, values, values.min(axis=1, initial=np.inf),
                                  lambda rows, s=scores[name]: s[rows])

        def ranked_rows(rows: np.ndarray) -> np.ndarray:  # -inf off the candidates
            full = np.full((len(rows), dataset.n_movies), -np.inf, np.float32)
            ok = cand[rows] >= 0
            full[np.nonzero(ok)[0], cand[rows][ok]] = logits[rows][ok]
            return full
        out["ranked"] = Shortlist(cand, logits, np.full(len(users), -np.inf), ranked_rows)
        hits = candidate_hits(cand, users, rel_users, rel_movies, dataset.n_movies)
        with counting:
            state["hits"] += hits
        return out
    score_chunk.state = state
    return score_chunk


def report(paths, dataset: Dataset, rank_args: dict, relevant: tuple,
           features=None) -> tuple[dict, list]:
    """({channels, candidate_recall, ranked (or None), ease_tuned, selection}, notes) on
    the evaluation split: each channel alone, the candidates' recall and the ranked list
    (when output/ctr/model holds a fresh rank model), from output/features (numpy):
    `features` when the caller has read them (they lose the EASE file's bytes, read into
    the stack's matrices), else read here."""
    from rec.metrics import ranking_metrics
    from rec.twotower.features import load_features

    notes = []
    if features is None:
        try:
            features = load_features(paths.features_dir)
        except UsageError as e:
            return {}, [f"recall channels and the rank stage not evaluated: {e}"]
    if not features.of_vocab(dataset.vocab):
        return {}, ["recall channels and the rank stage not evaluated: output/features is "
                    "not of this dataset: run `rec save-features`"]
    if EASE not in features.extra:
        return {}, [f"recall channels and the rank stage not evaluated: {NO_EASE}"]
    try:
        model = load_ranker(paths, features, dataset)
    except RecError as e:  # stale or damaged: the channels alone, as recommend serves them
        model = None
        notes.append(f"{NOT_EVALUATED}{e}")
    stack = serving_stack(features, dataset, model.k if model else 100, False,
                          model.scale_k if model else 0)
    # the file mapped beside B's blocks (55 MB on ml-1m, 380 on ml-latest-small; its pages
    # count in the peak once read): B is copied into its blocks of columns now, before the
    # scoring threads hold their users' scores (ml-latest-small's peak 786 MB, 853 with the
    # copy later), and the mapping let go
    features.extra.pop(EASE, None)
    stack.ease.b.blocks
    scorer = evaluation_scorer(stack, model, dataset, features.users, relevant)
    metrics = ranking_metrics(scorer, **rank_args)
    ranked_list = metrics.pop("ranked", None)
    out = {"channels": metrics, "ease_lambda": stack.ease.lam, "ranked": ranked_list}
    if model is not None:
        out["candidate_recall"] = scorer.state["hits"] / max(len(relevant[0]), 1)
        out["k"] = model.k
    elif not notes:
        notes.append(f"no rank model: run `{RUN}` for the ranked list")
    out["selection"] = {"ease": features.scoring.get("channels"),
                        "rank": model.config.get("selection") if model else None}
    return out, notes


# --- the candidates' recall (rec.rank.fit's K; evaluate) ----------------------------------


def candidate_recall(stack: Stack, dataset, user_vecs: np.ndarray, users: np.ndarray,
                     movies: np.ndarray, k: int | None = None, chunk: int | None = None) -> float:
    """Share of the relevant (users[i], movies[i]) pairs among their user's candidates
    (each channel's top `k`, default the stack's): the ceiling of any ranked list."""
    # a block's channel scores are several (users x catalogue) arrays: fewer users at once on
    # a large catalogue (134 at ml-25m's 62k movies, 1 GB less at the peak than 512)
    chunk = chunk or dense_chunk(dataset.n_movies, 512)
    hit = 0
    order = np.argsort(users, kind="stable")
    users, movies = users[order], movies[order]
    distinct = np.unique(users)
    for s in range(0, len(distinct), chunk):
        block = distinct[s: s + chunk]
        cand, _, _ = stack.candidates(known_block(dataset, user_vecs, block), k)
        hit += candidate_hits(cand, block, users, movies, dataset.n_movies)
    return hit / max(len(users), 1)


def candidate_hits(cand: np.ndarray, block: np.ndarray, users: np.ndarray,
                   movies: np.ndarray, n_movies: int) -> int:
    """How many of the (users[i], movies[i]) pairs (sorted by user) whose user is in
    `block` (sorted users; `cand` their candidates, padded with -1) are candidates: the
    candidate recall's numerator, for candidate_recall and evaluate's one pass."""
    member = np.zeros((len(block), n_movies), bool)
    ok = cand >= 0
    member[np.nonzero(ok)[0], cand[ok]] = True
    lo, hi = np.searchsorted(users, block[0]), np.searchsorted(users, block[-1], "right")
    pos = np.searchsorted(block, users[lo:hi])
    mine = (pos < len(block)) & (block[np.minimum(pos, len(block) - 1)] == users[lo:hi])
    return int(member[pos[mine], movies[lo:hi][mine]].sum())


CHANNEL_NAMES = {"two_tower": "two-tower", "ease": "EASE", "svd": "PureSVD",
                 "popularity": "popularity"}


def found_by_texts(flags: np.ndarray) -> np.ndarray:
    """'two-tower, EASE' for each candidate of best_channels (..., n channels): each set
    of channels is written once (there are 2**4), then looked up."""
    from rec.rank.channels import CHANNELS

    n = len(CHANNELS)
    texts = np.array([", ".join(CHANNEL_NAMES[c] for i, c in enumerate(CHANNELS)
                                if code >> i & 1) for code in range(2 ** n)], dtype=object)
    return texts[flags.astype(np.int64) @ (1 << np.arange(n))]


def rank_picks(cat, user_rows: np.ndarray, ratings, top: int, allowed: np.ndarray,
               stack: Stack, model: RankModel):
    """rec recommend's recall then rank for catalogue rows `user_rows` (their ChunkRatings
    are the history and the movies left out): (Picks in rank order, found_by texts (B, top)).
    Candidates the filters refuse are dropped; a user left with fewer than `top` gets the
    two-tower's next best allowed movies after them (found by "two-tower")."""
    from rec.twotower.recommending import Picks, predicted_stars, recommend_chunk

    f = cat.features
    demographics = np.stack([cat.user_gender[user_rows], cat.user_age[user_rows],
                             cat.user_occupation[user_rows]], axis=1)
    block = Block(f.users[user_rows], ratings.pos, ratings.movie.astype(np.int64),
                  np.asarray(ratings.value, np.float32), demographics, ratings.time,
                  keys=user_rows)
    cand, logits, by = ranked(stack, model, block)
    logits = np.where((cand >= 0) & allowed[np.maximum(cand, 0)], logits, -np.inf)
    order = descending_order(logits)[:, :top]  # argsort(-logits, kind="stable")
    b, width = order.shape[0], order.shape[1]
    # best first: the finite logits are each row's first `width` slots' prefix (-inf sorts
    # last), so the picks are their movies as they stand, -1 after
    best = np.take_along_axis(logits, order, 1)
    ok = np.isfinite(best)
    movies = np.full((b, top), -1, np.int64)
    scores = np.full((b, top), -np.inf, np.float32)
    movies[:, :width] = np.where(ok, np.take_along_axis(cand, order, 1), -1)
    scores[:, :width] = np.where(ok, best, -np.inf)
    found = found_by_texts(np.take_along_axis(by, order[:, :, None], 1))  # (B, width)
    texts = np.where(ok, found, "").tolist()
    if width < top:
        texts = [row + [""] * (top - width) for row in texts]
    short = ok.sum(axis=1) < top
    if short.any():  # too few allowed candidates: the two-tower's next best after them
        fallback = recommend_chunk(cat, user_rows, ratings, top, allowed)
        for i in np.flatnonzero(short).tolist():
            n = int(ok[i].sum())
            picked = movies[i, :n].copy()
            for m in fallback.movies[i]:
                if n >= top or m < 0:
                    break
                if m not in picked:
                    movies[i, n], scores[i, n], texts[i][n] = m, -np.inf, "two-tower"
                    n += 1
    counts = (movies >= 0).sum(axis=1)
    return (Picks(movies, scores, predicted_stars(f, user_rows, movies),
                  np.zeros(movies.shape, bool), counts), texts)
