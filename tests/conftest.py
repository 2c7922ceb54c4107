"""Shared test setup. Add fixtures below as separate, self-contained blocks."""

import sys
from pathlib import Path

# Import `rec` from this checkout even when it is not installed (plain `pytest` does not put
# the repository root on sys.path).
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
