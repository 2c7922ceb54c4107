"""bin/pipeline: the one-command wrapper around every stage."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "bin" / "pipeline"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(PIPELINE), *args], capture_output=True, text=True,
                          timeout=60)


def test_help_names_every_stage_and_option():
    result = run("--help")
    assert result.returncode == 0 and result.stderr == ""
    for word in ("download", "preprocess", "train", "evaluate", "save-features", "ctr-train",
                 "recommend", "--dataset", "--source", "--device", "--epochs", "--user", "--top"):
        assert word in result.stdout


def test_unknown_option_is_one_line_and_exit_2():
    result = run("--bogus")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == "error: bin/pipeline: unknown option --bogus (see bin/pipeline --help)\n"
