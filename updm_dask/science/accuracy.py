"""Accuracy assessment and area estimation from a stratified reference sample.

Follows Olofsson, Foody, Herold, Stehman, Woodcock & Wulder (2014), "Good practices for
estimating area and assessing accuracy of land change", Remote Sensing of Environment 148,
42-57 (their eqs. 1-11): the map's classes are the strata, a reference sample is drawn in
each, and the error matrix of sample counts is turned into estimated AREA PROPORTIONS
before any accuracy or area is computed. That is what makes the estimates unbiased when the
sample is not proportional to the mapped areas (rare classes are usually over-sampled), and
why pixel counting of the map is not an area estimate.

Notation (rows are the map, columns the reference)::

    n_ij   sample units mapped as class i whose reference class is j
    n_i.   sample units in stratum i
    W_i    = A_m,i / A_tot, the mapped share of class i
    p_ij   = W_i n_ij / n_i.            estimated proportion of area       (eq. 4)
    O      = sum_j p_jj                 overall accuracy                   (eq. 1)
    U_i    = p_ii / p_i.                user's accuracy  (= n_ii / n_i.)   (eq. 2)
    P_j    = p_jj / p_.j                producer's accuracy                (eq. 3)
    A_j    = A_tot p_.j                 area of class j                    (eqs. 9-10)

with the variances of eqs. 5-7 (accuracies) and 10 (area), and 95 % confidence intervals
of +-1.96 standard errors (eq. 11). Everything here is numpy on small matrices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import QueryError

__all__ = ["AccuracyAssessment", "assess_accuracy", "error_matrix"]

#: Standard-normal quantile of a two-sided 95 % interval.
Z_95 = 1.959963984540054


def error_matrix(
    mapped: Sequence[int] | np.ndarray,
    reference: Sequence[int] | np.ndarray,
    classes: Sequence[int],
) -> np.ndarray:
    """Sample counts ``n_ij`` (rows: map class, columns: reference class).

    Parameters
    ----------
    mapped, reference : array-like of int, same length
        The map's class and the reference (true) class of each sample unit.
    classes : sequence of int
        The class codes, in the order of the rows and columns.

    Returns
    -------
    numpy.ndarray
        ``(k, k)`` int64 counts.

    Raises
    ------
    QueryError
        Lengths differ, or a sample holds a class not in ``classes``.
    """
    m = np.asarray(mapped).ravel()
    r = np.asarray(reference).ravel()
    if m.shape != r.shape:
        raise QueryError(f"samples: {m.size} map classes but {r.size} reference classes")
    codes = np.asarray(list(classes))
    index = {int(c): i for i, c in enumerate(codes)}
    for what, values in (("map", m), ("reference", r)):
        unknown = sorted(set(np.unique(values).tolist()) - set(index))
        if unknown:
            raise QueryError(
                f"samples: {what} class {unknown[0]} is not one of the classes {codes.tolist()}"
            )
    k = codes.size
    mi = np.array([index[int(v)] for v in m], dtype=np.int64)
    ri = np.array([index[int(v)] for v in r], dtype=np.int64)
    return np.bincount(mi * k + ri, minlength=k * k).reshape(k, k)


@dataclass(frozen=True)
class AccuracyAssessment:
    """Accuracies and area estimates from a stratified sample (Olofsson et al. 2014).

    Arrays are indexed like ``classes``. Standard errors are ``*_se``; 95 % confidence
    intervals are ``+- Z_95 * se`` (see :meth:`ci95`). Areas are in the unit of the mapped
    areas given (hectares from :mod:`updm_dask.query`).
    """

    classes: tuple[int, ...]
    counts: np.ndarray
    mapped_area: np.ndarray
    proportions: np.ndarray
    overall: float
    overall_se: float
    users: np.ndarray
    users_se: np.ndarray
    producers: np.ndarray
    producers_se: np.ndarray
    area: np.ndarray
    area_se: np.ndarray

    @staticmethod
    def ci95(se: np.ndarray | float) -> np.ndarray | float:
        """Half-width of the 95 % confidence interval for a standard error."""
        return Z_95 * se


def assess_accuracy(
    counts: np.ndarray | Sequence[Sequence[int]],
    mapped_area: Sequence[float] | np.ndarray,
    classes: Sequence[int] | None = None,
) -> AccuracyAssessment:
    """Stratified estimators of accuracy and area with their standard errors.

    Parameters
    ----------
    counts : (k, k) array-like of int
        Error matrix of sample counts, rows = map class (stratum), columns = reference.
    mapped_area : (k,) array-like of float
        Area the map gives each class (any unit; pixels or hectares).
    classes : sequence of int, optional
        Class codes of the rows/columns (default 0..k-1).

    Returns
    -------
    AccuracyAssessment

    Raises
    ------
    QueryError
        Shapes that do not match, negative numbers, a class mapped with a positive area but
        no sample, or a stratum with a single sample (its variance is undefined).
    """
    n = np.asarray(counts, dtype=np.float64)
    am = np.asarray(mapped_area, dtype=np.float64).ravel()
    if n.ndim != 2 or n.shape[0] != n.shape[1]:
        raise QueryError(f"counts: expected a square (k, k) matrix, got shape {n.shape}")
    k = n.shape[0]
    if am.size != k:
        raise QueryError(f"mapped_area: expected {k} areas (one per class), got {am.size}")
    if (n < 0).any() or (am < 0).any() or not np.isfinite(am).all():
        raise QueryError("counts and mapped_area must be finite and non-negative")
    codes = tuple(range(k)) if classes is None else tuple(int(c) for c in classes)
    n_i = n.sum(axis=1)
    sampled = n_i > 0
    if (~sampled & (am > 0)).any():
        bad = codes[int(np.flatnonzero(~sampled & (am > 0))[0])]
        raise QueryError(f"class {bad} has mapped area but no sample unit: it cannot be assessed")
    if (sampled & (n_i < 2)).any():
        bad = codes[int(np.flatnonzero(sampled & (n_i < 2))[0])]
        raise QueryError(f"class {bad} has one sample unit: at least two are needed per stratum")
    total = am.sum()
    if total <= 0:
        raise QueryError("mapped_area: the map has no area")
    w = am / total
    # Row shares n_ij / n_i. (0 for unsampled, unmapped strata: they contribute nothing).
    share = np.divide(n, n_i[:, None], out=np.zeros_like(n), where=sampled[:, None])
    p = w[:, None] * share  # eq. 4
    p_col = p.sum(axis=0)
    diag = np.diag(p)
    overall = float(diag.sum())

    # Binomial variance of a row share, per stratum: s(1 - s) / (n_i. - 1)  (eqs. 5-7, 10).
    denom = np.where(sampled, n_i - 1.0, 1.0)[:, None]
    vshare = share * (1.0 - share) / denom

    users = np.diag(share).copy()
    users_var = np.diag(vshare).copy()
    overall_var = float((w**2 * np.diag(vshare)).sum())  # eq. 5

    producers = np.divide(diag, p_col, out=np.full(k, np.nan), where=p_col > 0)
    # eq. 7, in pixel-count form with N_i. proportional to W_i (the totals cancel).
    producers_var = np.full(k, np.nan)
    for j in range(k):
        if p_col[j] <= 0:
            continue
        pj, uj = producers[j], users[j]
        own = w[j] ** 2 * (1 - pj) ** 2 * uj * (1 - uj) / denom[j, 0]
        others = sum(w[i] ** 2 * vshare[i, j] for i in range(k) if i != j) * pj**2
        producers_var[j] = (own + others) / p_col[j] ** 2

    area = total * p_col  # eq. 9
    area_se = total * np.sqrt((w[:, None] ** 2 * vshare).sum(axis=0))  # eq. 10
    return AccuracyAssessment(
        classes=codes,
        counts=n.astype(np.int64),
        mapped_area=am,
        proportions=p,
        overall=overall,
        overall_se=float(np.sqrt(overall_var)),
        users=users,
        users_se=np.sqrt(users_var),
        producers=producers,
        producers_se=np.sqrt(producers_var),
        area=area,
        area_se=area_se,
    )
