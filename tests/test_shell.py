"""How people type `rec`: completion through the shells' own protocol (`_REC_COMPLETE`),
global options after the command, a mistyped command, and what --help shows for values."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import typer

from rec.cli import COMMANDS, app

from conftest import ROOT, rec


def complete(shell: str, line: str) -> str:
    """What `rec` answers a shell's completion function for the command line `line` (the
    last word being completed, "" after a trailing space), as the scripts of
    `rec --show-completion SHELL` ask it."""
    words = line.split(" ")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "_REC_COMPLETE": f"complete_{shell}"}
    if shell == "bash":
        env.update(COMP_WORDS=line, COMP_CWORD=str(len(words) - 1))
    else:
        env["_TYPER_COMPLETE_ARGS"] = line
        if shell == "fish":
            env["_TYPER_COMPLETE_FISH_ACTION"] = "get-args"
    proc = subprocess.run([sys.executable, "-m", "rec"], env=env, capture_output=True,
                          text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return proc.stdout


def test_bash_completes_commands_and_each_commands_options():
    assert complete("bash", "rec re") == "recommend\n"
    assert complete("bash", "rec download --da") == "--dataset\n"
    assert complete("bash", "rec recommend --ge") == "--genre\n--gender\n"
    # after global options, and after the command's own arguments
    assert complete("bash", "rec -v --output-dir /tmp recommend 42 --ex") == \
        "--explore\n--exclude\n"
    options = complete("bash", "rec recommend --").split()
    assert {"--top", "--all", "--like", "--rated", "--format", "--help"} <= set(options)


def test_zsh_completes_options_with_their_help_on_one_line():
    assert complete("zsh", "rec download --da") == \
        "_arguments '*: :((\"--dataset\":\"One of\\\\: ml-1m, ml-100k, ml-latest-small, " \
        "ml-10m, ml-20m, ml…\"))'\n"
    assert complete("zsh", "rec recommend --ge") == (
        "_arguments '*: :((\"--genre\":\"Only movies of this genre (repeatable\\\\: any).\"\n"
        "\"--gender\":\"The new user''s gender (M, F).\"))'\n")


def test_fish_completes_options_one_candidate_a_line():
    assert complete("fish", "rec recommend --ge") == (
        "--genre\tOnly movies of this genre (repeatable: any).\n"
        "--gender\tThe new user's gender (M, F).\n")
    every = complete("fish", "rec pipeline --").splitlines()
    assert all(re.fullmatch(r"--[a-z-]+\t[^\t]+", line) for line in every), every
    assert "--skip" in {line.split("\t")[0] for line in every}


# --- global options after the command -------------------------------------------------------


def test_global_options_work_after_the_command(tmp_path):
    out = str(tmp_path / "out")
    before = rec(None, "-v", "--output-dir", out, "status", "--format", "json")
    assert before.exit_code == 0
    for args in (["status", "--format", "json", "-v", "--output-dir", out],
                 ["status", f"--output-dir={out}", "--verbose", "--format", "json"],
                 ["--verbose", "status", "--output-dir", out, "--format", "json"]):
        after = rec(None, *args)
        assert after.exit_code == 0, after.stderr
        assert (after.stdout, after.stderr) == (before.stdout, before.stderr), args
    quiet = rec(None, "status", "-q", "--output-dir", out)
    assert quiet.exit_code == 0 and quiet.stderr == ""


def group_and_context():
    group = typer.main.get_command(app)
    return group, group.make_context("rec", ["status"])


def test_only_global_options_move_and_never_a_commands_own_values():
    group, ctx = group_and_context()
    hoisted = lambda *args: group.hoisted(ctx, list(args))
    assert hoisted("recommend", "42", "-v", "--top", "3") == ["-v", "recommend", "42", "--top", "3"]
    # -v is --like's value here (a movie), and nothing after `--` moves
    assert hoisted("recommend", "--like", "-v", "-q", "--", "-v") == \
        ["-q", "recommend", "--like", "-v", "--", "-v"]
    assert hoisted("--data-dir", "d", "pipeline", "--output-dir", "o", "--epochs", "1") == \
        ["--data-dir", "d", "--output-dir", "o", "pipeline", "--epochs", "1"]
    assert hoisted("recommnd", "-v") == ["recommnd", "-v"]  # not a command: click says so


def test_a_global_option_without_its_value_is_one_line():
    r = rec(None, "status", "--output-dir")
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr == "error: Option '--output-dir' requires an argument. " \
        "(see `rec --help`)\n"


# --- mistyped commands ----------------------------------------------------------------------


@pytest.mark.parametrize("typed,hint", [("reccomend", " Did you mean 'recommend'?"),
                                        ("stauts", " Did you mean 'status'?"),
                                        ("xyzzy", "")])
def test_a_mistyped_command_gets_the_closest_name(typed, hint):
    r = rec(None, typed)
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr == f"error: No such command '{typed}'.{hint} (see `rec --help`)\n"


# --- what --help shows for values -----------------------------------------------------------


@pytest.mark.parametrize("command", [[]] + [[name] for name, _, _ in COMMANDS])
def test_help_names_values_as_people_read_them(command):
    """Flags show no type (not `--quiet -q <bool>`), values INT, FLOAT, TEXT, and an
    argument taking several values TEXT... (not `<list[str]>`)."""
    r = rec(None, *command, "--help", env={"COLUMNS": "120"})
    assert r.exit_code == 0
    assert not re.search(r"<(bool|str|int|float|list\[)", r.stdout), r.stdout
    if command == []:
        assert re.search(r"│ --quiet\s+-q\s+No progress", r.stdout), r.stdout
        assert re.search(r"│ --data-dir\s+TEXT\s+Raw data", r.stdout), r.stdout
    if command == ["recommend"]:
        assert re.search(r"│\s+USERS\s+TEXT\.\.\.\s+User ids", r.stdout), r.stdout
