"""Derived layers: written, read back, listed and deleted through the cube, one commit each,
recorded in the cube's schema, never over the cube's own arrays."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr
from affine import Affine

from updm_dask.cube import (
    DerivedSession,
    create_cube,
    delete_derived,
    list_derived,
    open_cube,
    read_derived,
    write_derived,
)
from updm_dask.errors import CubeError, GridError
from updm_dask.geo import CubeGrid

NY, NX = 20, 30
GRID = CubeGrid("EPSG:32637", Affine(30, 0, 589035, 0, -30, 756165), (NY, NX))


@pytest.fixture
def cube(tmp_path):
    return create_cube(tmp_path / "c", GRID, chunks=16)


def layer(seed: int = 0) -> xr.Dataset:
    """A lazy (band, y, x) float layer, an int (y, x) count, a string axis, attributes."""
    rng = np.random.default_rng(seed)
    values = rng.random((3, NY, NX), dtype=np.float32)
    values[1, :4, :5] = np.nan
    count = rng.integers(0, 9, (NY, NX)).astype(np.int32)
    return xr.Dataset(
        {
            "score": (
                ("band", "y", "x"),
                da.from_array(values, chunks=(3, 8, 12)),
                {"long_name": "a score", "scale": np.float64(2.5)},
            ),
            "hits": (("y", "x"), da.from_array(count, chunks=(8, 12)), {"units": "1"}),
        },
        coords={"band": ["a", "b", "c"], "y": GRID.y, "x": GRID.x},
        attrs={"made_by": "test", "n": np.int64(3)},
    )


def test_write_read_list_in_one_commit(cube):
    before = len(cube.history())
    snap = write_derived(cube, "scores", layer(), message="store scores", metadata={"run": 7})
    hist = cube.history()
    assert len(hist) == before + 1 and hist[0]["id"] == snap
    assert hist[0]["message"] == "store scores"
    meta = hist[0]["metadata"]
    assert meta["run"] == 7 and meta["derived_layers_written"] == ["scores"]
    assert list_derived(cube) == {"scores": ("score", "hits", "band")}

    back = read_derived(cube, "scores")
    ref = layer()
    assert isinstance(back["score"].data, da.Array)  # lazy
    np.testing.assert_array_equal(back["score"].values, ref["score"].values)
    np.testing.assert_array_equal(back["hits"].values, ref["hits"].values)
    assert list(back["band"].values) == ["a", "b", "c"]
    assert back.attrs == {"made_by": "test", "n": 3}
    assert back["score"].attrs["long_name"] == "a score"
    assert back["score"].attrs["scale"] == 2.5
    assert "spatial_ref" in back.coords and back.rio.crs is not None
    np.testing.assert_allclose(back["y"].values, GRID.y)
    # the cube chose codec and fill; the dask chunks became the Zarr chunks
    group = zarr.open_group(cube.session().store, mode="r")
    assert group["score"].chunks == (3, 8, 12)
    assert group["hits"].chunks == (8, 12)
    assert np.isnan(group["score"].fill_value) and group["hits"].fill_value == 0
    assert type(group["score"].compressors[0]).__name__ == "ZstdCodec"
    # plain xarray sees the layer beside the scenes
    ds = xr.open_zarr(cube.session().store, consolidated=False)
    assert ds["score"].dims == ("band", "y", "x")
    assert ds.attrs["derived_layers"]["scores"]["variables"] == ["score", "hits", "band"]


def test_replace_add_and_delete(cube):
    write_derived(cube, "scores", layer(0))
    write_derived(cube, "other", xr.DataArray(np.ones((NY, NX)), dims=("y", "x"), name="ones"))
    # replacing drops the variables the new layer does not have
    write_derived(cube, "scores", layer(1)[["score"]])
    assert list_derived(cube) == {"other": ("ones",), "scores": ("score", "band")}
    np.testing.assert_array_equal(
        read_derived(cube, "scores")["score"].values, layer(1)["score"].values
    )
    assert "hits" not in cube.to_xarray()
    # a session adds variables to a layer, reading what it wrote, in one commit
    before = len(cube.history())
    with DerivedSession(cube, message="two steps") as s:
        assert s.base.read_only
        s.write("scores", layer(2))
        total = float(s.read("scores")["hits"].sum())
        s.write("scores", xr.Dataset({"total": ("one", [total])}), replace=False)
    assert len(cube.history()) == before + 1 and cube.history()[0]["id"] == s.snapshot_id
    back = read_derived(cube, "scores")
    assert float(back["total"][0]) == float(layer(2)["hits"].sum())
    assert set(list_derived(cube)["scores"]) == {"score", "hits", "band", "total"}

    snap = delete_derived(cube, "scores")
    assert cube.history()[0]["metadata"]["derived_layers_deleted"] == ["scores"]
    assert list_derived(cube) == {"other": ("ones",)}
    assert "score" not in cube.to_xarray() and "band" not in cube.to_xarray()
    # time travel still shows the deleted layer
    old = open_cube(cube.location, snapshot=cube.history()[1]["id"])
    assert "scores" in list_derived(old)
    assert snap == cube.snapshot_id


def test_nothing_is_stored_when_the_session_fails(cube):
    tip = cube.snapshot_id
    with pytest.raises(RuntimeError, match="boom"), DerivedSession(cube, message="m") as s:
        s.write("scores", layer())
        raise RuntimeError("boom")
    assert cube.snapshot_id == tip and list_derived(cube) == {}
    # nothing changed: no commit at all
    with DerivedSession(cube, message="nothing") as s:
        pass
    assert s.snapshot_id == tip == cube.snapshot_id


def test_refusals(cube):
    with pytest.raises(CubeError, match="own arrays"):
        write_derived(cube, "bad", xr.DataArray(np.ones((NY, NX)), dims=("y", "x"), name="uCw"))
    with pytest.raises(CubeError, match="belongs to the cube's scenes"):
        write_derived(cube, "bad", xr.DataArray(np.ones((2, NY, NX)), dims=("time", "y", "x")))
    with pytest.raises(GridError, match="cube grid"):
        write_derived(cube, "bad", xr.DataArray(np.ones((NY, NX + 1)), dims=("y", "x")))
    shifted = xr.DataArray(np.ones((NY, NX)), dims=("y", "x"), coords={"y": GRID.y + 30.0})
    with pytest.raises(GridError, match="y axis"):
        write_derived(cube, "bad", shifted)
    with pytest.raises(CubeError, match="scalar"):
        write_derived(cube, "bad", xr.Dataset({"s": ((), 1.0)}))
    write_derived(cube, "scores", layer())
    with pytest.raises(CubeError, match="belongs to derived layer 'scores'"):
        write_derived(cube, "bad", xr.DataArray(np.ones((NY, NX)), dims=("y", "x"), name="hits"))
    with pytest.raises(CubeError, match="no derived layer 'nope'"):
        read_derived(cube, "nope")
    with pytest.raises(CubeError, match="no derived layer 'nope'"):
        delete_derived(cube, "nope")
    assert list_derived(cube) == {"scores": ("score", "hits", "band")}
    pinned = open_cube(cube.location, snapshot=cube.snapshot_id)
    with pytest.raises(CubeError, match="read-only"):
        write_derived(pinned, "scores", layer())
