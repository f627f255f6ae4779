"""Regenerate the tables shipped in ``updm_dask/data/`` from the shared data folder.

Usage::

    python tools/build_tables.py SHARED_DATA [--out DIR]
    python tools/build_tables.py SHARED_DATA --variant rstoolbox-vital --out DIR

``SHARED_DATA`` is the project's shared data folder (the one holding ``spectra/``,
``rsr/`` and ``SHA256SUMS``). The tables are written to ``DIR`` (default: the package's
``updm_dask/data``). Every input file is checked against ``SHARED_DATA/SHA256SUMS`` first,
so a table can only be rebuilt from the exact inputs named in ``updm_dask/data/README.md``.

Outputs
-------
``standard_spectra.csv``
    ``wavelength_nm,water,vegetation,soil,yellow_leaf`` on a uniform 2.5 nm grid over
    350-2500 nm (861 rows): the raw reflectance (0-1) of the default UPDM stand-in spectra.
``rsr_tm_l4.csv``, ``rsr_tm_l5.csv``, ``rsr_etm_l7.csv``, ``rsr_oli_l8.csv``,
``rsr_oli_l9.csv``, ``rsr_mss.csv``
    ``wavelength_nm,band,response``: the rows of the shared RSR tables for the reflective
    bands UPDM decomposes, copied verbatim (native grid, published values).
``esun_collection.csv``
    ``sensor,satellite,band,esun,n_files,min,max,spread_pct,use,sources``: the solar
    irradiance (W m-2 um-1) the Collection products use, derived from their own MTL files:
    with ``L = RADIANCE_MULT Q + RADIANCE_ADD`` and ``rho' = REFLECTANCE_MULT Q +
    REFLECTANCE_ADD`` (no sun angle), ``rho' = pi L d**2 / ESUN``, so
    ``ESUN = pi d**2 RADIANCE_MULT / REFLECTANCE_MULT`` with ``d = EARTH_SUN_DISTANCE`` of the
    same file. ``esun`` is the mean over ``n_files`` files, ``spread_pct`` their range in %
    of it. Each file's ADD terms must give the same ESUN (within ``ESUN_ADD_TOLERANCE``) and
    the files of one sensor must agree (within ``ESUN_SPREAD_LIMIT``), or the build fails.

``--variant rstoolbox-vital`` instead writes ``standard_spectra_rstoolbox-vital.csv``: the
same table with the RStoolbox "veg_vital" spectrum as vegetation. It fits real canopies
much better than the 6S table but is GPL-3, so it is NOT shipped in the package; build it
for yourself and load it with ``updm_dask.science.patterns.load_pattern_set``. It cannot be
written into the package's data folder.

The script uses the standard library only and exact rational arithmetic, so its output is
byte-for-byte the same on every machine; it deliberately does not import ``updm_dask``,
which makes a regeneration an independent check of the shipped tables.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import itertools
import sys
import tarfile
import xml.etree.ElementTree as ET
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

GRID_START_NM = Fraction(350)
GRID_STOP_NM = Fraction(2500)
GRID_STEP_NM = Fraction(5, 2)
# Ten decimals keep the interpolated values faithful to far below the sources' precision
# (5 decimals for 6S, 7 significant digits for earthlib) while making the text exact.
DECIMALS = 10

# column -> (source file under SHARED_DATA, handling). See updm_dask/data/README.md for why.
SPECTRA = {
    "water": ("spectra/6s_clear_water.csv", "6s"),
    "vegetation": ("spectra/6s_vegetation.csv", "6s"),
    "soil": ("spectra/earthlib_sand_mean.csv", "earthlib"),
    "yellow_leaf": ("spectra/earthlib_goldgras.csv", "earthlib"),
}
# The 6S tables are padding below 400 nm: 0 up to 395 nm, then half the first value at
# 397.5 nm. Their first real value is at 400 nm.
SIXS_FIRST_REAL_NM = Fraction(400)

# Optional, not shipped (GPL-3): column -> replacement source.
VARIANTS = {
    "rstoolbox-vital": {"vegetation": ("spectra/rstoolbox_veg_vital.csv", "rstoolbox")},
}

# output name -> (source file, band labels UPDM decomposes, in the source's labelling).
RSR = {
    "rsr_tm_l4.csv": ("rsr/landsat_tm_l4.csv", ("1", "2", "3", "4", "5", "7")),
    "rsr_tm_l5.csv": ("rsr/landsat_tm_l5.csv", ("1", "2", "3", "4", "5", "7")),
    "rsr_etm_l7.csv": ("rsr/landsat_etm_l7.csv", ("1", "2", "3", "4", "5", "7")),
    "rsr_oli_l8.csv": ("rsr/landsat_oli_l8.csv", ("2", "3", "4", "5", "6", "7")),
    "rsr_oli_l9.csv": ("rsr/landsat_oli_l9.csv", ("2", "3", "4", "5", "6", "7")),
    "rsr_mss.csv": ("rsr/landsat_mss.csv", ("1", "2", "3", "4")),
}


# --------------------------------------------------------------------------------------
# Collection solar irradiance (docs/calibration.md explains every choice made here).
ESUN_TABLE = "esun_collection.csv"
# Every Collection-1/2 MTL of the shared data that carries both RADIANCE_MULT and
# REFLECTANCE_MULT for TM, ETM+ or MSS (OLI as a reference). A ".tar.gz" entry is read from
# the archive's one member ending in "_MTL.txt". Left out, with the reason:
# - mtl/rstoolbox/LC08_L1TP_195025_20130707_20170503_01_T1_MTL.txt: a CRLF copy of the
#   Marburg OLI file below (same numbers, counted once);
# - mtl/rstoolbox/LT05_L1TP_047027_20101006_20160512_01_T1_MTL.txt: an early Collection-1
#   product (LPGS_12.8.0, May 2016) whose reflectance factors use another irradiance, up to
#   4 % from every later Collection-1 and all Collection-2 TM products;
# - mtl/rstoolbox/mss_MTL.txt, mtl/rio-toa/*: pre-collection products;
# - mtl/rstoolbox/*.xml: ESPA metadata, no radiance or reflectance factors.
ESUN_MTLS = (
    "mtl/stactools-landsat/LM01_L1GS_001010_19720908_20200909_02_T2_MTL.xml",
    "mtl/stactools-landsat/LM01_L1GS_005037_19720823_20200909_02_T2_MTL.xml",
    "mtl/stactools-landsat/LM01_L1GS_007019_19771009_20200907_02_T2_MTL.xml",
    "mtl/stactools-landsat/LM02_L1GS_001004_19750411_20200908_02_T2_MTL.xml",
    "mtl/stactools-landsat/LM03_L1GS_001001_19780510_20200907_02_T2_MTL.xml",
    "mtl/stactools-landsat/LM04_L1GS_001001_19830527_20210902_02_T2_MTL.xml",
    "mtl/stactools-landsat/LM05_L1GS_001001_19850524_20210918_02_T2_MTL.xml",
    "mtl/sertit/LM05_L1TP_200030_20121230_20200820_02_T2_MTL.xml",
    "landsat/ethiopia-167055/LT05_L1TP_167055_20000309_20161214_01_T1/"
    "LT05_L1TP_167055_20000309_20161214_01_T1_MTL.txt",
    "mtl/rstoolbox/LT05_L1TP_218072_20100801_20161015_01_T1_MTL.txt",
    "landsat/ethiopia-167055/LE07_L1TP_167055_20170316_20170411_01_T1/"
    "LE07_L1TP_167055_20170316_20170411_01_T1_MTL.txt",
    "landsat/marburg-195025/LE07_L1TP_195025_20010730_20170204_01_T1/"
    "LE07_L1TP_195025_20010730_20170204_01_T1_MTL.txt",
    "mtl/rstoolbox/LE07_L1TP_160031_20110416_20161210_01_T1_MTL.TXT",
    "landsat/ethiopia-167055/LC08_L1TP_167055_20170308_20170317_01_T1/"
    "LC08_L1TP_167055_20170308_20170317_01_T1_MTL.txt",
    "landsat/marburg-195025/LC08_L1TP_195025_20130707_20170503_01_T1/"
    "LC08_L1TP_195025_20130707_20170503_01_T1_MTL.txt",
    "mtl/rstoolbox/LC08_L1TP_193024_20180824_20200831_02_T1_MTL.txt",
    "landsat/xlandsat/LC08_L1TP_017051_20151205_20200908_02_T1-cropped.tar.gz",
    "landsat/xlandsat/LC08_L2SP_017051_20151205_20200908_02_T1-cropped.tar.gz",
    "landsat/xlandsat/LC08_L2SP_218074_20190114_20200829_02_T1-cropped.tar.gz",
    "landsat/xlandsat/LC08_L2SP_218074_20190130_20200829_02_T1-cropped.tar.gz",
    "landsat/xlandsat/LC09_L2SP_231062_20230723_20230802_02_T1-cropped.tar.gz",
)


def _per_band(kind: str, values: str) -> dict[str, str]:
    """``{KIND_BAND_n: value}`` for TM bands 1-5 and 7, values as printed, space-separated."""
    return {f"{kind}_BAND_{b}": v for b, v in zip("123457", values.split(), strict=True)}


# The shared data holds no Landsat-4 TM metadata. These fields are transcribed, unchanged,
# from a real Collection-2 Landsat-4 TM MTL in the same upstream repository and commit as
# the shared data's MSS files (its LEVEL1_RADIOMETRIC_RESCALING group and
# EARTH_SUN_DISTANCE); the file's sha256 is given so the transcription can be checked.
EXTERNAL_MTLS = {
    "stactools-packages/landsat@bde55a5a35f9cf0968a9f8f91887ffda72dd1e32:"
    "tests/data-files/tm/LT04_L2SP_002026_19830110_20200918_02_T1_MTL.xml": {
        "sha256": "789c9b92717dd66771ba2922cc7af12103f01d3a765f5f41544c1c389558aaf5",
        "SPACECRAFT_ID": "LANDSAT_4",
        "SENSOR_ID": "TM",
        "EARTH_SUN_DISTANCE": "0.9834071",
        **_per_band(
            "RADIANCE_MULT", "6.4772E-01 1.3340E+00 1.0046E+00 8.7602E-01 1.2508E-01 6.5945E-02"
        ),
        **_per_band("RADIANCE_ADD", "-2.16772 -4.17402 -2.17461 -2.38602 -0.49508 -0.21594"),
        **_per_band(
            "REFLECTANCE_MULT", "1.0128E-03 2.3055E-03 2.0554E-03 2.5765E-03 1.7141E-03 2.4069E-03"
        ),
        **_per_band(
            "REFLECTANCE_ADD", "-0.003390 -0.007214 -0.004449 -0.007018 -0.006785 -0.007882"
        ),
    },
}
# pi to 40 digits as an exact rational: the table is then exact arithmetic like the others.
PI = Fraction("3.141592653589793238462643383279502884197")
# The MULT factors are printed with 5 significant digits and the ADD terms with 5-6
# decimals, so ESUN from the ADD terms can differ from ESUN from the MULT factors by a few
# 0.01 %; more means the two terms do not describe one irradiance.
ESUN_ADD_TOLERANCE = Fraction(2, 1000)
# The files of one sensor scatter by the same print precision (observed <= 0.01 %); more
# means they do not share one irradiance and the table would hide it.
ESUN_SPREAD_LIMIT = Fraction(5, 10000)
ESUN_DECIMALS = 2
# MTL SENSOR_ID -> the package's sensor names (updm_dask.science.sensors).
_ESUN_SENSORS = {"MSS": "MSS", "TM": "TM", "ETM": "ETM+", "OLI_TIRS": "OLI"}
_RESCALING_GROUPS = ("RADIOMETRIC_RESCALING", "LEVEL1_RADIOMETRIC_RESCALING")
_ESUN_FIELDS = ("SPACECRAFT_ID", "SENSOR_ID", "EARTH_SUN_DISTANCE")


PACKAGE_DATA = Path(__file__).resolve().parent.parent / "updm_dask" / "data"


class BuildError(RuntimeError):
    """An input is missing, altered or not shaped as expected."""


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_checksums(shared: Path) -> dict[str, str]:
    sums = shared / "SHA256SUMS"
    if not sums.is_file():
        raise BuildError(f"{sums} not found: cannot prove the inputs are the documented ones")
    table = {}
    for line in sums.read_text(encoding="utf-8").splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            table[name.strip().removeprefix("./")] = digest
    return table


def verify_inputs(shared: Path, relpaths: list[str]) -> dict[str, str]:
    sums = read_checksums(shared)
    found = {}
    for rel in relpaths:
        path = shared / rel
        if not path.is_file():
            raise BuildError(f"input {path} not found")
        digest = sha256_of(path)
        if sums.get(rel) != digest:
            raise BuildError(
                f"input {path} has sha256 {digest}, but SHA256SUMS lists {sums.get(rel)}"
            )
        found[rel] = digest
    return found


def read_spectrum(path: Path, skip_nan: bool = False) -> list[tuple[Fraction, Fraction]]:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if rows[0] != ["wavelength_nm", "reflectance"]:
        raise BuildError(f"{path}: unexpected header {rows[0]}")
    if skip_nan:
        rows = [rows[0]] + [row for row in rows[1:] if row[1].lower() != "nan"]
    points = [(Fraction(w), Fraction(r)) for w, r in rows[1:]]
    if any(b[0] <= a[0] for a, b in itertools.pairwise(points)):
        raise BuildError(f"{path}: wavelengths do not increase")
    return points


def grid() -> list[Fraction]:
    n = int((GRID_STOP_NM - GRID_START_NM) / GRID_STEP_NM) + 1
    return [GRID_START_NM + i * GRID_STEP_NM for i in range(n)]


def interpolate(points: list[tuple[Fraction, Fraction]], x: Fraction) -> Fraction:
    """Piecewise-linear interpolant of ``points`` at ``x``, held constant beyond the ends."""
    if x <= points[0][0]:
        return points[0][1]
    if x >= points[-1][0]:
        return points[-1][1]
    lo, hi = 0, len(points) - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if points[mid][0] <= x:
            lo = mid
        else:
            hi = mid
    (x0, y0), (x1, y1) = points[lo], points[hi]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


def spectrum_on_grid(path: Path, handling: str) -> list[Fraction]:
    # RStoolbox's vegSpec has NaN from 2429 nm on; dropping them holds the 2428 nm value.
    points = read_spectrum(path, skip_nan=handling == "rstoolbox")
    if handling == "6s":
        # Drop the 6S padding and ramp below 400 nm; holding the 400 nm value constant down
        # to 350 nm is then done by `interpolate`.
        points = [(w, r) for w, r in points if w >= SIXS_FIRST_REAL_NM]
        if points[0][0] != SIXS_FIRST_REAL_NM or points[0][1] <= 0:
            raise BuildError(f"{path}: expected the first real 6S value at 400 nm")
    elif handling not in ("earthlib", "rstoolbox"):
        raise BuildError(f"unknown handling {handling!r}")
    # earthlib: 10 nm grid 400-2450 nm without 1360-1450 and 1800-1950 nm; `interpolate`
    # bridges the two gaps linearly and holds the end values out to 350 and 2500 nm.
    return [interpolate(points, x) for x in grid()]


def fmt(value: Fraction) -> str:
    """Exact decimal text of ``value`` rounded half-even to DECIMALS places, no trailing 0s."""
    units = round(value * 10**DECIMALS)  # Fraction rounds half-even, exactly
    text = format(Decimal(units).scaleb(-DECIMALS), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def build_spectra(shared: Path, out: Path, variant: str | None = None) -> Path:
    sources = {**SPECTRA, **(VARIANTS[variant] if variant else {})}
    columns = {name: spectrum_on_grid(shared / rel, how) for name, (rel, how) in sources.items()}
    target = out / (f"standard_spectra_{variant}.csv" if variant else "standard_spectra.csv")
    with target.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["wavelength_nm", *columns])
        for i, x in enumerate(grid()):
            writer.writerow([fmt(x), *(fmt(col[i]) for col in columns.values())])
    return target


def build_rsr(shared: Path, out: Path, name: str) -> Path:
    rel, bands = RSR[name]
    source = shared / rel
    lines = source.read_text(encoding="utf-8").splitlines()
    if lines[0] != "wavelength_nm,band,response":
        raise BuildError(f"{source}: unexpected header {lines[0]!r}")
    kept = [line for line in lines[1:] if line.split(",")[1] in bands]
    missing = set(bands) - {line.split(",")[1] for line in kept}
    if missing:
        raise BuildError(f"{source}: bands {sorted(missing)} not found")
    target = out / name
    target.write_text("\n".join([lines[0], *kept]) + "\n", encoding="utf-8", newline="")
    return target


# --------------------------------------------------------------------------------------
# Collection solar irradiance


def esun_bands(sensor: str, satellite: int) -> tuple[str, ...]:
    """Band labels UPDM decomposes, as the sensor's metadata numbers them."""
    if sensor == "MSS":
        return ("4", "5", "6", "7") if satellite <= 3 else ("1", "2", "3", "4")
    if sensor in ("OLI", "OLI-2"):
        return ("2", "3", "4", "5", "6", "7")
    return ("1", "2", "3", "4", "5", "7")


