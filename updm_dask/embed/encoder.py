"""A location encoder: longitude/latitude -> embedding, anywhere, with a distance flag.

The encoder has two parts:

1. A smooth field: a real spherical-harmonics basis of the position (as SatCLIP's location
   encoder uses; Legendre degree ``L`` a parameter, ``(L + 1)**2`` functions) followed by
   a ridge-regularised linear map to the standardised embedding, fitted from cube pixels
   with numpy/scipy. The penalty is chosen by spatially blocked cross-validation.
2. A local correction: the training residuals (embedding minus smooth field) interpolated
   from the ``k`` (8) nearest training points, with weights
   ``w_i = taper(d_i / R) / (d_i**2 + (1 mm)**2)``, ``taper(u) = (1 - u**2)**2`` for
   ``u < 1`` (else 0), and multiplied by ``taper(d_1 / R)`` of the nearest distance ``d_1``;
   ``R = far_threshold_m``. At a training point the correction is its residual, so the
   encoder reproduces the training embeddings; it fades continuously to zero at ``R``
   from the data, where only the smooth field remains. ``correction=False`` (or fitting
   with ``residuals=False``) gives the smooth field alone.

Frames
------
``frame="global"`` evaluates the harmonics at colatitude/longitude, exactly as a global
encoder does. A degree-L basis resolves features of about ``20 000 km / L``: fine for
continents, useless inside one cube (a 6 km cube would need L in the thousands).

``frame="cap"`` (the default) evaluates them in a frame fitted to the training points:
the sphere is rotated so that the centre of the training points is the north pole, and
the angular distance ``gamma`` from it is stretched so that the cap holding the training
points (radius ``R_cap``, the largest ``gamma`` plus 5 %) becomes the northern hemisphere:
``theta = gamma * (pi / 2) / R_cap`` (clipped at ``pi``), ``phi`` = the bearing from the
centre. Points beyond the cap map into the southern hemisphere, and from ``2 R_cap`` on to
the south pole. A degree-L basis then resolves about ``2 R_cap / L`` on the ground.

Far from training data
----------------------
Every encoded point gets its great-circle distance to the nearest training point (a
:class:`scipy.spatial.cKDTree` on unit vectors; chord converted to arc on a sphere of
radius 6 371 008.8 m) and ``far = distance > far_threshold_m``, where
``far_threshold_m = far_factor * spacing`` and ``spacing`` is the median distance from a
training point to its nearest other training point (``far_factor`` default 3).

Degrading gracefully: within ``far_threshold_m`` of the data the vector is the smooth field
plus the local correction (exact at training points). Beyond it the correction is zero and
the smooth field is pulled towards the training mean ``m`` (the intercept):
``v = m + taper((d - far_threshold_m) / R_fade) * (field - m)`` with ``R_fade`` the radius
of the training cap in metres, so a point a training-area radius beyond the threshold, or
farther, gets the mean embedding of the training area: the uninformed answer, flagged far.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from ..cube import CubeLike, resolve_cube
from ..errors import QueryError
from ..geo.points import check_lonlat, grid_lonlat
from ._format import csv_number, csv_text
from ._geo import EARTH_RADIUS_M, chord_to_m, lonlat_to_unit
from ._harmonics import FRAMES, angles, frame_coords, real_sph_harm, residual_correction, taper
from ._kernel import impute_missing
from ._period import DEFAULT_PERIOD, EMBEDDING_VERSION, Period
from ._ridge import block_groups, ridge_cv
from ._stats import EmbeddingStats
from .layer import cube_vectors

__all__ = [
    "ENCODER_FORMAT",
    "EncodedLocations",
    "LocationEncoder",
    "fit_encoder",
    "fit_location_encoder",
    "load_encoder",
]

#: Marker and version of encoder files.
ENCODER_FORMAT = "updm-location-encoder/1"
_CAP_MARGIN = 1.05
# Training points the local correction interpolates from.
_NEIGHBOURS = 8


@dataclass(frozen=True, eq=False)
class EncodedLocations:
    """Encoder output: ``vectors`` (n, dims), ``distance_m`` and ``far`` per point.

    ``lon``/``lat`` are the points encoded (degrees), ``far_threshold_m`` the encoder's
    distance beyond which a point is far from its training data.
    """

    vectors: np.ndarray
    distance_m: np.ndarray
    far: np.ndarray
    names: tuple[str, ...]
    lon: np.ndarray
    lat: np.ndarray
    far_threshold_m: float

    def to_csv(self, ids: Sequence[str] | None = None) -> str:
        """CSV text, one row per point: ``id, lon, lat, distance_m, far`` and the vector.

        ``ids`` default to the point numbers from 1.
        """
        ids = [str(i + 1) for i in range(len(self.lon))] if ids is None else list(ids)
        header = ["id", "lon", "lat", "distance_m", "far", *self.names]
        rows = [
            [i, float(a), float(b), f"{d:.1f}", bool(f), *[csv_number(float(v)) for v in vec]]
            for i, a, b, d, f, vec in zip(
                ids, self.lon, self.lat, self.distance_m, self.far, self.vectors, strict=True
            )
        ]
        return csv_text(header, rows)

    def to_dict(self, i: int = 0) -> dict[str, Any]:
        """JSON-able record of point ``i``."""
        return {
            "lon": float(self.lon[i]),
            "lat": float(self.lat[i]),
            "distance_to_training_m": float(self.distance_m[i]),
            "far_from_training_data": bool(self.far[i]),
            "far_threshold_m": self.far_threshold_m,
            "names": list(self.names),
            "vector": [float(v) for v in self.vectors[i]],
        }

    def format(self, i: int = 0) -> str:
        """Plain-text report of point ``i``: the far flag, distances, the vector."""
        flag = "FAR from training data" if self.far[i] else "near training data"
        lines = [
            f"encoded ({float(self.lon[i])}, {float(self.lat[i])}): {flag} (nearest training "
            f"point {float(self.distance_m[i]):.0f} m, threshold {self.far_threshold_m:.0f} m)"
        ]
        w = max(len(n) for n in self.names)
        lines += [
            f"  {n:<{w}}  {v:>8.3f}" for n, v in zip(self.names, self.vectors[i], strict=True)
        ]
        return "\n".join(lines)


@dataclass(frozen=True, eq=False)
class LocationEncoder:
    """A fitted location encoder (see the module docstring). Build with :func:`fit_encoder`
    or :func:`fit_location_encoder`; save with :meth:`save`, load with :func:`load_encoder`.
    """

    degree: int
    frame: str
    centre: np.ndarray
    cap_radius: float
    weights: np.ndarray
    intercept: np.ndarray
    basis_mean: np.ndarray
    alpha: float
    names: tuple[str, ...]
    train_xyz: np.ndarray
    spacing_m: float
    far_threshold_m: float
    stats: EmbeddingStats | None = None
    cv: dict[str, list[float]] = field(default_factory=dict)
    residuals: np.ndarray | None = None
    _tree: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tree", cKDTree(self.train_xyz))

    # -- basis -------------------------------------------------------------------------

    @property
    def fade_m(self) -> float:
        """Distance over which far vectors revert to the training mean (the cap radius)."""
        return max(self.cap_radius * EARTH_RADIUS_M, 1e-3)

    def _sphere(self, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return frame_coords(xyz, self.frame, self.centre, self.cap_radius)

    def basis(self, lon: Any, lat: Any) -> np.ndarray:
        """The spherical-harmonics features ``(n, (degree + 1)**2)`` of points."""
        xyz = lonlat_to_unit(np.ravel(lon), np.ravel(lat)).reshape(-1, 3)
        return real_sph_harm(*self._sphere(xyz), self.degree)

    # -- use ---------------------------------------------------------------------------

    def encode(self, lon: Any, lat: Any, *, correction: bool = True) -> EncodedLocations:
        """Embedding, distance to the nearest training point and far flag of each point.

        Parameters
        ----------
        lon, lat : float or array
            Degrees (WGS84).
        correction : bool
            Add the local residual correction (when the encoder has residuals).
        """
        lo, la = check_lonlat(np.atleast_1d(lon), np.atleast_1d(lat))
        xyz = lonlat_to_unit(lo.ravel(), la.ravel()).reshape(-1, 3)
        b = real_sph_harm(*self._sphere(xyz), self.degree)
        vec = (b - self.basis_mean) @ self.weights + self.intercept
        k = min(_NEIGHBOURS, self.train_xyz.shape[0])
        chord, idx = self._tree.query(xyz, k=k)
        chord, idx = chord.reshape(len(xyz), k), idx.reshape(len(xyz), k)
        dist = chord_to_m(chord)
        # beyond the "near" range the field reverts to the training mean over a distance
        # equal to the training area's radius
        fade = taper(np.maximum(dist[:, 0] - self.far_threshold_m, 0.0) / self.fade_m)
        vec = self.intercept + fade[:, None] * (vec - self.intercept)
        if correction and self.residuals is not None:
            vec = vec + residual_correction(dist, idx, self.residuals, self.far_threshold_m)
        return EncodedLocations(
            vec.astype(np.float32),
            dist[:, 0],
            dist[:, 0] > self.far_threshold_m,
            self.names,
            lo.ravel(),
            la.ravel(),
            self.far_threshold_m,
        )

    def __call__(self, lon: Any, lat: Any) -> EncodedLocations:
        return self.encode(lon, lat)

    def format(self) -> str:
        """One line: what the encoder is and what it was fitted to."""
        return (
            f"location encoder (degree {self.degree}, {self.frame} frame, "
            f"{self.weights.shape[0]} basis functions, {self.train_xyz.shape[0]} training "
            f"points, ridge alpha {self.alpha:.3g}, far beyond {self.far_threshold_m:.0f} m)"
        )

    # -- files -------------------------------------------------------------------------

    def _meta(self) -> dict[str, Any]:
        return {
            "format": ENCODER_FORMAT,
            "embedding_version": EMBEDDING_VERSION,
            "degree": self.degree,
            "frame": self.frame,
            "cap_radius": self.cap_radius,
            "alpha": self.alpha,
            "names": list(self.names),
            "spacing_m": self.spacing_m,
            "far_threshold_m": self.far_threshold_m,
            "stats": self.stats.to_dict() if self.stats is not None else None,
            "cv": self.cv,
            "has_residuals": self.residuals is not None,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the encoder to ``path`` (a NumPy ``.npz`` file, no pickled objects)."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path,
            meta=np.array(json.dumps(self._meta())),
            centre=self.centre,
            weights=self.weights,
            intercept=self.intercept,
            basis_mean=self.basis_mean,
            train_xyz=self.train_xyz,
            residuals=(
                self.residuals.astype(np.float32)
                if self.residuals is not None
                else np.zeros((0, 0), np.float32)
            ),
        )
        return path


def load_encoder(path: str | os.PathLike) -> LocationEncoder:
    """Load an encoder written by :meth:`LocationEncoder.save`.

    Raises
    ------
    QueryError
        The file is missing, not an encoder, or of another embedding version.
    """
    p = Path(path)
    if not p.is_file():
        raise QueryError(f"encoder file {str(p)!r} does not exist")
    try:
        with np.load(p, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            arrays = {
                k: np.asarray(z[k])
                for k in ("centre", "weights", "intercept", "basis_mean", "train_xyz", "residuals")
            }
    except (OSError, ValueError, KeyError) as exc:
        raise QueryError(f"{str(p)!r} is not a location-encoder file ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != ENCODER_FORMAT:
        raise QueryError(
            f"{str(p)!r}: expected format {ENCODER_FORMAT!r}, got {meta.get('format')!r}"
            if isinstance(meta, dict)
            else f"{str(p)!r} is not a location-encoder file"
        )
    if meta.get("embedding_version") != EMBEDDING_VERSION:
        raise QueryError(
            f"{str(p)!r} encodes embedding version {meta.get('embedding_version')}, this "
            f"package makes version {EMBEDDING_VERSION}; fit the encoder again"
        )
    stats = EmbeddingStats.from_dict(meta["stats"]) if meta.get("stats") else None
    return LocationEncoder(
        degree=int(meta["degree"]),
        frame=str(meta["frame"]),
        centre=arrays["centre"],
        cap_radius=float(meta["cap_radius"]),
        weights=arrays["weights"],
        intercept=arrays["intercept"],
        basis_mean=arrays["basis_mean"],
        alpha=float(meta["alpha"]),
        names=tuple(meta["names"]),
        train_xyz=arrays["train_xyz"],
        spacing_m=float(meta["spacing_m"]),
        far_threshold_m=float(meta["far_threshold_m"]),
        stats=stats,
        cv={k: list(v) for k, v in meta.get("cv", {}).items()},
        residuals=arrays["residuals"] if meta.get("has_residuals") else None,
    )


def fit_location_encoder(
    lon: Any,
    lat: Any,
    vectors: Any,
    *,
    names: Sequence[str] | None = None,
    degree: int = 20,
    frame: str = "cap",
    alphas: Any = None,
    n_folds: int = 5,
    cv_block_m: float | None = None,
    far_factor: float = 3.0,
    residuals: bool = True,
    stats: EmbeddingStats | None = None,
) -> LocationEncoder:
    """Fit the encoder to embeddings known at points.

    Parameters
    ----------
    lon, lat : array (n,)
        Training points, degrees.
    vectors : array (n, dims)
        Their standardised embeddings; NaN is imputed as 0 (the reference mean).
    names : sequence of str, optional
        Dimension names (default ``dim0 ...``).
    degree : int
        Legendre degree L of the basis ((L + 1)**2 functions).
    frame : {"cap", "global"}
        See the module docstring.
    alphas : array, optional
        Ridge penalties to choose from (default: 1e-6 .. 1e3 times the mean eigenvalue of
        the basis' covariance).
    n_folds : int
        Folds of the spatially blocked CV.
    cv_block_m : float, optional
        Edge of the CV blocks, metres (default ``2 * far_threshold_m``). The training
        points are cut into square blocks of this size (in the azimuthal-equidistant plane
        around their centre), dealt to ``n_folds`` folds; each fold is predicted from the
        others and the penalty with the smallest mean squared error wins. A held-out block
        puts its centre ``far_threshold_m`` from the nearest fitted point, so the default
        tunes the penalty for exactly the range the encoder calls "near"; larger blocks
        tune it for extrapolation (and smooth more).
    far_factor : float
        ``far_threshold_m = far_factor * spacing`` (see the module docstring).
    residuals : bool
        Keep the training residuals for the local correction (module docstring).
    stats : EmbeddingStats, optional
        Statistics the vectors were standardised with (saved with the encoder).

    Returns
    -------
    LocationEncoder
    """
    if frame not in FRAMES:
        raise QueryError(f"frame: expected one of {FRAMES}, got {frame!r}")
    if isinstance(degree, bool) or not isinstance(degree, int | np.integer) or degree < 0:
        raise QueryError(f"degree: expected an integer >= 0, got {degree!r}")
    if not (np.isfinite(far_factor) and far_factor > 0):
        raise QueryError(f"far_factor: expected a positive number, got {far_factor!r}")
    lo, la = check_lonlat(np.ravel(lon), np.ravel(lat))
    y = np.asarray(vectors, dtype=np.float64)
    if y.ndim != 2 or y.shape[0] != lo.size:
        raise QueryError(f"vectors: expected ({lo.size}, dims) for {lo.size} points, got {y.shape}")
    if lo.size < 2:
        raise QueryError("fit_location_encoder: need at least 2 training points")
    names = tuple(names) if names is not None else tuple(f"dim{i}" for i in range(y.shape[1]))
    if len(names) != y.shape[1]:
        raise QueryError(f"names: {len(names)} given for {y.shape[1]} dimensions")
    y = impute_missing(y).astype(np.float64)
    xyz = lonlat_to_unit(lo, la)
    c = xyz.mean(axis=0)
    centre = c / np.linalg.norm(c) if np.linalg.norm(c) > 1e-9 else np.array([0.0, 0.0, 1.0])
    gamma, bearing = angles(xyz, centre)
    cap = max(float(gamma.max()) * _CAP_MARGIN, 1e-9)
    chord, _ = cKDTree(xyz).query(xyz, k=2)
    nn = chord_to_m(chord[:, 1])
    nn = nn[nn > 0]  # repeated points (overlapping cubes) say nothing about spacing
    if nn.size == 0:
        raise QueryError("fit_location_encoder: all training points coincide")
    spacing = float(np.median(nn))
    far_m = float(far_factor) * spacing
    block_m = 2.0 * far_m if cv_block_m is None else float(cv_block_m)
    if not (np.isfinite(block_m) and block_m > 0):
        raise QueryError(f"cv_block_m: expected a positive number of metres, got {cv_block_m!r}")
    b = real_sph_harm(*frame_coords(xyz, frame, centre, cap), int(degree))
    # blocks in the azimuthal-equidistant plane of the training points
    u, v = gamma * np.sin(bearing) * EARTH_RADIUS_M, gamma * np.cos(bearing) * EARTH_RADIUS_M
    groups = block_groups(u, v, block_m)
    fit, cv = ridge_cv(b, y, groups, alphas, n_folds)
    return LocationEncoder(
        degree=int(degree),
        frame=frame,
        centre=centre,
        cap_radius=cap,
        weights=fit.weights,
        intercept=fit.intercept,
        basis_mean=fit.x_mean,
        alpha=fit.alpha,
        names=names,
        train_xyz=xyz,
        spacing_m=spacing,
        far_threshold_m=far_m,
        stats=stats,
        cv=cv,
        residuals=(y - fit.predict(b)).astype(np.float32) if residuals else None,
    )


def _training_points(
    cubes: Sequence[CubeLike], per: Period, radius: float, step: int, stats: EmbeddingStats | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, EmbeddingStats]:
    """Lon, lat and standardised vectors of every ``step``-th pixel with clear data.

    All cubes are standardised with one set of statistics: ``stats``, else the first
    cube's own.
    """
    lons, lats, vecs = [], [], []
    for cube in cubes:
        c = resolve_cube(cube)
        z, count, stats = cube_vectors(c, per, radius=radius, stats=stats)
        zs = np.asarray(z[:, ::step, ::step].values)
        cs = np.asarray(count[::step, ::step].values)
        rows, cols = np.nonzero(cs > 0)
        gx, gy = c.grid.x[::step][cols], c.grid.y[::step][rows]
        lo, la = grid_lonlat(c.grid, gx, gy)
        lons.append(lo)
        lats.append(la)
        vecs.append(zs[:, rows, cols].T)
    if stats is None or not sum(v.shape[0] for v in vecs):
        raise QueryError("no pixel with a clear observation in the period to train from")
    return np.concatenate(lons), np.concatenate(lats), np.concatenate(vecs), stats


def fit_encoder(
    cubes: CubeLike | Sequence[CubeLike],
    period: Any = DEFAULT_PERIOD,
    *,
    epoch_years: int | None = 10,
    radius: float = 0.0,
    step: int = 1,
    degree: int = 20,
    frame: str = "cap",
    stats: EmbeddingStats | None = None,
    far_factor: float = 3.0,
    n_folds: int = 5,
    cv_block_m: float | None = None,
) -> LocationEncoder:
    """Fit a location encoder to the embeddings of one or several cubes' pixels.

    Every ``step``-th pixel (in both directions) with at least one clear observation in
    the period is a training point; see :func:`fit_location_encoder` for the rest.
    """
    if isinstance(cubes, str | os.PathLike) or not isinstance(cubes, Sequence):
        cubes = [cubes]
    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        raise QueryError(f"step: expected a positive integer, got {step!r}")
    per = Period.parse(period, epoch_years)
    lon, lat, vec, st = _training_points(cubes, per, radius, step, stats)
    return fit_location_encoder(
        lon,
        lat,
        vec,
        names=st.names,
        degree=degree,
        frame=frame,
        far_factor=far_factor,
        n_folds=n_folds,
        cv_block_m=cv_block_m,
        stats=st,
    )
