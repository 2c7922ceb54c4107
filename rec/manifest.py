"""output/manifest.json: what each stage ran with, what it read and what it wrote.

Fingerprints let `rec status` say a stage is stale: its inputs changed since it ran.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from rec import __version__
from rec.atomic import write_json
from rec.paths import Paths

# The stages in pipeline order, with what each one needs before it can run.
STAGES = ["download", "preprocess", "train", "evaluate", "save-features", "ctr-train"]
UPSTREAM = {
    "preprocess": "download",
    "train": "preprocess",
    "evaluate": "train",
    "save-features": "train",
    "ctr-train": "preprocess",
}


def fingerprint(path: Path) -> str | None:
    """Content hash of a file; for a folder, a hash over its files' names, sizes and mtimes."""
    path = Path(path)
    if not path.exists():
        return None
    h = hashlib.blake2b(digest_size=12)
    if path.is_file():
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()
    for child in sorted(p for p in path.rglob("*") if p.is_file()):
        st = child.stat()
        h.update(f"{child.relative_to(path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def load(paths: Paths) -> dict:
    """The manifest; a missing or damaged one reads as empty (its stages show 'not run'),
    and a stage's entry that is not an object is left out."""
    try:
        obj = json.loads(paths.manifest.read_text())
    except (FileNotFoundError, ValueError):  # JSONDecodeError and UnicodeDecodeError
        obj = None
    stages = obj.get("stages") if isinstance(obj, dict) else None
    if not isinstance(stages, dict):
        return {"stages": {}}
    obj["stages"] = {k: v for k, v in stages.items() if isinstance(v, dict)}
    return obj


def record(paths: Paths, stage: str, params: dict[str, Any], inputs: list[Path],
           outputs: list[Path]) -> None:
    """Record a finished stage (atomically rewriting the manifest)."""
    manifest = load(paths)
    manifest.setdefault("stages", {})[stage] = {
        "command": " ".join(["rec"] + sys.argv[1:]),
        "params": params,
        "version": __version__,
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "inputs": {str(Path(p).resolve()): fingerprint(p) for p in inputs},
        "outputs": {str(Path(p).resolve()): fingerprint(p) for p in outputs},
    }
    write_json(paths.manifest, manifest)


def stage_state(entry: dict | None) -> str:
    """'not run', 'fresh', 'stale' (inputs changed) or 'modified' (its outputs changed)."""
    if entry is None:
        return "not run"
    inputs, outputs = entry.get("inputs"), entry.get("outputs")
    for p, fp in (inputs if isinstance(inputs, dict) else {}).items():
        if fingerprint(Path(p)) != fp:
            return "stale"
    for p, fp in (outputs if isinstance(outputs, dict) else {}).items():
        if fingerprint(Path(p)) != fp:
            return "modified"
    return "fresh"
