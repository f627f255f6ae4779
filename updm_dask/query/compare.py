"""Cross-sensor comparison (the method's section 9, the note's section 6 and Tables 6-7).

Two classifications of the same place on (nearly) the same date, by two sensors or two
scenes, are compared pixel by pixel on one grid:

- per-class agreement, as the note defines it: pixels both put in the class / pixels the
  REFERENCE puts in the class (the note's reference is TM, compared with MSS); the reverse
  rate (/ pixels the other puts in the class) and the confusion matrix are given too;
- correlation of the coefficients and the fitted linear conversion
  ``other = a * reference + b`` per quantity (uCw, uCv, uCs, MVIUPD, S), the analogue of
  the note's Table 7, by :func:`updm_dask.science.classify.fit_conversion`.

Resolutions: when one sensor is coarser than the other by a whole factor ``k`` (MSS 60 m
against TM/ETM+/OLI 30 m), both layers are aggregated ``k x k`` first, the note's 2x2 rule:
classes by :func:`updm_dask.geo.block_mode` (a block is vegetation when at least half of
its pixels are; otherwise the most frequent class, ties by the priority vegetation > urban
> water > cloud; no_data pixels are ignored) and coefficients by
:func:`updm_dask.geo.block_mean`. The blocks are aligned on the coarse sensor's pixels (on
a 30 m cube an MSS pixel is a constant 2x2 block; the alignment that makes most blocks of
the coarse layer constant is used).

Pixels compared: classes where both are not no_data (cloud included, as a class);
coefficients where both are finite and clear (no quality flag set, when quality is given;
an aggregated block is clear when all its pixels are).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..cube import LAND_COVER_CLASSES, QUALITY_NOT_CLEAR, CubeLike
from ..errors import QueryError, RuleError, SensorError
from ..geo import block_mean, block_mode
from ..science.classify import LinearConversion, fit_conversion, mviupd
from ..science.sensors import get_sensor
from .areas import AreaSelection
from .selection import Selection, str_values

__all__ = ["Comparison", "compare_layers", "compare_scenes", "compare_sensors"]

#: Classes whose agreement is reported (code -> name), in the note's order.
COMPARED_CLASSES: dict[int, str] = {
    code: name for code, name in LAND_COVER_CLASSES.items() if code != 0
}
_COEFS = ("uCw", "uCv", "uCs", "uC4", "mviupd")


@dataclass(frozen=True)
class Comparison:
    """Result of a cross-sensor comparison.

    Attributes
    ----------
    reference, other : str
        What was compared (sensor names or scene ids).
    agreement : pandas.DataFrame
        One row per class: ``n_reference``, ``n_other``, ``n_both``, ``agreement``
        (n_both / n_reference, the note's definition; NaN when the reference has none),
        ``agreement_other`` (n_both / n_other).
    overall_agreement : float
        Pixels with equal classes / pixels both classified.
    confusion : pandas.DataFrame
        Pixel counts, rows = reference class, columns = other class.
    conversion : LinearConversion or None
        ``other = a * reference + b`` for every quantity that could be fitted, with
        correlation ``r`` and pairs ``n``; None when none could.
    conversion_table : pandas.DataFrame
        One row per quantity tried (uCw, uCv, uCs, uC4 when both have it, MVIUPD, S):
        ``a``, ``b``, ``r``, ``n``, ``mean_reference``, ``mean_other``, and ``note`` saying
        why a quantity could not be fitted (e.g. it is 0 everywhere).
    aggregate : int
        Aggregation factor used (1 = none).
    pairs : list of dict
        The scene pairs pooled: reference and other scene id, days apart.
    """

    reference: str
    other: str
    agreement: pd.DataFrame
    overall_agreement: float
    confusion: pd.DataFrame
    conversion: LinearConversion | None
    conversion_table: pd.DataFrame
    aggregate: int
    pairs: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (NaN as None)."""

        def clean(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [
                {
                    str(k): (None if isinstance(v, float) and not math.isfinite(v) else v)
                    for k, v in r.items()
                }
                for r in records
            ]

        return {
            "reference": self.reference,
            "other": self.other,
            "aggregate": self.aggregate,
            "overall_agreement": self.overall_agreement,
            "agreement": clean(self.agreement.reset_index().to_dict(orient="records")),
            "confusion": {
                str(k): {str(c): int(v) for c, v in row.items()}
                for k, row in self.confusion.to_dict(orient="index").items()
            },
            "conversion": clean(self.conversion_table.to_dict(orient="records")),
            "pairs": self.pairs,
        }

    def format(self) -> str:
        """Fixed-width report: agreement per class, then the conversion per quantity."""
        lines = [
            f"{self.other} against {self.reference} (reference)"
            + (f", aggregated {self.aggregate}x{self.aggregate}" if self.aggregate > 1 else ""),
            f"{'class':<12}{'n_ref':>10}{'n_other':>10}{'n_both':>10}{'agreement':>11}"
            f"{'reverse':>9}",
        ]
        for name, row in self.agreement.iterrows():
            lines.append(
                f"{name:<12}{int(row.n_reference):>10d}{int(row.n_other):>10d}"
                f"{int(row.n_both):>10d}"
                f"{_pct(row.agreement):>11}{_pct(row.agreement_other):>9}"
            )
        lines.append(f"overall agreement {_pct(self.overall_agreement)}")
        lines.append(
            f"{'quantity':<10}{'a':>10}{'b':>12}{'r':>8}{'n':>9}{'mean ref':>11}{'mean other':>11}"
        )
        for _, row in self.conversion_table.iterrows():
            if row.note:
                lines.append(f"{row.quantity:<10}  not fitted: {row.note}")
                continue
            lines.append(
                f"{row.quantity:<10}{row.a:>10.4f}{row.b:>12.5f}{row.r:>8.3f}{int(row.n):>9d}"
                f"{row.mean_reference:>11.4f}{row.mean_other:>11.4f}"
            )
        if self.pairs:
            lines.append(
                "pairs: "
                + ", ".join(
                    f"{p['reference']} / {p['other']} ({p['days']:+.1f} d)" for p in self.pairs
                )
            )
        return "\n".join(lines)


def _pct(v: float) -> str:
    return "-" if not np.isfinite(v) else f"{100 * v:.1f} %"


# --------------------------------------------------------------------------------------
# Pixel pairs
# --------------------------------------------------------------------------------------


def _native_resolution(sensor: str | None, platform: Any) -> float | None:
    if not sensor:
        return None
    sat = None
    if isinstance(platform, int | np.integer):
        sat = int(platform)
    elif isinstance(platform, str) and platform.split("_")[-1].isdigit():
        sat = int(platform.split("_")[-1])
    try:
        return float(get_sensor(str(sensor), sat).resolution_m)
    except SensorError:
        return None


def _meta(ds: xr.Dataset, key: str) -> Any:
    if key in ds.coords and ds[key].ndim == 0:
        return ds[key].item()
    return ds.attrs.get(key)


def _grid_resolution(ds: xr.Dataset) -> float:
    x = np.asarray(ds["x"].values, dtype=np.float64)
    if x.size < 2:
        raise QueryError("compare: a layer needs at least 2 columns")
    return float(abs(x[1] - x[0]))


def _check_same_grid(a: xr.Dataset, b: xr.Dataset) -> None:
    for dim in ("y", "x"):
        if dim not in a.dims or dim not in b.dims:
            raise QueryError(f"compare: both layers need dims y and x; missing {dim!r}")
        if a.sizes[dim] != b.sizes[dim] or not np.allclose(a[dim].values, b[dim].values):
            raise QueryError(
                f"compare: the two layers are not on one grid ({dim} differs: sizes "
                f"{a.sizes[dim]} and {b.sizes[dim]}); put both on one grid first "
                "(updm_dask.geo.to_grid)"
            )


def _auto_aggregate(ref: xr.Dataset, oth: xr.Dataset) -> tuple[int, int | None]:
    """(k, index of the coarser layer or None) from the sensors' native resolutions."""
    res = _grid_resolution(ref)
    native = [
        _native_resolution(_meta(d, "sensor"), _meta(d, "platform") or _meta(d, "satellite"))
        for d in (ref, oth)
    ]
    if None in native or native[0] == native[1]:
        return 1, None
    coarse = int(np.argmax(native))
    k = round(max(native) / res)
    return (k, coarse) if k > 1 and abs(max(native) / res - k) < 0.05 else (1, None)


def _block_offset(classes: np.ndarray, k: int) -> tuple[int, int]:
    """Offset (rows, cols) of the k x k blocks that makes most blocks of ``classes`` constant."""
    best, best_n = (0, 0), -1
    for oy in range(k):
        for ox in range(k):
            ny = (classes.shape[0] - oy) // k
            nx = (classes.shape[1] - ox) // k
            if ny == 0 or nx == 0:
                continue
            b = classes[oy : oy + ny * k, ox : ox + nx * k].reshape(ny, k, nx, k)
            n = int((b == b[:, :1, :, :1]).all(axis=(1, 3)).sum())
            if n > best_n:
                best, best_n = (oy, ox), n
    return best


def _layers(ds: xr.Dataset, what: str) -> dict[str, np.ndarray]:
    if "land_cover" not in ds:
        raise QueryError(f"compare: the {what} layers have no land_cover variable")
    out = {"land_cover": np.asarray(ds["land_cover"].values, dtype=np.uint8)}
    for name in _COEFS:
        if name in ds:
            out[name] = np.asarray(ds[name].values, dtype=np.float64)
    missing = [n for n in ("uCw", "uCv", "uCs") if n not in out]
    if missing:
        raise QueryError(f"compare: the {what} layers lack {', '.join(missing)}")
    if "mviupd" not in out:
        # a missing supplementary coefficient (no fourth pattern) counts as 0
        uC4 = np.nan_to_num(out["uC4"]) if "uC4" in out else None
        out["mviupd"] = mviupd(out["uCw"], out["uCv"], out["uCs"], uC4)
    if "quality" in ds:
        q = np.asarray(ds["quality"].values).astype(np.int64)
        out["clear"] = (q & QUALITY_NOT_CLEAR) == 0
    else:
        out["clear"] = np.ones(out["land_cover"].shape, dtype=bool)
    return out


def _aggregate(layers: dict[str, np.ndarray], k: int, offset: tuple[int, int], mask: np.ndarray):
    if k == 1:
        return layers, mask
    oy, ox = offset
    ny = (layers["land_cover"].shape[0] - oy) // k
    nx = (layers["land_cover"].shape[1] - ox) // k

    def crop(a: np.ndarray) -> np.ndarray:
        return a[oy : oy + ny * k, ox : ox + nx * k]

    out = {"land_cover": block_mode(crop(layers["land_cover"]), k, k, fill=0)}
    for name in _COEFS:
        if name in layers:
            out[name] = block_mean(crop(layers[name]), k, k)
    out["clear"] = block_mean(crop(layers["clear"]).astype(np.float64), k, k) == 1.0
    m = block_mean(crop(mask).astype(np.float64), k, k) == 1.0
    return out, m


def _pixel_pairs(
    ref: xr.Dataset, oth: xr.Dataset, aggregate: int | None, mask: np.ndarray | None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], int]:
    """1-D arrays of the compared pixels of both layers, after aggregation."""
    _check_same_grid(ref, oth)
    a, b = _layers(ref, "reference"), _layers(oth, "other")
    if mask is None:
        mask = np.ones(a["land_cover"].shape, dtype=bool)
    if aggregate is None:
        k, coarse = _auto_aggregate(ref, oth)
    else:
        if isinstance(aggregate, bool) or not isinstance(aggregate, int) or aggregate < 1:
            raise QueryError(f"aggregate: expected an integer >= 1, got {aggregate!r}")
        k, coarse = aggregate, None
    if k > 1:
        base = (a, b)[coarse]["land_cover"] if coarse is not None else None
        offset = _block_offset(base, k) if base is not None else (0, 0)
        a, m = _aggregate(a, k, offset, mask)
        b, _ = _aggregate(b, k, offset, mask)
        mask = m
    a = {n: v[mask] for n, v in a.items()}
    b = {n: v[mask] for n, v in b.items()}
    return a, b, k


def _summarise(
    pairs: Sequence[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]],
    k: int,
    labels: tuple[str, str],
    pair_info: list[dict[str, Any]],
) -> Comparison:
    a = {n: np.concatenate([p[0][n] for p in pairs]) for n in pairs[0][0]}
    b = {n: np.concatenate([p[1][n] for p in pairs]) for n in pairs[0][1]}
    la, lb = a["land_cover"], b["land_cover"]
    both = (la != 0) & (lb != 0)
    rows = {}
    for code, name in COMPARED_CLASSES.items():
        in_a = both & (la == code)
        in_b = both & (lb == code)
        n_a, n_b, n_ab = int(in_a.sum()), int(in_b.sum()), int((in_a & in_b).sum())
        rows[name] = {
            "n_reference": n_a,
            "n_other": n_b,
            "n_both": n_ab,
            "agreement": n_ab / n_a if n_a else math.nan,
            "agreement_other": n_ab / n_b if n_b else math.nan,
        }
    agreement = pd.DataFrame.from_dict(rows, orient="index")
    agreement.index.name = "class"
    n_both = int(both.sum())
    overall = float((both & (la == lb)).sum() / n_both) if n_both else math.nan
    codes = list(LAND_COVER_CLASSES)
    names = list(LAND_COVER_CLASSES.values())
    conf = np.zeros((len(codes), len(codes)), dtype=np.int64)
    for i, ci in enumerate(codes):
        for j, cj in enumerate(codes):
            conf[i, j] = int(((la == ci) & (lb == cj)).sum())
    confusion = pd.DataFrame(
        conf, index=pd.Index(names, name=labels[0]), columns=pd.Index(names, name=labels[1])
    )
    good = a["clear"] & b["clear"]
    for name in ("uCw", "uCv", "uCs"):
        good &= np.isfinite(a[name]) & np.isfinite(b[name])
    conversion, table = _fit_quantities(a, b, good, labels)
    return Comparison(
        reference=labels[0],
        other=labels[1],
        agreement=agreement,
        overall_agreement=overall,
        confusion=confusion,
        conversion=conversion,
        conversion_table=table,
        aggregate=k,
        pairs=pair_info,
    )


