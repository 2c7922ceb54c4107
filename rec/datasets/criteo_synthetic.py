"""A synthetic Criteo file with planted logistic structure, for tests and benchmarks.

Labels follow main effects of the categorical fields plus low-rank interactions between a
few pairs of fields (which a linear model cannot represent); some fields are left empty and
some lines have their trailing fields cut off, as in real files. The truth returned by
`generate` includes the Bayes-optimal AUC: the best any model can do on the file.

    python -m rec.datasets.criteo_synthetic OUT.txt --lines 100000 [--seed S]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rec.datasets.criteo import CAT_NAMES, CHUNK_LINES, N_CAT, N_COLUMNS, N_DENSE
from rec.metrics import auc

@dataclass
class SyntheticCriteoSpec:
    lines: int = 20000
    seed: int = 0
    max_cardinality: int = 60  # values per categorical field: 3 .. this
    interactions: int = 6  # pairs of categorical fields with a planted low-rank interaction
    interaction_rank: int = 3
    interaction_scale: float = 1.0  # sd of each pair's interaction term on the logit
    main_scale: float = 0.3  # sd of each field's main effect on the logit
    missing_rate: float = 0.04  # empty fields
    short_rate: float = 0.03  # lines whose trailing fields are cut off
    click_rate: float = 0.25  # roughly the share of label 1


def generate(path: Path, spec: SyntheticCriteoSpec, chunk_lines: int = CHUNK_LINES) -> dict:
    """Write `spec.lines` Criteo-format lines to `path` (atomically); return the truth:
    the Bayes-optimal logits' AUC (the best any model can do) and the planted pairs."""
    from rec.storage.atomic import atomic_path

    rng = np.random.default_rng(spec.seed)
    card = rng.integers(3, max(4, spec.max_cardinality + 1), size=N_CAT)
    hexes = [np.array([f"{v:08x}" for v in rng.choice(2**32, size=c, replace=False)])
             for c in card]
    popularity = [1.0 / np.arange(1, c + 1) ** 1.1 for c in card]
    popularity = [p / p.sum() for p in popularity]
    main = [rng.normal(0, spec.main_scale, size=c) for c in card]
    dense_w = rng.normal(0, 0.15, size=N_DENSE)
    dense_mu = rng.uniform(0.5, 3.0, size=N_DENSE)
    pairs = []
    fields = rng.permutation(N_CAT)
    for p in range(min(spec.interactions, N_CAT // 2)):
        f, g = int(fields[2 * p]), int(fields[2 * p + 1])
        s = np.sqrt(spec.interaction_scale / np.sqrt(spec.interaction_rank))
        pairs.append((f, g, rng.normal(0, s, size=(card[f], spec.interaction_rank)),
                      rng.normal(0, s, size=(card[g], spec.interaction_rank))))
    logits_all, labels_all = [], []
    bias = None
    with atomic_path(path) as tmp, open(tmp, "w", encoding="ascii") as out:
        for start in range(0, spec.lines, chunk_lines):
            n = min(chunk_lines, spec.lines - start)
            crng = np.random.default_rng([spec.seed, 1 + start // chunk_lines])
            values = np.stack([crng.choice(c, size=n, p=p) for c, p in zip(card, popularity)], 1)
            cat_missing = crng.random((n, N_CAT)) < spec.missing_rate
            counts = np.floor(np.exp(crng.normal(dense_mu, 1.0, size=(n, N_DENSE)))) - 1
            dense_missing = crng.random((n, N_DENSE)) < spec.missing_rate
            logit = (np.where(dense_missing, 0.0, np.log1p(np.maximum(counts, 0)))
                     - dense_mu) @ dense_w
            for j in range(N_CAT):
                logit += np.where(cat_missing[:, j], 0.0, main[j][values[:, j]])
            for f, g, uf, ug in pairs:
                both = ~(cat_missing[:, f] | cat_missing[:, g])
                logit += np.where(both, (uf[values[:, f]] * ug[values[:, g]]).sum(1), 0.0)
            if bias is None:  # fixed by the first chunk: the click rate is roughly as asked
                bias = float(np.log(spec.click_rate / (1 - spec.click_rate)) - np.median(logit))
            logit += bias
            label = (crng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
            short = crng.random(n) < spec.short_rate
            cut = np.where(short, crng.integers(1, 6, size=n), 0)
            cat_missing |= (np.arange(N_CAT)[None, :] >= N_CAT - cut[:, None])
            cols = [label.astype(str)]
            cols += [np.where(dense_missing[:, j], "", counts[:, j].astype(np.int64).astype(str))
                     for j in range(N_DENSE)]
            cols += [np.where(cat_missing[:, j], "", hexes[j][values[:, j]]) for j in range(N_CAT)]
            keep = N_COLUMNS - cut
            lines = ["\t".join(row[:k]) for row, k in zip(zip(*[c.tolist() for c in cols]),
                                                           keep.tolist())]
            out.write("\n".join(lines) + "\n")
            logits_all.append(logit)
            labels_all.append(label)
    logits, labels = np.concatenate(logits_all), np.concatenate(labels_all)
    return {"lines": spec.lines, "click_rate": float(labels.mean()),
            "bayes_auc": auc(labels, logits),
            "pairs": [[CAT_NAMES[f], CAT_NAMES[g]] for f, g, _, _ in pairs]}


def main(argv: list[str] | None = None) -> None:
    """python -m rec.datasets.criteo_synthetic OUT [--lines N] [--seed S]: write a file."""
    import argparse
    import json

    ap = argparse.ArgumentParser(description="Write a synthetic Criteo-format file.")
    ap.add_argument("out", type=Path)
    ap.add_argument("--lines", type=int, default=SyntheticCriteoSpec.lines)
    ap.add_argument("--seed", type=int, default=SyntheticCriteoSpec.seed)
    ap.add_argument("--max-cardinality", type=int, default=SyntheticCriteoSpec.max_cardinality)
    opts = ap.parse_args(argv)
    truth = generate(opts.out, SyntheticCriteoSpec(lines=opts.lines, seed=opts.seed,
                                                   max_cardinality=opts.max_cardinality))
    print(json.dumps(truth))


if __name__ == "__main__":
    main()
