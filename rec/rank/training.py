"""Training the rank stage (imports paddle): `rec ctr-train --data movielens`.

Everything is learned on the tuning slice (rec.datasets.tuning), never on the evaluation
split. On the tuning view the recall channels see only what they would see at serving time
for a user whose slice ratings are still to come: the two-tower's user vectors are computed
from the view's history, EASE is fitted on the view's training ratings with the λ that
save-features chose on the same view, popularity counts them. Each tuning user's candidates
(rec.rank.features) are labelled 1 where the user rated the movie RELEVANT stars or more in
the slice. The network learns a softmax over each user's candidates (listwise: cross-entropy
against the user's liked candidates, each weighted 1 / their number).

A seeded fifth of the tuning users (by a hash of the user) is set aside to choose the epoch
(NDCG@10 of the ranked candidates, ideal over all the user's liked movies, as evaluate),
then for that epoch the top k the model serves (choose_serving_k: their candidates built
at each k it may serve) and the two-tower blend of the order (choose_blend), and to
measure each channel alone on the same users; the rest train.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from rec.datasets.contract import RELEVANT, VAL, Dataset
from rec.datasets.tuning import uniform_hash
from rec.metrics import dense_chunk
from rec.rank.features import Stack, known_block
from rec.engine.runtime import save_paddle  # first: it quiets paddle's import noise
from rec.engine.trainer import Epoch, Objective, Trainable

import paddle  # noqa: E402

RANK_VAL = 0.2  # share of the tuning users that choose the epoch
RANK_CHECKPOINT = ("rank.pdparams", "rank.pdopt")  # the network's files in a checkpoint
CHUNK = 512  # users whose candidates are built at once (fewer on a large catalogue)
DISCOUNTS = 1.0 / np.log2(np.arange(2, 12))
BLENDS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)  # the two-tower blends tried (choose_blend)
SERVING_KS = (50, 100)  # the top k a model trained on top-K lists may serve (K or less)
SERVING_K_COST = 0.005  # the share of the choosing NDCG@10 a smaller serving k may cost
PENALTY_COST = 0.05  # the share of the choosing NDCG@10 coverage may cost, at most
VAL_USERS = 256  # choosing users scored at once (ctr-train's peak on ml-1m: 1,195 -> 980 MB)


@dataclass
class Examples:
    """Candidates of a set of users: x (N, C, F), liked (N, C), valid (N, C), and the
    number of liked movies each user has in all (for NDCG's ideal)."""

    users: np.ndarray
    x: np.ndarray
    liked: np.ndarray
    valid: np.ndarray
    n_liked: np.ndarray
    by_channel: np.ndarray  # (N, C, n_channels) bool: found by each channel's top k
    movies: np.ndarray  # (N, C) int32: each candidate's movie (0 where not valid)

    @staticmethod
    def concat(parts: list["Examples"]) -> "Examples":
        """One set of several (candidate lists padded to the widest, with zeros; a part of
        no users left out: a redrawn view can leave none of the choosing users a liked
        movie, and `rec ctr-train` on a small held-out-users split crashed). The parts
        are copied into arrays allocated zeroed (their pages are taken as they are written)
        and dropped from `parts` as they go, so the peak is about one copy, not two."""
        names = ("users", "x", "liked", "valid", "n_liked", "by_channel", "movies")
        kept = [i for i, p in enumerate(parts) if p.x is not None]  # x None: no users
        if not kept:
            return parts[0]
        width = max(parts[i].x.shape[1] for i in kept)
        n = sum(len(parts[i].users) for i in kept)
        out = {}
        for name in names:
            first = getattr(parts[kept[0]], name)
            out[name] = np.zeros((n, *(() if first.ndim == 1 else (width, *first.shape[2:]))),
                                 first.dtype)
        at = 0
        for i, part in enumerate(parts):
            if part.x is None:
                parts[i] = None
                continue
            rows = slice(at, at + len(part.users))
            for name in names:
                a = getattr(part, name)
                if a.ndim == 1:
                    out[name][rows] = a
                else:
                    out[name][rows, : a.shape[1]] = a
            at = rows.stop
            parts[i] = None
        return Examples(**out)


def liked_users(view: Dataset) -> np.ndarray:
    """The view's users with a liked VAL rating (sorted): those the rank stage learns from."""
    vu, _, vr = view.part(VAL)
    return np.unique(vu[vr >= RELEVANT])


def build_examples(stack: Stack, view: Dataset, user_vecs: np.ndarray,
                   users: np.ndarray | None = None, k: int | None = None) -> Examples:
    """Users of the view with a liked VAL rating (those of `users` only, when given):
    candidates (each channel's top `k`, default the stack's), features, labels, a chunk of
    users at a time, joined by Examples.concat."""
    vu, vm, vr = view.part(VAL)
    rel = vr >= RELEVANT
    users = liked_users(view) if users is None else np.intersect1d(users, liked_users(view))
    n_liked = np.bincount(vu[rel], minlength=view.n_users)[users]
    parts = []
    step = dense_chunk(view.n_movies, CHUNK)  # 134 at ml-25m's 62k movies: 1 GB less peak
    for s in range(0, len(users), step):
        chunk = users[s: s + step]
        block = known_block(view, user_vecs, chunk)
        cand, by, scores = stack.candidates(block, k)
        x = stack.features(block, cand, by, scores)
        del scores
        liked = np.zeros((len(chunk), view.n_movies), bool)
        pos = np.full(view.n_users, -1)
        pos[chunk] = np.arange(len(chunk))
        sel = rel & (pos[vu] >= 0)
        liked[pos[vu[sel]], vm[sel]] = True
        parts.append(Examples(chunk, x, np.take_along_axis(liked, np.maximum(cand, 0), 1)
                              & (cand >= 0), cand >= 0, n_liked[s: s + step], by,
                              np.maximum(cand, 0).astype(np.int32)))
    if not parts:
        return Examples(users, None, None, None, n_liked, None, None)
    return Examples.concat(parts)


def split_users(users: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training users, choosing users) of the tuning users: a hash of (user, seed)."""
    held = uniform_hash(users, seed=seed + 7) < RANK_VAL
    return users[~held], users[held]


def ranked_metrics(order_scores: np.ndarray, ex: Examples) -> dict:
    """HR@10 / NDCG@10 of each user's candidates ordered by `order_scores` (N, C), ideal
    DCG over min(all the user's liked movies, 10), as rec.metrics.ranking_metrics."""
    if not len(ex.users):
        return {"hr@10": float("nan"), "ndcg@10": float("nan")}
    s = np.where(ex.valid, order_scores, -np.inf)
    k = min(10, s.shape[1])
    top = np.argsort(-s, axis=1, kind="stable")[:, :k]
    gains = np.take_along_axis(ex.liked, top, 1)
    ideal = np.cumsum(DISCOUNTS)[np.minimum(ex.n_liked, 10) - 1]
    return {"hr@10": float(gains.any(axis=1).mean()),
            "ndcg@10": float(((gains * DISCOUNTS[:k]).sum(axis=1) / ideal).mean())}


def coverage(order_scores: np.ndarray, ex: Examples) -> int:
    """Distinct movies in the users' top 10s when their candidates are ordered so."""
    s = np.where(ex.valid, order_scores, -np.inf)
    top = np.argsort(-s, axis=1, kind="stable")[:, :10]
    shown = np.take_along_axis(ex.valid, top, 1)
    return len(np.unique(np.take_along_axis(ex.movies, top, 1)[shown]))


def choose_blend(logits: np.ndarray, ex: Examples) -> tuple[float, dict]:
    """The two-tower blend of the rank stage's order (rec.rank.features.two_tower_blended),
    chosen by choose_lever among BLENDS.

    Why: the rank stage learns popularity from the tuning slice; on ml-1m's global time
    split its top 10s drew on fewer movies than EASE's (coverage@10 11.7 % against 15.0 %),
    and coverage at least EASE's is part of what the list must offer. A popularity penalty
    reaching it cost 4-10 % of NDCG@10 there (2.5 to 3); on the choosing users a blend of 8
    reached it at no cost (three seeds: 244-253 movies against EASE's 251)."""
    from rec.rank.features import two_tower_blended

    return choose_lever(logits, ex, BLENDS, two_tower_blended)


def choose_lever(logits: np.ndarray, ex: Examples, levels: tuple, order_of) -> tuple[float, dict]:
    """On the choosing users `ex`: the smallest of `levels` (the first is 0) whose order
    `order_of(logits, x, level)` has top 10s covering as many distinct movies as EASE's own
    top 10s on the same users, trying them in turn while NDCG@10 stays within PENALTY_COST
    of the logits' own order (none reaches EASE's coverage: the last one tried that stays
    within). On a split where the network's list already covers more than EASE's, 0."""
    from rec.rank.channels import CHANNELS
    from rec.rank.features import rank_columns

    ease = coverage(-ex.x[:, :, rank_columns()[CHANNELS.index("ease")]], ex)
    chosen, tried, floor = 0.0, {}, None
    for level in levels:
        order = order_of(logits, ex.x, level)
        ndcg, covered = ranked_metrics(order, ex)["ndcg@10"], coverage(order, ex)
        tried[f"{level:g}"] = {"coverage": covered, "ndcg@10": round(ndcg, 6)}
        if floor is None:  # levels[0] is 0: the logits' own NDCG@10 sets it
            floor = (1.0 - PENALTY_COST) * ndcg
        elif ndcg < floor:
            break
        chosen = level
        if covered >= ease:
            break
    return chosen, {"ease_coverage": ease, "tried": tried}


def channel_report(ex: Examples) -> dict:
    """On these users: each channel alone (its own order over the candidates, from the
    features' rank columns) and the candidate recall."""
    from rec.rank.channels import CHANNELS
    from rec.rank.features import rank_columns

    out = {"candidate_recall": round(float(ex.liked.sum() / max(ex.n_liked.sum(), 1)), 6)}
    for name, col in zip(CHANNELS, rank_columns()):  # a smaller log rank is better
        out[name] = {k: round(v, 6) for k, v in ranked_metrics(-ex.x[:, :, col], ex).items()}
    return out


def listwise_loss(logits, liked, valid):
    """Mean over users of -sum over liked candidates of log softmax / their number."""
    masked = paddle.where(valid, logits, paddle.full_like(logits, -1e9))
    log_p = masked - paddle.logsumexp(masked, axis=1, keepdim=True)
    weights = liked / paddle.clip(liked.sum(axis=1, keepdim=True), min=1.0)
    return -(weights * log_p).sum(axis=1).mean()


def export(net) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in net.state_dict().items()}


def choose_serving_k(logits_by_k: dict, choosing: dict) -> tuple[int, dict]:
    """The smallest top k whose candidates, ranked by the network's logits, give the
    choosing users an NDCG@10 within SERVING_K_COST of the best k's: (k, {k: HR@10 and
    NDCG@10}). It comes before the two-tower blend, which is then chosen on that k's lists.
    `choosing`: {k: the choosing users' Examples with each channel's top k as candidates};
    `logits_by_k`: the network's logits on each.

    Why: a user's top 10 almost never comes from deep in a channel's list (ml-1m: 2 of
    10,000 top-10 slots beyond each channel's 50th), while the rank stage's time grows
    with the candidates (the features and the network are half of `rec evaluate`'s rank
    stage); the network trained on the widest lists serves fewer at the same NDCG@10."""
    table = {k: ranked_metrics(logits_by_k[k], ex) for k, ex in sorted(choosing.items())}
    best = max(m["ndcg@10"] for m in table.values())
    chosen = min(k for k, m in table.items() if m["ndcg@10"] >= (1.0 - SERVING_K_COST) * best)
    return chosen, table


def rank_objective(net, optimizer, train: Examples, choosing: dict, batch_users: int,
                   save: callable) -> Objective:
    """rec.engine.trainer.fit's Objective: train_epoch over the training users (shuffled by the
    epoch's seed), validate() on the held-aside tuning users: `choosing` holds their
    candidates at each top k the model may serve ({k: Examples}, the training lists' k the
    largest); for this epoch's network the serving k (choose_serving_k) and then the
    two-tower blend on that k's lists (choose_blend), its NDCG@10 the epoch's. save(folder,
    epoch, weights, choices) writes the best epoch's files into `folder`, choices being
    {"k", "k_table", "blend", "blend_table"}."""
    part = Trainable(net, optimizer, *RANK_CHECKPOINT)
    chosen = {}

    def train_epoch(epoch: Epoch) -> tuple[dict, int]:
        rank, world = epoch.job.rank, epoch.job.world
        order = epoch.rng().permutation(len(train.users))
        n_batches = (len(order) + batch_users - 1) // batch_users
        epoch.started(n_batches)
        total, n = 0.0, 0
        for b in range(n_batches):
            rows = order[b * batch_users: (b + 1) * batch_users][rank::world]
            if not len(rows):
                break
            logits = part.train_net(paddle.to_tensor(train.x[rows]))
            loss = listwise_loss(logits, paddle.to_tensor(train.liked[rows].astype(np.float32)),
                                 paddle.to_tensor(train.valid[rows]))
            loss.backward()
            optimizer.step()
            optimizer.clear_grad()
            total += float(loss) * len(rows)
            n += len(rows)
            epoch.advance()
        return {"train_loss": total}, n

    def logits_of(val: Examples) -> np.ndarray:
        logits = np.empty(val.valid.shape, np.float32)
        with paddle.no_grad():  # a few users at a time: the hidden layers of all the
            for lo in range(0, len(logits), VAL_USERS):  # choosing users were 250 MB on ml-1m
                rows = slice(lo, lo + VAL_USERS)
                logits[rows] = net(paddle.to_tensor(val.x[rows])).numpy()
        return logits

    def validate() -> dict:
        net.eval()
        logits = {k: logits_of(ex) for k, ex in choosing.items()}
        net.train()
        k, chosen["k_table"] = choose_serving_k(logits, choosing)
        chosen["k"] = k
        m = chosen["k_table"][k]
        chosen["blend"], chosen["blend_table"] = choose_blend(logits[k], choosing[k])
        return {"rank_hr@10": m["hr@10"], "rank_ndcg@10": m["ndcg@10"],
                "serving_k": k, "two_tower_blend": chosen["blend"]}

    def save_best(epoch: int, folder) -> None:  # right after the epoch's validate()
        save(folder, epoch, export(net), dict(chosen))

    return Objective([part], train_epoch, validate, save_best)


def npz_bytes(arrays: dict) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


__all__ = ["build_examples", "liked_users", "split_users", "rank_objective", "channel_report",
           "save_paddle"]
