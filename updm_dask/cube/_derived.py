"""Derived layers: arrays computed from a cube and kept in it, beside its scenes.

A derived layer is a named set of variables (an :class:`xarray.Dataset`) that another part
of the package computes from the cube and stores in it, such as the location embedding of
every pixel. The cube owns how they are stored, so no caller touches Zarr arrays:

- Variables keep their dims, attributes and dask chunks (the first chunk along each dim,
  made regular); numpy-backed variables get one chunk along their own dims and
  ``updm.chunks.yearly`` pixels along ``y``/``x``. The codec is the cube's (Zstandard).
  Floats fill with NaN, integers with 0; all-fill chunks are not written.
- ``y``/``x`` must be the cube grid's (the cube's coordinates and ``spatial_ref`` serve
  every layer); a layer may add its own dims with their coordinates, but not ``time`` or
  ``year``, whose coordinates belong to the scenes and per-year layers.
- Variables sit at the root of the store next to the scene variables, so plain
  ``xarray.open_zarr`` sees them; the root attribute ``derived_layers`` records which
  arrays belong to which layer (``{layer: {"variables": [...], "attrs": {...}}}``). A
  layer can neither take the name of an array of the cube's own schema nor of another
  layer's variable.
- Every change is ONE Icechunk commit; the data are computed on the active dask scheduler
  and written by the workers through forked sessions, and only the calling process
  commits, so a failure leaves the branch as it was.

:func:`write_derived`, :func:`read_derived`, :func:`list_derived` and
:func:`delete_derived` do one thing each; :class:`DerivedSession` groups several writes
(and reads of what was just written) into one commit.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import dask.array as da
import icechunk
import numpy as np
import xarray as xr
import zarr

from ..errors import CubeError, GridError
from ._cube import Cube, CubeLike, resolve_cube
from ._io import CubeConflictError, chunk_edge, root_attrs, write_dask, zstd_codec
from ._schema import SCENE_VARIABLES, TIME_COORDS, YEARLY_VARIABLES

__all__ = [
    "DERIVED_ATTR",
    "DerivedSession",
    "delete_derived",
    "list_derived",
    "read_derived",
    "write_derived",
]

log = logging.getLogger("updm_dask.cube")

#: Root attribute recording the derived layers: ``{layer: {"variables", "attrs"}}``.
DERIVED_ATTR = "derived_layers"
#: Arrays of the cube's own schema, which no derived layer may replace.
_OWN_ARRAYS = frozenset(
    {*SCENE_VARIABLES, *YEARLY_VARIABLES, *TIME_COORDS, "time", "year", "y", "x", "spatial_ref"}
)
#: Dims whose coordinates belong to the scenes and the per-year layers.
_RESERVED_DIMS = ("time", "year")
_STR = np.dtypes.StringDType()


def list_derived(cube: CubeLike) -> dict[str, tuple[str, ...]]:
    """The derived layers of a cube, at the snapshot it shows.

    Returns
    -------
    dict
        Layer name -> names of its variables (data variables and own coordinates).
    """
    c = resolve_cube(cube)
    return _variables(_records(root_attrs(c.session().store)))


def read_derived(cube: CubeLike, name: str) -> xr.Dataset:
    """A derived layer, lazily: its variables with the grid's ``y``, ``x`` and
    ``spatial_ref`` coordinates, and the layer's attributes.

    Raises
    ------
    CubeError
        The cube holds no derived layer ``name``.
    """
    c = resolve_cube(cube)
    return _layer_dataset(c.to_xarray(), name, c.location)


def write_derived(
    cube: CubeLike,
    name: str,
    data: xr.Dataset | xr.DataArray,
    *,
    message: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> str:
    """Create or replace the derived layer ``name``, in ONE commit.

    Parameters
    ----------
    cube : Cube or location
        A branch view (not pinned to a snapshot).
    name : str
        The layer's name.
    data : xarray.Dataset or xarray.DataArray
        Its variables (a DataArray is one variable, named as the DataArray or ``name``);
        lazy dask data are computed into the cube. Dataset attributes are recorded as the
        layer's. See the module docstring for dims, chunks and fill values.
    message : str, optional
        Commit message (default ``"write derived layer NAME"``).
    metadata : mapping, optional
        JSON-able commit metadata; ``action``, ``derived_layers_written``,
        ``derived_layers_deleted`` and ``updm_dask_version`` are added when absent.

    Returns
    -------
    str
        The new snapshot id.

    Raises
    ------
    CubeError
        A read-only view, a variable named like one of the cube's own arrays or another
        layer's, a ``time``/``year`` dim or a scalar coordinate.
    GridError
        ``y``/``x`` are not those of the cube grid.
    CubeConflictError
        Another writer committed to the branch meanwhile; nothing was stored.
    """
    with DerivedSession(
        cube, message=message or f"write derived layer {name}", metadata=metadata
    ) as session:
        session.write(name, data)
    return session.snapshot_id


def delete_derived(
    cube: CubeLike,
    name: str,
    *,
    message: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> str:
    """Delete the derived layer ``name`` (its arrays and its record), in ONE commit.

    Returns the new snapshot id; CubeError when there is no such layer or the view is
    read-only, CubeConflictError when another writer committed first.
    """
    with DerivedSession(
        cube, message=message or f"delete derived layer {name}", metadata=metadata
    ) as session:
        session.delete(name)
    return session.snapshot_id


class DerivedSession:
    """Changes to derived layers that become ONE commit.

    Use as a context manager: the commit is made when the block ends without an error;
    when it raises, nothing is stored. :attr:`base` is the cube as the session found it
    (compute from it, so what is stored matches the snapshot it extends)::

        with DerivedSession(cube, message="store my layer") as s:
            s.write("mine", compute(s.base))
            stats = summarise(s.read("mine"))
            s.write("mine", stats, replace=False)
        s.snapshot_id

    Parameters
    ----------
    cube : Cube or location
        A branch view.
    message : str
        Commit message.
    metadata : mapping, optional
        JSON-able commit metadata (see :func:`write_derived`).
    what : str
        Names the operation in error messages.

    Raises
    ------
    CubeError
        The view is pinned to a snapshot (read-only).
    """

    def __init__(
        self,
        cube: CubeLike,
        *,
        message: str,
        metadata: Mapping[str, Any] | None = None,
        what: str = "derived layers",
    ) -> None:
        self._cube = resolve_cube(cube)
        self._session = self._cube._writable(what)
        self._group = zarr.open_group(self._session.store, mode="r+")
        self._records = _records(dict(self._group.attrs))
        self._message = message
        self._metadata = dict(metadata or {})
        self._written: list[str] = []
        self._deleted: list[str] = []
        self._snapshot: str | None = None
        #: The cube at the snapshot this session extends (read-only).
        self.base = Cube(
            self._cube.repository,
            self._cube.location,
            self._cube.grid,
            snapshot=self._session.snapshot_id,
        )

    def __enter__(self) -> DerivedSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None and self._snapshot is None:
            self.commit()

    @property
    def snapshot_id(self) -> str:
        """The snapshot made by :meth:`commit` (the base one when nothing changed)."""
        if self._snapshot is None:
            raise CubeError("derived layers: the session is not committed yet")
        return self._snapshot

    def layers(self) -> dict[str, tuple[str, ...]]:
        """Derived layers as this session holds them: name -> variables."""
        return _variables(self._records)

    def write(self, name: str, data: xr.Dataset | xr.DataArray, *, replace: bool = True) -> None:
        """Store ``data`` as the derived layer ``name`` (computes lazy data now).

        ``replace=True`` replaces the whole layer; ``replace=False`` adds the variables
        to it (replacing those of the same name) and updates its attributes.
        """
        self._check_open()
        if not isinstance(name, str) or not name.strip() or "/" in name:
            raise CubeError(f"derived layer name: expected a plain non-empty name, got {name!r}")
        ds = _as_dataset(data, name)
        variables = self._check(name, ds)
        old = self._records.get(name, {}) if not replace else {}
        doomed = set(variables)
        if replace:
            doomed |= set(self._records.get(name, {}).get("variables", ()))
        for v in sorted(doomed):
            if v in self._group:
                del self._group[v]
        sources, targets = [], []
        zstd = zstd_codec()
        for v in variables:
            source = self._create(v, ds[v].variable, zstd)
            if source is not None:
                sources.append(source)
                targets.append(v)
        write_dask(self._session, sources, targets, 0)
        kept = [v for v in old.get("variables", ()) if v not in variables]
        self._records[name] = {
            "variables": [*kept, *variables],
            "attrs": {**old.get("attrs", {}), **_jsonable(dict(ds.attrs))},
        }
        self._group.attrs[DERIVED_ATTR] = self._records
        self._written.append(name)

    def read(self, name: str) -> xr.Dataset:
        """The derived layer ``name`` as this session holds it (lazy; written data included)."""
        self._check_open()
        ds = xr.open_zarr(self._session.store, consolidated=False, zarr_format=3, chunks={})
        return _layer_dataset(ds, name, self._cube.location)

    def delete(self, name: str) -> None:
        """Remove the derived layer ``name``: its arrays and its record."""
        self._check_open()
        if name not in self._records:
            raise CubeError(
                f"cube {self._cube.location!r} has no derived layer {name!r} "
                f"(derived layers: {sorted(self._records) or 'none'})"
            )
        for v in self._records.pop(name).get("variables", ()):
            if v in self._group:
                del self._group[v]
        self._group.attrs[DERIVED_ATTR] = self._records
        self._deleted.append(name)

    def commit(self) -> str:
        """Commit the changes (ONE snapshot) and return its id."""
        self._check_open()
        if not self._session.has_uncommitted_changes:
            self._snapshot = self.base.snapshot_id
            return self._snapshot
        from .. import __version__

        meta = {
            "action": "derived_layers",
            "derived_layers_written": sorted(set(self._written)),
            "derived_layers_deleted": sorted(set(self._deleted)),
            "updm_dask_version": __version__,
            **self._metadata,
        }
        try:
            self._snapshot = self._session.commit(self._message, metadata=meta)
        except icechunk.ConflictError as exc:
            raise CubeConflictError(
                f"another writer committed to branch {self._cube.branch!r} of "
                f"{self._cube.location!r} first; {self._message!r} was not stored. Run it "
                f"again. ({exc.message})"
            ) from None
        log.info("%s: %s: snapshot %s", self._cube.location, self._message, self._snapshot)
        return self._snapshot

    # -- internals -----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._snapshot is not None:
            raise CubeError("derived layers: the session is already committed")

    def _check(self, name: str, ds: xr.Dataset) -> list[str]:
        """Names of the variables ``ds`` stores, after checking them against the cube."""
        grid = self._cube.grid
        for dim in ds.dims:
            if dim in _RESERVED_DIMS:
                raise CubeError(
                    f"derived layer {name!r}: dim {dim!r} belongs to the cube's scenes or "
                    "per-year layers; name the layer's own axis otherwise"
                )
        for dim, centres in (("y", grid.y), ("x", grid.x)):
            if dim in ds.dims and not (
                ds.sizes[dim] == centres.size
                and (
                    dim not in ds.coords
                    or np.allclose(ds[dim].values, centres, rtol=0.0, atol=grid.resolution * 1e-6)
                )
            ):
                raise GridError(
                    f"derived layer {name!r}: its {dim} axis ({ds.sizes[dim]} pixels) is not "
                    f"the cube grid's ({centres.size} pixels from {centres[0]:.1f})"
                )
        coords = [str(k) for k in ds.coords if k not in ("y", "x", "spatial_ref")]
        variables = [str(k) for k in ds.data_vars] + coords
        owners = {v: layer for layer, rec in self._records.items() for v in rec["variables"]}
        for v in variables:
            if ds[v].ndim == 0:
                raise CubeError(
                    f"derived layer {name!r}: {v!r} is a scalar; store it as an attribute"
                )
            if v in _OWN_ARRAYS:
                raise CubeError(
                    f"derived layer {name!r}: {v!r} is one of the cube's own arrays; "
                    "choose another name"
                )
            if owners.get(v, name) != name:
                raise CubeError(
                    f"derived layer {name!r}: {v!r} belongs to derived layer {owners[v]!r}"
                )
        return variables

    def _create(self, name: str, var: xr.Variable, codec: Any) -> da.Array | None:
        """Create the array of ``var``; return its dask data to write, or None if written."""
        dims = tuple(str(d) for d in var.dims)
        attrs = _jsonable(dict(var.attrs))
        if "y" in dims and "x" in dims:
            # the cube's grid mapping serves every layer on its grid (CF, and rioxarray)
            attrs.update({"grid_mapping": "spatial_ref", "coordinates": "spatial_ref"})
        dtype = _STR if var.dtype.kind in "OUST" else var.dtype
        fill = _fill_value(dtype)
        common: dict[str, Any] = {
            "compressors": [codec],
            "dimension_names": dims,
            "attributes": attrs,
        }
        if fill is not None:
            common["fill_value"] = fill
        data = var.data
        if isinstance(data, da.Array):
            chunks = tuple(c[0] if c else 1 for c in data.chunks)
            self._group.create_array(name, shape=data.shape, chunks=chunks, dtype=dtype, **common)
            return data.rechunk(chunks)
        edge = chunk_edge(None, "chunks.yearly")
        chunks = tuple(
            max(1, min(edge, n)) if d in ("y", "x") else max(1, n)
            for d, n in zip(dims, var.shape, strict=True)
        )
        self._group.create_array(
            name, data=np.asarray(var.values, dtype=dtype), chunks=chunks, **common
        )
        return None


def _as_dataset(data: xr.Dataset | xr.DataArray, name: str) -> xr.Dataset:
    if isinstance(data, xr.DataArray):
        return data.to_dataset(name=data.name if data.name is not None else name)
    if isinstance(data, xr.Dataset):
        return data
    raise CubeError(
        f"derived layer {name!r}: expected an xarray Dataset or DataArray, "
        f"got {type(data).__name__}"
    )


def _records(attrs: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    raw = (attrs or {}).get(DERIVED_ATTR) or {}
    return {str(k): dict(v) for k, v in raw.items()}


def _variables(records: Mapping[str, Mapping[str, Any]]) -> dict[str, tuple[str, ...]]:
    return {k: tuple(v.get("variables", ())) for k, v in sorted(records.items())}


def _layer_dataset(ds: xr.Dataset, name: str, location: str) -> xr.Dataset:
    """The variables of layer ``name`` out of the whole cube ``ds``, with its attributes."""
    records = _records(ds.attrs)
    if name not in records:
        raise CubeError(
            f"cube {location!r} has no derived layer {name!r} "
            f"(derived layers: {sorted(records) or 'none'})"
        )
    if "spatial_ref" in ds.data_vars:
        ds = ds.set_coords("spatial_ref")
    out = ds[list(records[name]["variables"])]
    out.attrs = dict(records[name].get("attrs", {}))
    return out


def _fill_value(dtype: np.dtype) -> Any:
    if dtype.kind == "f":
        return np.nan
    if dtype.kind in "iu":
        return 0
    if dtype.kind == "b":
        return False
    return None  # strings: Zarr's default


def _jsonable(value: Any) -> Any:
    """Attributes as JSON values (numpy scalars and arrays become Python ones)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value
