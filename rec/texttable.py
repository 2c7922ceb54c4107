"""Result tables for a terminal, laid out to its width (`rec.results.RowWriter` draws them).

Each column has a layout: KEEP (never shortened: ids, numbers), SHORT (one line, cut with an
ellipsis), TWO (wrapped at spaces onto two lines at most, then cut: a movie title),
WRAP (wrapped at spaces; a word wider than the column is folded), NOTE (a line of
its own under the row, wrapped at spaces, e.g. a reason; its header on a line of its own
under the others'), HIDE (left out) or TITLE (the same on every row: said once in the
title, else a WRAP column). Columns shrink, SHORT and WRAP
alike, the widest first, only as far as the width requires. A column of numbers is right
aligned, and a column of floats shows each with as many decimals as the longest (4.10
above 3.76, not 4.1; a key/value column mixing counts and rates is left alone). The
full values stay in TSV, CSV and JSON.

Widths are screen columns (`text_width`): a wide character (CJK) takes two, a combining mark none;
measured by characters, a row of Japanese text was half again wider than the terminal.
"""

from __future__ import annotations

import re
import textwrap
import unicodedata

KEEP, SHORT, TWO, WRAP, NOTE, HIDE, TITLE = ("keep", "short", "two lines", "wrap", "note",
                                           "hide", "title")
GAP = "  "
ELLIPSIS = "…"
NARROWEST = 6  # a shortened column keeps its header and at least this many characters
LONGEST_WORD = 24  # a WRAP column is never narrower than its longest word, up to this


def _char_cells(ch: str) -> int:
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def text_width(text: str) -> int:
    """The screen columns `text` takes (len() where every character takes one)."""
    return len(text) if text.isascii() else sum(map(_char_cells, text))


def _head(text: str, width: int) -> str:
    """The longest start of `text` that takes at most `width` columns."""
    used = 0
    for i, ch in enumerate(text):
        used += _char_cells(ch)
        if used > width:
            return text[:i]
    return text


def _cut(text: str, width: int) -> str:
    """`text` in `width` columns; a closing "(...)" such as a title's year is kept."""
    if text_width(text) <= width:
        return text
    m = re.search(r" \([^()]{1,12}\)$", text)
    keep = m.group(0) if m and width - text_width(m.group(0)) >= NARROWEST else ""
    return _head(text, max(width - text_width(keep) - 1, 0)).rstrip() + ELLIPSIS + keep


def _least(column: str, texts: list[str], layout: str) -> int:
    natural = max([text_width(column)] + [text_width(t) for t in texts])
    if layout == KEEP:
        return natural
    if layout == WRAP:  # words are not folded unless one is wider than LONGEST_WORD
        word = max([text_width(w) for t in texts for w in t.split()] or [0])
        return min(natural, max(text_width(column), NARROWEST, min(word, LONGEST_WORD)))
    return min(natural, max(text_width(column), NARROWEST))


def _widths(columns: list[str], rows: list[list[str]], how: dict, width: int) -> list[int]:
    """Natural widths; while too wide, the widest column that can give loses a column."""
    out = [max([text_width(c)] + [text_width(r[i]) for r in rows]) for i, c in enumerate(columns)]
    least = [_least(c, [r[i] for r in rows], how[c]) for i, c in enumerate(columns)]
    excess = sum(out) + len(GAP) * (len(columns) - 1) - width
    while excess > 0:
        can = [i for i in range(len(out)) if out[i] > least[i]]
        if not can:
            break
        out[max(can, key=lambda i: out[i])] -= 1
        excess -= 1
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return text == ""
    return True


DECIMAL = re.compile(r"-?[\d,]+(?:\.(\d+))?")


