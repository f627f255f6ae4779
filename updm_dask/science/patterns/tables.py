"""Reading tabulated spectra from CSV, with errors that name the file, line and column.

Used for the shipped tables (standard spectra, spectral response functions) and for a
user's own spectra (:func:`~updm_dask.science.patterns.load_pattern_set`).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ...errors import PatternError

__all__ = ["check_negative", "parse_columns", "read_rows"]


def read_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and (line number, cells) of a CSV; ``#`` comment lines and blank lines skipped."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise PatternError(f"spectrum file {path} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PatternError(f"spectrum file {path} cannot be read as UTF-8 text: {exc}") from None
    header: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    for lineno, cells in enumerate(csv.reader(text.splitlines()), start=1):
        if not cells or not "".join(cells).strip() or cells[0].lstrip().startswith("#"):
            continue
        cells = [c.strip() for c in cells]
        if header is None:
            header = cells
        else:
            rows.append((lineno, cells))
    if header is None:
        raise PatternError(f"spectrum file {path} is empty; expected a header line")
    return header, rows


def parse_columns(
    path: Path, wanted: Sequence[str], header: list[str], rows: list[tuple[int, list[str]]]
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    seen = set()
    for name in header:
        if name in seen:
            raise PatternError(f"{path}: column {name!r} appears twice in the header")
        seen.add(name)
    expected = ["wavelength_nm", *wanted]
    missing = [c for c in expected if c not in header]
    if missing:
        raise PatternError(
            f"{path}: missing column(s) {', '.join(missing)}; the header is "
            f"{','.join(header)!r}, expected columns {', '.join(expected)}"
        )
    unknown = [c for c in header if c not in expected]
    if unknown:
        raise PatternError(
            f"{path}: unexpected column(s) {', '.join(unknown)}; expected exactly "
            f"{', '.join(expected)}"
        )
    if len(rows) < 2:
        raise PatternError(f"{path}: needs at least 2 data rows, found {len(rows)}")
    index = {name: header.index(name) for name in expected}
    data = {name: np.empty(len(rows)) for name in expected}
    lines = np.array([lineno for lineno, _ in rows])
    for r, (lineno, cells) in enumerate(rows):
        if len(cells) != len(header):
            raise PatternError(
                f"{path}, line {lineno}: {len(cells)} cells, but the header has {len(header)}"
            )
        for name, i in index.items():
            cell = cells[i]
            try:
                value = float(cell)
            except ValueError:
                what = "is empty" if cell == "" else f"{cell!r} is not a number"
                raise PatternError(f"{path}, line {lineno}, column {name!r}: {what}") from None
            if not math.isfinite(value):
                raise PatternError(
                    f"{path}, line {lineno}, column {name!r}: {cell!r} is not a finite number; "
                    "remove or interpolate gaps instead of writing NaN"
                )
            data[name][r] = value
    wl = data.pop("wavelength_nm")
    steps = np.diff(wl)
    if np.any(steps <= 0):
        i = int(np.argmax(steps <= 0)) + 1
        raise PatternError(
            f"{path}, line {lines[i]}, column 'wavelength_nm': {wl[i]:g} nm does not increase "
            f"on the previous row (line {lines[i - 1]}: {wl[i - 1]:g} nm); wavelengths must "
            "increase strictly"
        )
    return wl, data, lines


def check_negative(
    path: Path, column: str, values: np.ndarray, lines: np.ndarray, tolerance: float
) -> None:
    floor = -tolerance * float(np.max(np.abs(values)))
    bad = np.flatnonzero(values < floor)
    if bad.size:
        i = int(bad[0])
        raise PatternError(
            f"{path}, line {lines[i]}, column {column!r}: reflectance {values[i]:g} is negative "
            f"beyond the tolerance ({tolerance:g} x the column's peak |value| = {-floor:g}); "
            f"{bad.size} value(s) affected"
        )
