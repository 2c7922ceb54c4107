"""Finding a movie by what a person types: an id, or a title (pure Python, no numpy).

A query that is a whole number is a movie id. Anything else is a title: case and Unicode
form do not matter (rec.typed.fold on both sides), and neither do the year nor where the
article sits ('The Usual Suspects', 'usual suspects, the (1995)', 'The Usual Suspects
(1995)'). A title with alternates in parentheses is found by all of it or by one of its
parts alone ('The Good, the Bad and the Ugly (1966)', 'Il buono, il brutto, il cattivo').
A title equal to the query wins over a part equal to it (an alternate; the title without its
article: 'Godfather' is 'The Godfather', where 'The Godfather: Part II' merely contains it),
which wins over titles that merely contain it; several equal or (without one) several
containing it are refused, listing them. A query ending in a year that matches nothing as
a whole is looked up without it among that year's titles: 'Star Wars (1977)' is 'Star Wars:
Episode IV - A New Hope (1977)', as the refusal of 'Star Wars' advises.

The lookups are built once per catalogue: the ids' dict, and `TitleIndex`: dicts of each
movie's names and of their parts for the equal ones, and all of them in one string that
`str.find` scans for the containing ones. So a profile of 1,000 titles costs about what
1,000 ids do, not 1,000 regex passes over every title (nor 1,000 dicts of every id).
"""

from __future__ import annotations

import bisect
import re

from rec.datasets.contract import id_key
from rec.errors import UsageError, shown
from rec.typed import clean, fold

YEAR_RE = re.compile(r"\s*\(\d{4}\)\s*$")
# MovieLens moves a title's leading article to its end, and so that of each alternate title
# in parentheses after it: 'Misérables, Les', 'Avventura, L'', 'Postman, The (Postino, Il)'.
# One list for both, the articles of the languages its titles come in: ml-1m, ml-100k and
# ml-latest-small also move I, Lo, Una, O, De, Det, En and Da ('Vitelloni, I', 'Convento,
# O', 'Passion, En', 'Hip Hop Witch, Da'); each sits last after ', ', so a comma in a title
# ('Honey, I Shrunk the Kids', 'Monsters, Inc.') is no article.
ARTICLES = ("The", "A", "An",  # English
            "Le", "La", "Les", "L'", "Un", "Une",  # French (Italian's L' too)
            "Il", "Lo", "I", "Gli", "Uno", "Una",  # Italian
            "El", "Los", "Las",  # Spanish
            "O", "Os", "As",  # Portuguese
            "Der", "Die", "Das", "Ein", "Eine",  # German
            "De", "Het", "Een", "Den", "Det", "En", "Ett",  # Dutch and Scandinavian
            "Da")  # 'Hip Hop Witch, Da': ml-latest-small moves it as an article
ARTICLE_RE = re.compile(r"(.*), (%s)" % "|".join(map(re.escape, ARTICLES)))
# The alternates: the groups in parentheses, each after a space, that end a title before its
# year ('(Buono, il brutto, il cattivo, Il)', '(a.k.a. Gates of Hell, The)'). A parenthesis
# inside the title starts none: '(500) Days of Summer', 'You Can (Not) Redo', 'Frontière(s)'.
ALTERNATES_RE = re.compile(r"(?: \([^()]*\))*$")
ALTERNATE_RE = re.compile(r" \(([^()]*)\)")
AKA_RE = re.compile(r"(?:a\.k\.a\.?|aka) ", re.IGNORECASE)  # 'a.k.a. Raccoon War, The'
SEP = "\n"  # between names in the scanned string: a query never holds it (refused if it does)


def said(name: str) -> str:
    """'Usual Suspects, The' -> 'The Usual Suspects', 'Avventura, L'' -> 'L'Avventura',
    'a.k.a. Raccoon War, The' -> 'a.k.a. The Raccoon War': one name as a person says it."""
    aka = AKA_RE.match(name)
    start = aka.end() if aka else 0
    m = ARTICLE_RE.fullmatch(name, start) if ", " in name else None
    if not m:
        return name
    article = m.group(2)
    return name[:start] + article + ("" if article.endswith("'") else " ") + m.group(1)


def raw_parts(title: str) -> tuple[str, list[str], str]:
    """'Good, the Bad and the Ugly, The (Buono, il brutto, il cattivo, Il) (1966)' ->
    ('Good, the Bad and the Ugly, The', ['Buono, il brutto, il cattivo, Il'], ' (1966)'):
    the title and its alternates as MovieLens writes them, and the year as the title
    carries it ('' if none)."""
    year = YEAR_RE.search(title)
    base = title[:year.start()] if year else title
    # (most titles end in no parenthesis: the regex's search from every position is skipped)
    cut = ALTERNATES_RE.search(base).start() if base.endswith(")") else len(base)
    return base[:cut], ALTERNATE_RE.findall(base, cut), title[year.start():] if year else ""


