"""The tutorial's pictures, drawn from cubes made on the spot by real jobs.

Two cubes: a small demo cube (sections 1-10 of the tutorial) and the real Ethiopian stack
of ``examples/ethiopia-167055.toml`` (section 11), which needs the shared Landsat data
(``../shared/data`` beside the repository, or the folder ``UPDM_SHARED_DATA`` names: the
rule of the tests). Without that data the Ethiopian pictures are left out, each with a
note saying why (:attr:`Figures.missing`), unless ``UPDM_REQUIRE_DATA=1``: then
:func:`make_figures` fails with :class:`MissingDataError`.

``python docs/_figures.py OUTDIR`` writes them; the docs build (``docs/_hooks.py``) calls
:func:`make_figures` into a temporary folder, so no picture or cube is committed and every
picture follows the code that draws it.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

#: The small demo the pictures (and the commit metadata of the cube-schema page) come from:
#: every sensor generation, SLC-off and cloudy scenes, 64 x 64 pixels (a few seconds).
DEMO_SCENES = 12
DEMO_SIZE = 64
#: A pixel and a box inside that demo grid (lon/lat, WGS 84).
POINT = (135.51, 34.72)
BBOX = (135.503, 34.712, 135.522, 34.727)

FIGURES = ("point-series.png", "area-fractions.png", "land-cover-2023.png", "trend.png")

#: The real job of the tutorial's section 11, its scenes inside the shared data folder,
#: and the pixel its point series shows (lon/lat, WGS 84).
ETHIOPIA_JOB = REPO_ROOT / "examples" / "ethiopia-167055.toml"
ETHIOPIA_SCENES = Path("landsat") / "ethiopia-167055"
ETHIOPIA_POINT = (39.821, 6.838)
ETHIOPIA_FIGURES = (
    "ethiopia-point-series.png",
    "ethiopia-class-shares.png",
    "ethiopia-land-cover-2017.png",
    "ethiopia-trend.png",
)


class MissingDataError(RuntimeError):
    """The Ethiopian pictures were required (``UPDM_REQUIRE_DATA=1``) but their data is absent."""


@dataclass(frozen=True)
class Figures:
    """What :func:`make_figures` made.

    Parameters
    ----------
    paths
        The PNGs drawn, name -> path.
    cube
        The demo cube behind :data:`FIGURES`.
    ethiopia_cube
        The Ethiopian cube behind :data:`ETHIOPIA_FIGURES`, None without the shared data.
    missing
        The pictures not drawn, name -> why (one sentence for the reader).
    """

    paths: dict[str, Path]
    cube: Path
    ethiopia_cube: Path | None = None
    missing: dict[str, str] = field(default_factory=dict)


def find_shared_data(environ: Mapping[str, str] | None = None) -> Path | None:
    """The shared data folder, by the rule of the tests (``tests/conftest.py``).

    ``UPDM_SHARED_DATA`` when it names a data folder, else ``../shared/data`` beside the
    repository; a data folder holds ``README.md`` and ``landsat/``.

    Parameters
    ----------
    environ : mapping, optional
        The environment to read ``UPDM_SHARED_DATA`` from (default ``os.environ``).

    Returns
    -------
    pathlib.Path or None
        None when no candidate is a data folder.
    """
    env = (os.environ if environ is None else environ).get("UPDM_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(REPO_ROOT.parent / "shared" / "data")
    for candidate in candidates:
        if (candidate / "README.md").is_file() and (candidate / "landsat").is_dir():
            return candidate.resolve()
    return None


def _why_no_ethiopia(shared_data: Path | None) -> str | None:
    # What is missing for the Ethiopian job, naming the folders looked at; None: nothing.
    if shared_data is None:
        return (
            "no shared Landsat data folder (a folder with README.md and landsat/) at "
            f"{REPO_ROOT.parent / 'shared' / 'data'} beside the repository or in "
            "UPDM_SHARED_DATA"
        )
    scenes = shared_data / ETHIOPIA_SCENES
    if not scenes.is_dir():
        return f"the shared data folder {shared_data} has no {ETHIOPIA_SCENES.as_posix()}/"
    return None


def make_ethiopia_cube(workdir: Path, shared_data: Path) -> Path:
    """Run the real job :data:`ETHIOPIA_JOB` into ``workdir/ethiopia-167055.icechunk``.

    The job runs as written (grid, science, batches); only where it reads and writes
    changes: its scenes are read from ``shared_data`` (which ``UPDM_SHARED_DATA`` may put
    elsewhere than the spec's ``../shared/data``) and its cube goes to ``workdir``, never
    into ``examples/``.

    Parameters
    ----------
    workdir : pathlib.Path
        The build's temporary folder.
    shared_data : pathlib.Path
        The shared data folder (:func:`find_shared_data`).

    Returns
    -------
    pathlib.Path
        The cube.
    """
    from distributed import Client

    from updm_dask.jobs import load_job_spec, run_job

    spec = load_job_spec(ETHIOPIA_JOB)
    spec = dataclasses.replace(
        spec,
        inputs=(str(shared_data / ETHIOPIA_SCENES),),
        cube=str(workdir / Path(spec.cube).name),
    )
    with Client(
        processes=False, n_workers=1, threads_per_worker=2, dashboard_address="127.0.0.1:0"
    ) as c:
        report = run_job(spec, client=c, echo=lambda _text: None)
    if report.exit_code != 0 or not (report.done or report.skipped):
        raise RuntimeError(f"the documentation's Ethiopian job failed:\n{report.format()}")
    return Path(spec.cube)


def draw_ethiopia(cube: Path, out: Path) -> dict[str, Path]:
    """Draw :data:`ETHIOPIA_FIGURES` from the Ethiopian cube into ``out``.

    Four dry-season scenes make three yearly layers (2000, 2010, 2017): a Mann-Kendall test
    on three values can never reach p < 0.05, so the trend picture is the Theil-Sen slope
    itself over every pixel with a clear observation in each year (``min_years=3``), not
    the significance-faded map of the demo, which would be uniformly faded.

    Parameters
    ----------
    cube : pathlib.Path
    out : pathlib.Path

    Returns
    -------
    dict
        name -> path of each PNG.
    """
    import dask

    from updm_dask import query as q
    from updm_dask.query.plots import plot_value_map

    lon, lat = ETHIOPIA_POINT
    paths: dict[str, Path] = {}
    with dask.config.set(scheduler="synchronous"):
        series = q.point_series(cube, lon=lon, lat=lat)
        paths["ethiopia-point-series.png"] = q.plot_point_series(
            series.scenes,
            out / "ethiopia-point-series.png",
            yearly=series.yearly,
            title=f"MVIUPD at {lon} E, {lat} N (WRS-2 167/055)",
        )
        paths["ethiopia-class-shares.png"] = q.plot_class_fractions(
            q.area_statistics(cube),
            out / "ethiopia-class-shares.png",
            title="Class shares of the whole Ethiopian cube",
        )
        paths["ethiopia-land-cover-2017.png"] = q.plot_land_cover_map(
            q.land_cover_map(cube, year=2017),
            out / "ethiopia-land-cover-2017.png",
            title="Land cover 2017 (ETM+ and OLI, March)",
        )
        trend = q.mviupd_trend(cube, min_years=3)
        first, last = trend.attrs["first_year"], trend.attrs["last_year"]
        paths["ethiopia-trend.png"] = plot_value_map(
            trend["slope"],
            out / "ethiopia-trend.png",
            label="Theil-Sen slope of the yearly median MVIUPD (per year)",
            title=f"MVIUPD trend {first}-{last} (3 yearly layers)",
            cmap="BrBG",
            symmetric=True,
        )
    return paths


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


def make_figures(
    outdir: str | Path,
    *,
    shared_data: str | Path | None = None,
    require_data: bool | None = None,
) -> Figures:
    """Build the demo and Ethiopian cubes in ``outdir`` and draw their pictures there.

    Parameters
    ----------
    outdir : str or path-like
        An empty or new folder.
    shared_data : str or path-like, optional
        The shared data folder; default :func:`find_shared_data`.
    require_data : bool, optional
        Fail without the Ethiopian data instead of leaving its pictures out; default
        ``UPDM_REQUIRE_DATA=1`` in the environment.

    Returns
    -------
    Figures
        :data:`FIGURES` always; :data:`ETHIOPIA_FIGURES` in ``paths`` or, without the
        shared data, in ``missing``.

    Raises
    ------
    MissingDataError
        ``require_data`` and the shared data or its Ethiopian scenes are absent (checked
        before anything is built).
    """
    import dask

    from updm_dask import query as q

    data = find_shared_data() if shared_data is None else Path(shared_data)
    if require_data is None:
        require_data = os.environ.get("UPDM_REQUIRE_DATA") == "1"
    why = _why_no_ethiopia(data)
    if why is not None and require_data:
        raise MissingDataError(
            f"the tutorial's Ethiopian pictures ({', '.join(ETHIOPIA_FIGURES)}) need the "
            f"real scenes of {ETHIOPIA_JOB.relative_to(REPO_ROOT).as_posix()}: {why}; "
            "UPDM_REQUIRE_DATA=1 demands them"
        )
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
    if why is not None or data is None:
        note = (
            "This picture needs the shared Landsat data (the four real scenes of WRS-2 "
            "167/055 in ../shared/data beside the repository, or in the folder "
            "UPDM_SHARED_DATA names); this site was built without it."
        )
        return Figures(paths, cube, None, dict.fromkeys(ETHIOPIA_FIGURES, note))
    ethiopia = make_ethiopia_cube(out, data)
    paths.update(draw_ethiopia(ethiopia, out))
    return Figures(paths, cube, ethiopia)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", help="folder to write the demo cube and the PNGs into")
    args = parser.parse_args(argv)
    made = make_figures(args.outdir)
    for path in made.paths.values():
        print(f"wrote {path}")
    for name, why in made.missing.items():
        print(f"left out {name}: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