def mtl_text(shared: Path, rel: str) -> tuple[str, str]:
    """(text, name) of an MTL file, or of the one ``*_MTL.txt`` member of a ``.tar.gz``."""
    path = shared / rel
    if rel.endswith(".tar.gz"):
        with tarfile.open(path) as archive:
            members = [m for m in archive.getmembers() if m.name.endswith("_MTL.txt")]
            if len(members) != 1:
                raise BuildError(f"{path}: expected one *_MTL.txt member, found {len(members)}")
            data = archive.extractfile(members[0]).read()
            return data.decode("utf-8"), f"{rel}:{members[0].name}"
    # Some LPGS files are NUL-padded to 65 535 bytes after the text.
    return path.read_bytes().split(b"\0", 1)[0].decode("utf-8"), rel


def mtl_fields(text: str, name: str) -> dict[str, str]:
    """The fields the irradiance needs: rescaling group entries, sensor, distance.

    Collection-2 Level-2 files repeat REFLECTANCE_MULT_BAND_n for surface reflectance, so
    the factors are read from the (LEVEL1_)RADIOMETRIC_RESCALING group only.
    """
    fields: dict[str, str] = {}
    if text.lstrip().startswith("<"):
        root = ET.fromstring(text)
        for group in _RESCALING_GROUPS:
            for element in root.iter(group):
                fields.update({child.tag: (child.text or "").strip() for child in element})
        for key in _ESUN_FIELDS:
            element = next(root.iter(key), None)
            if element is not None:
                fields[key] = (element.text or "").strip()
        return fields
    groups: list[str] = []
    for line in io.StringIO(text):
        key, _, value = (part.strip() for part in line.partition("="))
        value = value.strip('"')
        if key == "GROUP":
            groups.append(value)
        elif key == "END_GROUP":
            groups.pop()
        elif groups and groups[-1] in _RESCALING_GROUPS:
            fields[key] = value
        elif key in _ESUN_FIELDS:
            fields.setdefault(key, value)
    missing = [k for k in _ESUN_FIELDS if k not in fields]
    if missing:
        raise BuildError(f"{name}: no {', '.join(missing)}")
    return fields


