"""Numpy kernels of the location encoder: real spherical harmonics, the frame they are
evaluated in, and the tapered interpolation of training residuals.

No dask, no xarray, no I/O; :mod:`.encoder` documents the method they implement.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import QueryError

__all__ = [
    "FRAMES",
    "angles",
    "frame_coords",
    "real_sph_harm",
    "residual_correction",
    "taper",
]

#: Frames the harmonics are evaluated in (see :mod:`.encoder`).
FRAMES = ("cap", "global")
# The distance (m) that keeps an exact hit on a training point finite while letting it
# dominate the interpolation.
_EPS_M = 1e-3


def taper(u: np.ndarray) -> np.ndarray:
    """``(1 - u**2)**2`` for ``u < 1``, else 0: smooth, 1 at 0, 0 from 1 on."""
    return np.where(u < 1.0, (1.0 - np.minimum(u, 1.0) ** 2) ** 2, 0.0)


def residual_correction(
    dist: np.ndarray, idx: np.ndarray, residuals: np.ndarray, radius: float
) -> np.ndarray:
    """Tapered inverse-distance interpolation of training residuals (see :mod:`.encoder`).

    Axis contract: ``dist``, ``idx`` (n, k) nearest training points (metres, indices),
    ``residuals`` (n_train, dims) -> (n, dims).
    """
    if radius <= 0:
        return np.zeros((dist.shape[0], residuals.shape[1]))
    weight = taper(dist / radius)
    w = weight / (dist**2 + _EPS_M**2)
    total = w.sum(axis=1)
    safe = np.clip(idx, 0, residuals.shape[0] - 1)
    r = np.einsum("nk,nkd->nd", w, residuals[safe].astype(np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(total[:, None] > 0, r / np.where(total > 0, total, 1.0)[:, None], 0.0)
    return mean * weight[:, :1]


def real_sph_harm(theta: Any, phi: Any, degree: int) -> np.ndarray:
    """Real, orthonormal spherical harmonics up to ``degree`` at points on the sphere.

    Axis contract: ``theta``, ``phi`` (n,) radians (colatitude in [0, pi], azimuth) ->
    ``(n, (degree + 1)**2)`` float64, columns ordered by degree ``l`` then order
    ``m = -l .. l``: ``N_lm P_l^|m|(cos theta)`` times 1 (``m = 0``),
    ``sqrt(2) cos(m phi)`` (``m > 0``) or ``sqrt(2) sin(|m| phi)`` (``m < 0``), with
    ``N_lm = sqrt((2l + 1) / (4 pi) (l - m)! / (l + m)!)`` and ``P`` without the
    Condon-Shortley phase. In terms of scipy's complex ``Y_l^m``
    (:func:`scipy.special.sph_harm_y`, which includes that phase): ``Y_l0``,
    ``sqrt(2) (-1)^m Re Y_l^m`` and ``sqrt(2) (-1)^m Im Y_l^|m|``. Their integral products
    over the unit sphere are the identity.

    The normalised Legendre functions come from the standard stable recurrences
    ``Q_mm = sqrt((2m + 1) / 2m) sin(theta) Q_(m-1)(m-1)``,
    ``Q_(m+1)m = sqrt(2m + 3) cos(theta) Q_mm`` and
    ``Q_lm = a_lm (cos(theta) Q_(l-1)m - b_lm Q_(l-2)m)`` with
    ``a_lm = sqrt((4l**2 - 1) / (l**2 - m**2))``,
    ``b_lm = sqrt(((l - 1)**2 - m**2) / (4 (l - 1)**2 - 1))``: one vector operation per
    (l, m), much faster than evaluating each complex harmonic separately.
    """
    if isinstance(degree, bool) or not isinstance(degree, int | np.integer) or degree < 0:
        raise QueryError(f"degree: expected an integer >= 0, got {degree!r}")
    big_l = int(degree)
    th = np.clip(np.asarray(theta, dtype=np.float64).ravel(), 0.0, np.pi)
    ph = np.asarray(phi, dtype=np.float64).ravel()
    if th.shape != ph.shape:
        raise QueryError(f"real_sph_harm: theta {th.shape} and phi {ph.shape} differ")
    x, s = np.cos(th), np.sin(th)
    out = np.empty((th.size, (big_l + 1) ** 2), dtype=np.float64)
    qmm = np.full(th.size, np.sqrt(1.0 / (4.0 * np.pi)))
    root2 = np.sqrt(2.0)
    for m in range(big_l + 1):
        if m > 0:
            qmm = np.sqrt((2.0 * m + 1.0) / (2.0 * m)) * s * qmm
        cos_m, sin_m = root2 * np.cos(m * ph), root2 * np.sin(m * ph)

        def put(
            deg: int, q: np.ndarray, m: int = m, c: np.ndarray = cos_m, sn: np.ndarray = sin_m
        ) -> None:
            base = deg * deg + deg  # column of (deg, 0)
            if m == 0:
                out[:, base] = q
            else:
                out[:, base + m] = q * c
                out[:, base - m] = q * sn

        put(m, qmm)
        if m == big_l:
            break
        q2, q1 = qmm, np.sqrt(2.0 * m + 3.0) * x * qmm
        put(m + 1, q1)
        for deg in range(m + 2, big_l + 1):
            a = np.sqrt((4.0 * deg * deg - 1.0) / (deg * deg - m * m))
            b = np.sqrt(((deg - 1.0) ** 2 - m * m) / (4.0 * (deg - 1.0) ** 2 - 1.0))
            q2, q1 = q1, a * (x * q1 - b * q2)
            put(deg, q1)
    return out


def angles(xyz: np.ndarray, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Angular distance from ``centre`` and bearing (clockwise from north) of unit vectors."""
    dot = xyz @ centre
    cross = np.cross(centre, xyz)
    gamma = np.arctan2(np.linalg.norm(cross, axis=-1), dot)  # accurate for tiny angles
    # local east and north at the centre
    east = np.cross([0.0, 0.0, 1.0], centre)
    if np.linalg.norm(east) < 1e-12:  # centre at a pole: any east will do
        east = np.array([0.0, 1.0, 0.0])
    east = east / np.linalg.norm(east)
    north = np.cross(centre, east)
    bearing = np.arctan2(xyz @ east, xyz @ north)
    return gamma, bearing


def frame_coords(
    xyz: np.ndarray, frame: str, centre: np.ndarray, cap_radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Colatitude and azimuth (radians) at which the basis is evaluated (see :mod:`.encoder`)."""
    if frame == "global":
        theta = np.arccos(np.clip(xyz[:, 2], -1.0, 1.0))
        phi = np.arctan2(xyz[:, 1], xyz[:, 0])
        return theta, phi
    gamma, bearing = angles(xyz, centre)
    return np.minimum(gamma * (np.pi / 2.0) / cap_radius, np.pi), bearing
