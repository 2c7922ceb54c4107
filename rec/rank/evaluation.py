"""What `rec evaluate` measures (numpy; paddle only when the vectors must come from the
model): the report it writes to output/model/eval.json, in steps a progress bar can follow.

`rec evaluate`: the trained model on the saved validation split, next to baselines.

Ranking quality of exactly what `rec recommend --exclude train` outputs (the saved-vector
scores of rec.scoring, computed here from the trained network): HR@10 and NDCG@10 over the
validation ratings of RELEVANT stars or more, ranking every movie the user did not rate in
training; long_tail@10 (share of top-10 slots on movies with fewer than 20 training ratings)
and coverage@10 (share of the catalogue in anyone's top 10). Rating quality: RMSE and MAE of
the predicted stars (clipped to the rating range).

Baselines, in the same run, on the same users and rows (rec.metrics.baseline_metrics):
popularity (training count), EASE (closed form on the binary training matrix, lambda 500;
skipped, with a note, for catalogues over 20,000 movies), user + movie biases (a rating
baseline; ranks by movie bias) and the global mean (ranks in a seeded random order).

On a held-out-users split (`rec preprocess --split users`) the same metrics are those of
fold-in recommendations for users the model never saw, from their given ratings, next to
popularity, EASE (X_given B) and the bias model on the same users: see
rec.twotower.heldout. eval.json then says "split": "users" and "held_out_users".
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from rec.datasets.contract import GIVEN, RELEVANT, TRAIN, VAL, load_dataset
from rec.errors import UsageError
from rec.lanes import whole_lanes
from rec.metrics import (EASE_MAX_MOVIES, RANK_CHUNK_USERS, baseline_metrics, dense_chunk,
                         ease_metrics, rating_baselines)
from rec.twotower.features import earlier_model
from rec.twotower.heldout import evaluate_held_out, vector_metrics

K = 10
# chunks of users scored and ranked at once (rec.metrics.ranking_metrics' threads): numpy's
# BLAS has one thread in `rec evaluate` (rec.stages.evaluate), the cores take a chunk each
SCORING_THREADS = max(1, min(2, os.cpu_count() or 1))
KEYS = [f"hr@{K}", f"ndcg@{K}", f"long_tail@{K}", f"coverage@{K}", "rmse", "mae"]


# Seconds each step of `rec evaluate` took on ml-1m, in the order they run (2 loaded cores;
# the progress bar's weights): the rank stage is most of the time, EASE λ500 runs beside
# it (its step then only collects the result)
STEPS = {"loading the model": 5, "recall channels and the rank stage": 19, "rec": 1,
         "popularity": 1, "EASE": 1, "bias and global mean": 1}
USERS_STEP = 30  # the held-out users' report, EASE's among them (a users split)


def rounded(metrics: dict) -> dict:
    """Metrics to 6 decimals, without ranking_metrics' user count."""
    return {k: round(v, 6) for k, v in metrics.items() if k != "ranked_users"}


def evaluate(paths, device: str, seed: int = 0, step=lambda name: None) -> dict:
    """The report (eval.json); `step(name)` is called as each of STEPS starts (progress)."""
    step("loading the model")
    from rec.twotower import kinds
    from rec.twotower.features import saved_from

    ds = load_dataset(paths)
    users_split = ds.vocab.split.get("method") == "users"
    # output/features saved from this very model hold its vectors: no paddle to import
    saved = None
    if not users_split and device == "cpu":
        config = kinds.trained_config(paths)
        saved = saved_from(paths, ds, config)
    if saved is None:
        from rec.engine.runtime import setup_device

        device = setup_device(device)
        model, config = kinds.load_trained(paths, ds)
        clip, match = model.config.rating_range, model.config.match
    else:
        clip, match = tuple(config["model"]["rating_range"]), config["model"]["match"]
    if users_split:
        step("held-out users", plan={"held-out users": USERS_STEP,
                                     "recall channels and the rank stage": 20})
        report = evaluate_users(model, ds, device)
        step("recall channels and the rank stage")
        return with_rank_stage(paths, ds, report, progress=getattr(step, "part", None))
    (tu, tm, tr), (vu, vm, vr) = ds.train_val()
    rel = vr >= RELEVANT
    counts = np.bincount(tm, minlength=ds.n_movies)
    rank_args = dict(n_users=ds.n_users, n_movies=ds.n_movies, seen_users=tu, seen_movies=tm,
                     relevant_users=vu[rel], relevant_movies=vm[rel], k=K, movie_counts=counts,
                     threads=SCORING_THREADS)

    if saved is None:
        user_vecs, movie_vecs, scoring = kinds.of_model(model).saved_vectors(model, ds)
    else:
        user_vecs, movie_vecs, scoring = saved.users, saved.movies, saved.scoring
    with ThreadPoolExecutor(2) as background:
        # the baselines run beside the rank stage, whose two threads leave a core partly
        # idle: EASE λ500 (X'X and a Cholesky inverse, 1.9 s on ml-1m, then every user
        # scored and ranked, 1 s; neither holds the GIL for long: rec.ease) and the rating
        # baselines (0.2 s, once the last thing evaluate did with a core idle); the report
        # is assembled in its usual order afterwards
        ease = background.submit(ease_metrics, ds.n_users, ds.n_movies, tu, tm, rank_args) \
            if ds.n_movies <= EASE_MAX_MOVIES else None
        ratings = background.submit(rating_baselines, (tu, tm, tr), (vu, vm, vr), clip,
                                    rank_args, seed)
        step("recall channels and the rank stage")
        rank_stage = rank_stage_report(paths, ds, saved, getattr(step, "part", None))
        ranked_already = channels_as_ranked(rank_stage[0], ds, saved)
        step("rec")
        result = vector_metrics(user_vecs, movie_vecs, scoring, vu, vm, vr, clip,
                                ranked_already.get("two_tower"), **rank_args)
        baselines, notes = baseline_metrics((tu, tm, tr), (vu, vm, vr), clip, rank_args, seed,
                                            step, ease=ease, ratings=ratings,
                                            popularity=ranked_already.get("popularity"))
    return with_rank_stage(paths, ds, computed=rank_stage, report={
        **rounded(result), "baselines": {k: rounded(v) for k, v in baselines.items()},
        "notes": notes, "validation_ratings": int(len(vr)),
        "ranked_users": int(len(np.unique(vu[rel]))), "relevant_rating": RELEVANT,
        "dataset": ds.vocab.dataset, "split": ds.vocab.split,
        "match": match, "device": device,
        "vectors": "output/features (saved from this model)" if saved is not None else
                   "computed from output/model"})


