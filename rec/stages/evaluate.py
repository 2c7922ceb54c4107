"""`rec evaluate`: the trained model on the saved validation split, next to baselines.

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

import numpy as np
import typer
from rich import box
from rich.table import Table

from rec.storage import manifest
from rec.storage.atomic import write_json
from rec.console import log, show_table, steps
from rec.results import emit, emit_object
from rec.datasets.contract import RELEVANT, TRAIN, VAL, dataset_paths, load_dataset
from rec.errors import UsageError
from rec.metrics import baseline_metrics
from rec.stages import get_paths, stage
from rec.stages.options import SEED_RANGE, Device, Format
from rec.twotower.heldout import evaluate_held_out, vector_metrics

HELP = ("Evaluate the trained model on the validation split: HR@10, NDCG@10, long tail, "
        "coverage, RMSE, MAE, against popularity, EASE and rating baselines.")
K = 10
KEYS = [f"hr@{K}", f"ndcg@{K}", f"long_tail@{K}", f"coverage@{K}", "rmse", "mae"]


# Seconds each step of `rec evaluate` took on ml-1m (2 loaded cores; the progress bar's
# weights: EASE's fit and ranking are most of the time)
STEPS = {"loading the model": 5, "rec": 2, "popularity": 1, "EASE": 6, "bias": 2,
         "global mean": 1, "recall channels and the rank stage": 20}
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
        return with_rank_stage(paths, ds, report)
    (tu, tm, tr), (vu, vm, vr) = ds.train_val()
    rel = vr >= RELEVANT
    counts = np.bincount(tm, minlength=ds.n_movies)
    rank_args = dict(n_users=ds.n_users, n_movies=ds.n_movies, seen_users=tu, seen_movies=tm,
                     relevant_users=vu[rel], relevant_movies=vm[rel], k=K, movie_counts=counts)

    if saved is None:
        user_vecs, movie_vecs, scoring = kinds.of_model(model).saved_vectors(model, ds)
    else:
        user_vecs, movie_vecs, scoring = saved.users, saved.movies, saved.scoring
    step("rec")
    result = vector_metrics(user_vecs, movie_vecs, scoring, vu, vm, vr, clip, **rank_args)
    baselines, notes = baseline_metrics((tu, tm, tr), (vu, vm, vr), clip, rank_args, seed, step)
    step("recall channels and the rank stage")
    return with_rank_stage(paths, ds, {
        **rounded(result), "baselines": {k: rounded(v) for k, v in baselines.items()},
        "notes": notes, "validation_ratings": int(len(vr)),
        "ranked_users": int(len(np.unique(vu[rel]))), "relevant_rating": RELEVANT,
        "dataset": ds.vocab.dataset, "split": ds.vocab.split,
        "match": match, "device": device,
        "vectors": "output/features (saved from this model)" if saved is not None else
                   "computed from output/model"})


def with_rank_stage(paths, ds, report: dict) -> dict:
    """The report with the recall channels and, when output/ctr/model holds a fresh rank
    model, the ranked list as the headline (what `rec recommend` outputs); the two-tower's
    own order moves to "two_tower". Every choice behind them is in "selection"."""
    from rec.rank.serving import report as rank_report

    su, sm, _ = ds.known()
    vu, vm, vr = ds.part(VAL)
    rel = vr >= RELEVANT
    counts = np.bincount(ds.part(TRAIN)[1], minlength=ds.n_movies)
    rank_args = dict(n_users=ds.n_users, n_movies=ds.n_movies, seen_users=su, seen_movies=sm,
                     relevant_users=vu[rel], relevant_movies=vm[rel], k=K, movie_counts=counts)
    extra, notes = rank_report(paths, ds, rank_args, (vu[rel], vm[rel]))
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


def model_rows(report: dict) -> list[tuple[str, dict]]:
    """(row label, metrics) of the table: the list recommend outputs first."""
    base = dict(report["baselines"])
    rows = []
    if report.get("ranked"):
        rows += [("rec ranked", report), ("two-tower", report["two_tower"])]
    else:
        rows.append(("rec " + report["match"], report))
    tuned = base.pop("ease_tuned", None)
    if tuned is not None:
        rows.append((f"ease λ{tuned['lambda']:g}", tuned))
    if "ease" in base:
        rows.append(("ease λ500", base.pop("ease")))
    return rows + list(base.items())


@stage(writes=("output",), into=("model_dir",))
def command(
    ctx: typer.Context,
    device: Device = "cpu",
    seed: int = typer.Option(0, "--seed", **SEED_RANGE, help="Seed of the random tie-breaking baseline."),
    fmt: Format = "auto",
) -> None:
    paths = get_paths(ctx)
    with steps("evaluate", STEPS) as step:
        report = evaluate(paths, device, seed, step)
    write_json(paths.eval_report, report)
    manifest.record(paths, "evaluate", {"device": device, "seed": seed},
                    inputs=dataset_paths(paths) + [paths.model.params],
                    outputs=[paths.eval_report])
    rows = [{"model": name, **{k: metrics.get(k) for k in KEYS}} for name, metrics in
            model_rows(report)]
    for note in report["notes"]:
        log(note)
    title = f"rec evaluate · {report['dataset']} · {report['validation_ratings']:,} " + \
        (f"to predict · {report['held_out_users']:,} held-out users (fold-in)"
         if report["split"] == "users" else
         f"validation ratings · {report['ranked_users']:,} ranked users")
    table = Table(title=title,
                  box=box.SIMPLE_HEAD, pad_edge=False)  # 80 columns wide
    for col in ["model"] + KEYS:
        table.add_column(col, justify="right" if col != "model" else "left", no_wrap=True)
    for row in rows:
        table.add_row(row["model"], *["" if row[k] is None else f"{row[k]:.4f}" for k in KEYS])
    show_table(table)
    if fmt == "json":
        emit_object(report, "json")
    else:
        emit(rows, ["model"] + KEYS, fmt)
