"""What a person types, made comparable before it is matched (pure Python).

Text that reaches rec from a keyboard, a file saved by an editor or a pipe (a `--rated`
file, ids on stdin, USER MOVIE pairs for ctr-predict, a title for `similar` or `--like`)
may carry a byte-order mark (Windows editors start UTF-8 files with U+FEFF, and Notepad's
"Unicode" is UTF-16 with one), and an accented letter may come composed (U+00E9) or
decomposed (e + U+0301): the same text to a person, other code points to Python. So such
input is decoded by `decode` (UTF-8, or UTF-16 by its mark; anything else is refused in
one line naming it), goes through `clean` (BOMs gone, Unicode NFC) before it is parsed, and
a title is matched by `fold` (clean, case folded, NFC again since case folding can undo it,
and any run of white space, a no-break space too, as one space) on both sides. A path given
to read from is checked by `check_readable`: a pipe or `<(...)` is as good as a file.
"""

from __future__ import annotations

import codecs
import os
import stat
import sys
import unicodedata

from rec.errors import UsageError

BOM = "\ufeff"  # also "zero width no-break space", never meaningful in an id or a title


def clean(text: str) -> str:
    """`text` without byte-order marks (anywhere: `cat a.tsv b.tsv` puts one mid-stream),
    in Unicode NFC."""
    if BOM in text:
        text = text.replace(BOM, "")
    return text if text.isascii() else unicodedata.normalize("NFC", text)


def fold(text: str) -> str:
    """The form two texts are compared in: clean, compatibility forms decomposed ('™' is
    'TM'), accents dropped from Latin, Greek and Cyrillic letters ('Misérables' and
    'Miserables': people type titles without them; not kana's voicing marks, which make
    other words), case folded ('É' and 'é', 'ß' and 'ss'), NFC, white space as single
    spaces (last: a spacing accent leaves a space)."""
    text = clean(text)
    if not text.isascii():
        kept, base = [], ""
        for c in unicodedata.normalize("NFKD", text):
            if unicodedata.combining(c):
                if base.startswith(ACCENTED_SCRIPTS) or base in ("", "SPACE"):
                    continue  # (a spacing accent, '´', decomposes to a space and a mark)
            else:
                base = unicodedata.name(c, "")
            kept.append(c)
        text = unicodedata.normalize("NFC", "".join(kept).casefold())
    else:
        text = text.casefold()
    return " ".join(text.split())


ACCENTED_SCRIPTS = ("LATIN", "GREEK", "CYRILLIC")  # letters whose accents fold drops


def decode(data: bytes, source: str) -> str:
    """The text of bytes a person saved or piped, cleaned: UTF-8 (with a byte-order mark or
    without), or UTF-16 when it starts with its mark. Anything else is a one-line error
    naming `source` (exit 2), not a garbled "unknown movie"."""
    utf16 = data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    try:
        text = data.decode("utf-16" if utf16 else "utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"{source} is not UTF-8 text (byte {data[e.start]:#04x} at offset "
                         f"{e.start}): save it as UTF-8") from None
    return clean(text)


def open_stdin():
    """sys.stdin, for '-' to read; a closed one (`<&-`: Python's sys.stdin is None) is a
    one-line error, not an internal one."""
    if sys.stdin is None:
        raise UsageError("standard input is closed: pipe or redirect what `-` reads into it")
    return sys.stdin


def read_stdin() -> str:
    """All of stdin (open_stdin), decoded as `decode` does."""
    stream = getattr(open_stdin(), "buffer", None)
    data = stream.read() if stream is not None else sys.stdin.read().encode("utf-8")
    return decode(data, "stdin")


def check_readable(path: str) -> None:
    """Refuse, in one line naming it (exit 2), a path given to read from that does not
    exist, is a folder or cannot be read. Anything else is read: a regular file, but also a
    pipe, `<(...)`'s /dev/fd/N, /dev/stdin or /dev/null, which a regular-file test refused
    as "no such file". It is not opened here: a pipe can be read only once, by the reader."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise UsageError(f"no such file: {path}") from None
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from None
    if stat.S_ISDIR(mode):
        raise UsageError(f"{path} is a folder, not a file")
    if not os.access(path, os.R_OK):
        raise UsageError(f"cannot read {path}: permission denied")
