"""`rec ctr-train --data movielens`: the rank stage, fitted on the tuning slice (imports
paddle). What it needs: output/dataset, output/model (the two-tower, for the tuning users'
vectors from their tuning-view history) and output/features (the saved vectors, the
like-calibration and the EASE λ that serving uses).

The run: the tuning view (rec.datasets.tuning); the channels on it (rec.rank.channels: EASE
refitted on the view's training ratings with the saved λ); K, each channel's top K in the
training lists, the smallest of K_CHOICES whose candidate recall on the tuning users is
within K_SLACK of the largest's; the examples (rec.rank.training), a fifth of the tuning
users set aside, theirs built at each top k the model may serve (SERVING_KS up to K); then
rec.engine.trainer.fit, the epoch chosen on that fifth, and for that epoch the top k it
serves (rec.rank.training.choose_serving_k) and the two-tower blend of the order
(choose_blend), on the same users. output/ctr/model/ gets config.json (the feature
layout, the serving k and the training K, the features run it was built for, the order's
two-tower blend, the selection), weights.npz (numpy serving: rec.rank.forward) and
model.pdparams.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from rec import __version__
from rec.storage.atomic import write_bytes
from rec.datasets.contract import RELEVANT, TRAIN, VAL, dataset_identity, load_dataset
from rec.datasets.splits import GIVEN_RATIO
from rec.datasets.tuning import describe, tuning_kind, tuning_seed, tuning_view, uniform_hash
from rec.errors import UsageError
from rec.paths import WEIGHTS
from rec.rank.channels import fit_item_models
from rec.rank.features import LAYOUT, Stack

K_CHOICES = (25, 50, 100)  # 200 measured no better ranked list on ml-1m, at twice the cost
K_SLACK = 0.03  # candidate recall given up for a smaller K (fewer, easier candidates)
USERS_PER_STEP = 64
# Tuning users the rank stage learns from, at most: a seeded sample beyond (ml-25m's 162k
# would hold 6 GB of candidate features; 10,000 hold about 0.4 GB, and ml-1m has 6,040).
RANK_USERS = 10_000
# --split users: the held-out tuning users' ratings drawn into given / to predict this many
# times. The view never trains on those users (the two-tower, EASE, PureSVD and popularity
# never see them), so each draw is a new, honest list for the rank stage to learn from.
USERS_DRAWS = 3


def redrawn(view, draw: int):
    """The tuning view with its held-out users' given / to-predict ratings drawn anew."""
    import dataclasses

    from rec.datasets.contract import GIVEN

    held = view.split != TRAIN
    split = view.split.copy()
    given = uniform_hash(view.rating_users[held], view.rating_movies[held],
                         seed=tuning_seed(view) + 1 + 1000 * draw) < GIVEN_RATIO
    split[np.flatnonzero(held)] = np.where(given, GIVEN, VAL)
    return dataclasses.replace(view, split=split)


def choose_k(stack: Stack, view, user_vecs: np.ndarray) -> tuple[int, dict]:
    """K by the candidate recall on (a sample of) the tuning users."""
    from rec.rank.serving import candidate_recall

    vu, vm, vr = view.part(VAL)
    rel = vr >= RELEVANT
    users = np.sort(np.random.default_rng(0).permutation(np.unique(vu[rel]))[:2000])
    mine = rel & np.isin(vu, users)
    table = {k: round(candidate_recall(stack, view, user_vecs, vu[mine], vm[mine], k), 6)
             for k in K_CHOICES}
    best = max(table.values())
    return min(k for k in K_CHOICES if table[k] >= best - K_SLACK), table


