"""STAC metadata of the exports: an Item beside each exported COG, a Collection of a cube.

:func:`cog_item` describes a written GeoTIFF as a STAC Item (STAC 1.1) with the
projection (``proj:``), raster (``raster:bands``) and, for class maps, classification
(``classification:classes``) extensions, and its time (``datetime``, ``start_datetime``,
``end_datetime``). :func:`cube_collection` describes a cube snapshot as a STAC Collection
with the datacube extension (``cube:dimensions``, ``cube:variables``);
:func:`export_stac` writes it (``updm export stac CUBE OUT``).

The documents are plain dictionaries written as JSON, so reading them needs no package of
ours; ``pystac.Item.from_dict`` / ``pystac.Collection.from_dict`` read and validate them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..cube import LAND_COVER_CLASSES, SCENE_VARIABLES, YEARLY_VARIABLES, CubeLike
from ..errors import QueryError
from ._style import CLASS_LEGEND, CLASS_STYLE
from .selection import Selection, TiledSelection

__all__ = [
    "CLASSIFICATION_SCHEMA",
    "DATACUBE_SCHEMA",
    "PROJECTION_SCHEMA",
    "RASTER_SCHEMA",
    "class_objects",
    "cog_item",
    "cube_collection",
    "export_stac",
    "write_item",
]

#: The STAC extension versions written (the schema URIs in ``stac_extensions``).
PROJECTION_SCHEMA = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
RASTER_SCHEMA = "https://stac-extensions.github.io/raster/v1.1.0/schema.json"
CLASSIFICATION_SCHEMA = "https://stac-extensions.github.io/classification/v1.1.0/schema.json"
DATACUBE_SCHEMA = "https://stac-extensions.github.io/datacube/v2.2.0/schema.json"

STAC_VERSION = "1.1.0"
_COG_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
_ZARR_TYPE = "application/vnd+zarr"
_RASTER_TYPES = {
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _year_range(first: int, last: int) -> tuple[str, str]:
    return _iso(datetime(first, 1, 1, tzinfo=UTC)), _iso(
        datetime(last, 12, 31, 23, 59, 59, tzinfo=UTC)
    )


def class_objects() -> list[dict[str, Any]]:
    """The land-cover classes as ``classification:classes`` (value, name, description, colour)."""
    from ..science.classify import CLASS_LONG_NAMES

    out = []
    for code, name in LAND_COVER_CLASSES.items():
        obj: dict[str, Any] = {
            "value": int(code),
            "name": name,
            "description": CLASS_LEGEND.get(code, CLASS_LONG_NAMES.get(name, name)),
        }
        if code in CLASS_STYLE:
            obj["color_hint"] = CLASS_STYLE[code][1].lstrip("#").upper()
        out.append(obj)
    return out


def _projection(crs: Any, transform: Any, shape: tuple[int, int], bounds: Any) -> dict[str, Any]:
    epsg = crs.to_epsg()
    out: dict[str, Any] = {"proj:code": f"EPSG:{epsg}"} if epsg else {"proj:wkt2": crs.to_wkt()}
    out.update(
        {
            "proj:shape": [int(shape[0]), int(shape[1])],
            "proj:transform": [float(v) for v in list(transform)[:6]],
            "proj:bbox": [float(v) for v in bounds],
        }
    )
    return out


def _footprint(crs: Any, bounds: Sequence[float]) -> tuple[list[float], dict[str, Any]]:
    from rasterio.warp import transform_bounds, transform_geom

    left, bottom, right, top = bounds
    box = {
        "type": "Polygon",
        "coordinates": [
            [[left, bottom], [right, bottom], [right, top], [left, top], [left, bottom]]
        ],
    }
    geometry = transform_geom(crs, "EPSG:4326", box)
    bbox = transform_bounds(crs, "EPSG:4326", left, bottom, right, top, densify_pts=21)
    return [float(v) for v in bbox], dict(geometry)


def _nodata(value: Any) -> Any:
    if value is None:
        return None
    value = float(value)
    if np.isnan(value):
        return "nan"
    if np.isinf(value):
        return "inf" if value > 0 else "-inf"
    return int(value) if value.is_integer() else value


def cog_item(
    path: str | os.PathLike,
    *,
    item_id: str,
    first_year: int,
    last_year: int,
    title: str | None = None,
    classes: Sequence[Mapping[str, Any]] | None = None,
    properties: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A STAC Item (as a dict) of a written GeoTIFF, read back from the file itself.

    Parameters
    ----------
    path : str or path-like
        The GeoTIFF; the Item's asset ``data`` points at it by its file name (relative to
        the Item written beside it).
    item_id : str
    first_year, last_year : int
        Calendar years the map covers: ``start_datetime``/``end_datetime`` span them, and
        ``datetime`` is their start.
    title : str, optional
    classes : sequence of mapping, optional
        ``classification:classes`` of a class map (see :func:`class_objects`).
    properties : mapping, optional
        More Item properties (e.g. ``updm:cube``, ``updm:snapshot``).

    Raises
    ------
    QueryError
        The file cannot be read as a raster; years out of order.
    """
    import rasterio
    from rasterio.errors import RasterioIOError

    if last_year < first_year:
        raise QueryError(f"cog_item: last_year {last_year} is before first_year {first_year}")
    p = Path(path)
    try:
        with rasterio.open(p) as src:
            crs, transform, shape = src.crs, src.transform, (src.height, src.width)
            bounds, dtypes, nodata = tuple(src.bounds), src.dtypes, src.nodata
            units, descriptions = src.units, src.descriptions
    except RasterioIOError as exc:
        raise QueryError(f"cog_item: cannot read {str(p)!r} as a raster: {exc}") from None
    if crs is None:
        raise QueryError(f"cog_item: {str(p)!r} has no CRS")
    bbox, geometry = _footprint(crs, bounds)
    start, end = _year_range(first_year, last_year)
    bands = []
    for i, dtype in enumerate(dtypes):
        band: dict[str, Any] = {
            "data_type": dtype if dtype in _RASTER_TYPES else "other",
            "spatial_resolution": float(abs(transform.a)),
        }
        if nodata is not None:
            band["nodata"] = _nodata(nodata)
        if units and units[i]:
            band["unit"] = units[i]
        if descriptions and descriptions[i]:
            band["name"] = descriptions[i]
        bands.append(band)
    asset: dict[str, Any] = {
        "href": f"./{p.name}",
        "type": _COG_TYPE,
        "roles": ["data"],
        "raster:bands": bands,
    }
    if title:
        asset["title"] = title
    extensions = [PROJECTION_SCHEMA, RASTER_SCHEMA]
    if classes:
        asset["classification:classes"] = [dict(c) for c in classes]
        extensions.append(CLASSIFICATION_SCHEMA)
    props: dict[str, Any] = {
        "datetime": start,
        "start_datetime": start,
        "end_datetime": end,
        **_projection(crs, transform, shape, bounds),
    }
    if title:
        props["title"] = title
    props.update(properties or {})
    return {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": extensions,
        "id": item_id,
        "geometry": geometry,
        "bbox": bbox,
        "properties": props,
        "links": [],
        "assets": {"data": asset},
    }