def irradiance_of(fields: dict[str, str], name: str) -> tuple[str, int, dict[str, Fraction]]:
    """(sensor, satellite, band -> ESUN) implied by one file's rescaling factors."""
    satellite = int(fields["SPACECRAFT_ID"].removeprefix("LANDSAT_"))
    sensor = _ESUN_SENSORS.get(fields["SENSOR_ID"])
    if sensor is None:
        raise BuildError(f"{name}: unexpected SENSOR_ID {fields['SENSOR_ID']!r}")
    if sensor == "OLI" and satellite == 9:
        sensor = "OLI-2"
    d = Fraction(Decimal(fields["EARTH_SUN_DISTANCE"]))
    values = {}
    for band in esun_bands(sensor, satellite):
        terms = [
            fields.get(f"{kind}_BAND_{band}")
            for kind in ("RADIANCE_MULT", "REFLECTANCE_MULT", "RADIANCE_ADD", "REFLECTANCE_ADD")
        ]
        if any(t in (None, "", "NULL") for t in terms):
            continue  # a missing band (PRESENT_BAND_n = M) has NULL factors
        rad_mult, refl_mult, rad_add, refl_add = (Fraction(Decimal(t)) for t in terms)
        from_mult = PI * d * d * rad_mult / refl_mult
        from_add = PI * d * d * rad_add / refl_add
        if abs(from_add / from_mult - 1) > ESUN_ADD_TOLERANCE:
            raise BuildError(
                f"{name}: band {band}: ESUN from the MULT factors ({float(from_mult):.2f}) and "
                f"from the ADD terms ({float(from_add):.2f}) disagree"
            )
        values[band] = from_mult
    if not values:
        raise BuildError(f"{name}: no band has both RADIANCE_* and REFLECTANCE_* factors")
    return sensor, satellite, values


