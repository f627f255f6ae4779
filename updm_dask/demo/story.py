"""The demo's story: one grid, a planted land-cover history on it, and a schedule of scenes.

Everything here is about the ground and the calendar, nothing about sensors or files:

- :class:`DemoGrid`, the one 30 m UTM grid (a 6 km square in the Kansai plain at the default
  size) that every scene lies on and the cube is built on;
- the land-cover history (:func:`make_story`): a town that clears the forest around it and
  spreads outward decade by decade (cleared, bare ground for :data:`BUILD_DELAY_YEARS`, then
  built up; both are class 4, ``non_vegetated``), a reservoir that floods a forested valley in
  :data:`RESERVOIR_FILL_YEAR`, a lake (stable water) and a corner of untouched forest
  (stable vegetation) as controls;
- the planted coefficients of each cover (:data:`COVER_COEFFICIENTS`);
- the schedule (:data:`SCHEDULE`): about one scene a year from 1973 to 2024, on the
  platforms that really flew, and the order in which a subset is chosen
  (:func:`schedule_order`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from ..geo import CubeGrid
from ..geo.points import grid_lonlat

__all__ = [
    "BUILD_DELAY_YEARS",
    "CLASS_NAMES",
    "CLOUD",
    "COVERS",
    "COVER_CLASS",
    "COVER_COEFFICIENTS",
    "COVER_TEXTURE",
    "DEMO_EPSG",
    "FIRST_YEAR",
    "LAND_CLASSES",
    "LAST_YEAR",
    "MAX_SIZE",
    "MIN_SIZE",
    "MSS_FACTOR",
    "NEVER",
    "NO_DATA",
    "RESERVOIR_FILL_YEAR",
    "RESOLUTION",
    "SCHEDULE",
    "URBAN",
    "VEGETATION",
    "WATER",
    "DemoGrid",
    "Slot",
    "Story",
    "demo_grid",
    "make_story",
    "rng",
    "schedule_order",
    "smooth_field",
]

# --------------------------------------------------------------------------------------
# Classes

NO_DATA, CLOUD, WATER, VEGETATION, URBAN = 0, 1, 2, 3, 4
CLASS_NAMES: Mapping[int, str] = MappingProxyType(
    {
        NO_DATA: "no_data",
        CLOUD: "cloud",
        WATER: "water",
        VEGETATION: "vegetation",
        URBAN: "non_vegetated",  # the town and the cleared ground alike
    }
)
#: The classes a clear pixel can take (what the recovery report judges).
LAND_CLASSES = (WATER, VEGETATION, URBAN)

# --------------------------------------------------------------------------------------
# The grid

# A 6 km square in the Kansai plain (UTM zone 53N), the region of the note's 1985 scenes.
DEMO_EPSG = 32653
_ORIGIN_X, _ORIGIN_Y = 546000.0, 3843000.0  # upper-left pixel EDGE, a multiple of 60 m
RESOLUTION = 30.0
MSS_FACTOR = 2  # MSS pixels are 60 m: 2 x 2 cube pixels
MIN_SIZE = 32
MAX_SIZE = 4096


@dataclass(frozen=True)
class DemoGrid:
    """The demo's one grid (the cube grid): CRS, affine transform and shape.

    Attributes
    ----------
    crs
        ``"EPSG:326zz"``.
    transform
        Affine coefficients ``(a, b, c, d, e, f)`` as rasterio orders them:
        ``x = a * col + b * row + c``, ``y = d * col + e * row + f`` (pixel edges).
    shape
        ``(ny, nx)``.
    """

    crs: str
    transform: tuple[float, float, float, float, float, float]
    shape: tuple[int, int]

    @property
    def resolution(self) -> float:
        """Pixel size (m)."""
        return float(self.transform[0])

    @property
    def mss_transform(self) -> tuple[float, float, float, float, float, float]:
        """Transform of the MSS scenes: 60 m pixels sharing the grid's upper-left corner."""
        a, b, c, d, e, f = self.transform
        return (a * MSS_FACTOR, b, c, d, e * MSS_FACTOR, f)

    @property
    def mss_shape(self) -> tuple[int, int]:
        """Shape of the MSS scenes (each MSS pixel covers 2 x 2 grid pixels)."""
        return (self.shape[0] // MSS_FACTOR, self.shape[1] // MSS_FACTOR)

    def cells(self, sensor: str) -> DemoGrid:
        """The pixel grid of a scene of ``sensor``: 60 m for MSS, else the grid itself."""
        if sensor == "MSS":
            return DemoGrid(self.crs, self.mss_transform, self.mss_shape)
        return self

    @property
    def cube_grid(self) -> CubeGrid:
        """The same grid as a :class:`~updm_dask.geo.CubeGrid`."""
        return CubeGrid(self.crs, self.transform, self.shape)

    def latlon(self, cols_rows: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
        """Latitude and longitude (WGS84 degrees) of fractional ``(col, row)`` positions."""
        a, b, c, d, e, f = self.transform
        xs = [a * col + b * row + c for col, row in cols_rows]
        ys = [d * col + e * row + f for col, row in cols_rows]
        lons, lats = grid_lonlat(self.cube_grid, xs, ys)
        return [(float(lat), float(lon)) for lat, lon in zip(lats, lons, strict=True)]

    def centre_latlon(self) -> tuple[float, float]:
        """Latitude and longitude of the grid's centre."""
        return self.latlon([(self.shape[1] / 2, self.shape[0] / 2)])[0]


def demo_grid(size: int) -> DemoGrid:
    """The demo grid of ``size`` x ``size`` pixels of 30 m (``size`` already checked)."""
    return DemoGrid(
        crs=f"EPSG:{DEMO_EPSG}",
        transform=(RESOLUTION, 0.0, _ORIGIN_X, 0.0, -RESOLUTION, _ORIGIN_Y),
        shape=(size, size),
    )


# --------------------------------------------------------------------------------------
# The covers and their coefficients

FIRST_YEAR, LAST_YEAR = 1973, 2024
RESERVOIR_FILL_YEAR = 1994
BUILD_DELAY_YEARS = 3  # cleared (bare) ground becomes built-up this many years later
NEVER = 9999

# Planted coefficients (uCw, uCv, uCs) of each cover; uC4 = 0 everywhere.
# Margins against the TM (Table 5) and MSS (Table 8) rules, S = uCw + uCv + uCs:
# - forest: MVIUPD ~ 0.87 (>= 0.458 TM, 0.286 MSS); S ~ 0.11 stays under the MSS cloud
#   S >= 0.130 even with texture, so noise in uCw can never make it "cloud"; uCv >> 0.035
#   keeps it out of "water", also when dimmed by a cloud shadow.
# - cleared ground and built-up: MVIUPD <= 0 (< 0.286); S > 0.062 (not water), S < 0.130
#   (not cloud whatever uCw).
# - water: uCv <= 0.025 and S ~ 0.02 <= 0.059 (water in both tables), far from cloud.
# - cloud: uCw = 0.012 >= 0.00663 (TM) / 0.00374 (MSS), S ~ 0.31 >= 0.161 / 0.130; kept dim
#   enough that no band saturates (TM band 1 saturates near rho * sin(elev) = 0.31).
COVER_COEFFICIENTS: Mapping[str, tuple[float, float, float]] = MappingProxyType(
    {
        "forest": (0.0, 0.100, 0.012),
        "cleared": (0.002, 0.010, 0.105),
        "urban": (0.003, 0.020, 0.085),
        "water": (0.012, 0.003, 0.004),
        "cloud": (0.012, 0.100, 0.200),
    }
)
#: The ground covers, in the order :meth:`Story.cover` codes them (0 forest ... 3 water).
COVERS = ("forest", "cleared", "urban", "water")
COVER_CLASS = np.array([VEGETATION, URBAN, URBAN, WATER], dtype=np.uint8)
#: Relative amplitude of each cover's static spatial texture (canopy, roofs, turbidity).
COVER_TEXTURE = np.array([0.06, 0.08, 0.10, 0.05])


# --------------------------------------------------------------------------------------
# The schedule of scenes


@dataclass(frozen=True)
class Slot:
    """One scene of the schedule: its year, sensor, satellite, whether it is cloudy, and
    (for the few scenes whose date matters) a fixed month and day."""

    year: int
    sensor: str
    satellite: int
    cloudy: bool
    month_day: tuple[int, int] | None = None


def _slots() -> tuple[Slot, ...]:
    # (year, sensor, satellite, cloudy[, fixed month-day]); about one scene a year, two in
    # the years where sensors overlap. MSS runs 1973-1992 on Landsat 1-5, TM from 1983,
    # ETM+ from 1999 (SLC-off after 2003-05-31), OLI from 2013, OLI-2 from 2022.
    table: list[tuple] = [
        (1973, "MSS", 1, False),
        (1974, "MSS", 1, True),
        (1975, "MSS", 2, False),
        (1976, "MSS", 2, False),
        (1977, "MSS", 2, True),
        (1978, "MSS", 3, False),
        (1979, "MSS", 2, False),
        (1980, "MSS", 3, True),
        (1981, "MSS", 2, False),
        (1982, "MSS", 3, False),
        (1983, "MSS", 4, False),
        (1983, "TM", 4, True),
        (1984, "MSS", 4, False),
        (1984, "TM", 5, False),
        # The note's pair: Landsat-5 MSS and TM of the same day, 1985-06-05.
        (1985, "MSS", 5, False, (6, 5)),
        (1985, "TM", 5, False, (6, 5)),
        (1986, "TM", 5, True),
        (1987, "MSS", 5, False),
        (1987, "TM", 5, False),
        (1988, "TM", 5, False),
        (1989, "TM", 4, False),
        (1990, "TM", 5, True),
        (1991, "TM", 5, False),
        (1992, "MSS", 5, False),
        (1992, "TM", 5, False),
        (1993, "TM", 5, True),
        (1994, "TM", 5, False),
        (1995, "TM", 5, False),
        (1996, "TM", 5, True),
        (1997, "TM", 5, False),
        (1998, "TM", 5, False),
        (1999, "TM", 5, False),
        (1999, "ETM+", 7, False, (8, 20)),
        (2000, "TM", 5, False),
        (2000, "ETM+", 7, True),
        (2001, "ETM+", 7, False),
        (2002, "TM", 5, False),
        (2002, "ETM+", 7, False),
        (2003, "ETM+", 7, False, (5, 12)),
        (2003, "TM", 5, True),
        (2004, "TM", 5, False),
        (2005, "TM", 5, False),
        (2005, "ETM+", 7, True),
        (2006, "TM", 5, False),
        (2007, "ETM+", 7, True),
        (2008, "TM", 5, True),
        (2009, "TM", 5, False),
        (2009, "ETM+", 7, False),
        (2010, "TM", 5, False),
        (2011, "TM", 5, False),
        (2011, "ETM+", 7, True),
        (2012, "ETM+", 7, False),
        (2013, "OLI", 8, False),
        (2013, "ETM+", 7, False),
        (2014, "OLI", 8, False),
        (2015, "OLI", 8, True),
        (2016, "OLI", 8, False),
        (2017, "OLI", 8, False),
        (2018, "OLI", 8, False),
        (2019, "OLI", 8, True),
        (2020, "OLI", 8, False),
        (2021, "OLI", 8, False),
        (2022, "OLI", 8, False),
        (2022, "OLI-2", 9, True),
        (2023, "OLI-2", 9, True),
        (2024, "OLI", 8, False),
        (2024, "OLI-2", 9, False),
    ]
    return tuple(Slot(*row) for row in table)


#: The full 1973-2024 schedule; a scene's index in it is stable whatever subset is made.
SCHEDULE = _slots()

# Chosen first when n_scenes asks for a subset, so that even a handful of scenes has every
# sensor generation, Landsat 1-3 and 4-5 MSS band numbering, an SLC-off ETM+ scene and
# cloudy scenes with and without a QA band.
_CORE = (
    (1975, "MSS"),
    (1990, "TM"),
    (2007, "ETM+"),
    (2016, "OLI"),
    (1985, "MSS"),
    (2023, "OLI-2"),
    (2001, "ETM+"),
    (1974, "MSS"),
    (1997, "TM"),
)


def schedule_order() -> list[int]:
    """Indices into :data:`SCHEDULE` in the order a subset of ``n`` scenes takes them.

    The core scenes first (every sensor generation, both MSS band numberings, SLC-off,
    cloudy scenes with and without QA), then greedily the scene farthest in years from
    those already chosen, so that any prefix spreads over the record.
    """
    index = {(s.year, s.sensor): i for i, s in enumerate(SCHEDULE)}
    order = [index[key] for key in _CORE]
    rest = [i for i in range(len(SCHEDULE)) if i not in order]
    while rest:
        chosen_years = np.array([SCHEDULE[i].year for i in order])
        gaps = [np.min(np.abs(chosen_years - SCHEDULE[i].year)) for i in rest]
        pick = rest[int(np.argmax(gaps))]
        order.append(pick)
        rest.remove(pick)
    return order


def rng(seed: int, *stream: int) -> np.random.Generator:
    """The random generator of one stream of the demo (story, plan, planting, noise ...).

    Independent streams from one seed keep each random choice stable when another changes,
    and make a scene's draws independent of which other scenes are generated.
    """
    return np.random.default_rng(np.random.SeedSequence([seed, *stream]))


def smooth_field(generator: np.random.Generator, n: int, scale: float) -> np.ndarray:
    """A smooth random (n, n) field in [-1, 1], correlated over ``scale * n`` pixels."""
    from scipy.ndimage import gaussian_filter

    z = gaussian_filter(generator.standard_normal((n, n)), sigma=max(scale * n, 1.0), mode="wrap")
    return z / max(float(np.abs(z).max()), 1e-12)


# --------------------------------------------------------------------------------------
# The planted land-cover history


@dataclass(frozen=True, eq=False)
class Story:
    """The planted land-cover history of every grid pixel.

    Attributes
    ----------
    lake
        bool: stable water.
    reservoir
        bool: forest, water from :data:`RESERVOIR_FILL_YEAR`.
    cleared_year
        int16: year the forest is cleared for the town (:data:`NEVER`: never).
    control
        bool: a corner of forest nothing happens to.
    texture
        float32 in [-1, 1]: static spatial texture.
    """

    lake: np.ndarray
    reservoir: np.ndarray
    cleared_year: np.ndarray
    control: np.ndarray
    texture: np.ndarray

    def cover(self, year: int) -> np.ndarray:
        """int8 cover code of every pixel in ``year``: an index into :data:`COVERS`."""
        cover = np.zeros(self.lake.shape, dtype=np.int8)  # forest
        cover[self.cleared_year <= year] = 1
        cover[self.cleared_year + BUILD_DELAY_YEARS <= year] = 2
        cover[self.lake] = 3
        if year >= RESERVOIR_FILL_YEAR:
            cover[self.reservoir] = 3
        return cover

    def classes(self, year: int) -> np.ndarray:
        """uint8 land-cover class of every pixel in ``year`` (2 water, 3 vegetation, 4 urban)."""
        return COVER_CLASS[self.cover(year)]


def make_story(size: int, seed: int) -> Story:
    """Plant the land-cover history on a ``size`` x ``size`` grid (deterministic in ``seed``)."""
    generator = rng(seed, 0)
    centres = (np.arange(size) + 0.5) / size
    yy, xx = np.meshgrid(centres, centres, indexing="ij")

    def ellipse(cx: float, cy: float, ax: float, ay: float, angle_deg: float) -> np.ndarray:
        a = math.radians(angle_deg)
        dx, dy = xx - cx, yy - cy
        u = dx * math.cos(a) + dy * math.sin(a)
        v = -dx * math.sin(a) + dy * math.cos(a)
        return (u / ax) ** 2 + (v / ay) ** 2

    lake = ellipse(0.80, 0.18, 0.10, 0.07, 20.0) + 0.25 * smooth_field(generator, size, 0.06) < 1.0
    reservoir = ellipse(0.70, 0.74, 0.17, 0.07, -30.0) + 0.25 * smooth_field(generator, size, 0.06)
    reservoir = (reservoir < 1.0) & ~lake

    # The town: a lobed outline (3 lobes, random orientation) that grows with the years.
    dx, dy = xx - 0.32, yy - 0.40
    theta = np.arctan2(dy, dx)
    lobes = 1.0 + 0.22 * np.sin(3.0 * theta + generator.uniform(0, 2 * math.pi))
    distance = np.hypot(dx, dy) / (lobes + 0.12 * smooth_field(generator, size, 0.05))
    years = np.array([1940.0, 1973.0, 1980.0, 1990.0, 2000.0, 2010.0, 2024.0])
    radii = np.array([0.0, 0.07, 0.09, 0.13, 0.18, 0.23, 0.28])
    cleared = np.ceil(np.interp(distance, radii, years))
    cleared = np.where(distance > radii[-1], NEVER, cleared)
    # Town land predating the record is already built up in 1973.
    cleared = np.where(cleared < FIRST_YEAR, FIRST_YEAR - BUILD_DELAY_YEARS, cleared)
    cleared[lake | reservoir] = NEVER

    control = (xx < 0.2) & (yy > 0.8)
    texture = 0.7 * smooth_field(generator, size, 0.02) + 0.3 * generator.uniform(
        -1.0, 1.0, (size, size)
    )
    return Story(lake, reservoir, cleared.astype(np.int16), control, texture.astype(np.float32))
