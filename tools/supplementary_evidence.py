"""Measure the three supplementary-pattern options on the real Landsat scenes.

Usage::

    python tools/supplementary_evidence.py SHARED_DATA [--write docs/supplementary.md]

``SHARED_DATA`` is the project's shared data folder (the one holding ``landsat/`` and
``timeseries/``). The script processes every real scene and pair in it with each option

``free``
    four patterns, ``uC4`` free in sign (``Science(supplementary=True,
    constrain_supplementary=False)``);
``nonneg``
    four patterns, ``uC4 >= 0`` (``Science(supplementary=True,
    constrain_supplementary=True)``);
``three``
    the three standard patterns only (``Science(supplementary=False)``),

prints two Markdown tables (agreement of the same pixels seen twice: by two sensors or by two
product levels; and per scene, MVIUPD range and agreement with independent indices) and,
with ``--write``, puts them into the given page between the markers
``<!-- evidence:begin -->`` and ``<!-- evidence:end -->``.

Scenes go through the package's public API: :func:`updm_dask.scenes.open_scene` and
:func:`updm_dask.pipeline.process_scene`. The yatsm time series is surface reflectance
without metadata, so its pixels go through the science kernels
(:func:`~updm_dask.science.decompose.nnls_decompose`,
:func:`~updm_dask.science.classify.mviupd`,
:func:`~updm_dask.science.classify.classify_array`) with the same band patterns and rules.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import re
import sys
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import dask
import numpy as np
import rasterio

from updm_dask.pipeline import Science, process_scene
from updm_dask.scenes import open_scene
from updm_dask.science.calibration import calibrate_block, scene_calibration
from updm_dask.science.classify import CLASS_CODES, classify_array, mviupd
from updm_dask.science.decompose import nnls_decompose

#: The options compared, in table order, with the Science each one runs.
OPTIONS: dict[str, Science] = {
    "free": Science(supplementary=True, constrain_supplementary=False),
    "nonneg": Science(supplementary=True, constrain_supplementary=True),
    "three": Science(supplementary=False),
}
OPTION_TITLES = {"free": "uC4 free", "nonneg": "uC4 >= 0", "three": "3 patterns"}

# Pixels darker than this S = uCw + uCv + uCs are left out of every comparison: there
# MVIUPD divides by the noise floor (the MVIUPD dark limit), which would swamp any
# correlation, and the water rule (S <= 0.059) classifies them whatever the option.
DARK_S = 0.025
# Independent indices: vegetation where NDVI = (NIR - red) / (NIR + red) exceeds 0.4 (dense
# enough green cover to be "vegetation" in the note's sense; the note's MVIUPD threshold
# 0.458 plays the same role), water where MNDWI = (green - SWIR1) / (green + SWIR1) > 0
# (Xu 2006). Both are computed from the reflectance UPDM decomposes.
NDVI_VEGETATION = 0.4
MNDWI_WATER = 0.0
# Band positions in every sensor's UPDM band order (TM/ETM+ 1,2,3,4,5,7; OLI 2-7).
GREEN, RED, NIR, SWIR1 = 1, 2, 3, 4

# yatsm series: observations of a Landsat-5 and a Landsat-7 pixel at most this many days
# apart form a cross-sensor pair (the two satellites flew 8 days apart on the same path).
PAIR_DAYS = 8
# yatsm's own valid range for its SR x 10 000 bands (its config): 16 000 is saturation.
YATSM_SR_MAX = 10_000
YATSM_FMASK_CLEAR = 0

XL = "landsat/xlandsat/"
SCENES: dict[str, str] = {
    "Ethiopia TM 2000-03-09": "landsat/ethiopia-167055/LT05_L1TP_167055_20000309_20161214_01_T1/"
    "LT05_L1TP_167055_20000309_20161214_01_T1_MTL.txt",
    "Ethiopia TM 2010-12-18": "landsat/ethiopia-167055/LT51670552010352MLK00/"
    "LT51670552010352MLK00_MTL.txt",
    "Ethiopia ETM+ 2017-03-16": "landsat/ethiopia-167055/LE07_L1TP_167055_20170316_20170411_01_T1/"
    "LE07_L1TP_167055_20170316_20170411_01_T1_MTL.txt",
    "Ethiopia OLI 2017-03-08": "landsat/ethiopia-167055/LC08_L1TP_167055_20170308_20170317_01_T1/"
    "LC08_L1TP_167055_20170308_20170317_01_T1_MTL.txt",
    "Marburg ETM+ 2001-07-30": "landsat/marburg-195025/LE07_L1TP_195025_20010730_20170204_01_T1/"
    "LE07_L1TP_195025_20010730_20170204_01_T1_MTL.txt",
    "Marburg OLI 2013-07-07": "landsat/marburg-195025/LC08_L1TP_195025_20130707_20170503_01_T1/"
    "LC08_L1TP_195025_20130707_20170503_01_T1_MTL.txt",
    "Para TM 1988-08-14": "landsat/para-224063-1988/LT52240631988227CUB02_MTL.txt",
    "Momotombo OLI L1 2015-12-05": XL + "LC08_L1TP_017051_20151205_20200908_02_T1-cropped.tar.gz",
    "Momotombo OLI L2 2015-12-05": XL + "LC08_L2SP_017051_20151205_20200908_02_T1-cropped.tar.gz",
    "Brumadinho OLI L2 2019-01-14": XL + "LC08_L2SP_218074_20190114_20200829_02_T1-cropped.tar.gz",
    "Brumadinho OLI L2 2019-01-30": XL + "LC08_L2SP_218074_20190130_20200829_02_T1-cropped.tar.gz",
    "Manaus OLI-2 L2 2023-07-23": XL + "LC09_L2SP_231062_20230723_20230802_02_T1-cropped.tar.gz",
}
YATSM = "timeseries/yatsm-p035r032/p035r032_testdata.tar.gz"
YATSM_TITLE = "yatsm TM/ETM+ SR series 1984-2013"


@dataclass(frozen=True)
class Pair:
    """Two views of the same ground, ``a`` and ``b`` (titles in :data:`SCENES`).

    ``b``'s pixel ``[r, c]`` is ``a``'s ``[r + rows, c + cols]``; the pair is compared over
    the pixels both cover. ``kind`` names the comparison in the table.
    """

    kind: str
    a: str
    b: str
    rows: int = 0
    cols: int = 0


PAIRS = (
    # Level-1 vs Level-2 of one acquisition: the L2 crop is one column east (L2[r, c] =
    # L1[r, c + 1]); the shared data README gives the offset.
    Pair("product levels", "Momotombo OLI L1 2015-12-05", "Momotombo OLI L2 2015-12-05", 0, 1),
    Pair("sensors, 8 days", "Ethiopia ETM+ 2017-03-16", "Ethiopia OLI 2017-03-08"),
    Pair("sensors, 17 years", "Ethiopia TM 2000-03-09", "Ethiopia OLI 2017-03-08"),
    Pair("sensors, 12 years", "Marburg ETM+ 2001-07-30", "Marburg OLI 2013-07-07"),
    # The same sensor 16 days later: how far apart two honest looks are (the dam collapse
    # of 2019-01-25 lies between them); the "after" crop sits 30 columns east.
    Pair("repeat, 16 days", "Brumadinho OLI L2 2019-01-14", "Brumadinho OLI L2 2019-01-30", 0, 30),
)


# --------------------------------------------------------------------------------------
# Producing the layers


def scene_layers(location: str | Path, options: Iterable[str] = OPTIONS) -> dict[str, dict]:
    """Process one scene with every option.

    Parameters
    ----------
    location
        What :func:`updm_dask.scenes.open_scene` accepts (an MTL file, an archive).
    options
        Keys of :data:`OPTIONS`.

    Returns
    -------
    dict
        option -> {layer name -> (y, x) numpy array} for uCw, uCv, uCs, uC4, residual,
        mviupd, land_cover; plus ``"indices"`` -> {``ndvi``, ``mndwi``} from the reflectance the
        decomposition sees (Rayleigh-corrected TOA for Level-1, surface reflectance for
        Level-2).
    """
    scene = open_scene(location)
    out: dict[str, dict] = {}
    with dask.config.set(scheduler="synchronous"):
        scene = scene.copy()
        scene["dn"] = scene["dn"].copy(data=scene["dn"].values)  # read the pixels once
        for option in options:
            layers = process_scene(scene, OPTIONS[option])
            out[option] = {
                name: layers[name].values
                for name in ("uCw", "uCv", "uCs", "uC4", "residual", "mviupd", "land_cover")
            }
        calibration = scene_calibration(
            scene.attrs["updm_metadata"],
            tuple(str(b) for b in scene["dn"]["band"].values),
            nodata=scene.attrs.get("nodata"),
        )
        reflectance = calibrate_block(scene["dn"].values, calibration, band_axis=0)
    out["indices"] = _indices(reflectance, band_axis=0)
    return out


def _indices(reflectance: np.ndarray, band_axis: int) -> dict[str, np.ndarray]:
    r = np.moveaxis(np.asarray(reflectance, dtype=np.float64), band_axis, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ndvi = (r[NIR] - r[RED]) / (r[NIR] + r[RED])
        mndwi = (r[GREEN] - r[SWIR1]) / (r[GREEN] + r[SWIR1])
    return {"ndvi": ndvi, "mndwi": mndwi}


@dataclass(frozen=True)
class Observation:
    """One date of the yatsm series: SR (6, 25) and which pixels are clear."""

    date: dt.date
    sensor: str
    satellite: int
    reflectance: np.ndarray
    clear: np.ndarray


_YATSM_ID = re.compile(r"^L([TE])(\d)\d{6}(\d{4})(\d{3})")


def yatsm_observations(archive: str | Path) -> list[Observation]:
    """Every date of the yatsm stack archive, in date order.

    Clear pixels: Fmask clear and all six SR bands within yatsm's valid range 0-10 000
    (which leaves out the -9999 fill and the saturation value 16 000).
    """
    found = []
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            if not member.isfile() or not member.name.endswith("_stack.gtif"):
                continue
            scene_id = Path(member.name).name.split("_")[0]
            match = _YATSM_ID.match(scene_id)
            if match is None:
                raise ValueError(f"{archive}: member {member.name}: not a Landsat scene id")
            kind, number, year, doy = match.groups()
            data = tar.extractfile(member).read()
            with rasterio.MemoryFile(io.BytesIO(data)) as memory, memory.open() as src:
                stack = src.read().reshape(src.count, -1)
            sr = stack[:6].astype(np.float64)
            clear = (stack[7] == YATSM_FMASK_CLEAR) & np.all(
                (stack[:6] >= 0) & (stack[:6] <= YATSM_SR_MAX), axis=0
            )
            found.append(
                Observation(
                    date=dt.date(int(year), 1, 1) + dt.timedelta(days=int(doy) - 1),
                    sensor="ETM+" if kind == "E" else "TM",
                    satellite=int(number),
                    reflectance=sr / 10_000.0,
                    clear=clear,
                )
            )
    return sorted(found, key=lambda o: (o.date, o.satellite))


def observation_layers(obs: Observation, options: Iterable[str] = OPTIONS) -> dict[str, dict]:
    """:func:`scene_layers` for one yatsm date (pixels on one axis of 25)."""
    spectra = np.where(obs.clear[:, None], obs.reflectance.T, np.nan)
    out: dict[str, dict] = {}
    for option in options:
        science = OPTIONS[option]
        patterns = science.patterns_for(obs.sensor, obs.satellite).values
        coef, residual = nnls_decompose(
            spectra, patterns, constrain_supplementary=science.constrain_supplementary
        )
        uc4 = coef[:, 3] if coef.shape[-1] == 4 else None
        out[option] = {
            "uCw": coef[:, 0],
            "uCv": coef[:, 1],
            "uCs": coef[:, 2],
            "uC4": np.full(len(coef), np.nan) if uc4 is None else uc4,
            "residual": residual,
            "mviupd": mviupd(coef[:, 0], coef[:, 1], coef[:, 2], uc4),
            "land_cover": classify_array(coef, science.rules_for(obs.sensor)),
        }
    out["indices"] = _indices(spectra, band_axis=-1)
    return out


# --------------------------------------------------------------------------------------
# Measuring


def _s(layers: Mapping[str, np.ndarray]) -> np.ndarray:
    return layers["uCw"] + layers["uCv"] + layers["uCs"]


def common_domain(*views: Mapping[str, dict]) -> np.ndarray:
    """Pixels compared: classified (not no-data) and not dark, under every option, in every
    view (all views on one grid)."""
    keep = None
    for view in views:
        for option in OPTIONS:
            layers = view[option]
            ok = (layers["land_cover"] != CLASS_CODES["no_data"]) & (_s(layers) >= DARK_S)
            ok &= np.isfinite(layers["mviupd"])
            keep = ok if keep is None else keep & ok
    return keep


def agreement(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Pearson r, OLS slope of ``b`` on ``a``, mean absolute difference."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    r = float(np.corrcoef(a, b)[0, 1])
    slope = float(np.polyfit(a, b, 1)[0])
    return r, slope, float(np.mean(np.abs(a - b)))


@dataclass(frozen=True)
class PairRow:
    """One row of the pair table."""

    kind: str
    title: str
    option: str
    pixels: int
    ucv: tuple[float, float, float]
    ucs: tuple[float, float, float]
    mviupd: tuple[float, float, float]
    classes: float
    uc4_r: float

    def markdown(self) -> str:
        """The row as it appears in the page."""

        def trio(t):
            return f"{t[0]:.3f} / {t[1]:.2f} / {t[2]:.4f}"

        uc4 = "-" if np.isnan(self.uc4_r) else f"{self.uc4_r:.2f}"
        return (
            f"| {self.kind} | {self.title} | {OPTION_TITLES[self.option]} | {self.pixels} | "
            f"{trio(self.ucv)} | {trio(self.ucs)} | {trio(self.mviupd)} | "
            f"{100 * self.classes:.1f} | {uc4} |"
        )


def _crop(view: Mapping[str, dict], rows: slice, cols: slice) -> dict[str, dict]:
    return {k: {n: v[rows, cols] for n, v in layers.items()} for k, layers in view.items()}


def align(pair: Pair, a: Mapping[str, dict], b: Mapping[str, dict]):
    """Crop both views to the pixels they share (``b[r, c] = a[r + rows, c + cols]``)."""
    ya, xa = a["free"]["land_cover"].shape
    yb, xb = b["free"]["land_cover"].shape
    ny = min(ya - pair.rows, yb)
    nx = min(xa - pair.cols, xb)
    a = _crop(a, slice(pair.rows, pair.rows + ny), slice(pair.cols, pair.cols + nx))
    b = _crop(b, slice(0, ny), slice(0, nx))
    return a, b


def pair_rows(kind: str, title: str, a: Mapping[str, dict], b: Mapping[str, dict]) -> list:
    """Agreement of ``a`` and ``b`` (same pixels, flat or gridded) under every option."""
    keep = common_domain(a, b)
    rows = []
    for option in OPTIONS:
        la, lb = a[option], b[option]
        rows.append(
            PairRow(
                kind=kind,
                title=title,
                option=option,
                pixels=int(keep.sum()),
                ucv=agreement(la["uCv"][keep], lb["uCv"][keep]),
                ucs=agreement(la["uCs"][keep], lb["uCs"][keep]),
                mviupd=agreement(la["mviupd"][keep], lb["mviupd"][keep]),
                classes=float(np.mean(la["land_cover"][keep] == lb["land_cover"][keep])),
                uc4_r=(
                    agreement(la["uC4"][keep], lb["uC4"][keep])[0]
                    if OPTIONS[option].supplementary
                    else float("nan")
                ),
            )
        )
    return rows


def scene_pair_rows(shared: Path, pair: Pair, cache: dict | None = None) -> list[PairRow]:
    """:func:`pair_rows` for one entry of :data:`PAIRS`, the scenes read from ``shared``."""
    cache = {} if cache is None else cache
    for title in (pair.a, pair.b):
        if title not in cache:
            cache[title] = scene_layers(shared / SCENES[title])
    a, b = align(pair, cache[pair.a], cache[pair.b])
    return pair_rows(pair.kind, f"{pair.a} vs {pair.b}", a, b)


def yatsm_pair_views(observations: list[Observation], layers: list[dict]):
    """Every Landsat-5/-7 pixel pair at most :data:`PAIR_DAYS` apart, as two flat views."""
    tm = [i for i, o in enumerate(observations) if o.satellite == 5]
    etm = [i for i, o in enumerate(observations) if o.satellite == 7]
    a_parts, b_parts = [], []
    for i in tm:
        for j in etm:
            if abs((observations[i].date - observations[j].date).days) <= PAIR_DAYS:
                a_parts.append(layers[i])
                b_parts.append(layers[j])
    return _stack(a_parts), _stack(b_parts)


def _stack(views: list[dict]) -> dict[str, dict]:
    keys = views[0].keys()
    return {k: {n: np.concatenate([v[k][n] for v in views]) for n in views[0][k]} for k in keys}


@dataclass(frozen=True)
class SceneRow:
    """One row of the per-scene table."""

    title: str
    option: str
    pixels: int
    above: float
    below: float
    low: float
    high: float
    vegetation: float
    water: float
    residual: float

    def markdown(self) -> str:
        """The row as it appears in the page."""
        return (
            f"| {self.title} | {OPTION_TITLES[self.option]} | {self.pixels} | "
            f"{100 * self.above:.1f} | {100 * self.below:.1f} | "
            f"{self.low:.2f} .. {self.high:.2f} | {100 * self.vegetation:.1f} | "
            f"{100 * self.water:.1f} | {self.residual:.4f} |"
        )


def scene_rows(title: str, view: Mapping[str, dict]) -> list[SceneRow]:
    """MVIUPD range and index agreement of one scene (or series) under every option.

    The pixels are those of :func:`common_domain` that no option calls cloud (neither index
    knows clouds).
    """
    keep = common_domain(view)
    for option in OPTIONS:
        keep &= view[option]["land_cover"] != CLASS_CODES["cloud"]
    indices = view["indices"]
    keep &= np.isfinite(indices["ndvi"]) & np.isfinite(indices["mndwi"])
    green = indices["ndvi"][keep] > NDVI_VEGETATION
    wet = indices["mndwi"][keep] > MNDWI_WATER
    rows = []
    for option in OPTIONS:
        layers = view[option]
        m = layers["mviupd"][keep]
        lc = layers["land_cover"][keep]
        rows.append(
            SceneRow(
                title=title,
                option=option,
                pixels=int(keep.sum()),
                above=float(np.mean(m > 1)),
                below=float(np.mean(m < -1)),
                low=float(np.percentile(m, 1)),
                high=float(np.percentile(m, 99)),
                vegetation=float(np.mean((lc == CLASS_CODES["vegetation"]) == green)),
                water=float(np.mean((lc == CLASS_CODES["water"]) == wet)),
                residual=float(np.mean(layers["residual"][keep])),
            )
        )
    return rows


# --------------------------------------------------------------------------------------
# Tables

PAIR_HEADER = (
    "| pair | views (a vs b) | option | pixels | uCv r / slope / mad | uCs r / slope / mad "
    "| MVIUPD r / slope / mad | same class % | uC4 r |\n"
    "|---|---|---|---|---|---|---|---|---|"
)
SCENE_HEADER = (
    "| scene | option | pixels | MVIUPD > 1 % | MVIUPD < -1 % | MVIUPD 1st .. 99th pct "
    f"| vegetation = NDVI > {NDVI_VEGETATION} % | water = MNDWI > {MNDWI_WATER:g} % "
    "| residual rms |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


def evidence_tables(shared: str | Path) -> str:
    """Both tables, as Markdown, measured on the scenes under ``shared``."""
    shared = Path(shared)
    cache: dict[str, dict] = {}
    pair_lines = []
    for pair in PAIRS:
        pair_lines += [row.markdown() for row in scene_pair_rows(shared, pair, cache)]
    observations = yatsm_observations(shared / YATSM)
    series = [observation_layers(o) for o in observations]
    a, b = yatsm_pair_views(observations, series)
    pair_lines += [
        row.markdown()
        for row in pair_rows("sensors, <= 8 days", f"{YATSM_TITLE}: TM vs ETM+ (same pixel)", a, b)
    ]
    scene_lines = []
    for title in SCENES:
        if title not in cache:
            cache[title] = scene_layers(shared / SCENES[title])
        scene_lines += [row.markdown() for row in scene_rows(title, cache[title])]
    scene_lines += [row.markdown() for row in scene_rows(YATSM_TITLE, _stack(series))]
    return "\n".join([PAIR_HEADER, *pair_lines, "", SCENE_HEADER, *scene_lines])


BEGIN = "<!-- evidence:begin -->"
END = "<!-- evidence:end -->"


def write_tables(page: str | Path, tables: str) -> None:
    """Replace the text between :data:`BEGIN` and :data:`END` in ``page`` by ``tables``."""
    page = Path(page)
    text = page.read_text(encoding="utf-8")
    start, stop = text.find(BEGIN), text.find(END)
    if start < 0 or stop < start:
        raise ValueError(f"{page}: expected the markers {BEGIN} ... {END} around the tables")
    text = text[: start + len(BEGIN)] + "\n" + tables + "\n" + text[stop:]
    page.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("shared", type=Path, help="the shared data folder")
    parser.add_argument("--write", type=Path, help="a page with the evidence markers")
    args = parser.parse_args(argv)
    if not (args.shared / "landsat").is_dir():
        parser.error(f"{args.shared}: expected the shared data folder (with landsat/)")
    tables = evidence_tables(args.shared)
    print(tables)
    if args.write is not None:
        write_tables(args.write, tables)
    return 0


if __name__ == "__main__":
    sys.exit(main())