def channels_as_ranked(extra: dict, ds, saved) -> dict:
    """{name: ranking_metrics} of the rank stage's channels that are exactly what evaluate
    would rank again for the two-tower ("two_tower") and the popularity baseline: when the
    vectors are output/features' (`saved`) and the channels' history, ds.known(), is the
    training part (no GIVEN ratings), their users, seen movies, relevant movies and counts
    are evaluate's, the two-tower channel's scores are rec.scoring.score's to the bit
    (rec.scoring.head_scores) and the popularity channel's, log1p of the counts, order the
    movies as the counts do (strictly increasing: the same comparisons); {} otherwise."""
    if saved is None or not extra.get("channels") or (ds.split == GIVEN).any():
        return {}
    return {name: extra["channels"][name] for name in ("two_tower", "popularity")}


def rank_stage_report(paths, ds, features=None, progress=None) -> tuple[dict, list]:
    """rec.rank.serving.report's (extra, notes) on this dataset's evaluation split.
    `features`: output/features as already read (saved_from), not read a second time."""
    from rec.rank.serving import report as rank_report

    su, sm, _ = ds.known()
    vu, vm, vr = ds.part(VAL)
    rel = vr >= RELEVANT
    counts = np.bincount(ds.part(TRAIN)[1], minlength=ds.n_movies)
    rank_args = dict(n_users=ds.n_users, n_movies=ds.n_movies, seen_users=su, seen_movies=sm,
                     relevant_users=vu[rel], relevant_movies=vm[rel], k=K, movie_counts=counts,
                     threads=SCORING_THREADS, progress=progress,
                     chunk=whole_lanes(dense_chunk(ds.n_movies, RANK_CHUNK_USERS)))
    return rank_report(paths, ds, rank_args, (vu[rel], vm[rel]), features)


def with_rank_stage(paths, ds, report: dict, computed: tuple | None = None,
                    progress=None) -> dict:
    """The report with the recall channels and, when output/ctr/model holds a fresh rank
    model, the ranked list as the headline (what `rec recommend` outputs); the two-tower's
    own order moves to "two_tower". Every choice behind them is in "selection".
    `computed`: rank_stage_report's result when already at hand."""
    extra, notes = computed if computed is not None else rank_stage_report(paths, ds,
                                                                           progress=progress)
    stale = earlier_model(paths) if extra else None
    if stale:  # its channels and ranked list are another model's: not this model's row
        extra, notes = {}, [f"recall channels and the ranked list not evaluated: {stale}"]
    report["notes"] = report.get("notes", []) + notes
    report["selection"] = {
        "two_tower": "epochs, early stopping and the like weight on the tuning slice "
                     "(output/model/config.json: dataset.split.tuning)",
        **(extra.get("selection") or {})}
    if not extra:
        report["ranked"] = False
        return report
    lam = extra["ease_lambda"]
    report["baselines"]["ease_tuned"] = {**rounded(extra["channels"]["ease"]),
                                         "lambda": lam}
    report["ease_lambda"] = lam
    report["channels"] = {k: rounded(v) for k, v in extra["channels"].items()}
    report["ranked"] = extra["ranked"] is not None
    if extra["ranked"] is not None:
        own = {k: report[k] for k in KEYS if k in report}
        report["two_tower"] = own
        report.update(rounded(extra["ranked"]))
        report["candidate_recall"] = round(extra["candidate_recall"], 6)
        report["candidates_per_channel"] = extra["k"]
    return report


def evaluate_users(model, ds, device: str) -> dict:
    """The held-out-users report (rec.twotower.heldout) of the default model."""
    from rec.twotower import kinds

    kind = kinds.of_model(model)
    if not kind.folds_in:
        raise UsageError("evaluating held-out users needs the default model, which folds "
                         "new users in: run `rec train` without --match")
    user_vecs, movie_vecs, scoring = kind.saved_vectors(model, ds)
    report, vecs = evaluate_held_out(ds, model.fold_in_parts(), movie_vecs, scoring,
                                     model.config.global_mean, model.config.rating_range, K)
    # the numpy fold-in is the tower itself: the saved vectors read the given ratings too
    diff = float(np.abs(vecs - user_vecs[ds.held_out_users()]).max())
    return {**rounded({k: v for k, v in report.items() if k in KEYS}),
            "baselines": {k: rounded(v) for k, v in report["baselines"].items()},
            "notes": report["notes"], "split": "users",
            "held_out_users": report["held_out_users"], "ranked_users": report["ranked_users"],
            "given_ratings": report["given_ratings"],
            "validation_ratings": report["validation_ratings"], "relevant_rating": RELEVANT,
            "fold_in_max_abs_diff": diff, "dataset": ds.vocab.dataset,
            "split_info": ds.vocab.split, "match": model.config.match, "device": device}
