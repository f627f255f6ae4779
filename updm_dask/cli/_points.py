"""The one way the ``updm`` commands take a point: ``--lonlat LON LAT`` or ``--xy X Y``.

``--lonlat`` is longitude, latitude in WGS 84 degrees (west and south negative);
``--xy`` is the cube's own CRS, or ``--crs``. ``updm embed`` and ``updm similar`` also
accept their former ``--lon X --lat Y``, hidden from the help and deprecated.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ..errors import QueryError
from ..geo.points import LONLAT
from ._output import note

__all__ = ["add_point", "point_of"]

LONLAT_HELP = "the point as longitude, latitude in WGS 84 degrees (west and south negative)"
XY_HELP = "the point in the cube's CRS (or in --crs)"
CRS_HELP = "CRS of --xy, e.g. EPSG:32637 (default: the cube's)"


def add_point(p: argparse.ArgumentParser, *, required: bool, deprecated: bool = False) -> None:
    """Add ``--lonlat``, ``--xy`` and ``--crs`` (and the hidden ``--lon``/``--lat``)."""
    g = p.add_mutually_exclusive_group(required=required and not deprecated)
    g.add_argument("--lonlat", nargs=2, type=float, metavar=("LON", "LAT"), help=LONLAT_HELP)
    g.add_argument("--xy", nargs=2, type=float, metavar=("X", "Y"), help=XY_HELP)
    p.add_argument("--crs", help=CRS_HELP)
    if deprecated:
        # today's spellings keep working; deprecated in favour of --lonlat
        p.add_argument("--lon", type=float, help=argparse.SUPPRESS)
        p.add_argument("--lat", type=float, help=argparse.SUPPRESS)
    p.set_defaults(point_required=required)


def point_of(
    args: argparse.Namespace, cube_crs: Callable[[], Any] | None
) -> tuple[float, float, Any] | None:
    """The point given on the command line as ``(a, b, crs)``, or None when none is.

    Parameters
    ----------
    args : argparse.Namespace
    cube_crs : callable or None
        Returns the CRS ``--xy`` is in when no ``--crs`` is given (the cube's); None where
        no cube is at hand (``--xy`` then needs ``--crs``).

    Raises
    ------
    QueryError
        Half a point, the deprecated spelling mixed with the new one, ``--crs`` without
        ``--xy``, a required point missing.
    """
    lon, lat = getattr(args, "lon", None), getattr(args, "lat", None)
    if lon is not None or lat is not None:
        if args.lonlat or args.xy:
            raise QueryError("--lon/--lat: give the point once, as --lonlat LON LAT")
        if lon is None or lat is None:
            raise QueryError("give both --lon and --lat (deprecated; better: --lonlat LON LAT)")
        note("updm: --lon X --lat Y is deprecated; use --lonlat LON LAT")
        args.lonlat = [lon, lat]
    if args.crs is not None and not args.xy:
        raise QueryError("--crs: it is the CRS of --xy X Y; --lonlat is always WGS 84 degrees")
    if args.lonlat:
        return float(args.lonlat[0]), float(args.lonlat[1]), LONLAT
    if args.xy:
        if args.crs is not None:
            crs = args.crs
        elif cube_crs is None:
            raise QueryError("--xy: give --crs as well (there is no cube whose CRS it is)")
        else:
            crs = cube_crs()
        return float(args.xy[0]), float(args.xy[1]), crs
    if getattr(args, "point_required", False):
        raise QueryError("give the point: --lonlat LON LAT, or --xy X Y in the cube's CRS")
    return None
