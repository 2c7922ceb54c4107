"""`rec evaluate`: the trained model on the saved validation split, next to two baselines.

Rating quality: RMSE and MAE (predictions clipped to the rating range). Ranking quality of
the recommendation scores (exactly what `rec recommend` ranks by): HR@10 and NDCG@10 over
the validation ratings of 4 stars or more, ranking every movie the user did not rate in
training. Baselines, computed in the same run on the same rows: the global mean rating
(whose ranking is a seeded random order: it gives every movie the same score) and
user + movie biases (its ranking is by movie bias, i.e. "best-rated popular movies").
"""

from __future__ import annotations

import numpy as np
import typer
from rich.table import Table

from rec import manifest
from rec.atomic import write_json
from rec.console import emit, emit_object, show_table
from rec.datasets.contract import RELEVANT, TRAIN, VAL, dataset_paths, load_dataset
from rec.metrics import fit_biases, ranking_metrics, rmse_mae
from rec.scoring import vector_scorer
from rec.stages import get_paths, guarded
from rec.stages.options import Device, Format

HELP = "Evaluate the trained model on the validation split: RMSE, MAE, HR@10, NDCG@10 vs baselines."
SHORT = "RMSE, MAE, HR@10, NDCG@10 against baselines."  # its line in `rec --help`
K = 10
KEYS = ["rmse", "mae", f"hr@{K}", f"ndcg@{K}"]


def evaluate(paths, device: str, seed: int = 0) -> dict:
    from rec.runtime import setup_device
    from rec.twotower import training

    device = setup_device(device)
    ds = load_dataset(paths)
    model, config = training.load_trained(paths, ds)
    clip = model.config.rating_range
    tu, tm, tr = ds.part(TRAIN)
    vu, vm, vr = ds.part(VAL)
    feeder = training.Feeder(ds)
    rel = vr >= RELEVANT
    rank_args = dict(n_users=ds.n_users, n_movies=ds.n_movies, seen_users=tu, seen_movies=tm,
                     relevant_users=vu[rel], relevant_movies=vm[rel], k=K)

    rmse, mae = rmse_mae(training.predict(model, feeder, vu, vm), vr, clip)
    user_vecs, movie_vecs = training.tower_vectors(model, feeder)
    result = {"rmse": rmse, "mae": mae,
              **ranking_metrics(vector_scorer(user_vecs, movie_vecs, model.scoring()), **rank_args)}

    mean = float(tr.mean())
    g_rmse, g_mae = rmse_mae(np.full(len(vr), mean), vr, clip)
    noise = np.random.default_rng(seed).random(ds.n_movies)  # ties broken at random
    glob = {"rmse": g_rmse, "mae": g_mae,
            **ranking_metrics(lambda block: np.tile(noise, (len(block), 1)), **rank_args)}
    mu, b_u, b_m = fit_biases(tu, tm, tr, ds.n_users, ds.n_movies)
    b_rmse, b_mae = rmse_mae(mu + b_u[vu] + b_m[vm], vr, clip)
    bias = {"rmse": b_rmse, "mae": b_mae,
            **ranking_metrics(lambda block: mu + b_u[block][:, None] + b_m[None, :], **rank_args)}
    for d in (result, glob, bias):
        d.pop("ranked_users", None)
    return {**{k: round(v, 6) for k, v in result.items()},
            "baselines": {"global_mean": {k: round(v, 6) for k, v in glob.items()},
                          "bias": {k: round(v, 6) for k, v in bias.items()}},
            "validation_ratings": int(len(vr)), "ranked_users": int(len(np.unique(vu[rel]))),
            "relevant_rating": RELEVANT, "dataset": ds.vocab.dataset,
            "match": model.config.match, "device": device}


@guarded
def command(
    ctx: typer.Context,
    device: Device = "cpu",
    seed: int = typer.Option(0, "--seed", help="Seed of the random tie-breaking baseline."),
    fmt: Format = "auto",
) -> None:
    paths = get_paths(ctx)
    report = evaluate(paths, device, seed)
    write_json(paths.eval_report, report)
    manifest.record(paths, "evaluate", {"device": device, "seed": seed},
                    inputs=dataset_paths(paths) + [paths.model.params],
                    outputs=[paths.eval_report])
    rows = [{"model": name, **{k: metrics[k] for k in KEYS}} for name, metrics in
            [("two-tower " + report["match"], report), *report["baselines"].items()]]
    table = Table(title=f"rec evaluate · {report['dataset']} · {report['validation_ratings']:,} "
                        f"validation ratings · {report['ranked_users']:,} ranked users")
    for col in ["model"] + KEYS:
        table.add_column(col, justify="right" if col != "model" else "left")
    for row in rows:
        table.add_row(row["model"], *[f"{row[k]:.4f}" for k in KEYS])
    show_table(table)
    if fmt == "json":
        emit_object(report, "json")
    else:
        emit(rows, ["model"] + KEYS, fmt)
