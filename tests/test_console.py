"""rec.console: results on stdout as table | TSV | JSON lines, everything else on stderr."""

from __future__ import annotations

import json

import pytest

from rec import console
from rec.errors import EXIT_USAGE, UsageError


@pytest.fixture(autouse=True)
def not_quiet():
    console.set_quiet(False)
    yield
    console.set_quiet(False)


ROWS = [{"rank": 1, "title": "Toy Story (1995)", "score": 4.123456789, "note": None},
        {"rank": 2, "title": "tab\there", "score": 0.00001234, "note": "new\nline"}]
COLUMNS = ["rank", "title", "score", "note"]


def test_tsv(capsys):
    console.emit(ROWS, COLUMNS, "tsv")
    out, err = capsys.readouterr()
    assert err == ""
    assert out.splitlines() == ["rank\ttitle\tscore\tnote",
                                "1\tToy Story (1995)\t4.12346\t",
                                "2\ttab here\t1.234e-05\tnew line"]


def test_tsv_header_even_without_rows(capsys):
    console.emit([], COLUMNS, "tsv")
    assert capsys.readouterr().out == "rank\ttitle\tscore\tnote\n"


def test_json_lines(capsys):
    console.emit(ROWS, COLUMNS, "json")
    out, _ = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows == [dict(r) for r in ROWS]


def test_auto_is_tsv_on_a_pipe(capsys):
    console.emit(ROWS[:1], ["rank"], "auto")  # capsys' stdout is not a terminal
    assert capsys.readouterr().out == "rank\n1\n"


def test_table_goes_to_stdout(capsys):
    console.emit(ROWS[:1], COLUMNS, "table", title="top")
    out, err = capsys.readouterr()
    assert err == "" and "Toy Story (1995)" in out and "top" in out


def test_emit_object(capsys):
    console.emit_object({"users": 5, "rmse": 0.9}, "json")
    assert capsys.readouterr().out == '{"users": 5, "rmse": 0.9}\n'
    console.emit_object({"users": 5, "rmse": 0.9}, "tsv")
    assert capsys.readouterr().out == "key\tvalue\nusers\t5\nrmse\t0.9\n"


def test_bad_format():
    with pytest.raises(UsageError) as info:
        console.resolve_format("yaml")
    assert info.value.exit_code == EXIT_USAGE
    assert str(info.value) == "unknown --format 'yaml': choose one of auto, table, tsv, csv, json"


def test_logs_and_warnings_on_stderr(capsys):
    console.log("working")
    console.warn("careful")
    console.error_line("broken")
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == ["working", "warning: careful", "error: broken"]
    console.set_quiet(True)
    console.log("working")
    console.warn("careful")  # warnings are never silenced
    assert capsys.readouterr().err == "warning: careful\n"
