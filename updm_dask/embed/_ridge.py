"""Multi-output ridge regression with the penalty chosen by grouped (spatially blocked)
cross-validation. Numpy only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import QueryError

__all__ = ["RidgeFit", "block_groups", "ridge_cv", "ridge_fit"]


@dataclass(frozen=True, eq=False)
class RidgeFit:
    """``y = (x - x_mean) @ weights + intercept``; ``alpha`` the penalty on the weights."""

    weights: np.ndarray
    intercept: np.ndarray
    x_mean: np.ndarray
    alpha: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predictions for rows of ``x``."""
        return (np.asarray(x, dtype=np.float64) - self.x_mean) @ self.weights + self.intercept


def _eig(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eigen-decomposition of the Gram matrix of centred ``x`` and ``V' x' y``.

    One decomposition of the p x p matrix serves every penalty (much cheaper than an SVD
    of the n x p matrix when n >> p).
    """
    lam, v = np.linalg.eigh(x.T @ x)
    lam = np.maximum(lam, 0.0)  # rounding can make a null direction slightly negative
    return lam, v, v.T @ (x.T @ y)


def _shrink(lam: np.ndarray, alpha: float) -> np.ndarray:
    den = lam + alpha
    return np.divide(1.0, den, out=np.zeros_like(den), where=den > 0)


def ridge_fit(x: np.ndarray, y: np.ndarray, alpha: float) -> RidgeFit:
    """Ridge regression of ``y`` (n, k) on ``x`` (n, p) with an unpenalised intercept."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise QueryError(
            f"ridge: expected x (n, p) and y (n, k) with n > 0, got {x.shape}, {y.shape}"
        )
    xm, ym = x.mean(axis=0), y.mean(axis=0)
    lam, v, vty = _eig(x - xm, y - ym)
    w = v @ (_shrink(lam, float(alpha))[:, None] * vty)
    return RidgeFit(w, ym, xm, float(alpha))


def default_alphas(x: np.ndarray) -> np.ndarray:
    """Penalties spanning 1e-6 .. 1e3 times the mean eigenvalue of the centred x'x."""
    xc = np.asarray(x, dtype=np.float64) - np.mean(x, axis=0)
    scale = float((xc**2).sum()) / max(xc.shape[1], 1)
    return scale * np.logspace(-6, 3, 19) if scale > 0 else np.logspace(-6, 3, 19)


def ridge_cv(
    x: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    alphas: np.ndarray | None = None,
    n_folds: int = 5,
) -> tuple[RidgeFit, dict[str, list[float]]]:
    """Ridge with the penalty minimising the mean squared error of grouped K-fold CV.

    Parameters
    ----------
    x, y : numpy.ndarray
        (n, p) and (n, k).
    groups : numpy.ndarray of int
        (n,) spatial block of each row; every block lies wholly in one fold, so the
        validation rows are spatially separated from the rows fitted.
    alphas : numpy.ndarray, optional
        Penalties to try (default :func:`default_alphas`).
    n_folds : int
        Folds (at most the number of blocks).

    Returns
    -------
    (RidgeFit, dict)
        The fit on all rows with the chosen penalty; ``{"alphas", "cv_mse"}``.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    groups = np.asarray(groups)
    if groups.shape != (x.shape[0],):
        raise QueryError(f"ridge_cv: groups must have shape ({x.shape[0]},), got {groups.shape}")
    alphas = default_alphas(x) if alphas is None else np.asarray(alphas, dtype=np.float64)
    if alphas.size == 0 or (alphas < 0).any():
        raise QueryError("ridge_cv: alphas must be a non-empty list of penalties >= 0")
    blocks = np.unique(groups)
    k = min(int(n_folds), blocks.size)
    if k < 2:
        fit = ridge_fit(x, y, float(alphas[len(alphas) // 2]))
        return fit, {"alphas": alphas.tolist(), "cv_mse": [float("nan")] * alphas.size}
    # blocks go to folds in a fixed pseudo-random order, so neighbouring blocks mix
    order = np.random.default_rng(12345).permutation(blocks.size)
    fold_of_block = dict(zip(blocks[order].tolist(), np.arange(blocks.size) % k, strict=True))
    fold = np.array([fold_of_block[g] for g in groups.tolist()])
    sse = np.zeros(alphas.size)
    for f in range(k):
        tr, va = fold != f, fold == f
        xm, ym = x[tr].mean(axis=0), y[tr].mean(axis=0)
        lam, v, vty = _eig(x[tr] - xm, y[tr] - ym)
        xv = (x[va] - xm) @ v
        resid0 = ym - y[va]
        for i, a in enumerate(alphas):
            sse[i] += float(((xv @ (_shrink(lam, a)[:, None] * vty) + resid0) ** 2).sum())
    mse = sse / y.size
    best = int(np.argmin(mse))
    return ridge_fit(x, y, float(alphas[best])), {
        "alphas": alphas.tolist(),
        "cv_mse": mse.tolist(),
    }


def block_groups(u: np.ndarray, v: np.ndarray, block: float) -> np.ndarray:
    """Block id of points with planar coordinates ``u``, ``v`` on a grid of ``block`` units."""
    if not block > 0:
        raise QueryError(f"block size must be positive, got {block!r}")
    iu = np.floor((np.asarray(u) - np.min(u)) / block).astype(np.int64)
    iv = np.floor((np.asarray(v) - np.min(v)) / block).astype(np.int64)
    return iu * (int(iv.max(initial=0)) + 1) + iv
