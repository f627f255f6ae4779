"""The tutorial's pictures, drawn from a small demo cube made on the spot.

``python docs/_figures.py OUTDIR`` writes them; the docs build (``docs/_hooks.py``) calls
:func:`make_figures` into a temporary folder, so no picture is committed and every one
follows the code that draws it.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

#: The small demo the pictures (and the commit metadata of the cube-schema page) come from:
#: every sensor generation, SLC-off and cloudy scenes, 64 x 64 pixels (a few seconds).
DEMO_SCENES = 12
DEMO_SIZE = 64
#: A pixel and a box inside that demo grid (lon/lat, WGS 84).
POINT = (135.51, 34.72)
BBOX = (135.503, 34.712, 135.522, 34.727)

FIGURES = ("point-series.png", "area-fractions.png", "land-cover-2023.png", "trend.png")


@dataclass(frozen=True)
class Figures:
    """What :func:`make_figures` made: the PNGs (name -> path) and the cube behind them."""

    paths: dict[str, Path]
    cube: Path


def make_demo_cube(workdir: Path) -> Path:
    """A :data:`DEMO_SCENES`-scene demo cube in ``workdir/cube.icechunk``, made by a real job.

    The job runs on an in-process Dask cluster (no worker processes to start: the cube is
    tiny and the build must stay quick); its commits carry the metadata every job writes.
    """
    from distributed import Client

    from updm_dask.demo.run import run_demo

    # a free local port for the scheduler's HTTP server: 8787 may be taken
    with Client(
        processes=False, n_workers=1, threads_per_worker=2, dashboard_address="127.0.0.1:0"
    ) as c:
        run = run_demo(workdir, n_scenes=DEMO_SCENES, size=DEMO_SIZE, client=c)
    if run.exit_code != 0:
        raise RuntimeError(f"the documentation demo job failed:\n{run.text}")
    return run.cube_path


def make_figures(outdir: str | Path) -> Figures:
    """Build the demo cube in ``outdir`` and draw :data:`FIGURES` there.

    Parameters
    ----------
    outdir : str or path-like
        An empty or new folder.

    Returns
    -------
    Figures
    """
    import dask

    from updm_dask import query as q

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    cube = make_demo_cube(out)
    lon, lat = POINT
    paths: dict[str, Path] = {}
    with dask.config.set(scheduler="synchronous"):
        series = q.point_series(cube, lon=lon, lat=lat)
        paths["point-series.png"] = q.plot_point_series(
            series.scenes,
            out / "point-series.png",
            yearly=series.yearly,
            title=f"MVIUPD at {lon} E, {lat} N",
        )
        stats = q.area_statistics(cube, bbox=BBOX)
        paths["area-fractions.png"] = q.plot_class_fractions(
            stats, out / "area-fractions.png", title="Class shares of the box"
        )
        paths["land-cover-2023.png"] = q.plot_land_cover_map(
            q.land_cover_map(cube, year=2023), out / "land-cover-2023.png", title="2023"
        )
        paths["trend.png"] = q.plot_trend_map(
            q.mviupd_trend(cube), out / "trend.png", title="MVIUPD trend"
        )
    return Figures(paths, cube)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", help="folder to write the demo cube and the PNGs into")
    args = parser.parse_args(argv)
    made = make_figures(args.outdir)
    for path in made.paths.values():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
