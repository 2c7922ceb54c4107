"""`rec download`: fetch a MovieLens archive from its publisher (or a --source), verify it,
and put it in data/<dataset>/ all at once; or generate the synthetic dataset.

Verification: an official download must match the publisher's MD5 and then pass the
structure check (every line of every file parsed, row counts as published); a --source is
checked by structure alone, since mirrors and local copies need not be byte-identical. What
was verified is recorded in data/<dataset>/.rec-verified.json, so a second run is instant.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import zipfile
from pathlib import Path
from typing import Optional

import typer

from rec import __version__

from rec.storage import manifest, recovery
from rec.storage.atomic import atomic_dir, write_json
from rec.console import log
from rec.results import emit_object
from rec.datasets import archive, fetch, registry
from rec.datasets.registry import MARKER, DatasetSpec
from rec.datasets.synthetic import MOVIES, RATINGS, USERS, SyntheticSpec, generate
from rec.errors import RecError, UsageError
from rec.paths import Paths
from rec.stages import get_paths, stage
from rec.stages.options import SEED_RANGE, Format

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


# --- the verification record ---------------------------------------------------------------


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def write_marker(folder: Path, spec: DatasetSpec, source: str, method: str, rows: dict,
                 extra: dict | None = None) -> dict:
    marker = {
        "dataset": spec.name,
        "format": spec.format,
        "source": source,
        "verified_by": method,  # "md5+structure", "structure" or "generated+structure"
        **(extra or {}),
        "files": {name: {"rows": n, "bytes": (folder / name).stat().st_size}
                  for name, n in rows.items()},
        "time": _now(),
        "rec_version": __version__,
    }
    write_json(folder / MARKER, marker)
    return marker


def verified_marker(folder: Path, spec: DatasetSpec) -> dict | None:
    """The marker if the folder still holds what it describes (same names and sizes).

    Sizes, not checksums: cheap enough to check on every run, and they catch the usual
    accidents (a truncated copy, a file replaced by another dataset's).
    """
    marker = registry.read_marker(folder)
    if not marker or marker.get("dataset") != spec.name:
        return None
    files = marker.get("files")
    if not isinstance(files, dict) or set(files) != {f.name for f in spec.files}:
        return None
    for name, info in files.items():
        path = folder / name
        if not isinstance(info, dict) or not isinstance(info.get("rows"), int):
            return None
        if not path.is_file() or path.stat().st_size != info.get("bytes"):
            return None
    return marker


def summary(paths: Paths, spec: DatasetSpec, marker: dict, status: str) -> dict:
    """The result object printed on stdout."""
    rows = {f.role: marker["files"][f.name]["rows"] for f in reversed(spec.files)
            if f.role != "other"}
    return {"dataset": spec.name, "status": status, "folder": str(paths.raw(spec.name)),
            "files": ", ".join(marker["files"]),
            **{role: rows[role] for role in ("users", "movies", "ratings") if role in rows},
            "verified": marker["verified_by"], "archive_md5": marker.get("md5"),
            "source": marker["source"]}


# --- the work ------------------------------------------------------------------------------


def _is_url(source: str) -> bool:
    return source.lower().startswith(("http://", "https://"))


def _check(spec: DatasetSpec, folder: Path, origin: str) -> dict[str, int]:
    try:
        return registry.check_structure(spec, folder)
    except RecError as e:
        raise RecError(f"{origin} is not a valid {spec.name} dataset: {e}") from None


def fetch_dataset(paths: Paths, spec: DatasetSpec, source: str | None,
                  policy: fetch.Policy) -> dict:
    """Download (or copy from --source), verify and place one dataset; return its marker."""
    if source is None:  # the publisher's archive: checksum, then structure
        md5 = spec.md5 or fetch.published_md5(spec.md5_url, policy)
        return _from_url(paths, spec, spec.url, md5, policy)
    if _is_url(source):  # a mirror: structure only
        return _from_url(paths, spec, source, None, policy)
    return _from_path(paths, spec, source)


def _from_url(paths: Paths, spec: DatasetSpec, url: str, expected_md5: str | None,
              policy: fetch.Policy) -> dict:
    target = paths.raw(spec.name)
    # One partial file per URL, so resuming never glues two different archives together.
    tag = hashlib.sha1(url.encode()).hexdigest()[:8]
    part = paths.download_cache() / f"{spec.name}-{tag}.zip.part"
    log(f"downloading {url}" + (" (resuming)" if part.exists() else ""))
    fetch.download(url, part, policy, spec.name)
    try:  # from here on the archive is complete: keep it only until it is placed
        md5 = fetch.md5_of(part)
        if expected_md5 and md5 != expected_md5:
            raise RecError(f"checksum mismatch for {url}: got md5 {md5}, the publisher's is "
                           f"{expected_md5}; the download was removed, run again or "
                           f"{fetch.SOURCE_HINT}")
        with atomic_dir(target) as stage:
            archive.extract_zip(part, stage, spec.member_caps())
            rows = _check(spec, stage, f"the archive from {url}")
            method = "md5+structure" if expected_md5 else "structure"
            marker = write_marker(stage, spec, url, method, rows, {"md5": md5})
    finally:
        part.unlink(missing_ok=True)
    return marker


def check_source(spec: DatasetSpec, source: str | None) -> None:
    """What is wrong with --source before anything is read from it (exit 2): any source for
    generated data, a path that does not exist, a file that is not a zip archive. Also what
    `rec pipeline` checks before its first stage."""
    if source is None:
        return
    if spec.generated:
        raise UsageError(f"--source does not apply to --dataset {spec.name}")
    if _is_url(source):
        return
    path = Path(source).expanduser()
    if not path.exists():
        raise UsageError(f"--source {source} does not exist")
    if not path.is_dir() and not zipfile.is_zipfile(path):
        raise UsageError(f"--source {source} is neither a zip archive, a dataset folder "
                         f"nor an http(s) URL")


def _from_path(paths: Paths, spec: DatasetSpec, source: str) -> dict:
    target = paths.raw(spec.name)
    path = Path(source).expanduser()
    with atomic_dir(target) as stage:
        if path.is_dir():
            archive.copy_folder(path, stage, [f.name for f in spec.files])
            extra = {}
        elif zipfile.is_zipfile(path):
            archive.extract_zip(path, stage, spec.member_caps())
            extra = {"md5": fetch.md5_of(path)}
        else:
            raise UsageError(f"--source {source} is neither a zip archive, a dataset folder "
                             f"nor an http(s) URL")
        rows = _check(spec, stage, f"--source {source}")
        marker = write_marker(stage, spec, str(path.resolve()), "structure", rows, extra)
    return marker


def generate_synthetic(paths: Paths, spec: DatasetSpec, syn: SyntheticSpec) -> dict:
    target = paths.raw(spec.name)
    log(f"generating {target} (seed {syn.seed}); synthetic data is regenerated on every call, "
        f"identically for the same options")
    with atomic_dir(target) as stage:
        try:
            generate(stage, syn)
        except ValueError as e:
            raise UsageError(str(e)) from None
        rows = _check(spec, stage, "the generated data")  # cheap, and keeps the generator honest
        source = (f"generated: seed {syn.seed}, {syn.users} users, {syn.movies} movies, "
                  f"{syn.ratings} ratings")
        marker = write_marker(stage, spec, source,
                              "generated+structure", rows, {"synthetic": dict(syn.__dict__)})
    return marker


def _record_if_missing(paths: Paths, spec: DatasetSpec, params: dict) -> None:
    """A present dataset is left alone, but the manifest should still know about it."""
    last = manifest.last_download(paths)
    if last is None or last[0] != spec.name or last[1] != paths.raw(spec.name).resolve():
        manifest.record(paths, "download", params, inputs=[], outputs=[paths.raw(spec.name)])


# --- the command ---------------------------------------------------------------------------


@stage(writes=("data", "output"))
def command(
    ctx: typer.Context,
    dataset: str = typer.Option(registry.DEFAULT, "--dataset", "-d",
                                help=f"One of: {', '.join(registry.names())}."),
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
        marker = generate_synthetic(paths, spec, syn)
        status = "generated"
    else:
        if any(v is not None for v in (seed, users, movies, ratings)):
            raise UsageError("--seed/--users/--movies/--ratings apply only to --dataset synthetic")
        marker = None if force else verified_marker(target, spec)
        if marker is not None:
            log(f"{target} is already present and verified ({marker['verified_by']}); "
                f"nothing to do (--force fetches it again)")
            _record_if_missing(paths, spec, {**params, "source": marker.get("source")})
            emit_object(summary(paths, spec, marker, "already present"), fmt)
            return
        if target.exists() and not force:
            log(f"{target} exists but is not verified: fetching it again "
                f"(the current folder stays until the new one is in place)")
        marker = fetch_dataset(paths, spec, source, fetch.Policy(timeout, retries))
        status = "downloaded" if source is None or _is_url(source) else "copied from --source"
        log(f"{target} is ready ({marker['verified_by']})")

    manifest.record(paths, "download", params, inputs=[], outputs=[target])
    emit_object(summary(paths, spec, marker, status), fmt)
