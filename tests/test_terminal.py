"""What a terminal user meets: tables at 80 columns, CSV and --no-header, help texts shown
as written (square brackets are not markup), shell completion."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from rec import results
from rec.cli import COMMANDS, load_command
from rec.stages.recommend import RECOMMEND_COLUMNS, TABLE_LAYOUT

from conftest import ROOT, rec, run_stages

ROWS = [{"rank": 1, "title": "Toy Story (1995)", "score": 4.123456789, "note": None},
        {"rank": 2, "title": 'say "hi", then\tgo', "score": 0.00001234, "note": "new\nline"}]
COLUMNS = ["rank", "title", "score", "note"]


@pytest.fixture(autouse=True)
def with_header():
    results.set_header(True)
    yield
    results.set_header(True)


def test_csv_quotes_as_rfc_4180(capsys):
    results.emit(ROWS, COLUMNS, "csv")
    assert capsys.readouterr().out == ('rank,title,score,note\n'
                                       '1,Toy Story (1995),4.12346,\n'
                                       '2,"say ""hi"", then\tgo",1.234e-05,"new\nline"\n')


def test_no_header(capsys):
    results.set_header(False)
    results.emit(ROWS[:1], COLUMNS, "tsv")
    results.emit(ROWS[:1], COLUMNS, "csv")
    results.emit([], COLUMNS, "tsv")
    assert capsys.readouterr().out == "1\tToy Story (1995)\t4.12346\t\n1,Toy Story (1995),4.12346,\n"


def test_no_header_and_csv_on_the_command_line(tmp_path):
    r = rec(tmp_path, "status", "--format", "csv", "--no-header")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.splitlines()[0] == "download,not run,,"
    r = rec(tmp_path, "status", "--format", "tsv", "--no-header")
    assert r.stdout.splitlines()[0] == "download\tnot run\t\t"


GENRES = "Action|Adventure|Animation|Children's|Comedy|Sci-Fi"
REASON = "because you rated Star Wars: Episode V - The Empire Strikes Back 5 stars"


def recommend_rows(users=(42,)):
    return [{"user": u, "rank": k, "movie": 1000 + k,
             "title": f"A Rather Long Movie Title Number {k}, The ({1990 + k})", "year": 1990 + k,
             "genres": GENRES, "stars": 4.23, "score": 1.097, "reason": REASON}
            for u in users for k in range(1, 11)]


def test_recommend_table_fits_80_columns(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    results.emit(recommend_rows(), RECOMMEND_COLUMNS, "table", "top 10", TABLE_LAYOUT)
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "user 42" in lines[0] and not lines[1].startswith("user")  # said once, in the title
    assert lines[1].split() == ["rank", "movie", "title", "genres", "stars", "score"]
    assert lines[2] == " " * 6 + "reason"  # the note's header, where the reasons start
    body = lines[4:]
    assert len(body) == 30  # per movie: the title on two lines, then its reason (on one)
    title_at = lines[1].index("title")
    for k in range(10):
        row, more, reason = body[3 * k: 3 * k + 3]
        assert row.split()[:2] == [str(k + 1), str(1001 + k)] and row.split()[-2:] == ["4.23", "1.097"]
        title = " ".join([row[title_at:].split("  ")[0], more.strip()])
        assert title == f"A Rather Long Movie Title Number {k + 1}, The ({1991 + k})"  # whole
        assert "…" in row  # the genres, cut short
        assert reason.strip() == REASON
    words = set(" ".join(lines).replace("…", " ").split())
    assert {"Action|Adventure", "Movie", "Rather"} & words  # no word folded


def test_a_title_longer_than_two_lines_is_cut_keeping_its_year(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    rows = [{**recommend_rows()[0], "title": "Star Wars: Episode V - The Empire Strikes Back "
             "(1980)", "genres": "Action"}]
    results.emit(rows, RECOMMEND_COLUMNS, "table", "top 1", TABLE_LAYOUT)
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 60
    assert lines[4].split() == ["42", "1", "1001", "Star", "Wars:", "Episode", "Action", "4.23",
                                "1.097"]
    assert lines[5].split() == ["V", "-", "The", "Emp…", "(1980)"]  # cut, the year kept
    assert lines[6].strip().startswith("because")  # no third line


def test_wide_characters_take_two_columns_in_a_table(capsys, monkeypatch):
    """A row of Japanese text (download's source, a title) was laid out by characters: 128
    columns wide on an 80-column terminal (an adversarial trial's find)."""
    from rec.texttable import text_width

    monkeypatch.setenv("COLUMNS", "80")
    path = "/データ/映画の評価/" * 4 + "ml-100k"
    results.emit_object({"dataset": "ml-100k", "source": path, "status": "copied"}, "table")
    lines = capsys.readouterr().out.splitlines()
    assert max(text_width(line) for line in lines) <= 80 < text_width(path) + 8
    assert "".join(line[8:].strip() for line in lines if "/" in line) == path  # all of it
    rows = [{**recommend_rows()[0], "title": "千と千尋の神隠し (Spirited Away) " * 2 + "(2001)"}]
    results.emit(rows, RECOMMEND_COLUMNS, "table", "top 1", TABLE_LAYOUT)
    lines = capsys.readouterr().out.splitlines()
    assert max(text_width(line) for line in lines) <= 80 and any("(2001)" in x for x in lines)
    assert text_width("e\u0301té") == 3 and text_width("映画") == 4 and text_width("ab") == 2


def test_a_column_of_floats_lines_up_its_decimals(capsys):
    rows = [{"rank": 1, "stars": 4.1, "n": 7}, {"rank": 2, "stars": 3.76, "n": 12},
            {"rank": 3, "stars": 4.0, "n": 3}]
    results.emit(rows, ["rank", "stars", "n"], "table")
    assert capsys.readouterr().out.splitlines()[2:] == [
        "   1   4.10   7", "   2   3.76  12", "   3   4.00   3"]
    rows = [{"model": "rec", "rmse": 1.03631}, {"model": "ease", "rmse": None},
            {"model": "bias", "rmse": 0.931494}]  # evaluate's: a baseline without stars
    results.emit(rows, ["model", "rmse"], "table")
    assert capsys.readouterr().out.splitlines()[2:] == [
        "rec    1.036310", "ease", "bias   0.931494"]
    results.emit_object({"users": 6040, "seconds": 0.149}, "table")  # counts and rates: as is
    assert capsys.readouterr().out.splitlines()[2:] == ["users     6040", "seconds  0.149"]


def test_reasons_wrap_at_spaces_only(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "50")
    results.emit(recommend_rows((1, 2))[:1], RECOMMEND_COLUMNS, "table", "top", TABLE_LAYOUT)
    lines = capsys.readouterr().out.splitlines()
    reason = lines[next(i for i, line in enumerate(lines) if "because" in line):]
    assert " ".join(" ".join(reason).split()) == REASON
    assert all(word in REASON.split() for line in reason for word in line.split())


def test_training_table_fits_80_columns_with_whole_values_and_the_best_mark(monkeypatch):
    """A summed loss in the hundreds, seconds in the thousands: nothing cut ("385.36…"),
    every epoch on one line with its star."""
    import io

    from rich.console import Console

    from rec.console import epoch_table
    from rec.engine.trainer import Monitor

    columns = {"pick_loss": "pick loss", "rating_loss": "rating loss", "val_hr@10": "val HR@10",
               "val_ndcg@10": "val NDCG@10", "val_rmse": "val RMSE"}
    history = [{"epoch": e, "pick_loss": 692.9046 - e, "rating_loss": 1.0364,
                "val_hr@10": 0.5307, "val_ndcg@10": 0.13 + e / 100, "val_rmse": 0.964,
                "samples_per_s": 1153.0, "elapsed": 385.36 * e} for e in (1, 2, 3)]
    out = Console(width=80, file=io.StringIO())
    out.print(epoch_table(history, "rec train · ml-1m · softmax · cpu", columns,
                          Monitor("val_ndcg@10", True, "val NDCG@10", "best_ndcg")))
    lines = out.file.getvalue().splitlines()
    assert max(map(len, lines)) <= 80 and "…" not in "".join(lines)
    rows = [line.split() for line in lines if line.strip()[:1].isdigit()]
    assert rows == [["1", "691.9", "1.0364", "0.5307", "0.1400", "0.9640", "1,153", "385.4s"],
                    ["2", "690.9", "1.0364", "0.5307", "0.1500", "0.9640", "1,153", "770.7s"],
                    ["3", "689.9", "1.0364", "0.5307", "0.1600", "*", "0.9640", "1,153",
                     "1156.1s"]]


def test_recommend_help_says_what_stars_and_score_are():
    shown = help_output("recommend")
    assert "stars: the predicted rating; score: the order, higher first (a logit: only " \
        "differences count)." in shown


def test_status_table_fits_80_columns(tmp_path):
    r = rec(tmp_path, "status", "--format", "table", env={"COLUMNS": "80"})
    assert r.exit_code == 0 and max(map(len, r.stdout.splitlines())) <= 80
    assert "not run" in r.stdout


def test_status_table_has_a_header_for_the_params_under_the_row(tmp_path):
    """The parameters sit on a line of their own under each row: their header too."""
    run_stages(tmp_path, ["download", "--dataset", "synthetic", "--users", "80", "--movies",
                          "60", "--ratings", "2000", "--seed", "7"])
    r = rec(tmp_path, "status", "--format", "table", env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    header = lines.index("stage          state    when")  # under the title (a long path)
    assert lines[header + 1:header + 3] == [" " * 15 + "params", "─" * 49]
    assert lines[header + 3].split()[:2] == ["download", "fresh"]
    assert lines[header + 4] == " " * 15 + ("dataset=synthetic users=80 movies=60 "
                                            "ratings=2000 seed=7")


def help_output(name: str) -> str:
    r = rec(None, name, "--help", env={"COLUMNS": "250"})
    assert r.exit_code == 0, r.stderr
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", r.stdout).split())


@pytest.mark.parametrize("name", [n for n, _, _ in COMMANDS])
def test_help_keeps_square_brackets(name):
    command = load_command(name)
    texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
    phrases = [m for text in texts for m in re.findall(r"\[[^\]]*\]", text.replace("\\[", "["))]
    shown = help_output(name)
    for phrase in phrases:
        assert " ".join(phrase.split()) in shown, f"rec {name} --help lost {phrase!r}"


def test_preprocess_help_says_its_default_dataset():
    assert "[default: the one downloaded last there]" in help_output("preprocess")


# ctr-train: 27 options in six panels (Data, Criteo, Training, MovieLens, Running, Output)
HELP_LINES = {"ctr-train": 56}


@pytest.mark.parametrize("name", [n for n, _, _ in COMMANDS])
def test_every_help_is_compact(name):
    r = rec(None, name, "--help", env={"COLUMNS": "80"})
    assert len(r.stdout.splitlines()) <= HELP_LINES.get(name, 50)
    assert max(map(len, r.stdout.splitlines())) <= 80


@pytest.mark.parametrize("name", [n for n, _, _ in COMMANDS])
def test_compact_help_keeps_every_default_range_and_panel(name):
    """The compact layout (rec.stages.helptext) moves, never drops: each option's default
    and range are in its help text, and each option is in its panel."""
    command = load_command(name)
    shown = help_output(name)
    for param in command.params:
        if param.param_type_name != "option" or not param.help:
            continue
        words = " ".join(param.help.replace("\\[", "[").split())
        if getattr(param, "min", None) is not None:
            assert f"[x>={param.min}" in shown or f"[{param.min}<=x" in shown, param.name
        if param.default not in (None, "", False, ()) and param.show_default is not False:
            default = str(param.default)
            if param.secondary_opts:  # --crosses/--no-crosses: the side that is the default
                default = (param.opts if param.default else param.secondary_opts)[0][2:]
            assert f"{words} " in shown and f"[default: {default}]" in shown, param.name
    for panel in {getattr(p, "rich_help_panel", None) for p in command.params} - {None}:
        assert f" {panel} " in shown


def test_compact_help_puts_defaults_after_the_text_and_types_in_short():
    shown = help_output("ctr-train")
    assert ("--epochs INT Epochs in total. [x>=1] [default: 5]" in shown
            and "--crosses --no-crosses User x genre weights in the wide part. [default: "
            "crosses]" in shown and "--resume Continue from the last checkpoint." in shown)
    assert "<int" not in shown and "<bool>" not in shown and " Options " not in shown


def test_show_completion_prints_a_script():
    """typer's standard: the shell is detected from the parent process (here bash)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(["bash", "-c", f"'{sys.executable}' -m rec --show-completion"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "complete" in proc.stdout and "_REC_COMPLETE" in proc.stdout


def test_install_completion_is_offered():
    r = rec(None, "--help")
    assert "--install-completion" in r.stdout and "--show-completion" in r.stdout
