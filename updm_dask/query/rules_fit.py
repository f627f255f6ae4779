"""Fit the thresholds of a land-cover rule table from labelled sample pixels.

The note set its thresholds by sampling areas of known cover (forest, golf-course turf,
city, water, cloud) and drawing lines between the clusters on scatter plots of S vs uCw,
S vs uCv and MVIUPD vs uCv. This module does the same with numbers:

1. :func:`sample_pixels` reads the coefficients of the pixels under labelled points or
   polygons (GeoJSON features with a ``class`` property), from a cube (some scenes or a
   time range) or from one scene's layers.
2. :func:`fit_rules` keeps the STRUCTURE of a template rule table (classes, priority
   order, quantities and inequality directions; default the note's TM Table 5) and
   re-fits each threshold, rule by rule in priority order:

   - the rule's positives are the samples of its class, its negatives the samples of the
     other classes that no earlier rule has taken (priority evaluation, as classification
     does);
   - each condition's threshold is first placed on its own quantity where it best
     separates positives from negatives (highest balanced accuracy), at the MIDDLE of the
     gap between the two neighbouring sample values, like a line drawn between clusters;
     among equally good gaps the one nearest the template threshold wins;
   - then, for rules with several conditions (combined with AND), each threshold is moved
     only if that improves the balanced accuracy of the whole rule given the others,
     until nothing changes;
   - conditions that share quantity and threshold in the template (vegetation
     ``MVIUPD >= 0.458`` and urban ``MVIUPD < 0.458``) stay tied: the later one takes the
     value fitted for the earlier one;
   - a rule whose class has no samples, or with nothing left to separate it from, keeps
     its template thresholds (the report says so).

3. :meth:`RuleFit.save` writes the table as TOML, which ``[science] rules = "path"`` of a
   job spec (and :func:`updm_dask.science.classify.load_rules`) reads.

Samples are used where uCw, uCv and uCs are finite and the quality flags show no fill,
saturation or SLC gap; cloud and cloud-shadow flags exclude a sample unless its label is
``cloud``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..cube import (
    QUALITY_CLOUD,
    QUALITY_CLOUD_SHADOW,
    QUALITY_FILL,
    QUALITY_SATURATED,
    QUALITY_SLC_GAP,
    Cube,
)
from ..errors import GridError, QueryError, RuleError
from ..geo import CubeGrid
from ..science.classify import Condition, Rule, RuleTable, classify_array, load_rules, mviupd
from .areas import feature_mask, geojson_crs, geojson_features, read_geojson
from .selection import ResolvedSelection, Selection
from .times import feature_year

__all__ = ["RuleFit", "fit_rules", "sample_pixels"]

_ALWAYS_BAD = QUALITY_FILL | QUALITY_SATURATED | QUALITY_SLC_GAP
_CLOUDY = QUALITY_CLOUD | QUALITY_CLOUD_SHADOW
_VALUES = ("uCw", "uCv", "uCs", "uC4")


# --------------------------------------------------------------------------------------
# Samples
# --------------------------------------------------------------------------------------


def _grid_of(ds: xr.Dataset) -> CubeGrid:
    if ds.rio.crs is None:
        raise QueryError("sample_pixels: the layers have no CRS (.rio.write_crs)")
    try:
        return CubeGrid(
            ds.rio.crs.to_wkt(), ds.rio.transform(recalc=True), (ds.sizes["y"], ds.sizes["x"])
        )
    except (GridError, KeyError) as exc:
        raise QueryError(f"sample_pixels: the layers are not on a usable grid: {exc}") from None


def _label_masks(
    labels: Any, grid: CubeGrid, crs: Any, class_property: str
) -> list[tuple[str, int, np.ndarray, int | None]]:
    """(class name, feature index, boolean grid mask, year or None) per labelled feature."""
    obj = read_geojson(labels)
    src = geojson_crs(obj, crs)
    out = []
    for i, (geom, props) in enumerate(geojson_features(obj)):
        name = props.get(class_property)
        if not isinstance(name, str) or not name:
            raise QueryError(
                f"labels: feature {i} has no {class_property!r} property naming its class"
            )
        year = feature_year(props, f"labels: feature {i}")
        mask = feature_mask(geom, src, grid, f"labels: feature {i} ({name})")
        out.append((name, i, mask, year))
    if not out:
        raise QueryError("labels: no labelled feature")
    return out


def _extract(
    layers: dict[str, np.ndarray],
    masks: Sequence[tuple[str, int, np.ndarray, int | None]],
    extra: dict,
    year: int | None = None,
) -> list[dict[str, Any]]:
    rows = []
    quality = layers.get("quality")
    for name, i, mask, label_year in masks:
        if year is not None and label_year is not None and label_year != year:
            continue  # a dated label describes its own year only
        rr, cc = np.nonzero(mask)
        vals = {n: layers[n][rr, cc] if n in layers else np.full(rr.size, np.nan) for n in _VALUES}
        ok = np.isfinite(vals["uCw"]) & np.isfinite(vals["uCv"]) & np.isfinite(vals["uCs"])
        if quality is not None:
            q = quality[rr, cc].astype(np.int64)
            bad = _ALWAYS_BAD | (0 if name == "cloud" else _CLOUDY)
            ok &= (q & bad) == 0
        for k in np.flatnonzero(ok):
            row = {"class": name, "feature": i, "row": int(rr[k]), "col": int(cc[k]), **extra}
            row.update({n: float(vals[n][k]) for n in _VALUES})
            rows.append(row)
    return rows


def _cube_samples(
    view: ResolvedSelection,
    labels: Any,
    scenes: str | Iterable[str] | None,
    class_property: str,
    crs: Any,
) -> list[dict[str, Any]]:
    """Sample rows of the scenes of a resolved selection (``scenes``, else its time range)."""
    masks = _label_masks(labels, view.cube.grid, crs, class_property)
    ds = view.dataset
    ids = view.scene_ids()
    if scenes is not None:
        wanted = [scenes] if isinstance(scenes, str) else list(scenes)
        missing = [s for s in wanted if s not in set(ids.tolist())]
        if missing:
            raise QueryError(f"cube {view.location!r} has no scene {missing[0]!r}")
        slots = [int(np.flatnonzero(ids == s)[0]) for s in wanted]
    else:
        when = view.when
        slots = np.flatnonzero(when.contains_times(ds["time"].values)).tolist()
        if not slots:
            raise QueryError(
                f"empty time range: cube {view.location!r} has no scene from {when.describe()}"
            )
    union = np.logical_or.reduce([m for _, _, m, _ in masks])
    rr, cc = np.nonzero(union)
    r0, r1, c0, c1 = rr.min(), rr.max() + 1, cc.min(), cc.max() + 1
    window = (
        ds[[n for n in (*_VALUES, "quality") if n in ds]]
        .isel(time=slots, y=slice(r0, r1), x=slice(c0, c1))
        .compute()
    )
    sub = [(n, i, m[r0:r1, c0:c1], y) for n, i, m, y in masks]
    years = window["time"].values.astype("datetime64[Y]").astype(int) + 1970
    rows = []
    for k, slot in enumerate(slots):
        layers = {n: window[n].values[k] for n in window.data_vars}
        got = _extract(layers, sub, {"scene_id": ids[slot]}, year=int(years[k]))
        for row in got:
            row["row"] += int(r0)
            row["col"] += int(c0)
        rows.extend(got)
    return rows


def sample_pixels(
    source: Any,
    labels: Any,
    *,
    scenes: str | Iterable[str] | None = None,
    class_property: str = "class",
    **where: Any,
) -> pd.DataFrame:
    """Coefficients of the pixels under labelled points and polygons.

    Parameters
    ----------
    source : Selection, Cube, cube location, or xarray.Dataset
        A cube (and the time range of the scenes sampled), or one scene's layers
        (``uCw``, ``uCv``, ``uCs``, optional ``uC4``, ``quality``; dims (y, x),
        georeferenced).
    labels : dict, str or path
        GeoJSON FeatureCollection (or Feature) of Points/MultiPoints (the pixel holding
        each point) and Polygons/MultiPolygons (the pixels whose centre is inside), each
        with a ``class_property`` naming its class.
    scenes : str or list of str, optional
        Cube scene ids to sample (default every scene of the time range).
    class_property : str
        Property holding the class name.
    **where
        Fields of :class:`~updm_dask.query.Selection`: ``crs`` is the CRS of the label
        coordinates (default lon/lat, or the file's legacy ``crs``), ``start``/``end``
        the time range; the labels are the place. With layers only ``crs`` is used.

    Returns
    -------
    pandas.DataFrame
        One row per usable sample pixel (and scene): ``class``, ``feature``, ``row``,
        ``col``, ``scene_id`` (cube only), ``uCw``, ``uCv``, ``uCs``, ``uC4``, ``S``,
        ``mviupd``.

    Raises
    ------
    QueryError
        Bad labels (no class, outside the grid, wrong CRS), unknown scenes, empty time
        range, or no usable sample pixel.
    """
    if isinstance(source, xr.Dataset):
        grid = _grid_of(source)
        masks = _label_masks(labels, grid, where.get("crs"), class_property)
        layers = {n: np.asarray(source[n].values) for n in (*_VALUES, "quality") if n in source}
        sid = source.attrs.get("scene_id", "")
        rows = _extract(layers, masks, {"scene_id": str(sid)})
    elif isinstance(source, Selection | Cube | str | os.PathLike):
        sel = Selection.of(source, **where)
        # the labels are the place: the selection carries only their CRS
        view = dataclasses.replace(sel, crs=None).resolve("cube", query="sample_pixels")
        rows = _cube_samples(view, labels, scenes, class_property, sel.crs)
    else:
        raise QueryError(
            f"sample_pixels: source must be a Cube, a cube location or an xarray Dataset, "
            f"got {type(source).__name__}"
        )
    if not rows:
        raise QueryError("sample_pixels: no usable sample pixel (all fill, cloudy or NaN)")
    df = pd.DataFrame(rows)
    df["S"] = df["uCw"] + df["uCv"] + df["uCs"]
    # a missing supplementary coefficient (no fourth pattern) counts as 0
    df["mviupd"] = mviupd(df["uCw"], df["uCv"], df["uCs"], df["uC4"].fillna(0.0))
    return df


# --------------------------------------------------------------------------------------
# Threshold search (numpy kernels)
# --------------------------------------------------------------------------------------


def _upper(op: str) -> bool:
    """True when the condition holds for LARGE values (>=, >)."""
    return op in (">=", ">")


def _holds(values: np.ndarray, op: str, t: float) -> np.ndarray:
    return (
        values >= t
        if op == ">="
        else values > t
        if op == ">"
        else values <= t
        if op == "<="
        else values < t
    )


def _candidates(values: np.ndarray) -> np.ndarray:
    u = np.unique(values[np.isfinite(values)])
    if u.size < 2:
        return u
    return 0.5 * (u[:-1] + u[1:])


def best_split(
    pos: np.ndarray,
    neg: np.ndarray,
    op: str,
    *,
    prefer: float,
    pos_weight: float | None = None,
    neg_weight: float | None = None,
    pos_total: int | None = None,
    neg_total: int | None = None,
) -> tuple[float, float]:
    """Threshold of ``value op t`` that best separates ``pos`` from ``neg``.

    Kernel: 1-D float arrays -> ``(threshold, balanced accuracy)``. Candidates are the
    midpoints between consecutive distinct sample values; the score is the balanced
    accuracy ``(TP / n_pos + TN / n_neg) / 2`` with ``n_pos``/``n_neg`` = ``pos_total``/
    ``neg_total`` (default the array sizes; larger totals count samples that another
    condition already rejects as lost). Among equally good candidates the one nearest
    ``prefer`` wins.
    """
    pos = np.sort(pos[np.isfinite(pos)])
    neg = np.sort(neg[np.isfinite(neg)])
    n_pos = pos_total if pos_total is not None else pos.size
    n_neg = neg_total if neg_total is not None else neg.size
    cand = _candidates(np.concatenate([pos, neg]))
    if cand.size == 0 or n_pos == 0 or n_neg == 0:
        return prefer, math.nan
    if _upper(op):
        tp = pos.size - np.searchsorted(pos, cand, side="left")
        fp = neg.size - np.searchsorted(neg, cand, side="left")
    else:
        tp = np.searchsorted(pos, cand, side="right")
        fp = np.searchsorted(neg, cand, side="right")
    score = 0.5 * (tp / n_pos + (n_neg - fp) / n_neg)
    best = score.max()
    top = cand[np.isclose(score, best, rtol=0, atol=1e-12)]
    return float(top[np.argmin(np.abs(top - prefer))]), float(best)


def _rule_holds(df: pd.DataFrame, conditions: Sequence[Condition]) -> np.ndarray:
    hit = np.ones(len(df), dtype=bool)
    for c in conditions:
        hit &= _holds(df[c.quantity].to_numpy(), c.operator, c.threshold)
    return hit


def _balanced(hit: np.ndarray, positive: np.ndarray) -> float:
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    return 0.5 * ((hit & positive).sum() / n_pos + (~hit & ~positive).sum() / n_neg)


# --------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleFit:
    """A fitted rule table and how each threshold was set.

    Attributes
    ----------
    table : RuleTable
    report : pandas.DataFrame
        One row per condition: ``class``, ``quantity``, ``operator``, ``template``,
        ``fitted``, ``n_class`` / ``n_others`` (samples the rule separated),
        ``accuracy`` (balanced accuracy of the whole rule on them), ``note``.
    """

    table: RuleTable
    report: pd.DataFrame
    #: Per class, on the held-out samples: ``n``, ``users_accuracy``,
    #: ``producers_accuracy`` (None when nothing was held out).
    heldout: pd.DataFrame | None = None
    #: Share of held-out samples the fitted table classes correctly (NaN if none).
    heldout_accuracy: float = math.nan
    n_heldout: int = 0

    def save(self, path: str | os.PathLike) -> Path:
        """Write the table as TOML (for ``[science] rules = "path"`` of a job spec)."""
        try:
            return self.table.save(path)
        except OSError as exc:
            raise QueryError(f"cannot write the rule table to {str(path)!r}: {exc}") from None

    def format(self) -> str:
        """Fixed-width report of the fit."""
        lines = [f"rule table {self.table.name!r} ({self.table.sensor}), fitted:"]
        for _, r in self.report.iterrows():
            acc = "-" if not np.isfinite(r.accuracy) else f"{100 * r.accuracy:.1f} %"
            lines.append(
                f"  {r['class']:<11}{r.quantity:>7} {r.operator:<2} {r.fitted:<12.6g}"
                f"(template {r.template:.6g}; {r.n_class} vs {r.n_others} samples, "
                f"accuracy {acc}) {r.note}".rstrip()
            )
        if self.heldout is None:
            lines.append("held-out check: none (no labelled feature was held out)")
        else:
            lines.append(
                f"held-out check: {self.n_heldout} sample pixels of labelled features not used "
                f"for fitting, {100 * self.heldout_accuracy:.1f} % classed correctly"
            )
            for _, r in self.heldout.iterrows():
                ua = "-" if not np.isfinite(r.users_accuracy) else f"{r.users_accuracy:.3f}"
                pa = "-" if not np.isfinite(r.producers_accuracy) else f"{r.producers_accuracy:.3f}"
                lines.append(f"  {r['class']:<11} n {r.n:<6d} user's {ua:<6} producer's {pa}")
        return "\n".join(lines)


def fit_rules(
    samples: pd.DataFrame,
    template: str | os.PathLike | RuleTable = "TM",
    *,
    name: str | None = None,
    sensor: str | None = None,
    max_rounds: int = 10,
    holdout: float = 0.0,
    seed: int = 0,
) -> RuleFit:
    """Fit the thresholds of ``template`` to labelled samples (method in the module docstring).

    Parameters
    ----------
    samples : pandas.DataFrame
        A ``class`` column (class names of the template) and the quantities the template
        tests (``uCw``, ``uCv``, ``uCs``, ``uC4``, ``S``, ``mviupd``), e.g. from
        :func:`sample_pixels`.
    template : str, path or RuleTable
        Table whose structure is kept (default ``"TM"``, the note's Table 5).
    name, sensor : str, optional
        Of the fitted table (default ``"<template name>-fitted"`` and the template's).
    max_rounds : int
        Rounds of the joint refinement of multi-condition rules.
    holdout : float
        Share (0 <= holdout < 1) of each class's labelled FEATURES kept out of the fit and
        used to check it (whole features, so the pixels of one polygon never sit on both
        sides); at most all but one feature of a class. Needs a ``feature`` column.
    seed : int
        Seed of the random choice of held-out features.

    Returns
    -------
    RuleFit

    Raises
    ------
    QueryError
        Missing columns, sample classes the template does not know, or no samples.
    """
    try:
        base = load_rules(template)
    except RuleError as exc:
        raise QueryError(f"template: {exc}") from None
    if not isinstance(samples, pd.DataFrame) or "class" not in samples:
        raise QueryError("samples: expected a DataFrame with a 'class' column")
    if samples.empty:
        raise QueryError("samples: no sample")
    # Labels may use a former class name (urban for non_vegetated) the table no longer has.
    samples = samples.assign(**{"class": samples["class"].astype(str).map(base.class_name_for)})
    known = {r.class_name for r in base.rules}
    unknown = sorted(set(samples["class"].astype(str)) - known)
    if unknown:
        raise QueryError(
            f"samples: class {unknown[0]!r} is not in rule table {base.name!r} "
            f"(classes {', '.join(r.class_name for r in base.rules)})"
        )
    missing = sorted({q for q in base.quantities if q not in samples})
    if missing:
        raise QueryError(f"samples: no column for quantity {missing[0]!r} the rules test")
    test = None
    if isinstance(holdout, bool) or not (0.0 <= float(holdout) < 1.0):
        raise QueryError(f"holdout: expected a share in [0, 1), got {holdout!r}")
    if holdout > 0:
        if "feature" not in samples:
            raise QueryError("holdout: the samples need a 'feature' column (sample_pixels)")
        keep = _heldout_features(samples, float(holdout), seed)
        test = samples[samples["feature"].isin(keep)]
        samples = samples[~samples["feature"].isin(keep)]
    remaining = samples.reset_index(drop=True)
    tied: dict[tuple[str, float], float] = {}
    rules, report = [], []
    for rule in base.rules:
        positive = (remaining["class"] == rule.class_name).to_numpy()
        n_pos, n_neg = int(positive.sum()), int((~positive).sum())
        conds = list(rule.conditions)
        free = [i for i, c in enumerate(conds) if (c.quantity, c.threshold) not in tied]
        notes = {i: "" for i in range(len(conds))}
        for i, c in enumerate(conds):
            if i not in free:
                conds[i] = Condition(c.quantity, c.operator, tied[(c.quantity, c.threshold)])
                notes[i] = "tied to an earlier rule"
        if free and (n_pos == 0 or n_neg == 0):
            why = f"no {rule.class_name} samples" if n_pos == 0 else "nothing left to separate"
            for i in free:
                notes[i] = f"kept: {why}"
        elif free:
            values = {c.quantity: remaining[c.quantity].to_numpy(dtype=np.float64) for c in conds}
            for i in free:  # each line on its own scatter axis first
                c = conds[i]
                v = values[c.quantity]
                t, _ = best_split(v[positive], v[~positive], c.operator, prefer=c.threshold)
                conds[i] = Condition(c.quantity, c.operator, t)
            for _ in range(max_rounds if len(free) > 1 else 0):
                moved = False
                for i in free:
                    others = np.ones(len(remaining), dtype=bool)
                    for j, o in enumerate(conds):
                        if j != i:
                            others &= _holds(values[o.quantity], o.operator, o.threshold)
                    c = conds[i]
                    v = values[c.quantity]
                    now = _balanced(_rule_holds(remaining, conds), positive)
                    t, score = best_split(
                        v[positive & others],
                        v[~positive & others],
                        c.operator,
                        prefer=c.threshold,
                        pos_total=n_pos,
                        neg_total=n_neg,
                    )
                    if np.isfinite(score) and score > now + 1e-12:
                        conds[i] = Condition(c.quantity, c.operator, t)
                        moved = True
                if not moved:
                    break
        for orig, new in zip(rule.conditions, conds, strict=True):
            tied.setdefault((orig.quantity, orig.threshold), new.threshold)
        hit = _rule_holds(remaining, conds)
        accuracy = _balanced(hit, positive)
        for i, (orig, new) in enumerate(zip(rule.conditions, conds, strict=True)):
            report.append(
                {
                    "class": rule.class_name,
                    "quantity": orig.quantity,
                    "operator": orig.operator,
                    "template": orig.threshold,
                    "fitted": new.threshold,
                    "n_class": n_pos,
                    "n_others": n_neg,
                    "accuracy": accuracy,
                    "note": notes[i],
                }
            )
        rules.append(Rule(rule.class_name, rule.class_value, tuple(conds)))
        # later rules see only what this one leaves, as in classification
        remaining = remaining[~hit].reset_index(drop=True)
    counts = samples["class"].value_counts().sort_index()
    source = (
        f"Thresholds fitted to {len(samples)} labelled sample pixels ("
        + ", ".join(f"{k} {v}" for k, v in counts.items())
        + f") by updm_dask.query.fit_rules, keeping the structure of rule table {base.name!r}: "
        "each threshold at the middle of the gap that best separates the rule's class from "
        "the classes below it (balanced accuracy), rules fitted in priority order."
        + (f"\nTemplate source: {base.source.strip()}" if base.source else "")
    )
    table = RuleTable(
        name=name or f"{base.name}-fitted",
        sensor=sensor or base.sensor,
        rules=tuple(rules),
        source=source,
        classes=base.classes,
    )
    if test is None or test.empty:
        return RuleFit(table, pd.DataFrame(report))
    heldout, overall = _check(table, test)
    return RuleFit(table, pd.DataFrame(report), heldout, overall, len(test))


def _heldout_features(samples: pd.DataFrame, share: float, seed: int) -> set[int]:
    """Feature ids to hold out: ``floor(share * n)`` of each class's n features (< n)."""
    rng = np.random.default_rng(seed)
    out: set[int] = set()
    for _, group in samples.groupby("class", sort=True):
        features = np.unique(group["feature"].to_numpy())
        k = min(math.floor(share * features.size), features.size - 1)
        if k > 0:
            out.update(int(f) for f in rng.choice(features, size=k, replace=False))
    return out


def _check(table: RuleTable, test: pd.DataFrame) -> tuple[pd.DataFrame, float]:
    """Per-class user's / producer's accuracy of ``table`` on held-out samples."""
    coefficients = np.stack(
        [test[n].fillna(0.0).to_numpy(dtype=np.float64) for n in ("uCw", "uCv", "uCs", "uC4")],
        axis=-1,
    )
    names = {code: name for name, code in table.classes.items()}
    predicted = np.array([names.get(int(c), "?") for c in classify_array(coefficients, table)])
    truth = test["class"].astype(str).to_numpy()
    rows = []
    for name in sorted(set(truth)):
        as_it = predicted == name
        really = truth == name
        users = (as_it & really).sum() / as_it.sum() if as_it.any() else math.nan
        producers = (as_it & really).sum() / really.sum()
        rows.append(
            {
                "class": name,
                "n": int(really.sum()),
                "users_accuracy": float(users),
                "producers_accuracy": float(producers),
            }
        )
    return pd.DataFrame(rows), float((predicted == truth).mean())
