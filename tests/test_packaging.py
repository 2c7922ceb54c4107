"""Packaging: the dependency floors in setup.cfg work, and what pip installs."""

from __future__ import annotations

import configparser
import re
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def setup_cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return cfg


def test_floors_admit_no_version_known_to_crash():
    floors = {}
    for req in setup_cfg()["options"]["install_requires"].split():
        name, _, version = req.partition(">=")
        floors[name] = tuple(int(x) for x in version.split(",")[0].split("."))
    # typer < 0.28: no typer.TyperException (every usage error crashed), and 0.12.x with
    # click >= 8.2 failed at start-up; typer 0.28 needs rich >= 13.8
    assert floors["typer"] >= (0, 28) and floors["rich"] >= (13, 8)
    assert floors["numpy"] >= (1, 24)


@pytest.mark.slow
def test_lowest_allowed_versions_run_the_cli_tests():
    """.ci/lowest: a fresh venv with the floors of typer, rich and numpy (from PyPI)."""
    proc = subprocess.run([str(ROOT / ".ci" / "lowest")], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "PYTHON": sys.executable})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout


def test_license_scripts_urls_and_classifiers_are_declared():
    meta, options = setup_cfg()["metadata"], setup_cfg()["options"]
    assert meta["license"] == "Apache-2.0" and meta["license_files"].strip() == "LICENSE"
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text  # the full text
    assert "bin/pipeline" in options["scripts"].split()  # on PATH after `pip install`
    assert "License :: OSI Approved :: Apache Software License" in meta["classifiers"]
    assert meta["project_urls"].strip()


def test_the_distribution_has_a_free_name_and_installs_the_rec_command():
    """`rec` on PyPI is an unrelated package (regular expressions): `pip install rec` would
    install that one. Every install line names this distribution (or `.` in a checkout)."""
    cfg = setup_cfg()
    assert cfg["metadata"]["name"] == "rec-paddle"
    assert cfg["options.entry_points"]["console_scripts"].split() == ["rec", "=", "rec.cli:main"]
    files = [ROOT / "README.md", *sorted((ROOT / "rec").rglob("*.py")),
             *sorted((ROOT / "tests").glob("*.py"))]
    lines = [m.group(0) for path in files for m in
             re.finditer(r"pip install[^`'\n]*'([^'\[]+)\[", path.read_text(encoding="utf-8"))]
    assert lines and all(re.search(r"'(rec-paddle|\.)\[$", line) for line in lines), lines
