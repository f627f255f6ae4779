"""The real yatsm time series as UPDM layers, for tests of the annual maps.

``timeseries/yatsm-p035r032`` of the shared data: 447 Landsat-4/5 TM and Landsat-7 ETM+
surface-reflectance dates (1984-04-17 to 2013-05-27) of 5 x 5 pixels in Colorado, with
Fmask. The layers are made by the package itself: the TM band patterns of the default
pattern set, the exact NNLS decomposition, MVIUPD and the TM rule table. Read from the
archive's per-row caches (``p035r032/cache/yatsm_r{row}_n447_b8.npy.npz``: bands x dates
x 5 pixels, the same values as the GeoTIFF stacks), which is fast and needs no extraction.
"""

from __future__ import annotations

import datetime as dt
import io
import tarfile
from functools import cache
from pathlib import Path

import numpy as np

from updm_dask.pipeline import Science
from updm_dask.science.classify import classify_array, load_rules, mviupd
from updm_dask.science.decompose import nnls_decompose
from updm_dask.science.masks import CLOUD, CLOUD_SHADOW, FILL

ARCHIVE = "timeseries/yatsm-p035r032/p035r032_testdata.tar.gz"
CRS = "EPSG:32613"
#: (a, b, c, d, e, f) of the 30 m grid: bounds (336375, 4462275, 336525, 4462425).
TRANSFORM = (30.0, 0.0, 336375.0, 0.0, -30.0, 4462425.0)
SHAPE = (5, 5)
_FMASK_QUALITY = {0: 0, 1: 0, 2: CLOUD_SHADOW, 3: CLOUD, 4: CLOUD, 255: FILL}


@cache
def _read(archive: Path) -> tuple[np.ndarray, list[str]]:
    rows, ids = [], None
    with tarfile.open(archive) as tar:
        for r in range(SHAPE[0]):
            member = tar.extractfile(f"p035r032/cache/yatsm_r{r}_n447_b8.npy.npz")
            with np.load(io.BytesIO(member.read()), allow_pickle=False) as z:
                rows.append(z["Y"])
                row_ids = [s.decode() for s in z["image_IDs"].tolist()]
            assert ids is None or ids == row_ids
            ids = row_ids
    return np.stack(rows, axis=2), ids  # (band, date, row, col)


@cache
def yatsm_layers(shared_data: Path) -> dict[str, np.ndarray]:
    """The series as layers, dates ascending.

    Returns
    -------
    dict
        ``scene_id`` (str), ``sensor``, ``time`` (datetime64[us]), and (date, 5, 5) arrays
        ``uCw``, ``uCv``, ``uCs``, ``uC4``, ``mviupd`` (float32), ``land_cover`` and
        ``quality`` (uint8; Fmask cloud and snow -> CLOUD, shadow -> CLOUD_SHADOW, fill and
        reflectance outside 0-1 -> FILL with land_cover no_data).
    """
    stack, ids = _read(Path(shared_data) / ARCHIVE)
    # characters 10-16 of a pre-collection scene id: year and day of year
    dates = [dt.datetime.strptime(s[9:16], "%Y%j") for s in ids]
    order = np.argsort(np.array(dates, dtype="datetime64[us]"), kind="stable")
    stack = stack[:, order]
    sr = stack[:6].astype(np.float64)
    valid = ((sr >= 0) & (sr <= 10000)).all(axis=0)
    spectra = np.moveaxis(sr / 10000.0, 0, -1)
    # The figures of docs/annual-maps.md were measured with the supplementary pattern free in
    # sign (the default then); the series keeps that setting so the tests check those figures.
    patterns = np.asarray(Science(supplementary=True).patterns_for("TM", 5))
    coef, _ = nnls_decompose(spectra, patterns)
    classes = classify_array(coef, load_rules("TM")).astype(np.uint8)
    if coef.shape[-1] == 3:  # the default has no supplementary pattern: uC4 is NaN
        coef = np.concatenate([coef, np.full((*coef.shape[:-1], 1), np.nan)], axis=-1)
    fmask = stack[7].astype(np.int64)
    quality = np.zeros(fmask.shape, np.uint8)
    for code, bits in _FMASK_QUALITY.items():
        quality[fmask == code] = bits
    quality[~valid] = FILL
    classes[~valid] = 0
    out: dict[str, np.ndarray] = {
        "scene_id": np.array([ids[i] for i in order]),
        "sensor": np.array(["ETM+" if ids[i].startswith("LE7") else "TM" for i in order]),
        "time": np.array([dates[i] for i in order], dtype="datetime64[us]"),
        "land_cover": classes,
        "quality": quality,
        "mviupd": mviupd(
            coef[..., 0], coef[..., 1], coef[..., 2], np.nan_to_num(coef[..., 3])
        ).astype(np.float32),
    }
    for k, name in enumerate(("uCw", "uCv", "uCs", "uC4")):
        out[name] = coef[..., k].astype(np.float32)
    for a in out.values():
        a.setflags(write=False)
    return out