def _same_decimals(texts: list[str], values: list) -> list[str]:
    """A column of floats with the same number of decimals, so their points line up; an
    empty cell (None: evaluate's baselines have no stars to score) stays empty."""
    filled = [(t, v) for t, v in zip(texts, values) if v is not None]
    found = [DECIMAL.fullmatch(t) for t, _ in filled]
    if not filled or not all(isinstance(v, float) for _, v in filled) or not all(found):
        return texts  # ints, 1.2e-05, ...
    places = max(len(m.group(1) or "") for m in found)
    padded = iter(t + ("" if places == 0 else ("." if m.group(1) is None else "")
                       + "0" * (places - len(m.group(1) or "")))
                  for (t, _), m in zip(filled, found))
    return [t if v is None else next(padded) for t, v in zip(texts, values)]


def _wrap(text: str, width: int) -> list[str]:
    """textwrap.wrap by screen columns: its lines (of characters) folded again where wide
    characters make one longer than `width` columns."""
    out = []
    for line in textwrap.wrap(text, width, break_on_hyphens=False):
        while text_width(line) > width and _head(line, width):
            out.append(_head(line, width))
            line = line[len(out[-1]):]
        out.append(line)
    return out


def _cell_lines(text: str, width: int, layout: str) -> list[str]:
    if layout == SHORT or layout == KEEP:
        return [_cut(text, width) if layout == SHORT else text]
    lines = _wrap(text, width) or [""]
    if layout == TWO and len(lines) > 2:  # the rest of the text cut on the second line
        return [lines[0], _cut(" ".join(text.split())[len(lines[0]):].strip(), width)]
    return lines


def _pad(text: str, width: int, right: bool) -> str:
    gap = " " * max(width - text_width(text), 0)
    return gap + text if right else text + gap


def render(columns: list[str], rows: list[dict], layout: dict, title: str | None,
           width: int, cell) -> str:
    """The table as text lines of at most `width` characters (where the columns' least
    widths allow); `cell(value)` turns a value into its text."""
    how = {c: layout.get(c, WRAP) for c in columns}
    shown, notes = [], []
    for c in columns:
        values = {cell(row.get(c)) for row in rows}
        if how[c] == TITLE and len(values) == 1 and len(rows) > 1:
            title = f"{title} · {c} {values.pop()}" if title else f"{c} {values.pop()}"
        elif how[c] == NOTE:
            notes.append(c)
        elif how[c] != HIDE:
            shown.append(c)
            how[c] = WRAP if how[c] == TITLE else how[c]
    texts = [[cell(row.get(c)) for c in shown] for row in rows]
    right = [all(_is_number(t[i]) for t in texts) and texts != [] for i in range(len(shown))]
    columns_text = [_same_decimals([t[i] for t in texts], [row.get(c) for row in rows])
                    if right[i] else [t[i] for t in texts] for i, c in enumerate(shown)]
    texts = [list(row) for row in zip(*columns_text)] if texts else texts
    widths = _widths(shown, texts, how, width)
    just = lambda text, i: _pad(text, widths[i], right[i])  # noqa: E731
    line_width = sum(widths) + len(GAP) * (len(shown) - 1)
    indent = widths[0] + len(GAP) if len(shown) > 1 else 0
    out = [(" " * max((line_width - text_width(line)) // 2, 0) + line).rstrip()
           for line in _wrap(title or "", max(width, 20))]
    out.append(GAP.join(just(c, i) for i, c in enumerate(shown)).rstrip())
    out += [" " * indent + c for c in notes]  # each column has a header, a note's too
    out.append("─" * line_width)
    for row, cells in zip(rows, texts):
        lines = [_cell_lines(t, w, how[c]) for c, t, w in zip(shown, cells, widths)]
        for k in range(max(len(ls) for ls in lines)):
            out.append(GAP.join(just(ls[k] if k < len(ls) else "", i)
                                for i, ls in enumerate(lines)).rstrip())
        for c in notes:
            text = cell(row.get(c))
            out += [" " * indent + line for line in _wrap(text, max(width - indent, 20))]
    return "\n".join(out) + "\n"
