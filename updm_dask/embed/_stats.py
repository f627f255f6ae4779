"""Standardisation of embeddings: per-dimension statistics, computing and applying them.

Vectors are comparable only when standardised with the SAME statistics; comparing places
across cubes standardises every cube's raw vectors with one reference's statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from ..errors import QueryError
from ._format import json_floats
from ._kernel import standardise
from ._period import EMBEDDING_VERSION, Period

__all__ = ["EmbeddingStats", "embedding_statistics", "pooled_statistics", "standardise_layer"]


@dataclass(frozen=True, eq=False)
class EmbeddingStats:
    """Per-dimension mean and standard deviation that standardise an embedding.

    Vectors are comparable only when standardised with the SAME statistics: comparing
    places across cubes standardises every cube's raw vectors with one reference's stats.

    Attributes
    ----------
    period : Period
        Defines the dimensions (``period.dimension_names``).
    mean, std : numpy.ndarray
        float64, one per dimension, over the reference pixels with a finite value
        (population standard deviation); NaN for a dimension without any data.
    n_pixels : numpy.ndarray
        int64, pixels with a finite value per dimension.
    source : str
        Where they were computed (cube location and snapshot).
    """

    period: Period
    mean: np.ndarray
    std: np.ndarray
    n_pixels: np.ndarray
    source: str = ""
    version: int = EMBEDDING_VERSION

    def __post_init__(self) -> None:
        n = len(self.period.dimension_names)
        for name in ("mean", "std", "n_pixels"):
            v = np.asarray(getattr(self, name), dtype=np.int64 if name == "n_pixels" else float)
            if v.shape != (n,):
                raise QueryError(
                    f"EmbeddingStats.{name}: expected {n} values (period {self.period}), "
                    f"got shape {v.shape}"
                )
            object.__setattr__(self, name, v)

    @property
    def names(self) -> tuple[str, ...]:
        """Dimension names."""
        return self.period.dimension_names

    def check(self, period: Period, version: int = EMBEDDING_VERSION) -> None:
        """QueryError unless these statistics belong to embeddings of ``period``/``version``."""
        if self.version != version or self.period != period:
            raise QueryError(
                f"standardisation statistics are for period {self.period} "
                f"(epochs of {self.period.epoch_years} years, embedding version {self.version})"
                f", not for {period} (epochs of {period.epoch_years} years, version {version})"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (NaN as None)."""
        return {
            "embedding_version": self.version,
            "period": self.period.to_dict(),
            "names": list(self.names),
            "mean": json_floats(self.mean),
            "std": json_floats(self.std),
            "n_pixels": [int(v) for v in self.n_pixels],
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, d: Any) -> EmbeddingStats:
        """Inverse of :meth:`to_dict`."""
        try:
            per = Period.from_dict(d["period"])

            def arr(key: str) -> np.ndarray:
                return np.array([np.nan if v is None else v for v in d[key]], dtype=float)

            stats = cls(
                per,
                arr("mean"),
                arr("std"),
                np.asarray(d["n_pixels"], dtype=np.int64),
                str(d.get("source", "")),
                int(d["embedding_version"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise QueryError(f"embedding statistics: malformed record ({exc})") from None
        if list(d.get("names", stats.names)) != list(stats.names):
            raise QueryError("embedding statistics: stored names do not match the period")
        return stats


def embedding_statistics(
    raw: xr.DataArray | da.Array | np.ndarray, period: Period, source: str = ""
) -> EmbeddingStats:
    """Mean and standard deviation of each dimension over the pixels (computes).

    ``raw`` is ``(dimension, y, x)`` (or ``(dimension, n)``); NaNs are left out per
    dimension. One pass over the data, accumulated in float64.
    """
    data = raw.data if isinstance(raw, xr.DataArray) else raw
    n = len(period.dimension_names)
    if data.shape[0] != n:
        raise QueryError(
            f"embedding_statistics: {data.shape[0]} dimensions, period {period} has {n}"
        )
    lib = da if isinstance(data, da.Array) else np
    flat = data.reshape((n, -1)).astype(np.float64)
    ok = lib.isfinite(flat)
    x = lib.where(ok, flat, 0.0)
    parts = (ok.sum(axis=1), x.sum(axis=1), (x * x).sum(axis=1))
    if lib is da:
        parts = da.compute(*parts)
    count, s1, s2 = (np.asarray(p, dtype=np.float64) for p in parts)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(count > 0, s1 / count, np.nan)
        var = np.where(count > 0, s2 / count - mean**2, np.nan)
    std = np.sqrt(np.maximum(var, 0.0))
    # float64 rounding can leave a tiny positive variance on a constant dimension
    std = np.where(std <= 1e-7 * np.maximum(np.abs(mean), 1.0), 0.0, std)
    std = np.where(count > 0, std, np.nan)
    return EmbeddingStats(period, mean, std, count.astype(np.int64), source)


def pooled_statistics(parts: Sequence[EmbeddingStats], source: str = "") -> EmbeddingStats:
    """The statistics of the union of the pixels ``parts`` were computed over.

    What :func:`embedding_statistics` gives over all those pixels at once (up to rounding):
    per dimension, counts add up, and the mean and the population variance follow from each
    part's count, mean and variance. Used for the tiles of a collection.

    Raises
    ------
    QueryError
        No part, or parts of different periods or embedding versions.
    """
    if not parts:
        raise QueryError("pooled_statistics: no statistics to pool")
    first = parts[0]
    for other in parts[1:]:
        first.check(other.period, other.version)
    count = np.sum([p.n_pixels for p in parts], axis=0).astype(np.float64)
    with np.errstate(invalid="ignore"):
        # a part without data in a dimension weighs nothing there (its NaNs count 0)
        weighted = [np.where(p.n_pixels > 0, p.n_pixels, 0) for p in parts]
        s1 = np.sum([w * np.nan_to_num(p.mean) for w, p in zip(weighted, parts, strict=True)], 0)
        s2 = np.sum(
            [
                w * (np.nan_to_num(p.std) ** 2 + np.nan_to_num(p.mean) ** 2)
                for w, p in zip(weighted, parts, strict=True)
            ],
            axis=0,
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(count > 0, s1 / count, np.nan)
        var = np.where(count > 0, s2 / count - mean**2, np.nan)
    std = np.sqrt(np.maximum(var, 0.0))
    std = np.where(std <= 1e-7 * np.maximum(np.abs(mean), 1.0), 0.0, std)
    std = np.where(count > 0, std, np.nan)
    return EmbeddingStats(first.period, mean, std, count.astype(np.int64), source, first.version)


def standardise_layer(raw: xr.DataArray, stats: EmbeddingStats) -> xr.DataArray:
    """Standardise a raw ``(dimension, ...)`` DataArray with ``stats`` (lazy stays lazy)."""
    names = [str(v) for v in raw["dimension"].values] if "dimension" in raw.coords else None
    if names is not None and names != list(stats.names):
        raise QueryError(
            f"standardise: the embedding's dimensions ({len(names)}, from {names[0]!r}) are "
            f"not those of the statistics (period {stats.period}, {len(stats.names)})"
        )
    if isinstance(raw.data, da.Array):
        data = raw.data.rechunk({0: -1}).map_blocks(
            standardise, stats.mean, stats.std, dtype=np.float32
        )
    else:
        data = standardise(raw.values, stats.mean, stats.std)
    out = raw.copy(data=data)
    out.attrs = {**raw.attrs, "standardised_with": stats.source}
    return out
