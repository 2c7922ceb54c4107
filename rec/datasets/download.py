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


def _check(spec: DatasetSpec, folder: Path, origin: str, hint: str = "",
           given: bool = False) -> dict[str, int]:
    """check_structure's rows; its error names `origin`. `given`: the user's own --source
    (a zip or folder on this machine), which is bad input (exit 2) where a download's
    archive that fails is a failure while working (exit 1)."""
    try:
        return registry.check_structure(spec, folder)
    except RecError as e:
        raise (UsageError if given else RecError)(
            f"{origin} is not a valid {spec.name} dataset: {e}{hint}") from None


def dataset_in(source: str) -> str | None:
    """The dataset a --source zip or folder holds, by its name, for a download without
    --dataset: the one top folder of a zip's members (ml-latest-small/...), or the folder's
    own name or its one subfolder's, when that is a known dataset; None otherwise (a URL
    too). Its structure is checked as always."""
    path = Path(source).expanduser()
    if is_url(source) or not path.exists():
        return None
    if path.is_dir():
        subfolders = [p.name for p in path.iterdir() if p.is_dir()]
        names = [path.resolve().name] + (subfolders if len(subfolders) == 1 else [])
    elif zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                tops = {name.split("/", 1)[0] for name in zf.namelist() if "/" in name}
        except (zipfile.BadZipFile, OSError):  # damaged: the download refuses it, saying so
            return None
        names = list(tops) if len(tops) == 1 else []
    else:
        return None
    return next((name for name in names if name in registry.names()), None)


def not_a_zip(source: str, path: Path) -> UsageError:
    """--source names a file that is no zip archive: a damaged one, if it looks like one
    (its name, or the zip signature it starts with), else neither archive nor folder."""
    with open(path, "rb") as f:
        start = f.read(4)
    if path.name.lower().endswith(".zip") or start == b"PK\x03\x04":
        return UsageError(f"--source {source} looks like a damaged or truncated zip archive "
                          f"(its table of contents, at its end, cannot be read): download it "
                          f"again")
    return UsageError(f"--source {source} is neither a zip archive, a dataset folder nor an "
                      f"http(s) URL")


def fetch_dataset(paths: Paths, spec: DatasetSpec, source: str | None,
                  policy: fetch.Policy, named: bool = True) -> dict:
    """Download (or copy from --source), verify and place one dataset; return its marker.
    `named`: --dataset was given (else a --source of another dataset is hinted at)."""
    if source is None:  # the publisher's archive: checksum, then structure
        md5 = spec.md5 or fetch.published_md5(spec.md5_url, policy)
        return _from_url(paths, spec, spec.url, md5, policy)
    if is_url(source):  # a mirror: structure only
        return _from_url(paths, spec, source, None, policy)
    return _from_path(paths, spec, source,
                      "" if named else "; is it another dataset? name it with --dataset")


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
    if not source.strip():  # Path("") is ".": it named the working folder
        raise UsageError("--source is empty: give a .zip, a folder or a URL")
    path = Path(source).expanduser()
    if not path.exists():
        raise UsageError(f"--source {source} does not exist")
    if not path.is_dir() and not zipfile.is_zipfile(path):
        raise not_a_zip(source, path)


def _from_path(paths: Paths, spec: DatasetSpec, source: str, hint: str = "") -> dict:
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
            raise not_a_zip(source, path)
        rows = _check(spec, stage, f"--source {source}", hint, given=True)
        marker = write_marker(stage, spec, str(path.resolve()), "structure", rows, extra)
    return marker


def generate_synthetic(paths: Paths, spec: DatasetSpec, syn: SyntheticSpec) -> dict:
    target = paths.raw(spec.name)
    log(f"generating {target} (seed {syn.seed}); the same options generate the same data")
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
