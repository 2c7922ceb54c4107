"""JSON text that is always valid (pure Python): what rec writes to files and to stdout.

NaN and Infinity are not JSON (json.dumps writes them all the same, and other readers then
refuse the file), and numpy scalars are not JSON at all: `finite` turns the first into null
and the second into Python numbers, and `dumps` writes nothing else.
"""

from __future__ import annotations

import json
import math
from typing import Any


def finite(obj: Any) -> Any:
    """`obj` with every NaN or infinite float (numpy's too) replaced by None, numpy scalars
    as Python numbers: what JSON can hold."""
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    if type(obj).__module__ == "numpy" and getattr(obj, "ndim", None) == 0:
        obj = obj.item()  # a numpy scalar (numpy itself is not imported for this)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def dumps(obj: Any, **kwargs) -> str:
    """JSON text of `obj`, NaN and Infinity written as null (never invalid JSON)."""
    return json.dumps(finite(obj), allow_nan=False, ensure_ascii=False, **kwargs)
