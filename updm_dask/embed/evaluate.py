"""Downstream evaluation of the embedding, the way location embeddings are judged.

Task: predict what a place is in a LATER period (the class fractions of water, vegetation
and urban among its clear observations, its mean MVIUPD and its mean vegetation share
uCv / (uCw + uCv + uCs), over ``target_period``) from

- ``lon/lat (linear)``: longitude and latitude alone, linear;
- ``lon/lat (SH L=..)``: the spherical-harmonics basis of the position (the encoder's
  features), i.e. a flexible function of position alone;
- ``encoder (SH -> embedding)``: the location encoder fitted on the training pixels (its
  penalty tuned by CV on the split's blocks), evaluated at each pixel without the local
  residual correction (which would hand the training pixels their own embeddings): a
  function of position alone, through the embedding;
- ``embedding``: the pixel's observed embedding of the EARLIER ``feature_period``;
- ``embedding + SH``: both, concatenated (what a place was, and where it is).

Every model is a ridge regression whose penalty is chosen by spatially blocked CV inside
the training set. The split is spatial: the grid is cut into square blocks, a seeded share
of the blocks is the test set, and test pixels closer than ``buffer_px`` pixels to any
training pixel are dropped, so no test pixel has a training pixel as a near neighbour.
Scores on the test pixels: R^2 per target (1 - SSE / SST about the test mean) and the
accuracy of the dominant class (argmax of the predicted fractions vs the observed one).
The standardisation statistics of the embedding are computed from the training pixels only.

``updm embed CUBE --evaluate`` (or ``--synthetic DIR`` for the synthetic test cube) prints
the table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from ..cube import CubeLike, resolve_cube
from ..errors import QueryError
from ..geo.points import grid_lonlat
from ._kernel import impute_missing, standardise
from ._period import Period
from ._ridge import ridge_cv
from ._stats import embedding_statistics
from .encoder import fit_location_encoder
from .layer import LAYER, LAYER_COUNT, embedding_layer

__all__ = ["TARGETS", "EvaluationRow", "EvaluationTable", "evaluate_embedding"]

#: Targets of the downstream task (features of the target period's single epoch).
TARGETS: tuple[str, ...] = (
    "frac_water",
    "frac_vegetation",
    "frac_urban",
    "mviupd_mean",
    "share_vegetation",
)
_FRACS = ("frac_water", "frac_vegetation", "frac_urban")


@dataclass(frozen=True)
class EvaluationRow:
    """Scores of one feature set on the test pixels."""

    features: str
    n_features: int
    r2: dict[str, float]
    accuracy: float
    alpha: float


@dataclass(frozen=True, eq=False)
class EvaluationTable:
    """The evaluation: rows per feature set, plus what was evaluated and how."""

    rows: list[EvaluationRow]
    cube: str
    feature_period: str
    target_period: str
    n_train: int
    n_test: int
    block_px: int
    buffer_px: int
    degree: int
    notes: dict[str, Any] = field(default_factory=dict)

    def row(self, features: str) -> EvaluationRow:
        """The row whose feature-set name starts with ``features``."""
        for r in self.rows:
            if r.features.startswith(features):
                return r
        raise QueryError(f"no evaluation row {features!r}; rows: {[r.features for r in self.rows]}")

    def to_markdown(self) -> str:
        """A Markdown table (feature set x targets) with a one-line caption."""
        head = (
            f"Predicting {self.target_period} from {self.feature_period} features; "
            f"spatially blocked split ({self.block_px}-px blocks, {self.buffer_px}-px buffer), "
            f"{self.n_train} train / {self.n_test} test pixels. R^2 per target, accuracy of "
            "the dominant class."
        )
        cols = ["features", "n", *[f"R2 {t}" for t in TARGETS], "class accuracy"]
        lines = [head, "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for r in self.rows:
            cells = [r.features, str(r.n_features)]
            cells += [f"{r.r2[t]:.3f}" for t in TARGETS]
            cells.append(f"{r.accuracy:.3f}")
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def format(self) -> str:
        """The table under a Markdown heading naming the cube."""
        return f"### {self.cube}\n\n{self.to_markdown()}\n"


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    # NaN when the target does not vary over the test pixels (R^2 is undefined)
    sst = float(((y - y.mean()) ** 2).sum())
    sse = float(((y - pred) ** 2).sum())
    return 1.0 - sse / sst if sst > 0 else float("nan")


def spatial_split(
    shape: tuple[int, int],
    block_px: int,
    test_fraction: float,
    buffer_px: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train mask, test mask and block id of every pixel of a grid.

    Blocks of ``block_px`` pixels; ``round(test_fraction * blocks)`` (at least 1) seeded
    random blocks are test; test pixels within ``buffer_px`` pixels of a train pixel are
    dropped.
    """
    ny, nx = shape
    if block_px < 1 or not 0 < test_fraction < 1 or buffer_px < 0:
        raise QueryError(
            f"spatial split: need block_px >= 1, 0 < test_fraction < 1, buffer_px >= 0; got "
            f"{block_px}, {test_fraction}, {buffer_px}"
        )
    nbx = -(-nx // block_px)
    bid = (np.arange(ny)[:, None] // block_px) * nbx + (np.arange(nx)[None, :] // block_px)
    blocks = np.unique(bid)
    n_test = min(max(1, round(test_fraction * blocks.size)), blocks.size - 1)
    if n_test < 1:
        raise QueryError(f"spatial split: only {blocks.size} block(s); use smaller blocks")
    test_blocks = np.random.default_rng(seed).choice(blocks, n_test, replace=False)
    is_test = np.isin(bid, test_blocks)
    train = ~is_test
    dist = ndimage.distance_transform_edt(~train)  # pixels to the nearest train pixel
    test = is_test & (dist > buffer_px)
    return train, test, bid


def evaluate_embedding(
    cube: CubeLike,
    *,
    feature_period: Any = "1972-2009",
    target_period: Any = "2010-2024",
    epoch_years: int | None = 10,
    radius: float = 0.0,
    block_px: int | None = None,
    buffer_px: int | None = None,
    test_fraction: float = 0.3,
    degree: int = 16,
    step: int = 1,
    seed: int = 0,
) -> EvaluationTable:
    """Score the embedding against position-only features on a spatially separated split.

    Parameters
    ----------
    cube : Cube or location
    feature_period, target_period
        Embedding period (epochs of ``epoch_years``) and the later period to predict
        (one epoch).
    radius : float
        Neighbourhood of the features (metres).
    block_px, buffer_px : int, optional
        Split blocks (default: an eighth of the larger grid side, at least 4) and the gap
        kept between test and train pixels (default a quarter block).
    test_fraction : float
        Share of blocks held out.
    degree : int
        Legendre degree of the position-only SH features and of the encoder.
    step : int
        Use every ``step``-th pixel in both directions (speed).
    seed : int
        Seed of the test-block draw.

    Returns
    -------
    EvaluationTable
    """
    c = resolve_cube(cube)
    fper = Period.parse(feature_period, epoch_years)
    tper = Period.parse(target_period, None)
    if tper.start <= fper.end:
        raise QueryError(f"target period {tper} must start after the feature period {fper} ends")
    ny, nx = c.grid.shape
    block_px = block_px or max(4, max(ny, nx) // 8)
    buffer_px = block_px // 4 if buffer_px is None else int(buffer_px)
    train, test, bid = spatial_split((ny, nx), block_px, test_fraction, buffer_px, seed)

    feat = embedding_layer(c, fper, radius=radius).compute()
    targ = embedding_layer(c, tper).compute()
    raw_f = np.asarray(feat[LAYER].values)
    tnames = list(targ["dimension"].values)
    label = tper.epoch_labels[0]
    y_all = np.stack([targ[LAYER].values[tnames.index(f"{label}.{t}")] for t in TARGETS])
    # MVIUPD is undefined over pixels darker than its limit (dark water), so mviupd_mean
    # can be NaN where the class fractions are not: a pixel counts where its fractions are
    # defined, and every target is fitted and scored where it is defined.
    fracs = [TARGETS.index(t) for t in _FRACS]
    ok = (
        (np.asarray(feat[LAYER_COUNT].values) > 0)
        & (np.asarray(targ[LAYER_COUNT].values) > 0)
        & np.isfinite(y_all[fracs]).all(axis=0)
    )
    sub = np.zeros((ny, nx), dtype=bool)
    sub[::step, ::step] = True
    tr = train & ok & sub
    te = test & ok & sub
    if tr.sum() < 10 or te.sum() < 10:
        raise QueryError(
            f"evaluation of {c.location}: too few pixels with data in both periods "
            f"({int(tr.sum())} train, {int(te.sum())} test)"
        )
    stats = embedding_statistics(raw_f[:, tr], fper, source=f"{c.location} training pixels")
    z = impute_missing(standardise(raw_f, stats.mean, stats.std))
    gx, gy = np.meshgrid(c.grid.x, c.grid.y)
    lon, lat = grid_lonlat(c.grid, gx, gy)

    y_tr, y_te = y_all[:, tr].T, y_all[:, te].T
    groups = bid[tr]
    enc = fit_location_encoder(
        lon[tr],
        lat[tr],
        z[:, tr].T,
        names=stats.names,
        degree=degree,
        stats=stats,
        cv_block_m=block_px * c.grid.resolution,
    )
    ll = np.stack([lon, lat], axis=-1)
    ll = (ll - ll[tr].mean(axis=0)) / np.where(ll[tr].std(axis=0) > 0, ll[tr].std(axis=0), 1)
    b_tr, b_te = enc.basis(lon[tr], lat[tr]), enc.basis(lon[te], lat[te])
    # one scale for the whole SH block, so that it weighs like the unit-variance embedding
    # when both are concatenated under one ridge penalty
    b_scale = float(np.sqrt(((b_tr - b_tr.mean(axis=0)) ** 2).mean(axis=0).mean())) or 1.0
    z_tr, z_te = z[:, tr].T, z[:, te].T
    feature_sets = {
        "lon/lat (linear)": (ll[tr], ll[te]),
        f"lon/lat (SH L={degree})": (b_tr, b_te),
        "encoder (SH -> embedding)": (
            enc.encode(lon[tr], lat[tr], correction=False).vectors,
            enc.encode(lon[te], lat[te], correction=False).vectors,
        ),
        f"embedding {fper}": (z_tr, z_te),
        f"embedding {fper} + SH L={degree}": (
            np.hstack([z_tr, b_tr / b_scale]),
            np.hstack([z_te, b_te / b_scale]),
        ),
    }
    true_cls = np.argmax(y_te[:, :3], axis=1)
    defined_tr, defined_te = np.isfinite(y_tr), np.isfinite(y_te)
    everywhere = defined_tr.all(axis=0)
    rows = []
    for name, (x_tr, x_te) in feature_sets.items():
        fit, _ = ridge_cv(x_tr, y_tr[:, everywhere], groups)
        pred = np.full(y_te.shape, np.nan)
        pred[:, everywhere] = fit.predict(x_te)
        for i in np.flatnonzero(~everywhere):  # a target undefined at some training pixels
            d = defined_tr[:, i]
            part, _ = ridge_cv(x_tr[d], y_tr[d, i : i + 1], groups[d])
            pred[:, i] = part.predict(x_te)[:, 0]
        r2 = {
            t: _r2(y_te[defined_te[:, i], i], pred[defined_te[:, i], i])
            if defined_te[:, i].any()
            else float("nan")
            for i, t in enumerate(TARGETS)
        }
        acc = float((np.argmax(pred[:, :3], axis=1) == true_cls).mean())
        rows.append(EvaluationRow(name, int(x_tr.shape[1]), r2, acc, fit.alpha))
    return EvaluationTable(
        rows,
        c.location,
        str(fper),
        str(tper),
        int(tr.sum()),
        int(te.sum()),
        int(block_px),
        int(buffer_px),
        int(degree),
        {"seed": seed, "test_fraction": test_fraction, "radius_m": radius, "step": step},
    )
