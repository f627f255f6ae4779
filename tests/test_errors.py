"""The exception hierarchy: what an error carries survives the trip between processes."""

from __future__ import annotations

import pickle

import pytest

from updm_dask.cube import EmptyScenesError
from updm_dask.errors import SceneError, UpdmError


def test_scene_error_keeps_its_scene_id_when_pickled():
    error = SceneError("scene LC08_X: band 4 missing", scene_id="LC08_X")
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is SceneError and isinstance(back, UpdmError)
    assert str(back) == "scene LC08_X: band 4 missing" and back.scene_id == "LC08_X"
    assert pickle.loads(pickle.dumps(SceneError("not about one scene"))).scene_id is None
    with pytest.raises(TypeError):
        SceneError("message", "positional scene id")  # keyword only: messages stay first


def test_scene_error_arrives_whole_the_way_distributed_pickles_errors():
    # distributed pickles a failed task's error with tblib: causes and context included.
    from tblib import pickling_support

    try:
        try:
            raise ValueError("the kernel's own error")
        except ValueError:
            raise SceneError("scene S: ValueError: ...", scene_id="S") from None
    except SceneError as error:
        pickling_support.install(error)
        back = pickle.loads(pickle.dumps(error))
    assert isinstance(back, SceneError) and back.scene_id == "S"
    assert str(back) == "scene S: ValueError: ..."


def test_empty_scenes_error_keeps_its_scene_ids_when_pickled():
    error = EmptyScenesError("2 scenes have no valid pixel", ["A", "B"])
    back = pickle.loads(pickle.dumps(error))
    assert back.scene_ids == ("A", "B") and str(back) == "2 scenes have no valid pixel"