def _fit_quantities(
    a: dict[str, np.ndarray], b: dict[str, np.ndarray], good: np.ndarray, labels: tuple[str, str]
) -> tuple[LinearConversion | None, pd.DataFrame]:
    """Fit each quantity on its own, so that one degenerate quantity does not hide the rest."""
    src = {n: a[n][good] for n in _COEFS if n in a and n in b}
    dst = {n: b[n][good] for n in _COEFS if n in a and n in b}
    src["S"] = src["uCw"] + src["uCv"] + src["uCs"]
    dst["S"] = dst["uCw"] + dst["uCv"] + dst["uCs"]
    wanted = [q for q in ("uCw", "uCv", "uCs", "uC4", "mviupd", "S") if q in src]
    if "uC4" in wanted and not (np.isfinite(src["uC4"]).any() and np.isfinite(dst["uC4"]).any()):
        wanted.remove("uC4")  # no supplementary pattern on one side (MSS)
    coefficients, r, n, rows = {}, {}, {}, []
    for q in wanted:
        row = {"quantity": q, "a": math.nan, "b": math.nan, "r": math.nan, "n": 0}
        keep = np.isfinite(src[q]) & np.isfinite(dst[q])
        row["mean_reference"] = float(src[q][keep].mean()) if keep.any() else math.nan
        row["mean_other"] = float(dst[q][keep].mean()) if keep.any() else math.nan
        row["note"] = ""
        try:
            fit = fit_conversion({q: src[q]}, {q: dst[q]}, [q])
        except RuleError as exc:
            msg = str(exc).split(": ", 2)[-1]
            row["note"] = msg + (
                f" (all {float(src[q][keep][0]):g})"
                if keep.any() and np.ptp(src[q][keep]) == 0
                else ""
            )
        else:
            coefficients[q] = fit.coefficients[q]
            r[q], n[q] = fit.r[q], fit.n[q]
            row.update(a=fit.coefficients[q][0], b=fit.coefficients[q][1], r=r[q], n=n[q])
        rows.append(row)
    conversion = (
        LinearConversion(
            coefficients=coefficients,
            name=f"{labels[0]}-to-{labels[1]}",
            source=f"least-squares fit on pixels clear in both ({int(good.sum())})",
            from_sensor=labels[0],
            to_sensor=labels[1],
            r=r,
            n=n,
        )
        if coefficients
        else None
    )
    return conversion, pd.DataFrame(rows)


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------


