"""``updm migrate``: re-encode a cube of an older format into this package's format.

Format 1 stored the six float layers as float32 (NaN fill) with zstd; format 2 stores them
as scaled integers (see :data:`~updm_dask.cube.SCENE_VARIABLES`). The migration reads every
float layer from the snapshot it starts at, writes it packed into new arrays of the same
shape and chunks, sets the format marker and commits ONCE: a crash or an error before that
commit leaves the branch at its last commit (the old format, still refused, still intact).
The per-year layers are then rebuilt with :meth:`Cube.rebuild_yearly`, so that the current
yearly schema applies; if that second step is interrupted, running the migration again
finishes it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import dask.array as da
import icechunk
import numpy as np
import zarr

from ..errors import CubeError
from ..geo import CubeGrid
from ._cube import Cube, _version
from ._io import open_repository, root_attrs, write_dask
from ._schema import (
    _FORMAT_1_FLOAT_LAYERS,
    CUBE_FORMAT,
    MARKER,
    SCENE_VARIABLES,
    check_format,
    encode_layer,
    packed_codec,
)

log = logging.getLogger("updm_dask.cube")

#: Formats :func:`migrate_cube` converts from.
MIGRATABLE = (1,)


@dataclass(frozen=True)
class MigrationResult:
    """What :func:`migrate_cube` did.

    Attributes
    ----------
    location : str
        The cube.
    from_format, to_format : int
        Format found and format now.
    layers : tuple of str
        Scene layers re-encoded (empty when the cube already had this format).
    snapshot : str or None
        The migration's commit (None when nothing was re-encoded).
    yearly_snapshot : str or None
        The commit of the rebuilt per-year layers (None when none were rebuilt).
    """

    location: str
    from_format: int
    to_format: int
    layers: tuple[str, ...]
    snapshot: str | None
    yearly_snapshot: str | None

    def format(self) -> str:
        """One line per step, for the command line."""
        if self.layers:
            lines = [
                f"cube {self.location!r}: format {self.from_format} -> {self.to_format}, "
                f"re-encoded {', '.join(self.layers)} (snapshot {self.snapshot})"
            ]
        else:
            lines = [f"cube {self.location!r} already has format {self.to_format}"]
        if self.yearly_snapshot:
            lines.append(f"per-year layers rebuilt (snapshot {self.yearly_snapshot})")
        return "\n".join(lines)


def _format_of(attrs: dict | None, name: str) -> int:
    if not attrs or MARKER not in attrs:
        raise CubeError(f"{name!r} is an Icechunk repository but not a cube")
    try:
        return int(attrs[MARKER])
    except (TypeError, ValueError):
        raise CubeError(
            f"cube {name!r}: root attribute {MARKER!r} must be a format number, "
            f"got {attrs[MARKER]!r}"
        ) from None


def _yearly_pending(cube: Cube) -> bool:
    # the newest migration is not yet followed by a rebuild of the per-year layers
    for commit in cube.history():
        action = commit["metadata"].get("action")
        if action == "rebuild_yearly":
            return False
        if action == "migrate":
            return True
    return False


def _check_layer(arr: zarr.Array, layer: str, name: str) -> None:
    old = _FORMAT_1_FLOAT_LAYERS[layer]
    fill = np.asarray(arr.metadata.fill_value)
    if arr.dtype != np.dtype(old.dtype) or arr.ndim != 3 or not np.isnan(fill):
        # never re-encode what is not format 1's float layer: it would be misread
        raise CubeError(
            f"cube {name!r}: variable {layer!r} is {arr.dtype} with fill {fill.item()!r} and "
            f"{arr.ndim} dims; format 1 stores it as float32 (time, y, x) with NaN fill. "
            "Not migrated"
        )


def migrate_cube(location: str | os.PathLike, *, branch: str = "main") -> MigrationResult:
    """Re-encode the cube at ``location`` to :data:`CUBE_FORMAT`, then rebuild per-year layers.

    Parameters
    ----------
    location : str or path-like
        Local directory or ``s3://bucket/prefix`` of a cube.
    branch : str
        Branch migrated (its tip).

    Returns
    -------
    MigrationResult

    Raises
    ------
    CubeError
        No cube there; a format newer than this package's or one it cannot convert; a
        float layer not stored as that format says.
    CubeConflictError
        Another writer committed to the branch meanwhile (nothing was changed).

    Notes
    -----
    The scene layers are re-encoded in one commit (action ``migrate``); values are rounded
    to the layers' stated precision exactly as new scenes are. Land cover, quality, the
    coordinates and the ledger are left as they are. Older snapshots keep their format and
    are refused by this package.
    """
    repo, name = open_repository(location)
    try:
        session = repo.writable_session(branch)
    except (icechunk.IcechunkError, ValueError) as exc:
        detail = getattr(exc, "message", str(exc))
        raise CubeError(f"cube {name!r}: cannot open branch {branch!r}: {detail}") from None
    fmt = _format_of(root_attrs(session.store), name)
    if fmt == CUBE_FORMAT:
        cube = Cube._open(repo, name, branch=branch)
        yearly = None
        if _yearly_pending(cube):
            yearly = cube.rebuild_yearly(message="rebuild yearly layers after migration")
        return MigrationResult(name, fmt, fmt, (), None, yearly)
    if fmt > CUBE_FORMAT:
        check_format(fmt, name)  # newer than this package: says to upgrade
    if fmt not in MIGRATABLE:
        raise CubeError(
            f"cube {name!r} has format {fmt}; this package reads format {CUBE_FORMAT} and "
            f"migrates from format {', '.join(map(str, MIGRATABLE))} only"
        )

    base = session.snapshot_id
    # read from the immutable base snapshot, not the session being rewritten
    rgroup = zarr.open_group(repo.readonly_session(snapshot_id=base).store, mode="r")
    group = zarr.open_group(session.store, mode="r+")
    sources, names = [], []
    for layer in _FORMAT_1_FLOAT_LAYERS:
        if layer not in rgroup:
            raise CubeError(f"cube {name!r}: format-1 variable {layer!r} is missing; not migrated")
        _check_layer(rgroup[layer], layer, name)
    for layer in _FORMAT_1_FLOAT_LAYERS:
        old = rgroup[layer]
        spec = SCENE_VARIABLES[layer]
        attrs = {
            k: v
            for k, v in old.attrs.items()
            if k not in ("_FillValue", "scale_factor", "add_offset", *spec.attrs)
        }
        attrs.update(spec.attrs)
        attrs.update(spec.cf_attrs)
        del group[layer]
        group.create_array(
            layer,
            shape=old.shape,
            chunks=old.chunks,
            dtype=spec.dtype,
            fill_value=spec.fill,
            compressors=[packed_codec(spec, old.chunks)],
            dimension_names=old.metadata.dimension_names,
            attributes=attrs,
        )
        if old.shape[0]:
            src = da.from_zarr(old, chunks=old.chunks, name=f"updm-migrate-{layer}-{base}")
            sources.append(encode_layer(layer, src))
            names.append(layer)
    write_dask(session, sources, names, 0)
    group.attrs[MARKER] = CUBE_FORMAT
    layers = tuple(_FORMAT_1_FLOAT_LAYERS)
    # the branch still shows the old format until this commit: a view without the check
    grid = CubeGrid.from_dict(root_attrs(session.store)["grid"])
    snap = Cube(repo, name, grid, branch=branch)._commit(
        session,
        f"migrate cube from format {fmt} to {CUBE_FORMAT}",
        {
            "action": "migrate",
            "from_format": fmt,
            "to_format": CUBE_FORMAT,
            "layers": list(layers),
            "updm_dask_version": _version(),
        },
    )
    log.info("migrated %s from format %d to %d: snapshot %s", name, fmt, CUBE_FORMAT, snap)
    cube = Cube._open(repo, name, branch=branch)
    yearly = cube.rebuild_yearly(message="rebuild yearly layers after migration")
    return MigrationResult(name, fmt, CUBE_FORMAT, layers, snap, yearly)
