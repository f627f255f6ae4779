"""Generating the archive: scene records, discovery, determinism, bad arguments."""

from __future__ import annotations

import numpy as np
import pytest

from updm_dask.demo import MIN_SIZE, make_demo_archive
from updm_dask.errors import GridError, SceneError
from updm_dask.metadata import read_mtl
from updm_dask.science.sensors import get_sensor


def test_scene_records(archive, archive_args):
    scenes = archive.scenes
    assert len(scenes) == archive_args["n_scenes"]
    assert [s.acquired for s in scenes] == sorted(s.acquired for s in scenes)
    assert {s.sensor for s in scenes} == {"MSS", "TM", "ETM+", "OLI", "OLI-2"}
    assert {s.satellite for s in scenes if s.sensor == "MSS"} & {1, 2, 3}
    assert {s.satellite for s in scenes if s.sensor == "MSS"} & {4, 5}
    assert any(s.slc_off for s in scenes)
    assert any(s.cloud_fraction > 0 and s.sensor == "MSS" for s in scenes)
    assert any(s.cloud_fraction > 0 and s.sensor != "MSS" for s in scenes)
    for s in scenes:
        assert s.folder.parent == archive.root
        assert s.folder.name == s.product_id
        assert s.acquired.tzinfo is not None and s.acquired.date() == s.date
        assert 0.0 <= s.cloud_fraction < 0.6
        assert archive.scene(s.product_id) is s
    with pytest.raises(SceneError, match="no scene 'LX99"):
        archive.scene("LX99_nothing")


def test_archive_is_found_and_opened_by_scene_discovery(archive):
    scenes = pytest.importorskip("updm_dask.scenes")
    found = scenes.discover_scenes(archive.root)
    assert not found.problems
    assert [s.id for s in found.scenes] == [s.product_id for s in archive.scenes]
    for source in found.scenes:
        scene = archive.scene(source.id)
        ds = scenes.open_scene(source)
        labels = get_sensor(scene.sensor, scene.satellite).band_labels
        assert [str(b) for b in ds["band"].values] == list(labels)
        assert ds["dn"].shape[1:] == (
            archive.grid.mss_shape if scene.sensor == "MSS" else archive.grid.shape
        )
        assert ("qa" in ds) == (scene.sensor != "MSS")


def test_same_seed_same_archive_other_seed_other_archive(tmp_path, read_band):
    a = make_demo_archive(tmp_path / "a", seed=3, n_scenes=3, size=MIN_SIZE)
    b = make_demo_archive(tmp_path / "b", seed=3, n_scenes=3, size=MIN_SIZE)
    c = make_demo_archive(tmp_path / "c", seed=4, n_scenes=3, size=MIN_SIZE)
    assert [s.product_id for s in a.scenes] == [s.product_id for s in b.scenes]
    for sa, sb in zip(a.scenes, b.scenes, strict=True):
        names = sorted(p.name for p in sa.folder.iterdir())
        assert names == sorted(p.name for p in sb.folder.iterdir())
        for name in names:
            assert (sa.folder / name).read_bytes() == (sb.folder / name).read_bytes(), name
    np.testing.assert_array_equal(a.truth_class(2024), b.truth_class(2024))
    differs = False
    for sa, sc in zip(a.scenes, c.scenes, strict=True):
        md_a, md_c = read_mtl(sa.mtl_path), read_mtl(sc.mtl_path)
        label = next(iter(md_a.bands))
        differs |= not np.array_equal(read_band(sa, md_a, label), read_band(sc, md_c, label))
    assert differs


def test_regenerating_replaces_the_previous_archive(tmp_path):
    first = make_demo_archive(tmp_path, n_scenes=4, size=MIN_SIZE)
    second = make_demo_archive(tmp_path, n_scenes=2, size=MIN_SIZE)
    assert first.root == second.root
    folders = sorted(p.name for p in second.root.iterdir() if p.is_dir())
    assert folders == sorted(s.product_id for s in second.scenes)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"size": MIN_SIZE - 2}, GridError, "size=30 is outside"),
        ({"size": 0}, GridError, "outside"),
        ({"size": 41}, GridError, "odd"),
        ({"size": 40.0}, GridError, "must be an integer"),
        ({"n_scenes": 0}, SceneError, "n_scenes=0 is outside"),
        ({"n_scenes": 10_000}, SceneError, "outside"),
        ({"seed": -1}, SceneError, "seed must be a non-negative integer"),
    ],
)
def test_bad_arguments_are_refused(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        make_demo_archive(tmp_path, **kwargs)
    assert not (tmp_path / "archive").exists()


def test_workdir_that_is_a_file_or_a_foreign_folder_is_refused(tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("not a folder")
    with pytest.raises(SceneError, match="is a file; expected a directory"):
        make_demo_archive(a_file, size=MIN_SIZE, n_scenes=1)
    foreign = tmp_path / "w" / "archive"
    foreign.mkdir(parents=True)
    (foreign / "precious.txt").write_text("keep me")
    with pytest.raises(SceneError, match="is not a demo archive"):
        make_demo_archive(tmp_path / "w", size=MIN_SIZE, n_scenes=1)
    assert (foreign / "precious.txt").read_text() == "keep me"
