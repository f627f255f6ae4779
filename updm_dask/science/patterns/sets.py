"""Pattern sets: the four continuous spectra UPDM derives its patterns from.

:class:`PatternSet` is a frozen, content-hashed bundle of the water, vegetation, soil and
yellow-leaf spectra; :func:`default_pattern_set` is the open stand-in set shipped in
``updm_dask/data``, :func:`load_pattern_set` reads a user's own spectra from CSV.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from ...errors import PatternError
from ..sensors import SENSOR_NAMES, get_sensor
from .spectra import (
    NORMALISATION_RANGE_NM,
    _as_grid,
    _interp,
    fit_supplementary,
    normalise_spectrum,
)
from .tables import check_negative, parse_columns, read_rows

__all__ = [
    "DEFAULT_PATTERN_SET_NAME",
    "KINDS",
    "STANDARD_KINDS",
    "PatternSet",
    "default_pattern_set",
    "load_pattern_set",
]

KINDS = ("water", "vegetation", "soil", "yellow_leaf")
STANDARD_KINDS = ("water", "vegetation", "soil")
DEFAULT_PATTERN_SET_NAME = "open-standin-v1"

_DATA = resources.files("updm_dask") / "data"
_DEFAULT_TABLE = "standard_spectra.csv"
_DEFAULT_SOURCES = {
    "water": "6S clear water (sixs90 CLEARW.f90 @ 1836cf43), 400 nm value held below 400 nm",
    "vegetation": "6S vegetation (sixs90 VEGETA.f90 @ 1836cf43), 400 nm value held below 400 nm",
    "soil": "earthlib 1.1.0 mean of the 39 'sand' spectra, gaps bridged linearly, ends held",
    "yellow_leaf": "earthlib 1.1.0 'goldgras' (senescent golden grass), gaps bridged, ends held",
    "table": "updm_dask/data/standard_spectra.csv; provenance in updm_dask/data/README.md",
}


def _readonly(a: Any) -> np.ndarray:
    # "+ 0.0" turns -0.0 into 0.0 so equal numbers always hash to equal bytes.
    out = np.ascontiguousarray(np.asarray(a, dtype=np.float64) + 0.0)
    out.setflags(write=False)
    return out


@dataclass(frozen=True)
class PatternSet:
    """The four continuous spectra UPDM derives its patterns from, with their provenance.

    Parameters
    ----------
    name
        Identifier recorded with every result (e.g. ``"open-standin-v1"``).
    wavelength_nm
        Strictly increasing wavelengths (nm) covering at least 350-2500 nm.
    spectra
        ``"water"``, ``"vegetation"``, ``"soil"``, ``"yellow_leaf"`` -> reflectance on the
        grid (any linear scale: normalisation removes it).
    sources
        Provenance: a mapping (column -> description) or a single string.

    Notes
    -----
    Arrays are stored read-only. Equality, ``hash`` and the dask token depend only on the
    numbers (:attr:`sha256`), not on ``name`` or ``sources``.
    """

    name: str
    wavelength_nm: np.ndarray
    spectra: Mapping[str, np.ndarray]
    sources: Mapping[str, str] | str = ""
    _sha256: str = field(init=False, repr=False, compare=False, default="")
    _cache: dict = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise PatternError(f"pattern set name must be a non-empty string, got {self.name!r}")
        wl = _readonly(_as_grid(self.wavelength_nm, f"pattern set {self.name!r} wavelength_nm"))
        lo, hi = NORMALISATION_RANGE_NM
        if wl[0] > lo or wl[-1] < hi:
            raise PatternError(
                f"pattern set {self.name!r} covers {wl[0]:g}-{wl[-1]:g} nm; UPDM normalises "
                f"over {lo:g}-{hi:g} nm (eqs. 12-13), so the spectra must cover that range"
            )
        if not isinstance(self.spectra, Mapping):
            raise PatternError(f"pattern set {self.name!r}: spectra must be a mapping")
        missing = [k for k in KINDS if k not in self.spectra]
        unknown = [k for k in self.spectra if k not in KINDS]
        if missing or unknown:
            raise PatternError(
                f"pattern set {self.name!r} needs spectra {', '.join(KINDS)}; missing: "
                f"{', '.join(missing) or 'none'}; unexpected: "
                f"{', '.join(map(str, unknown)) or 'none'}"
            )
        spectra = {}
        for kind in KINDS:
            values = np.asarray(self.spectra[kind], dtype=np.float64)
            if values.shape != wl.shape:
                raise PatternError(
                    f"pattern set {self.name!r}: spectrum {kind!r} has shape {values.shape}, "
                    f"the wavelength grid {wl.shape}"
                )
            if not np.all(np.isfinite(values)):
                raise PatternError(f"pattern set {self.name!r}: spectrum {kind!r} holds NaN/inf")
            spectra[kind] = _readonly(values)
        sources = "" if self.sources is None else self.sources
        if isinstance(sources, str):
            sources = str(sources)
        elif isinstance(sources, Mapping):
            sources = MappingProxyType({str(k): str(v) for k, v in sources.items()})
        else:
            raise PatternError(
                f"pattern set {self.name!r}: sources must be a mapping or a string, "
                f"got {type(sources).__name__}"
            )
        digest = hashlib.sha256(wl.astype("<f8").tobytes())
        for kind in KINDS:
            digest.update(spectra[kind].astype("<f8").tobytes())
        object.__setattr__(self, "wavelength_nm", wl)
        object.__setattr__(self, "spectra", MappingProxyType(spectra))
        object.__setattr__(self, "sources", sources)
        object.__setattr__(self, "_sha256", digest.hexdigest())

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the numbers: float64 little-endian bytes of the grid, then water,
        vegetation, soil, yellow_leaf. Independent of name, sources and machine."""
        return self._sha256

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PatternSet):
            return NotImplemented
        return self._sha256 == other._sha256

    def __hash__(self) -> int:
        return hash(self._sha256)

    def __repr__(self) -> str:
        wl = self.wavelength_nm
        return (
            f"PatternSet(name={self.name!r}, {wl.size} wavelengths {wl[0]:g}-{wl[-1]:g} nm, "
            f"sha256={self._sha256[:12]}...)"
        )

    def __dask_tokenize__(self) -> str:
        return self._sha256

    def __reduce__(self):
        # mappingproxy does not pickle; rebuild from plain values (validation runs again).
        sources = self.sources if isinstance(self.sources, str) else dict(self.sources)
        spectra = {k: np.array(v) for k, v in self.spectra.items()}
        return (PatternSet, (self.name, np.array(self.wavelength_nm), spectra, sources))

    def normalised(self, kind: str) -> np.ndarray:
        """Normalised continuous pattern P_k (eqs. 12-13) on :attr:`wavelength_nm`.

        ``kind`` is one of ``water``, ``vegetation``, ``soil``, ``yellow_leaf`` or
        ``supplementary`` (then the same as :meth:`supplementary`). Read-only array.
        """
        if kind == "supplementary":
            return self.supplementary()
        if kind not in KINDS:
            raise PatternError(
                f"unknown pattern kind {kind!r}; expected one of {', '.join(KINDS)}, supplementary"
            )
        key = ("normalised", kind)
        if key not in self._cache:
            self._cache[key] = _readonly(normalise_spectrum(self.wavelength_nm, self.spectra[kind]))
        return self._cache[key]

    def supplementary_fit(self) -> tuple[dict[str, float], np.ndarray]:
        """NNLS fit of the normalised standard patterns to the yellow-leaf spectrum (eq. 15).

        Returns
        -------
        coefficients : dict
            ``{"water": uCw, "vegetation": uCv, "soil": uCs}``, all >= 0.
        residual : numpy.ndarray
            r4 on :attr:`wavelength_nm` (before normalisation), read-only.
        """
        if "fit" not in self._cache:
            standard = np.stack([self.normalised(k) for k in STANDARD_KINDS])
            coef, residual = fit_supplementary(
                self.wavelength_nm, standard, self.spectra["yellow_leaf"]
            )
            self._cache["fit"] = (coef, _readonly(residual))
        coef, residual = self._cache["fit"]
        return dict(zip(STANDARD_KINDS, map(float, coef), strict=True)), residual

    def supplementary(self) -> np.ndarray:
        """The continuous supplementary pattern P4 (eqs. 15-16), read-only."""
        if "supplementary" not in self._cache:
            _, residual = self.supplementary_fit()
            try:
                p4 = normalise_spectrum(self.wavelength_nm, residual)
            except PatternError as exc:
                raise PatternError(
                    f"pattern set {self.name!r}: the yellow-leaf spectrum is fitted exactly "
                    "by the standard patterns, so there is no supplementary pattern"
                ) from exc
            self._cache["supplementary"] = _readonly(p4)
        return self._cache["supplementary"]

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Write the set as ``wavelength_nm,water,vegetation,soil,yellow_leaf`` (exact floats).

        Reading the file back with :func:`load_pattern_set` gives an equal set (same sha256).
        """
        target = Path(path)
        with target.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(["wavelength_nm", *KINDS])
            columns = [self.wavelength_nm, *(self.spectra[k] for k in KINDS)]
            for row in zip(*columns, strict=True):
                writer.writerow([repr(float(x)) for x in row])
        return target


def _needed_band_range_nm() -> tuple[float, float]:
    """The box-car span of every UPDM band of every supported sensor, in nm."""
    # Band edges do not depend on the satellite, only labels do.
    edges = [
        (b.wavelength_min_um, b.wavelength_max_um)
        for name in SENSOR_NAMES
        for b in get_sensor(name).bands
    ]
    return (
        round(min(lo for lo, _ in edges) * 1000.0, 9),
        round(max(hi for _, hi in edges) * 1000.0, 9),
    )


def _covered(
    path: Path, column: str, wl: np.ndarray, values: np.ndarray, fill_edges: bool
) -> tuple[np.ndarray, np.ndarray, str]:
    lo, hi = NORMALISATION_RANGE_NM
    if wl[0] <= lo and wl[-1] >= hi:
        return wl, values, ""
    band_lo, band_hi = _needed_band_range_nm()
    if not fill_edges:
        raise PatternError(
            f"{path}, column {column!r}: the spectrum covers {wl[0]:g}-{wl[-1]:g} nm, but UPDM "
            f"normalises over {lo:g}-{hi:g} nm (eqs. 12-13); supply values over that range, or "
            f"pass fill_edges=True to hold the end values constant (the data must then still "
            f"cover the sensors' bands, {band_lo:g}-{band_hi:g} nm)"
        )
    if wl[0] > band_lo or wl[-1] < band_hi:
        raise PatternError(
            f"{path}, column {column!r}: the spectrum covers {wl[0]:g}-{wl[-1]:g} nm, which does "
            f"not reach the bands UPDM averages over ({band_lo:g}-{band_hi:g} nm for MSS, TM, "
            "ETM+, OLI and OLI-2)"
        )
    note = []
    if wl[0] > lo:
        wl, values = np.concatenate([[lo], wl]), np.concatenate([[values[0]], values])
        note.append(f"value at {wl[1]:g} nm held down to {lo:g} nm")
    if wl[-1] < hi:
        wl, values = np.concatenate([wl, [hi]]), np.concatenate([values, [values[-1]]])
        note.append(f"value at {wl[-2]:g} nm held up to {hi:g} nm")
    return wl, values, "; ".join(note)


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_pattern_set(
    path_or_paths: str | os.PathLike | Mapping[str, str | os.PathLike] | Sequence,
    name: str | None = None,
    *,
    fill_edges: bool = False,
    negative_tolerance: float = 0.01,
) -> PatternSet:
    """Read a user's four standard spectra from CSV into a :class:`PatternSet`.

    Two layouts are accepted:

    - one file with the header ``wavelength_nm,water,vegetation,soil,yellow_leaf``;
    - four single-spectrum files, given as a mapping ``{"water": path, ...}`` or as a
      sequence in the order water, vegetation, soil, yellow_leaf; each has the header
      ``wavelength_nm,reflectance`` (or ``wavelength_nm,<kind>``). Their grids may differ:
      the set uses the union of their wavelengths, where each spectrum's piecewise-linear
      interpolant is evaluated (which keeps every spectrum exactly as given).

    Wavelengths are in nm and must increase strictly. Reflectance may be a fraction or per
    cent (normalisation removes the scale). Lines starting with ``#`` are skipped.

    Parameters
    ----------
    path_or_paths
        The wide file, or the four single-spectrum files.
    name
        Name recorded with every result; defaults to the file name (stem).
    fill_edges
        If a spectrum does not reach 350 or 2500 nm, hold its end values constant out to
        them (as the shipped default set does) instead of raising. It must still cover the
        bands of every supported sensor (450-2350 nm).
    negative_tolerance
        Small negative values (instrument noise) are accepted down to
        ``-negative_tolerance`` x the column's largest absolute value.

    Returns
    -------
    PatternSet

    Raises
    ------
    PatternError
        Naming the file, line and column: missing or unexpected columns, cells that are
        empty, non-numeric, NaN or infinite, wavelengths that do not increase, reflectance
        negative beyond the tolerance, a spectrum that is zero everywhere, or coverage that
        does not reach 350-2500 nm (or, with ``fill_edges``, the sensors' bands).
    """
    if isinstance(path_or_paths, (str, os.PathLike)):
        path = Path(path_or_paths)
        header, rows = read_rows(path)
        wl, columns, lines = parse_columns(path, KINDS, header, rows)
        grids, sources = [], {}
        for kind in KINDS:
            check_negative(path, kind, columns[kind], lines, negative_tolerance)
            if not np.any(columns[kind] != 0):
                raise PatternError(f"{path}, column {kind!r}: all values are 0; cannot normalise")
            kw, kv, note = _covered(path, kind, wl, columns[kind], fill_edges)
            grids.append((kw, kv))
            sources[kind] = f"{path.name} column {kind}" + (f" ({note})" if note else "")
        sources["file_sha256"] = _file_digest(path)
        default_name = path.stem
    else:
        paths = _as_path_mapping(path_or_paths)
        grids, sources = [], {}
        for kind in KINDS:
            path = paths[kind]
            header, rows = read_rows(path)
            column = "reflectance" if "reflectance" in header or kind not in header else kind
            wl, columns, lines = parse_columns(path, [column], header, rows)
            values = columns[column]
            check_negative(path, column, values, lines, negative_tolerance)
            if not np.any(values != 0):
                raise PatternError(f"{path}, column {column!r}: all values are 0; cannot normalise")
            kw, kv, note = _covered(path, column, wl, values, fill_edges)
            grids.append((kw, kv))
            sources[kind] = f"{path.name} column {column} (sha256 {_file_digest(path)})" + (
                f"; {note}" if note else ""
            )
        default_name = "+".join(paths[k].stem for k in KINDS)
    grid, spectra = _merge_grids(grids)
    return PatternSet(name or default_name, grid, spectra, sources)


def _as_path_mapping(arg: Any) -> dict[str, Path]:
    if isinstance(arg, Mapping):
        missing = [k for k in KINDS if k not in arg]
        unknown = [k for k in arg if k not in KINDS]
        if missing or unknown:
            raise PatternError(
                f"the spectrum files must be keyed {', '.join(KINDS)}; missing: "
                f"{', '.join(missing) or 'none'}; unexpected: "
                f"{', '.join(map(str, unknown)) or 'none'}"
            )
        return {k: Path(arg[k]) for k in KINDS}
    if isinstance(arg, Iterable):
        items = list(arg)
        if len(items) != len(KINDS):
            raise PatternError(
                f"expected one wide CSV or {len(KINDS)} single-spectrum files "
                f"({', '.join(KINDS)}), got {len(items)} paths"
            )
        return {k: Path(p) for k, p in zip(KINDS, items, strict=True)}
    raise PatternError(
        f"path_or_paths must be a path, a mapping kind -> path or 4 paths, got {type(arg).__name__}"
    )


def _merge_grids(
    grids: list[tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    first = grids[0][0]
    if all(g.shape == first.shape and np.array_equal(g, first) for g, _ in grids):
        return first, {k: v for k, (_, v) in zip(KINDS, grids, strict=True)}
    lo = max(g[0] for g, _ in grids)
    hi = min(g[-1] for g, _ in grids)
    union = np.unique(np.concatenate([g[(g >= lo) & (g <= hi)] for g, _ in grids]))
    return union, {k: _interp(union, g, v) for k, (g, v) in zip(KINDS, grids, strict=True)}


@functools.cache
def default_pattern_set() -> PatternSet:
    """The shipped pattern set ``open-standin-v1``: open stand-in spectra of water,
    vegetation, soil and yellow leaves (see ``updm_dask/data/README.md`` for the sources,
    licences and every conversion step). Cached: the same object on every call."""
    with resources.as_file(_DATA / _DEFAULT_TABLE) as path:
        header, rows = read_rows(path)
        wl, columns, _ = parse_columns(path, KINDS, header, rows)
    return PatternSet(DEFAULT_PATTERN_SET_NAME, wl, columns, _DEFAULT_SOURCES)
