"""Regenerate the spectral tables shipped in ``updm_dask/data/`` from the shared data folder.

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
import itertools
import sys
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
    try:
        digests = verify_inputs(shared, inputs)
        out.mkdir(parents=True, exist_ok=True)
        written = [build_spectra(shared, out, variant)]
        if not variant:
            written += [build_rsr(shared, out, name) for name in RSR]
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
