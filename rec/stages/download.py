"""`rec download`: fetch a MovieLens archive from its publisher (or a --source), verify it,
and put it in data/<dataset>/ all at once; or generate the synthetic dataset.

The options, their checks, the manifest and the summary; the work (download, copy or
generate, verify, place, and the .rec-verified.json record that makes a second run
instant) is rec/datasets/download.py's.
"""

from __future__ import annotations

from typing import Optional

import typer

from rec.console import log, warn
from rec.datasets import fetch, registry
from rec.datasets.download import (check_source, dataset_in, fetch_dataset, generate_synthetic,
                                   is_url, verified_marker)
from rec.datasets.registry import DatasetSpec
from rec.datasets.synthetic import MOVIES, RATINGS, USERS, SyntheticSpec
from rec.errors import UsageError
from rec.paths import Paths
from rec.results import emit_object
from rec.stages import get_paths, stage
from rec.stages.options import SEED_RANGE, Format
from rec.storage import manifest, recovery

HELP = "Download a MovieLens dataset (verified) into data/<dataset>/, or generate synthetic data."
_SYN = SyntheticSpec()  # defaults shown in --help
TIMEOUT_S = (0.1, 3600)  # below, a socket gives up at once; above, no server is that slow
MAX_RETRIES = 10  # the pauses double: 1 s ... 512 s, about 17 minutes in all


def seconds_within(low: float, high: float):
    """A parser check (exit 2): a number of seconds in [low, high]; inf, nan, 0 and
    negative values are refused, as are values no socket timeout can hold."""
    def check(value: float) -> float:
        if not low <= value <= high:  # nan fails every comparison
            raise typer.BadParameter(f"must be a number of seconds from {low:g} to {high:g} "
                                     f"(got {value:g})")
        return value
    return check


def summary(paths: Paths, spec: DatasetSpec, marker: dict, status: str) -> dict:
    """The result object printed on stdout."""
    rows = {f.role: marker["files"][f.name]["rows"] for f in reversed(spec.files)
            if f.role != "other"}
    return {"dataset": spec.name, "status": status, "folder": str(paths.raw(spec.name)),
            "files": ", ".join(marker["files"]),
            **{role: rows[role] for role in ("users", "movies", "ratings") if role in rows},
            "verified": marker["verified_by"], "archive_md5": marker.get("md5"),
            "source": marker["source"]}


def left_out(spec: DatasetSpec, named: bool, source: str | None) -> dict:
    """What the options whose default is None stand for in this run (as their --help says),
    for the manifest: `rec status` shows only what a run changed. --dataset given with a
    --source is not resolved (the source's name is not read again): it shows as given."""
    resolved = {**SyntheticSpec().__dict__} if spec.generated else {}
    if not named:
        resolved["dataset"] = spec.name
    elif source is None:
        resolved["dataset"] = registry.DEFAULT
    return resolved


def _record_if_missing(paths: Paths, spec: DatasetSpec, params: dict, resolved: dict) -> None:
    """A present dataset is left alone, but the manifest should still know about it."""
    last = manifest.last_download(paths)
    if last is None or last[0] != spec.name or last[1] != paths.raw(spec.name).resolve():
        manifest.record(paths, "download", params, inputs=[], outputs=[paths.raw(spec.name)],
                        resolved=resolved)


# --- the command ---------------------------------------------------------------------------


