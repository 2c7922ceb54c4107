"""What a person types, made comparable before it is matched (pure Python, no imports of rec).

Text that reaches rec from a keyboard, a file saved by an editor or a pipe (a `--rated`
file, ids on stdin, USER MOVIE pairs for ctr-predict, a title for `similar` or `--like`)
may carry a byte-order mark (Windows editors start UTF-8 files with U+FEFF), and an
accented letter may come composed (U+00E9) or decomposed (e + U+0301): the same text to a
person, other code points to Python. So every such input goes through `clean` (BOMs gone,
Unicode NFC) before it is parsed, and a title is matched by `fold` (clean, then case
folded, then NFC again, since case folding can undo it) on both sides.
"""

from __future__ import annotations

import unicodedata

BOM = "\ufeff"  # also "zero width no-break space", never meaningful in an id or a title


def clean(text: str) -> str:
    """`text` without byte-order marks (anywhere: `cat a.tsv b.tsv` puts one mid-stream),
    in Unicode NFC."""
    if BOM in text:
        text = text.replace(BOM, "")
    return text if text.isascii() else unicodedata.normalize("NFC", text)


def fold(text: str) -> str:
    """The form two texts are compared in: clean, case folded ('É' and 'é', 'ß' and 'ss'),
    NFC."""
    text = clean(text).casefold()
    return text if text.isascii() else unicodedata.normalize("NFC", text)