def fmt_fixed(value: Fraction, decimals: int) -> str:
    """``value`` rounded half-even to ``decimals`` places, written with all of them."""
    units = round(value * 10**decimals)
    return format(Decimal(units).scaleb(-decimals), f".{decimals}f")


def build_esun(shared: Path, out: Path) -> Path:
    found: dict[tuple[str, int], dict[str, list[tuple[Fraction, str]]]] = {}
    inputs = [mtl_text(shared, rel) for rel in ESUN_MTLS]
    inputs += [("", name) for name in EXTERNAL_MTLS]
    for text, name in inputs:
        fields = EXTERNAL_MTLS[name] if name in EXTERNAL_MTLS else mtl_fields(text, name)
        sensor, satellite, values = irradiance_of(fields, name)
        per_band = found.setdefault((sensor, satellite), {})
        for band, value in values.items():
            per_band.setdefault(band, []).append((value, name))
    order = ["MSS", "TM", "ETM+", "OLI", "OLI-2"]
    target = out / ESUN_TABLE
    with target.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(
            [
                "sensor",
                "satellite",
                "band",
                "esun",
                "n_files",
                "min",
                "max",
                "spread_pct",
                "use",
                "sources",
            ]
        )
        for sensor, satellite in sorted(found, key=lambda k: (order.index(k[0]), k[1])):
            for band in esun_bands(sensor, satellite):
                rows = found[(sensor, satellite)].get(band)
                if not rows:
                    raise BuildError(f"no file gives {sensor} Landsat-{satellite} band {band}")
                values = [v for v, _ in rows]
                mean = sum(values) / len(values)
                spread = (max(values) - min(values)) / mean
                if spread > ESUN_SPREAD_LIMIT:
                    raise BuildError(
                        f"{sensor} Landsat-{satellite} band {band}: the files disagree by "
                        f"{float(spread) * 100:.3f} %: {', '.join(n for _, n in rows)}"
                    )
                writer.writerow(
                    [
                        sensor,
                        satellite,
                        band,
                        fmt_fixed(mean, ESUN_DECIMALS),
                        len(values),
                        fmt_fixed(min(values), ESUN_DECIMALS),
                        fmt_fixed(max(values), ESUN_DECIMALS),
                        fmt_fixed(spread * 100, 4),
                        "reference" if sensor.startswith("OLI") else "default",
                        ";".join(n for _, n in rows),
                    ]
                )
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("shared_data", type=Path, help="the shared data folder")
    parser.add_argument(
        "--out",
        type=Path,
        default=PACKAGE_DATA,
        help="output folder (default: the package's data folder)",
    )
    parser.add_argument(
        "--variant",
        choices=sorted(VARIANTS),
        help="write only an alternative spectra table that is not shipped (see above)",
    )
    args = parser.parse_args(argv)
    shared, out, variant = args.shared_data, args.out, args.variant
    if variant and out.resolve() == PACKAGE_DATA:
        parser.error("a --variant table is not for the package: give --out another folder")
    if variant:
        inputs = [rel for rel, _ in {**SPECTRA, **VARIANTS[variant]}.values()]
    else:
        inputs = [rel for rel, _ in SPECTRA.values()] + [rel for rel, _ in RSR.values()]
        inputs += list(ESUN_MTLS)
    try:
        digests = verify_inputs(shared, inputs)
        out.mkdir(parents=True, exist_ok=True)
        written = [build_spectra(shared, out, variant)]
        if not variant:
            written += [build_rsr(shared, out, name) for name in RSR]
            written.append(build_esun(shared, out))
    except BuildError as exc:
        print(f"build_tables: {exc}", file=sys.stderr)
        return 1
    print("inputs (sha256):")
    for rel, digest in digests.items():
        print(f"  {digest}  {rel}")
    print("outputs (sha256):")
    for path in written:
        print(f"  {sha256_of(path)}  {path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