def write_item(item: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write a STAC document as JSON (replacing the file whole, never half-written)."""
    p = Path(path)
    tmp = p.with_name(p.name + ".partial")
    tmp.write_text(json.dumps(item, indent=1) + "\n", encoding="utf-8")
    tmp.replace(p)
    return p


def _variable(name: str, var: Any, dims: Sequence[str]) -> dict[str, Any]:
    attrs = var.attrs
    out: dict[str, Any] = {"dimensions": list(dims), "type": "data"}
    if attrs.get("long_name"):
        out["description"] = str(attrs["long_name"])
    if attrs.get("units"):
        out["unit"] = str(attrs["units"])
    if "flag_values" in attrs:
        out["values"] = [int(v) for v in attrs["flag_values"]]
    return out


def cube_collection(
    selection: Selection | CubeLike, *, collection_id: str | None = None, **where: Any
) -> dict[str, Any]:
    """A cube snapshot as a STAC Collection (a dict) with the datacube extension.

    ``cube:dimensions`` holds x and y (spatial, with their extent, step and the grid's
    CRS), time (the acquisitions) and year (the per-year layers, when built);
    ``cube:variables`` every scene and per-year variable with its description, unit and,
    for class layers, its class values. The Collection's extent is the grid's footprint
    in lon/lat and the acquisitions' time span; its asset ``cube`` points at the cube.

    Parameters
    ----------
    selection : Selection, Cube, str or path-like
        The cube and the commit described (default the branch tip).
    collection_id : str, optional
        Default: the cube's folder name.
    **where
        ``snapshot``, ``tag`` or ``branch`` (fields of :class:`~updm_dask.query.Selection`).

    Raises
    ------
    QueryError
        Unknown commit or tag; a cube without scenes (no time extent).
    """
    from rasterio.crs import CRS

    view = Selection.of(selection, **where).resolve("cube", time=False, query="export_stac")
    ds = view.dataset
    grid = view.cube.grid
    if ds.sizes.get("time", 0) == 0:
        raise QueryError(f"cube {view.location!r} holds no scene yet: a Collection needs a time")
    crs = CRS.from_wkt(grid.crs_wkt)
    ny, nx = grid.shape
    t = grid.transform
    left, top = t.c, t.f
    right, bottom = left + t.a * nx, top + t.e * ny
    bounds = (min(left, right), min(top, bottom), max(left, right), max(top, bottom))
    bbox, _ = _footprint(crs, bounds)
    times = np.sort(ds["time"].values.astype("datetime64[s]"))
    first = _iso(datetime.fromisoformat(str(times[0])).replace(tzinfo=UTC))
    last = _iso(datetime.fromisoformat(str(times[-1])).replace(tzinfo=UTC))
    epsg = crs.to_epsg()
    reference = int(epsg) if epsg else crs.to_wkt()
    half_x, half_y = abs(t.a) / 2, abs(t.e) / 2
    dimensions: dict[str, Any] = {
        "x": {
            "type": "spatial",
            "axis": "x",
            "extent": [float(ds["x"].min()) - half_x, float(ds["x"].max()) + half_x],
            "step": float(t.a),
            "reference_system": reference,
            "description": "x coordinate of projection (pixel centre)",
        },
        "y": {
            "type": "spatial",
            "axis": "y",
            "extent": [float(ds["y"].min()) - half_y, float(ds["y"].max()) + half_y],
            "step": float(t.e),
            "reference_system": reference,
            "description": "y coordinate of projection (pixel centre)",
        },
        "time": {
            "type": "temporal",
            "extent": [first, last],
            "description": "acquisition time (UTC) of each scene",
        },
    }
    variables: dict[str, Any] = {}
    for name in SCENE_VARIABLES:
        if name in ds:
            variables[name] = _variable(name, ds[name], ("time", "y", "x"))
    if "year" in ds.coords and ds.sizes.get("year", 0):
        years = [int(y) for y in ds["year"].values]
        start, end = _year_range(min(years), max(years))
        dimensions["year"] = {
            "type": "temporal",
            "extent": [start, end],
            "step": "P1Y",
            "description": "calendar year (UTC) of the per-year layers",
        }
        for name in YEARLY_VARIABLES:
            if name in ds:
                variables[name] = _variable(name, ds[name], ("year", "y", "x"))
    if "yearly_clear_count" in variables:
        variables["yearly_clear_count"]["nodata"] = int(YEARLY_VARIABLES["yearly_clear_count"].fill)
    cid = collection_id or Path(str(view.location).rstrip("/")).name or "updm-cube"
    title = str(ds.attrs.get("title") or "UPDM land-cover time-series cube")
    assets: dict[str, Any] = {
        "cube": {
            "href": str(view.location),
            "title": "the cube (Icechunk repository of Zarr arrays)",
            "type": _ZARR_TYPE,
            "roles": ["data"],
        }
    }
    tiling: dict[str, Any] = {}
    if isinstance(view, TiledSelection):
        # a tiled collection: the catalogue, and one asset per tile (its own repository)
        collection = view.cube
        assets["cube"]["title"] = (
            "the tiled collection (a catalogue and one Icechunk repository per tile)"
        )
        for tile in collection.tiles():
            r0, c0, nr, nc = collection.tiling.tile_window(tile)
            assets[f"tile-{tile}"] = {
                "href": collection.tile_location(tile),
                "title": f"tile {tile}: rows {r0}-{r0 + nr - 1}, columns {c0}-{c0 + nc - 1} "
                "of the grid",
                "type": _ZARR_TYPE,
                "roles": ["data"],
            }
        tiling = {
            "updm:tiling": {
                "tile_edge": collection.tiling.edge,
                "tile_rows": collection.tiling.rows,
                "tile_cols": collection.tiling.cols,
                "tiles": collection.tiles(),
            }
        }
    return {
        "type": "Collection",
        "stac_version": STAC_VERSION,
        "stac_extensions": [DATACUBE_SCHEMA],
        "id": cid,
        "title": title,
        "description": f"{title}: {ds.attrs.get('source', 'Landsat scenes')}. Snapshot "
        f"{view.snapshot} of the cube at {view.location}.",
        "license": "other",
        "extent": {
            "spatial": {"bbox": [bbox]},
            "temporal": {"interval": [[first, last]]},
        },
        "cube:dimensions": dimensions,
        "cube:variables": variables,
        "summaries": {"updm:classes": class_objects()},
        "assets": assets,
        "links": [],
        "updm:snapshot": view.snapshot,
        **tiling,
    }


def export_stac(
    selection: Selection | CubeLike,
    path: str | os.PathLike,
    *,
    collection_id: str | None = None,
    overwrite: bool = True,
    **where: Any,
) -> Path:
    """Write :func:`cube_collection` as a STAC Collection JSON file.

    Raises
    ------
    QueryError
        A missing folder, an existing file without ``overwrite``, and the errors of
        :func:`cube_collection`.
    """
    p = Path(path)
    if p.exists() and not overwrite:
        raise QueryError(f"export_stac: {str(p)!r} exists; choose another path or overwrite it")
    if not p.parent.is_dir():
        raise QueryError(f"export_stac: folder {str(p.parent)!r} does not exist")
    doc = cube_collection(selection, collection_id=collection_id, **where)
    return write_item(doc, p)
