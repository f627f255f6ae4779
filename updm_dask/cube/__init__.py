"""The land-cover time-series cube: Zarr v3 inside an Icechunk repository.

Layout (one Icechunk repository, root group)
--------------------------------------------
- Root attributes: ``updm_cube_format`` (marks the repository as a cube), ``grid`` (the
  :class:`~updm_dask.geo.grid.CubeGrid` as a dict), ``Conventions = "CF-1.10"``, ``title``,
  ``updm_dask_version`` (of the creating package).
- ``y``, ``x``: pixel-centre coordinates (metres, CF projection_y/x_coordinate), and
  ``spatial_ref``: the CF grid mapping exactly as rioxarray writes it (``crs_wkt``,
  ``spatial_ref``, ``GeoTransform``), so ``xarray.open_zarr(session.store)`` with rioxarray
  gives a georeferenced Dataset without any updm_dask code.
- Scene-level arrays, dims ``(time, y, x)``, chunks ``(1, C, C)`` (``C`` from dask config
  ``updm.chunks.cube``, clipped to the grid) so that every scene owns its chunks: ``uCw``,
  ``uCv``, ``uCs``, ``uC4``, ``residual``, ``mviupd`` (scaled integers with CF
  ``scale_factor``/``add_offset``/``_FillValue``, read as float with NaN; each layer's step
  and precision are in its attributes and :data:`SCENE_VARIABLES`), ``land_cover``
  (uint8, CF flags 0 no_data, 1 cloud, 2 water, 3 vegetation, 4 non_vegetated; fill 0) and
  ``quality`` (uint8 bit flags of :mod:`updm_dask.science.masks`; fill 1 = FILL). Zstandard
  compression (``updm.compression.zstd-level``), after a byte shuffle for the packed layers;
  all-fill chunks are never written. Cubes of format 1 (float32 layers) are refused until
  ``updm migrate`` (:func:`migrate_cube`) re-encodes them.
- Per-scene coordinates along ``time``: ``time`` (acquisition, UTC; int64 microseconds
  since 1970 on disk), ``scene_id``, ``product_id``, ``sensor``, ``platform``,
  ``sun_elevation``, and the provenance of the scene's coefficients and classes
  ``pattern_set``, ``pattern_set_sha256``, ``rules``, ``rules_sha256`` (empty when not
  given). Time slots are stored in commit order; the readers (``Cube.to_xarray()``, the
  queries) present them in acquisition order.
- Per-year layers, dims ``(year, y, x)``, chunked long in time and small in space
  (``updm.chunks.yearly``) for trend reads: ``yearly_land_cover``,
  ``yearly_mviupd_median``, ``yearly_clear_count``, ``yearly_class_count``, with an int16
  ``year`` coordinate. ``yearly_clear_count`` is 65535 (``CLEAR_COUNT_FILL``, its fill)
  where no scene of the year covered the pixel and 0 where one did but none was clear
  (cubes written before hold 0 for both: see ``clear_count_with_fill``); the queries
  count the fill as 0 clear observations. ``yearly_mviupd_median`` is packed like the
  scene layers, as int32 codes of 0.0005 (half the scene layer's step: a median of stored
  values is stored exactly); layers built before hold it as float32, read as they are
  until the next rebuild rebuilds every year.
- Time-blocked copies of the scene layers (group ``time_blocks``, chunks
  ``(B, E, E)``), built by :func:`compact_time_blocks` so a pixel's history is a few reads;
  see :mod:`updm_dask.cube._timeblocks`.
- Scenes that hold no valid pixel in the cube (a tilted scene's collar in a tile), as a
  job found them: group ``empty_scenes``, array ``scene_id``, appended by
  :func:`record_empty_scenes` and read by :func:`empty_scene_ids`; see
  :mod:`updm_dask.cube._empty`.
- Derived layers written by other packages (e.g. the location embedding), recorded in the
  root attribute ``derived_layers``; see :mod:`updm_dask.cube._derived`.

Transactions
------------
Every batch of scenes is ONE Icechunk commit made by the calling process; dask tasks
(threads, processes or distributed workers) write chunks through forked sessions that are
merged back before the commit, so anything failing before the commit leaves the branch
exactly as it was. The ledger of stored scenes is the ``scene_id`` coordinate at the branch
tip; :meth:`Cube.append_scenes` skips scenes already in it. Two writers appending to one
branch both grow the same arrays, which Icechunk cannot merge without risking a slot being
claimed twice, so the second to commit gets :class:`CubeConflictError`, nothing of its batch
is stored, and it should re-read the ledger and retry. On a local path Icechunk cannot make
two exactly simultaneous commits atomic (it warns about it when a repository is opened), so
a local cube takes one writing process at a time: the writer holds an OS lock (``flock`` on
``.updm-writer.lock`` in the cube's folder) from its first write, or from
``open_cube(..., for_writing=True)`` as a job does, until :meth:`Cube.close` or the end of
the process (however it ends); a second writing process gets a :class:`CubeError` naming
the first. Use an object store when several jobs write to one cube concurrently.

Commits stay cheap as the cube grows: manifests are split along ``time``
(``updm.cube.manifest-split-scenes`` slots each, saved in the repository when the cube is
created or first opened for writing), so a commit rewrites the manifests of the slots it
wrote, not the history. Old snapshots are expired, and the storage only they used deleted,
by :func:`collect_garbage` (``updm gc CUBE [--older-than DAYS] [--keep-tags]``); over every
tile of a tiled collection by :func:`collect_collection_garbage` and
:func:`compact_collection` (``updm gc``/``updm compact`` given the collection).

A cube whose creation was killed at any step (a folder with only the writer lock, the files
of an unfinished ``Repository.create``, or a repository holding only its first commit) is
completed by the next :func:`create_cube` or job run at that location.

Tiled collections
-----------------
A grid larger than one tile (``updm.tiles.edge`` pixels, or a job spec's ``[tiles] edge``)
is stored as a tiled collection: one cube per tile under ``LOCATION/tiles/r{i}c{j}`` and a
small catalogue at ``LOCATION/catalogue``; see :mod:`updm_dask.cube._tiles`,
:func:`open_collection` and :class:`Collection`. ``open_cube`` on a collection says so.

Locations
---------
A local directory, or ``s3://bucket/prefix`` through the same API. Credentials come from
the standard AWS chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``,
profiles, instance roles) and are never logged, stored in the cube, or put in task graphs;
``AWS_REGION`` (or ``AWS_DEFAULT_REGION``) and ``AWS_ENDPOINT_URL`` (or
``AWS_ENDPOINT_URL_S3``) select an S3-compatible server (path-style addressing, and plain
http when the endpoint URL says ``http://``).
"""

