"""The demo tests' shared archive: the core of the schedule, generated once per session."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from updm_dask.demo import make_demo_archive

# The core of the schedule: every sensor generation, SLC-off, cloudy scenes; a small grid.
_ARGS = MappingProxyType({"seed": 7, "n_scenes": 9, "size": 48})


@pytest.fixture(scope="session")
def archive_args():
    """What the shared :func:`archive` was generated with (seed, n_scenes, size)."""
    return _ARGS


@pytest.fixture(scope="session")
def archive(tmp_path_factory, archive_args):
    """A generated demo archive (:data:`_ARGS`), shared by the demo tests."""
    return make_demo_archive(tmp_path_factory.mktemp("demo"), **archive_args)


@pytest.fixture(scope="session")
def read_band():
    """``read_band(scene, metadata, label)``: one band file of a demo scene, as written."""
    import rasterio

    def read(scene, md, label):
        with rasterio.open(scene.folder / md.band(label).file_name) as src:
            return src.read(1)

    return read