def train_ranker(paths, p, device: str, resume: bool, record=None) -> dict:
    """The run (p: the ctr-train parameters: epochs, lr, seed, patience, batch size);
    `record` makes the stage's manifest entry (rec.storage.records.pending), sealed in the
    model and written with it (trainer.publish)."""
    from rec.engine import runtime, trainer
    from rec.models.ranker import Ranker, RankerConfig
    from rec.rank import training as rt
    from rec.twotower import kinds, recall_rank
    from rec.twotower.features import load_features
    import paddle

    monitor = trainer.Monitor("rank_ndcg@10", bigger_is_better=True, label="rank NDCG@10",
                              state_key="best_ndcg")
    state = trainer.new_state(monitor)
    if resume:
        raise UsageError("the rank stage trains in seconds and keeps no checkpoint to resume: "
                         "run `rec ctr-train --data movielens` without --resume")
    job = runtime.start(device)
    ds = load_dataset(paths)
    features = load_features(paths.features_dir)
    from rec.rank.serving import NO_EASE, has_item_models

    if not has_item_models(features):
        raise UsageError(NO_EASE)
    if not features.of_vocab(ds.vocab):
        raise UsageError("output/features describes other users or movies than "
                         "output/dataset: run `rec save-features` again")
    model, _ = kinds.load_trained(paths, ds)
    if not kinds.of_model(model).recalls:
        raise UsageError("the rank stage needs the default two-tower (it reads a user's "
                         "history): run `rec train` without --match")
    view = tuning_view(ds)
    hist = recall_rank.Histories(view, model.config.global_mean)
    user_vecs, _ = recall_rank.trained_vectors(model, view, hist)
    lam = float(features.scoring["channels"]["ease_lambda"])
    rank = int(features.scoring["channels"]["svd_rank"])
    stack = Stack.over(view, features.movies, features.scoring,
                       fit_item_models(view, lam, rank), 0)
    k, k_table = choose_k(stack, view, user_vecs)
    stack.k = k
    users = rt.liked_users(view)
    if len(users) > RANK_USERS:  # a large dataset: a seeded sample of its tuning users
        users = np.sort(np.random.default_rng(p.seed).choice(users, RANK_USERS, replace=False))
    # split before building: each part built once, never copied out of a whole; the
    # choosing users' lists at each top k the model may serve, its features scaled as the
    # training lists' (Stack.scale_k)
    stack.scale_k = k
    serving_ks = [s for s in rt.SERVING_KS if s < k] + [k]
    train_users, val_users = rt.split_users(users, p.seed)
    views = [(view, user_vecs)]
    if tuning_kind(ds) == "users":  # more lists from the same held-out tuning users
        for draw in range(1, USERS_DRAWS):
            other = redrawn(view, draw)
            vecs, _ = recall_rank.trained_vectors(
                model, other, recall_rank.Histories(other, model.config.global_mean))
            views.append((other, vecs))
    train_parts, choosing = [], {s: [] for s in serving_ks}
    for v, vecs in views:
        train_parts.append(rt.build_examples(stack, v, vecs, train_users))
        for s in serving_ks:
            choosing[s].append(rt.build_examples(stack, v, vecs, val_users, k=s))
    del views
    train_ex = rt.Examples.concat(train_parts) if len(train_parts) > 1 else train_parts[0]
    choosing = {s: rt.Examples.concat(parts) if len(parts) > 1 else parts[0]
                for s, parts in choosing.items()}
    val_ex = choosing[k]
    del train_parts
    n_features = stack.n_features
    del stack, user_vecs  # EASE's B and the rest: not needed to train (memory's peak is next)
    if not len(train_ex.users) or not len(val_ex.users):
        raise UsageError("the tuning slice has too few users with a liked movie to train the "
                         "rank stage (it needs both a training and a choosing part)")
    # each channel alone and the candidate recall on the choosing users, at each serving k
    reports = {s: rt.channel_report(ex) for s, ex in choosing.items()}
    runtime.seed_all(p.seed)
    config = RankerConfig(n_features, p.hidden_sizes())
    net = Ranker(config)
    optimizer = paddle.optimizer.Adam(learning_rate=p.lr, parameters=net.parameters())
    data_id = dataset_identity(paths)
    full_config = {
        "model": config.to_json(), "train": asdict(p), "device": job.device,
        "data_fingerprint": data_id, "rec_version": __version__,
        "features": {"kind": "rank", "k": k, "scale_k": k, "n_features": n_features,
                     "layout": LAYOUT,
                     "features_run": features.scoring.get("run_id"), "ease_lambda": lam,
                     "svd_rank": rank},
        "dataset": {"name": ds.vocab.dataset, "split": ds.vocab.split},
        "selection": {"tuning": describe(ds), "k_candidate_recall": k_table,
                      "training_k": k,
                      "epochs": "best rank NDCG@10 on a fifth of the tuning users",
                      "ease_lambda": features.scoring["channels"]}}

    def save(folder, epoch: int, weights: dict, choices: dict) -> None:
        full_config["best_epoch"] = epoch
        full_config["features"]["k"] = choices["k"]
        full_config["order"] = {"popularity_penalty": 0.0,
                                "two_tower_blend": choices["blend"]}
        full_config["selection"]["serving_k"] = {
            "rule": "the smallest each channel's top k whose candidates, ranked, give the "
                    f"choosing users an NDCG@10 within {rt.SERVING_K_COST:.1%} of the best "
                    f"of {serving_ks}", "chosen": choices["k"], **{
                        str(s): {key: round(v, 6) for key, v in m.items()}
                        for s, m in choices["k_table"].items()}}
        full_config["selection"]["two_tower_blend"] = {
            "rule": "the smallest giving the choosing users' top 10s EASE's coverage, "
                    f"within {rt.PENALTY_COST:.0%} of their NDCG@10", **choices["blend_table"]}
        runtime.save_model(folder, net, full_config)
        write_bytes(folder / WEIGHTS, rt.npz_bytes(weights))

    objective = rt.rank_objective(net, optimizer, train_ex, choosing, USERS_PER_STEP, save)
    spec = trainer.FitSpec(
        run="rec ctr-train", folder=paths.ctr, epochs=p.epochs, patience=p.patience,
        seed=p.seed, monitor=monitor, params=asdict(p), data_id=data_id,
        data_name="output/dataset",
        title=f"rec ctr-train · {ds.vocab.dataset} · rank stage · {job.device}",
        columns={"train_loss": "listwise loss", "rank_hr@10": "rank HR@10",
                 "rank_ndcg@10": "rank NDCG@10"}, finite=("rank_ndcg@10",), resumable=False,
        record=record)

    def summarize(result) -> dict:
        return {"data": "movielens", "dataset": ds.vocab.dataset, "model": "rank",
                "device": job.device, **result.summary("rank_hr@10", "rank_ndcg@10"),
                "k": result.best["serving_k"], "training_k": k,
                "two_tower_blend": result.best["two_tower_blend"],
                "candidate_recall": reports[result.best["serving_k"]]["candidate_recall"],
                "channels": {c: reports[result.best["serving_k"]][c]
                             for c in ("two_tower", "ease", "svd", "popularity")},
                "tuning_users": int(len(train_ex.users) + len(val_ex.users)), "choosing_users": int(len(val_ex.users)),
                **result.speed()}

    return trainer.fit(spec, job, objective, state, resume, summarize).metrics