def title_parts(title: str) -> tuple[str, list[str], str]:
    """'Good, the Bad and the Ugly, The (Buono, il brutto, il cattivo, Il) (1966)' ->
    ('The Good, the Bad and the Ugly', ['Il Buono, il brutto, il cattivo'], ' (1966)'):
    raw_parts' title and alternates as said."""
    main, alternates, year = raw_parts(title)
    return said(main), [said(a) for a in alternates], year


def without_aka(name: str) -> str:
    """'a.k.a. The Raccoon War' -> 'The Raccoon War': an alternate as a person types it."""
    aka = AKA_RE.match(name)
    return name[aka.end():] if aka else name


def bare(name: str) -> str | None:
    """'Godfather, The' -> 'Godfather': a name whose article MovieLens moved to its end,
    without it (None for a name with none)."""
    m = ARTICLE_RE.fullmatch(without_aka(name)) if ", " in name else None
    return m.group(1) if m else None


def with_alternates(main: str, alternates: list[str]) -> str:
    """('The Postman', ['Il Postino']) -> 'The Postman (Il Postino)'."""
    return main + "".join(f" ({a})" for a in alternates)


def display_title(title: str) -> str:
    """'Usual Suspects, The (1995)' -> 'The Usual Suspects', 'Postman, The (Postino, Il)
    (1994)' -> 'The Postman (Il Postino)': how a person says the title."""
    main, alternates, _ = title_parts(title)
    return with_alternates(main, alternates)


def shown_title(title: str) -> str:
    """'Untouchables, The (1987)' -> 'The Untouchables (1987)': the title column's form,
    the reasons' with the year kept."""
    main, alternates, year = title_parts(title)
    return with_alternates(main, alternates) + year


class TitleIndex:
    """Every movie's names, folded: its whole names (the title, without the year, as said,
    as said with the year) and its part names (the title without its alternates, and each
    alternate, as said, with the year and without: 'The Good, the Bad and the Ugly (1966)',
    'Il Buono, il brutto, il cattivo'; a.k.a. dropped)."""

    def __init__(self, titles: list[str]):
        self.exact: dict[str, list[int]] = {}  # whole names
        self.exact_parts: dict[str, list[int]] = {}  # part names
        starts, rows, scanned, at = [], [], [], 0
        self.years: list[str] = []  # each title's year, '(1977)' ('' for none)
        for row, title in enumerate(titles):
            raw_main, raw_alternates, year = raw_parts(title)
            main, alternates = said(raw_main), [said(a) for a in raw_alternates]
            self.years.append(year.strip())
            said_title = with_alternates(main, alternates)
            said_year = " " + year.strip() if year else ""  # (one space: 'X(1982)' too)
            # (the same text folded once: most titles are said as written)
            whole = dict.fromkeys(map(fold, dict.fromkeys(
                (title, title[:len(title) - len(year)], said_title, said_title + said_year))))
            pieces = {}
            if alternates:
                pieces = dict.fromkeys(name for piece in (main, *map(without_aka, alternates))
                                       for name in (fold(piece), fold(piece + said_year))
                                       if name not in whole)
            for raw in (raw_main, *raw_alternates):
                if (name := bare(raw)) is not None:  # 'Godfather' for 'Godfather, The'
                    pieces.update(dict.fromkeys(
                        n for n in (fold(name), fold(name + said_year)) if n not in whole))
            for names, found in ((whole, self.exact), (pieces, self.exact_parts)):
                for name in names:
                    found.setdefault(name, []).append(row)
                    starts.append(at)
                    rows.append(row)
                    scanned.append(name)
                    at += len(name) + len(SEP)
        self.text = SEP.join(scanned)
        self.starts, self.rows = starts, rows

    def containing(self, query: str) -> list[int]:
        """The rows of the movies one of whose names contains `query` (folded), in order."""
        found, at = set(), self.text.find(query)
        while at >= 0:
            found.add(self.rows[bisect.bisect_right(self.starts, at) - 1])
            at = self.text.find(query, at + 1)
        return sorted(found)

    def named(self, query: str) -> list[int]:
        """The rows of the movies one of whose names is `query` (folded), not merely holds it."""
        q = fold(query)
        return sorted(set(self.exact.get(q, ())) | set(self.exact_parts.get(q, ())))

    def matches(self, query: str) -> list[int]:
        """A whole name equal to the query wins over a part name equal to it ('The Postman'
        is Kevin Costner's, not 'The Postman (Il Postino)'), which wins over names that
        merely contain it."""
        q = fold(query)
        if not q or SEP in q:
            return []
        found = (sorted(set(self.exact.get(q, ()))) or sorted(set(self.exact_parts.get(q, ())))
                 or self.containing(q))
        year = YEAR_RE.search(query)
        name = query[:year.start()] if year else ""
        if found or not fold(name):
            return found
        # 'Star Wars (1977)': the name without the year, among that year's titles
        year = year.group().strip()
        of_year = [r for r in self.matches(name) if self.years[r] == year]
        if of_year:
            return of_year
        of_year = self.of_year(fold(name), year)
        # a name of a movie of another year ('Rocky (1975)': Rocky is 1976) is listed with
        # them, never swapped silently for a title of that year that merely holds it (The
        # Rocky Horror Picture Show)
        return sorted(set(of_year) | set(self.named(name))) if of_year else []

    def of_year(self, q: str, year: str) -> list[int]:
        """The rows of `year`'s titles one of whose names contains `q` (folded) as whole
        words ('godfather' in 'the godfather: part ii', not 'heat' in 'theater')."""
        words = re.compile(r"(?<!\w)" + re.escape(q) + r"(?!\w)")
        found = set()
        for m in words.finditer(self.text):
            r = self.rows[bisect.bisect_right(self.starts, m.start()) - 1]
            if self.years[r] == year:
                found.add(r)
        return sorted(found)


