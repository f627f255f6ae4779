"""Small text helpers shared by the embedding's results: JSON numbers and CSV tables.

What the ``updm embed`` / ``updm similar`` commands print or write is built here, by the
library, so the command line only parses arguments and prints.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["csv_number", "csv_text", "json_floats"]


def json_floats(values: Iterable[float]) -> list[float | None]:
    """Floats for JSON: NaN and infinities become None."""
    return [float(v) if math.isfinite(v) else None for v in values]


def csv_number(value: float) -> str:
    """A CSV cell: six significant digits, empty for NaN."""
    return "" if not math.isfinite(value) else f"{value:.6g}"


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A CSV table (the ``csv`` module's dialect, CRLF line ends) as text."""
    out = io.StringIO(newline="")
    w = csv.writer(out)
    w.writerow(header)
    w.writerows(rows)
    return out.getvalue()