from __future__ import annotations

from ._cube import (
    Cube,
    CubeLike,
    create_cube,
    open_cube,
    resolve_cube,
)
from ._derived import (
    DerivedSession,
    delete_derived,
    list_derived,
    read_derived,
    write_derived,
)
from ._empty import empty_scene_ids, record_empty_scenes
from ._gc import GarbageReport, collect_garbage
from ._info import collection_info, cube_info, format_collection_info, format_cube_info
from ._io import CubeConflictError, EmptyScenesError, cube_exists
from ._migrate import MigrationResult, migrate_cube
from ._schema import (
    CLEAR_COUNT_FILL,
    CUBE_FORMAT,
    LAND_COVER_CLASSES,
    QUALITY_CLOUD,
    QUALITY_CLOUD_SHADOW,
    QUALITY_DARK,
    QUALITY_FILL,
    QUALITY_NOT_CLEAR,
    QUALITY_SATURATED,
    QUALITY_SLC_GAP,
    SCENE_VARIABLES,
    STR_COORDS,
    YEARLY_CLASS_PRIORITY,
    YEARLY_VARIABLES,
    decode_dataset,
    decode_layer,
    encode_layer,
)
from ._tags import icechunk_detail
from ._tiles import (
    Collection,
    Tiling,
    as_collection,
    collection_exists,
    create_collection,
    open_collection,
    tile_edge,
)
from ._timeblocks import (
    compact_time_blocks,
    pixel_history,
    time_block_slots,
    time_blocks_info,
)
from ._upkeep import (
    CollectionUpkeep,
    collect_collection_garbage,
    compact_collection,
    describe_compaction,
)
from ._yearly import (
    clear_count_as_counted,
    clear_count_fill,
    clear_count_with_fill,
    yearly_summary,
)

__all__ = [
    "CLEAR_COUNT_FILL",
    "CUBE_FORMAT",
    "LAND_COVER_CLASSES",
    "QUALITY_CLOUD",
    "QUALITY_CLOUD_SHADOW",
    "QUALITY_DARK",
    "QUALITY_FILL",
    "QUALITY_NOT_CLEAR",
    "QUALITY_SATURATED",
    "QUALITY_SLC_GAP",
    "SCENE_VARIABLES",
    "STR_COORDS",
    "YEARLY_CLASS_PRIORITY",
    "YEARLY_VARIABLES",
    "Collection",
    "CollectionUpkeep",
    "Cube",
    "CubeConflictError",
    "CubeLike",
    "DerivedSession",
    "EmptyScenesError",
    "GarbageReport",
    "MigrationResult",
    "Tiling",
    "as_collection",
    "clear_count_as_counted",
    "clear_count_fill",
    "clear_count_with_fill",
    "collect_collection_garbage",
    "collect_garbage",
    "collection_exists",
    "collection_info",
    "compact_collection",
    "compact_time_blocks",
    "create_collection",
    "create_cube",
    "cube_exists",
    "cube_info",
    "decode_dataset",
    "decode_layer",
    "delete_derived",
    "describe_compaction",
    "empty_scene_ids",
    "encode_layer",
    "format_collection_info",
    "format_cube_info",
    "icechunk_detail",
    "list_derived",
    "migrate_cube",
    "open_collection",
    "open_cube",
    "pixel_history",
    "read_derived",
    "record_empty_scenes",
    "resolve_cube",
    "tile_edge",
    "time_block_slots",
    "time_blocks_info",
    "write_derived",
    "yearly_summary",
]