def index(cat) -> TitleIndex:
    """The catalogue's title lookup, built on first use."""
    built = cat.__dict__.get("_title_index")
    if built is None:
        built = cat.__dict__["_title_index"] = TitleIndex(cat.titles)
    return built


def find_movie(cat, query: str) -> int:
    """Movie row (in `cat`, a rec.twotower.recommending.Catalog) for a raw movie id or a
    title; UsageError naming the query when none or several match."""
    text = clean(query).strip()
    key = id_key(text)
    if key is not None:
        rows = cat.__dict__.get("_movie_rows")  # built once too (movie_row() builds anew)
        if rows is None:
            rows = cat.__dict__["_movie_rows"] = cat.features.movie_row()
        row = rows.get(key)
        if row is None:
            raise UsageError(f"unknown movie id {shown(text, 40, quote=False)} (no saved vector)")
        return row
    if not fold(text):
        raise UsageError("an empty movie: give a movie id or (part of) its title")
    matches = index(cat).matches(text)
    if not matches:
        near = close_titles(cat.titles, text)
        hint = f"; did you mean {near}?" if near else "; give a movie id or another part of the title"
        raise UsageError(f"no movie title contains {shown(text)}{hint}")
    if len(matches) > 1:
        listed = "; ".join(f"{cat.features.movie_ids[r]} {shown_title(cat.titles[r])}"
                           for r in matches[:5])
        more = f"; ... {len(matches) - 5} more" if len(matches) > 5 else ""
        years = {m.group() if (m := YEAR_RE.search(cat.titles[r])) else None for r in matches}
        how = ("give a movie id, or (part of) the title with its year"
               if len(years) == len(matches)
               else "give a movie id")  # two of the same title and year: only the id tells
        raise UsageError(f"{shown(text)} matches {len(matches)} movies: {listed}{more}; {how}")
    return matches[0]


CLOSE = 3  # titles suggested for a query that matched none


def close_titles(titles: list[str], query: str) -> str:
    """"'The Matrix (1999)' or 'The Mask (1994)'": the titles (as said) closest to a query
    that matched none, by difflib's ratio over the folded titles without their year (and
    without their alternates too); '' when none is close. Only on that error's path (about
    0.1 s per 10,000 titles)."""
    import difflib

    by_name = {}  # folded name -> title
    for title in titles:
        main, alternates, _ = title_parts(title)
        by_name.setdefault(fold(with_alternates(main, alternates)), title)
        if alternates:  # 'The Good the Bad and the Ugly' is closest to the title alone
            by_name.setdefault(fold(main), title)
    near = difflib.get_close_matches(fold(YEAR_RE.sub("", query)), list(by_name), n=2 * CLOSE,
                                     cutoff=0.6)  # (a title and its part may both be close)
    closest = list(dict.fromkeys(by_name[n] for n in near))[:CLOSE]
    return " or ".join(f"'{shown_title(t)}'" for t in closest)