def compare_layers(
    reference: xr.Dataset,
    other: xr.Dataset,
    *,
    aggregate: int | None = None,
    mask: np.ndarray | None = None,
    labels: tuple[str, str] | None = None,
) -> Comparison:
    """Compare two scenes' layers on one grid (e.g. from :func:`updm_dask.geo.to_grid`).

    Parameters
    ----------
    reference, other : xarray.Dataset
        Dims (y, x) on the same grid, with ``land_cover``, ``uCw``, ``uCv``, ``uCs``
        (``uC4``, ``mviupd``, ``quality`` used when present). ``sensor`` and ``platform``
        (or ``satellite``) attributes or scalar coordinates let the aggregation factor be
        found. Dask-backed layers are computed.
    aggregate : int, optional
        Aggregation factor; default from the sensors' native resolutions (1 when equal or
        unknown).
    mask : numpy.ndarray of bool, optional
        Pixels to compare (default all).
    labels : (str, str), optional
        Names of the two (default their sensor and scene id).

    Returns
    -------
    Comparison

    Raises
    ------
    QueryError
        Layers not on one grid, missing variables.
    """
    if not isinstance(reference, xr.Dataset) or not isinstance(other, xr.Dataset):
        raise QueryError("compare_layers: expected two xarray Datasets")
    if labels is None:
        labels = tuple(
            " ".join(str(v) for v in (_meta(d, "sensor"), _meta(d, "scene_id")) if v) or n
            for d, n in ((reference, "reference"), (other, "other"))
        )
    a, b, k = _pixel_pairs(reference, other, aggregate, mask)
    return _summarise([(a, b)], k, labels, [])


