"""The geometry of a tiled collection: a grid cut into square tiles of a fixed edge.

:class:`Tiling` names the tiles (``"r{i}c{j}"``), gives each its window and its own grid,
and finds the tiles a window or a pixel falls in; :func:`tile_edge` checks an edge (or reads
dask config ``updm.tiles.edge``). Nothing here reads or writes storage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import config
from ..errors import CubeError
from ..geo import CubeGrid

__all__ = ["Tiling", "tile_edge", "tile_order"]


def tile_edge(edge: Any = None) -> int:
    """A tile edge in pixels: ``edge``, else dask config ``updm.tiles.edge``.

    Raises
    ------
    CubeError
        Not a positive whole number (naming where it came from).
    """
    value = config.get("tiles.edge") if edge is None else edge
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
        what = "tile edge" if edge is not None else "dask config updm.tiles.edge"
        raise CubeError(f"{what}: expected a positive whole number of pixels, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class Tiling:
    """A grid cut into square tiles of ``edge`` pixels, from its north-west corner.

    Tile ``"r{i}c{j}"`` covers rows ``i*edge`` to ``(i+1)*edge`` and columns ``j*edge`` to
    ``(j+1)*edge`` of the grid, clipped at the grid's edge.

    Parameters
    ----------
    grid : CubeGrid
        The whole grid.
    edge : int
        Tile edge in pixels.
    """

    grid: CubeGrid
    edge: int

    def __post_init__(self) -> None:
        if not isinstance(self.grid, CubeGrid):
            raise CubeError(f"Tiling: grid must be a CubeGrid, got {type(self.grid).__name__}")
        object.__setattr__(self, "edge", tile_edge(self.edge))

    @property
    def rows(self) -> int:
        """Number of tile rows."""
        return math.ceil(self.grid.ny / self.edge)

    @property
    def cols(self) -> int:
        """Number of tile columns."""
        return math.ceil(self.grid.nx / self.edge)

    def __len__(self) -> int:
        return self.rows * self.cols

    @property
    def tiled(self) -> bool:
        """True when the grid spans more than one tile (else it is a single cube)."""
        return len(self) > 1

    def tile_ids(self) -> list[str]:
        """Every tile id, row by row."""
        return [f"r{i}c{j}" for i in range(self.rows) for j in range(self.cols)]

    def index(self, tile: Any) -> tuple[int, int]:
        """Row and column of tile ``tile`` (``"r{i}c{j}"``).

        Raises
        ------
        CubeError
            Not such an id, or outside the tiling (the message names both).
        """
        i = j = -1
        if isinstance(tile, str) and tile.startswith("r") and "c" in tile:
            row, _, col = tile[1:].partition("c")
            if row.isdigit() and col.isdigit() and row.isascii() and col.isascii():
                i, j = int(row), int(col)
        if not (0 <= i < self.rows and 0 <= j < self.cols):
            raise CubeError(
                f"tile {tile!r}: expected a tile id r<row>c<column> with row 0-{self.rows - 1} "
                f"and column 0-{self.cols - 1} ({self.rows} x {self.cols} tiles of "
                f"{self.edge} pixels)"
            )
        return i, j

    def tile_window(self, tile: str) -> tuple[int, int, int, int]:
        """``(row0, col0, nrows, ncols)`` of the tile on the grid."""
        i, j = self.index(tile)
        r0, c0 = i * self.edge, j * self.edge
        return r0, c0, min(self.edge, self.grid.ny - r0), min(self.edge, self.grid.nx - c0)

    def tile_grid(self, tile: str) -> CubeGrid:
        """The tile's own grid: the grid's CRS and resolution, its origin, its shape."""
        r0, c0, nr, nc = self.tile_window(tile)
        t = self.grid.transform
        shifted = (t.a, 0.0, t.c + t.a * c0, 0.0, t.e, t.f + t.e * r0)
        return CubeGrid(self.grid.crs, shifted, (nr, nc))

    def tiles_of_window(self, row0: int, col0: int, nrows: int, ncols: int) -> list[str]:
        """The tiles a window of the grid touches, row by row ([] when it misses the grid)."""
        r0, c0 = max(int(row0), 0), max(int(col0), 0)
        r1 = min(int(row0) + int(nrows), self.grid.ny)
        c1 = min(int(col0) + int(ncols), self.grid.nx)
        if r1 <= r0 or c1 <= c0:
            return []
        return [
            f"r{i}c{j}"
            for i in range(r0 // self.edge, (r1 - 1) // self.edge + 1)
            for j in range(c0 // self.edge, (c1 - 1) // self.edge + 1)
        ]

    def spans_of_window(
        self, row0: int, col0: int, nrows: int, ncols: int
    ) -> list[tuple[str, slice, slice]]:
        """Each tile a window touches with its part of the window: ``(tile, rows, cols)``,
        rows and columns of the grid, row by row."""
        out = []
        for tile in self.tiles_of_window(row0, col0, nrows, ncols):
            tr0, tc0, tnr, tnc = self.tile_window(tile)
            rows = slice(max(row0, tr0), min(row0 + nrows, tr0 + tnr))
            cols = slice(max(col0, tc0), min(col0 + ncols, tc0 + tnc))
            out.append((tile, rows, cols))
        return out

    def tile_of_pixel(self, row: int, col: int) -> str:
        """The tile holding pixel ``(row, col)`` of the grid.

        Raises
        ------
        CubeError
            The pixel is outside the grid.
        """
        if not (0 <= row < self.grid.ny and 0 <= col < self.grid.nx):
            raise CubeError(
                f"pixel (row {row}, column {col}) is outside the grid of "
                f"{self.grid.ny} x {self.grid.nx} pixels"
            )
        return f"r{row // self.edge}c{col // self.edge}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (the catalogue's ``grid`` and ``tile_edge``)."""
        return {"grid": self.grid.to_dict(), "tile_edge": self.edge}


def tile_order(tile: str) -> tuple[int, int]:
    """Sort key of a tile id: row, then column."""
    row, _, col = tile[1:].partition("c")
    return int(row), int(col)
