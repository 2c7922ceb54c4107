"""A dataset put into data/<dataset>/ all at once, verified: downloaded from its publisher
(or a mirror), copied from a local archive or folder, or generated (synthetic); and the
verification record (.rec-verified.json) that lets a second `rec download` skip the work.

Verification: an official download must match the publisher's MD5 and then pass the
structure check (registry.check_structure: every line of every file parsed, row counts as
published); a --source is checked by structure alone, since mirrors and local copies need
not be byte-identical. Every dataset is built in a fresh folder and swapped in
(rec.storage.atomic.atomic_dir): a reader never sees half of one. HTTP is fetch.py's,
extraction archive.py's.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import zipfile
from pathlib import Path

from rec import __version__
from rec.console import log
from rec.datasets import archive, fetch, registry
from rec.datasets.registry import MARKER, DatasetSpec
from rec.datasets.synthetic import SyntheticSpec, generate
from rec.errors import RecError, UsageError
from rec.paths import Paths
from rec.storage.atomic import atomic_dir, write_json


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


# --- the work ------------------------------------------------------------------------------


def is_url(source: str) -> bool:
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
    if is_url(source):  # a mirror: structure only
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
    if is_url(source):
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