def _scene_index(ids: np.ndarray, scene_id: str, location: str) -> int:
    hits = np.flatnonzero(ids == scene_id)
    if hits.size == 0:
        shown = ", ".join(sorted(ids.tolist())[:5])
        raise QueryError(
            f"cube {location!r} has no scene {scene_id!r} (it has {ids.size} scenes: {shown}"
            f"{', ...' if ids.size > 5 else ''})"
        )
    return int(hits[0])


def _slot(ds: xr.Dataset, i: int, sel: AreaSelection) -> xr.Dataset:
    one = ds.isel(time=i, y=sel.rows, x=sel.cols)
    return one[[v for v in (*_COEFS, "land_cover", "quality") if v in one]].compute()


def compare_scenes(
    selection: Selection | CubeLike,
    reference: str,
    other: str,
    *,
    aggregate: int | None = None,
    **where: Any,
) -> Comparison:
    """Compare two scenes of a cube, given by scene id.

    Parameters
    ----------
    selection : Selection, Cube, str or path-like
        The cube and the area compared (default the whole cube); the scenes set the time.
    reference, other : str
        Scene ids.
    aggregate : int, optional
        As for :func:`compare_layers`.
    **where
        Fields of :class:`~updm_dask.query.Selection` but ``start``/``end``.

    Returns
    -------
    Comparison

    Raises
    ------
    QueryError
        Unknown scene id, bad area, unknown commit.
    """
    view = Selection.of(selection, **where).resolve("area", time=False, query="compare_scenes")
    ds, sel = view.dataset, view.area
    ids = view.scene_ids()
    ia, ib = (_scene_index(ids, s, view.location) for s in (reference, other))
    times = ds["time"].values
    info = [_pair_info(ds, ia, ib, times)]
    a, b, k = _pixel_pairs(_slot(ds, ia, sel), _slot(ds, ib, sel), aggregate, sel.mask)
    labels = (f"{ds['sensor'].values[ia]} {reference}", f"{ds['sensor'].values[ib]} {other}")
    return _summarise([(a, b)], k, labels, info)