@stage(writes=("data", "output"))
def command(
    ctx: typer.Context,
    dataset: Optional[str] = typer.Option(
        None, "--dataset", "-d", show_default=False,
        help=f"One of: {', '.join(registry.names())}. [default: the one --source holds, by "
        f"its folder's name, else {registry.DEFAULT}]"),
    source: Optional[str] = typer.Option(
        None, "--source", metavar="PATH_OR_URL",
        help="A mirror URL, a downloaded .zip or an extracted folder (checked by structure)."),
    force: bool = typer.Option(False, "--force", help="Fetch again even if already verified."),
    fmt: Format = "auto",
    timeout: float = typer.Option(30.0, "--timeout", callback=seconds_within(*TIMEOUT_S),
                                  help=f"Seconds without data before a retry "
                                  f"({TIMEOUT_S[0]:g} to {TIMEOUT_S[1]:g})."),
    retries: int = typer.Option(3, "--retries", min=0, max=MAX_RETRIES,
                                help="Tries after the first (with backoff)."),
    seed: Optional[int] = typer.Option(None, "--seed", **SEED_RANGE,
                                       help=f"synthetic: random seed (default {_SYN.seed})."),
    users: Optional[int] = typer.Option(
        None, "--users", min=USERS[0], max=USERS[1],
        help=f"synthetic: users (default {_SYN.users})."),
    movies: Optional[int] = typer.Option(
        None, "--movies", min=MOVIES[0], max=MOVIES[1],
        help=f"synthetic: movies (default {_SYN.movies})."),
    ratings: Optional[int] = typer.Option(
        None, "--ratings", min=RATINGS[0], max=RATINGS[1],
        help=f"synthetic: ratings (default {_SYN.ratings}; 5 per user to half of all "
        f"user-movie pairs)."),
) -> None:
    paths = get_paths(ctx)
    named = dataset is not None
    if dataset is None:
        dataset = dataset_in(source) if source else None
        if dataset is not None:
            log(f"--source {source}: taken as --dataset {dataset}")
        dataset = dataset or registry.DEFAULT
    spec = registry.get(dataset)
    target = paths.raw(spec.name)
    recovery.repair(target)  # before looking at target: a killed run's swap may put it back
    params: dict = {"dataset": spec.name, "source": source, "force": force}

    check_source(spec, source)
    if spec.generated:
        syn = SyntheticSpec(users=_SYN.users if users is None else users,
                            movies=_SYN.movies if movies is None else movies,
                            ratings=_SYN.ratings if ratings is None else ratings,
                            seed=_SYN.seed if seed is None else seed)
        if syn.problem():
            raise UsageError(syn.problem())
        params.update(syn.__dict__)
        marker = None if force else verified_marker(target, spec)
        if marker is not None and marker.get("synthetic") == syn.__dict__:
            # the same options make the same data: generated again, it was the same files
            # with a new time in its marker, and every later stage read as out of date
            log(f"{target} is already present, generated with these options; nothing to do "
                "(--force generates it again)")
            recorded = (manifest.read(paths)[0]["stages"].get("download") or {}).get("params")
            resolved = left_out(spec, named, source)
            if {k: (recorded or {}).get(k) for k in syn.__dict__} != syn.__dict__:
                # this project recorded other options (another project regenerated the
                # shared data folder since): the manifest says what is there now
                manifest.record(paths, "download", params, inputs=[], outputs=[target],
                                resolved=resolved)
            else:
                _record_if_missing(paths, spec, params, resolved)
            emit_object(summary(paths, spec, marker, "already present"), fmt)
            return
        marker = generate_synthetic(paths, spec, syn)
        status = "generated"
    else:
        if any(v is not None for v in (seed, users, movies, ratings)):
            raise UsageError("--seed/--users/--movies/--ratings apply only to --dataset synthetic")
        marker = None if force else verified_marker(target, spec)
        if marker is not None and source is not None:  # not a word of it was read
            warn(f"--source {source} was not used: {target} is already present and verified "
                 f"({marker['verified_by']}); --force replaces it with the --source")
        elif marker is not None:
            log(f"{target} is already present and verified ({marker['verified_by']}); "
                f"nothing to do (--force fetches it again)")
        if marker is not None:
            _record_if_missing(paths, spec, {**params, "source": marker.get("source")},
                               left_out(spec, named, source))
            emit_object(summary(paths, spec, marker, "already present"), fmt)
            return
        if target.exists() and not force:
            log(f"{target} exists but is not verified: fetching it again "
                f"(the current folder stays until the new one is in place)")
        marker = fetch_dataset(paths, spec, source, fetch.Policy(timeout, retries), named)
        status = "downloaded" if source is None or is_url(source) else "copied from --source"
        log(f"{target} is ready ({marker['verified_by']})")

    manifest.record(paths, "download", params, inputs=[], outputs=[target],
                    resolved=left_out(spec, named, source))
    emit_object(summary(paths, spec, marker, status), fmt)
