"""`rec save-features`: run both towers over every user and movie and save the vectors.

Writes output/features/usr_feat.pkl and mov_feat.pkl ({str(id): float32 vector}, the course's
shape) and scoring.json, which tells `rec recommend` how to score exactly as the model does.
The network is rebuilt from output/model/config.json alone. Before finishing, the saved
vectors are checked against the model's own predictions on validation pairs.

The other recall channels go in the same unit (rec.rank.channels): EASE's item-item matrix
and PureSVD's item factors (ease.npz), fitted on the training ratings with the λ and the
rank that did best on the tuning slice (scoring.json's "channels" records the choices), so recommend and the rank stage read one
save-features run. The work is rec/twotower/saving.py's.
"""

from __future__ import annotations

import typer

from rec.console import log
from rec.results import emit_object
from rec.stages import get_paths, stage
from rec.stages.options import Device, Format

HELP = ("Save every user's and movie's vector (.npy, and the course's pickles) and fit the "
        "EASE and PureSVD channels, for recommend and the rank stage.")


@stage(writes=("output",), into=("features_dir",))
def command(
    ctx: typer.Context,
    device: Device = "cpu",
    fmt: Format = "auto",
) -> None:
    from rec.twotower import saving

    summary = saving.save(get_paths(ctx), device)
    log(f"saved {summary['users']:,} user and {summary['movies']:,} movie vectors "
        f"({summary['dim']} components) to {summary['output']}")
    emit_object(summary, fmt)
