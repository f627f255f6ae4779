"""The cube's scene variables an embedding reads, at one snapshot and for one period.

The embedding reads the scene arrays of the cube's documented Zarr layout (see
:mod:`updm_dask.cube`) through the cube's read-only session, not through
``Cube.to_xarray``, for two reasons of speed: the whole-cube layer reads many time slots
of a spatial block in ONE task (instead of one task per stored ``(1, C, C)`` chunk), and a
point reads only the window around it by orthogonal indexing, without building a graph.
Everything is pinned to the snapshot seen when the inputs are opened, so the layer and the
time axes always describe the same scenes.
"""

from __future__ import annotations

from dataclasses import dataclass

import dask.array as da
import numpy as np
import zarr

from ..cube import Cube, decode_layer
from ._kernel import INPUTS, time_axes
from ._period import Period

__all__ = ["SceneInputs", "n_time_slots"]


def n_time_slots(cube: Cube) -> int:
    """Time slots (scenes) the cube holds at the snapshot it shows."""
    return int(_group(cube.session().store)["time"].shape[0])


def _group(store: object) -> zarr.Group:
    return zarr.open_group(store, mode="r")


@dataclass(frozen=True, eq=False)
class SceneInputs:
    """The scene arrays of a cube at one snapshot, and the slots of one period.

    Attributes
    ----------
    snapshot : str
        The snapshot read.
    n_slots : int
        Time slots of the cube at that snapshot.
    keep : numpy.ndarray of int
        Slots (storage order) whose acquisition lies in the period.
    epoch, t, phase : numpy.ndarray
        Their time axes (:func:`~._kernel.time_axes`).
    """

    group: zarr.Group
    snapshot: str
    n_slots: int
    keep: np.ndarray
    epoch: np.ndarray
    t: np.ndarray
    phase: np.ndarray

    @classmethod
    def open(cls, cube: Cube, period: Period) -> SceneInputs:
        """The inputs of ``cube`` at the snapshot it shows now, for ``period``."""
        snap = cube.snapshot_id
        group = _group(cube.repository.readonly_session(snapshot_id=snap).store)
        # on disk: int64 microseconds since 1970 (the cube's documented time encoding)
        times = np.asarray(group["time"][:], dtype=np.int64).astype("datetime64[us]")
        epoch, t, phase = time_axes(times, period)
        keep = np.flatnonzero(epoch >= 0)
        return cls(group, snap, int(times.size), keep, epoch[keep], t[keep], phase[keep])

    def lazy(self, time_chunk: int, spatial_chunk: int) -> list[da.Array]:
        """The :data:`~._kernel.INPUTS` of the period's slots as ``(time, y, x)`` dask arrays.

        Read straight from Zarr in ``(time_chunk, spatial_chunk, spatial_chunk)`` blocks.
        """
        _, ny, nx = self.group[INPUTS[0]].shape
        tc = max(1, min(int(time_chunk), max(self.n_slots, 1)))
        cs = spatial_chunk
        arrays = []
        for name in INPUTS:
            a = da.from_zarr(
                self.group[name],
                chunks=(tc, min(cs, ny), min(cs, nx)),
                name=f"updm-embed-read-{name}-{self.snapshot}-{tc}-{cs}",
            )
            a = decode_layer(name, a)  # packed scene layers read as float32 values
            arrays.append(a if self.keep.size == self.n_slots else a[self.keep])
        return arrays

    def window(self, rows: slice, cols: slice, mask: np.ndarray) -> list[np.ndarray]:
        """The :data:`~._kernel.INPUTS` of the period's slots at the ``mask`` pixels of a
        window: ``(time, n_pixels)`` numpy arrays."""
        return [
            decode_layer(n, np.asarray(self.group[n].oindex[self.keep, rows, cols]))[:, mask]
            for n in INPUTS
        ]
