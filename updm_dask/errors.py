"""One exception hierarchy for the whole package.

Every message names the file, field or argument at fault and what was expected, so
a user can fix the input without reading the code.
"""

from __future__ import annotations


class UpdmError(Exception):
    """Base class of every error raised on purpose by updm_dask."""


class MetadataError(UpdmError, ValueError):
    """A Landsat metadata (MTL) file is missing, malformed, truncated or inconsistent."""


class SensorError(UpdmError, ValueError):
    """An unknown sensor, platform or band was asked for."""


class CalibrationError(UpdmError, ValueError):
    """Calibration constants are missing or inconsistent for a band."""


class PatternError(UpdmError, ValueError):
    """A pattern set or spectrum is malformed or does not fit the sensor."""


class DecompositionError(UpdmError, ValueError):
    """Arrays handed to the decomposition have the wrong shape or dtype."""


class RuleError(UpdmError, ValueError):
    """A rule table is malformed, or a rule-conversion cannot be applied."""


class SceneError(UpdmError):
    """A scene cannot be found, opened or is inconsistent with its metadata.

    Parameters
    ----------
    message
        What went wrong, naming the scene and the file.
    scene_id
        The Landsat scene id of the scene at fault (the key of a cube's ledger), or None
        when the error is not about one scene. A job reads it to record which scene of a
        batch failed, so it must survive the trip from a worker process to the driver.
    """

    def __init__(self, message: str, *, scene_id: str | None = None) -> None:
        super().__init__(message)
        self.scene_id = scene_id

    def __reduce__(self):
        # Exceptions pickle as type(*args): the keyword-only scene_id travels as state,
        # so a SceneError raised on a dask worker arrives whole on the driver.
        return (type(self), self.args, {"scene_id": self.scene_id})


class GridError(UpdmError, ValueError):
    """A cube grid is malformed, or a scene does not fit it."""


class CubeError(UpdmError):
    """A cube cannot be created, opened, written or committed."""


class JobSpecError(UpdmError, ValueError):
    """A job specification has an unknown key or a bad value."""


class QueryError(UpdmError, ValueError):
    """A query cannot be answered as asked (outside grid, unknown variable, ...)."""


class JobError(UpdmError):
    """A job cannot go on (cluster lost, cube unwritable); committed batches are kept."""


class PointError(GridError, QueryError):
    """A point or area is malformed, in an unknown CRS, or falls outside the cube grid.

    Raised by :mod:`updm_dask.geo.points`; it is both a :class:`GridError` (a fact about the
    grid) and a :class:`QueryError` (what a query that asked for the point reports).
    """


class VersionError(CubeError, QueryError):
    """The commit (snapshot), tag or branch asked for does not exist in the cube."""