def _pair_info(ds: xr.Dataset, ia: int, ib: int, times: np.ndarray) -> dict[str, Any]:
    days = (times[ib] - times[ia]) / np.timedelta64(1, "D")
    return {
        "reference": str(ds["scene_id"].values[ia]),
        "other": str(ds["scene_id"].values[ib]),
        "days": float(days),
    }


def compare_sensors(
    selection: Selection | CubeLike,
    reference: str,
    other: str,
    *,
    max_days: float = 16.0,
    aggregate: int | None = None,
    **where: Any,
) -> Comparison:
    """Compare two sensors over every near-simultaneous pair of their scenes in a cube.

    Each scene of the ``reference`` sensor is paired with the closest scene of the
    ``other`` sensor at most ``max_days`` apart (each scene is used at most once, closest
    pairs first); the pixels of all pairs are pooled.

    Parameters
    ----------
    selection : Selection, Cube, str or path-like
        The cube, the area compared (default the whole cube) and the time range of the
        scenes considered.
    reference, other : str
        Sensor names as stored in the cube (``MSS``, ``TM``, ``ETM+``, ``OLI``, ``OLI-2``).
    max_days : float
        Largest time between the two scenes of a pair.
    aggregate : int, optional
        As for :func:`compare_layers`.
    **where
        Fields of :class:`~updm_dask.query.Selection`.

    Returns
    -------
    Comparison

    Raises
    ------
    QueryError
        A sensor without scenes, no pair within ``max_days``, and the errors of
        :func:`compare_scenes`.
    """
    if not (isinstance(max_days, int | float) and max_days >= 0):
        raise QueryError(f"max_days: expected a number of days >= 0, got {max_days!r}")
    view = Selection.of(selection, **where).resolve("area", query="compare_sensors")
    ds, sel, when = view.dataset, view.area, view.when
    sensors = str_values(ds["sensor"].values)
    times = ds["time"].values
    inside = when.contains_times(times)
    idx = {}
    for s in (reference, other):
        idx[s] = np.flatnonzero((sensors == s) & inside)
        if idx[s].size == 0:
            have = ", ".join(sorted(set(sensors.tolist()))) or "none"
            raise QueryError(
                f"cube {view.location!r} has no {s} scene from {when.describe()} "
                f"(sensors in the cube: {have})"
            )
    gaps = [
        (abs((times[j] - times[i]) / np.timedelta64(1, "D")), int(i), int(j))
        for i in idx[reference]
        for j in idx[other]
        if i != j
    ]
    used_a, used_b, chosen = set(), set(), []
    for gap, i, j in sorted(gaps):
        if gap <= max_days and i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            chosen.append((i, j))
    if not chosen:
        nearest = min(g for g, _, _ in gaps) if gaps else math.nan
        raise QueryError(
            f"no {reference}/{other} scene pair within {max_days:g} days in cube "
            f"{view.location!r} (the closest pair is {nearest:.1f} days apart)"
        )
    chosen.sort(key=lambda p: times[p[0]])
    pooled, ks = [], set()
    for i, j in chosen:
        a, b, k = _pixel_pairs(_slot(ds, i, sel), _slot(ds, j, sel), aggregate, sel.mask)
        pooled.append((a, b))
        ks.add(k)
    if len(ks) > 1:
        raise QueryError(f"compare: pairs need different aggregation factors {sorted(ks)}")
    info = [_pair_info(ds, i, j, times) for i, j in chosen]
    return _summarise(pooled, ks.pop(), (reference, other), info)
