"""Typed values from metadata files, with errors that name the file, the field and the value.

Shared by the readers of every format: untyped ODL text becomes int, float, ``None`` or str
(:func:`scalar`); fields become numbers, integers, dates, times, a Landsat number, a
canonical sensor name, a UTM EPSG code.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

from ..errors import MetadataError, SensorError
from ..science.sensors import canonical_sensor_name, get_sensor

_INT_RE = re.compile(r"[+-]?\d+\Z")
# Digits after the point only follow a point: "\d+\.?\d*" split a run of digits in every
# way, and a value of 100 000 digits and a letter took minutes to refuse.
_FLOAT_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\Z")


def scalar(text: str) -> Any:
    """Type an unquoted value: NULL -> None, integers, floats; anything else stays a str."""
    if text == "NULL":
        return None
    if _INT_RE.match(text):
        try:
            return int(text)
        except ValueError:
            # More digits than Python converts (sys.get_int_max_str_digits): no real field
            # has them; kept as the text, which the typed lookups below refuse.
            return text
    if _FLOAT_RE.match(text):
        return float(text)
    return text


def as_number(value: Any, key: str, source: str) -> float | None:
    """``value`` as a finite float; ``None`` stays ``None``.

    Like every function here that takes them, the error names ``source`` (the file) and
    ``key`` (the field).
    """
    if value is None:
        return None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:  # an integer of hundreds of digits, beyond a float's range
            number = None
    elif isinstance(value, str) and _FLOAT_RE.match(value.strip()):
        number = float(value)
    else:
        number = None
    if number is None or not math.isfinite(number):
        raise MetadataError(f"{source}: {key} = {value!r} is not a number")
    return number


def as_integer(value: Any, key: str, source: str) -> int | None:
    """``value`` as an int (``"031"`` and ``31.0`` too; ``None`` stays ``None``)."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INT_RE.match(value.strip()):
        try:
            return int(value)
        except ValueError:  # more digits than Python converts: refused below
            pass
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise MetadataError(f"{source}: {key} = {value!r} is not an integer")


def as_text(value: Any) -> str | None:
    """``value`` as a str; ``None`` (``NULL``) stays ``None``."""
    return None if value is None else str(value)


_DATE_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})\Z")
_TIME_RE = re.compile(r"(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d+))?Z?\Z")


def as_date(value: Any, key: str, source: str) -> dt.date:
    """A ``YYYY-MM-DD`` date."""
    match = _DATE_RE.match(str(value).strip())
    try:
        if match is None:
            raise ValueError
        return dt.date(*(int(g) for g in match.groups()))
    except ValueError:
        raise MetadataError(
            f"{source}: {key} = {value!r} is not a date (expected YYYY-MM-DD)"
        ) from None


def as_time(value: Any, key: str, source: str) -> dt.time:
    """An ``HH:MM:SS[.fffffff][Z]`` time of day, to the microsecond."""
    match = _TIME_RE.match(str(value).strip())
    try:
        if match is None:
            raise ValueError
        hour, minute, second, fraction = match.groups()
        # Files give up to 7 decimals; datetime keeps microseconds.
        micro = int(((fraction or "") + "000000")[:6])
        return dt.time(int(hour), int(minute), int(second), micro)
    except ValueError:
        raise MetadataError(
            f"{source}: {key} = {value!r} is not a time of day (expected HH:MM:SS.fffZ)"
        ) from None


_SPACECRAFT_RE = re.compile(r"LANDSAT[_\s-]?(\d)\Z", re.IGNORECASE)
_SATELLITES = (1, 2, 3, 4, 5, 7, 8, 9)  # Landsat 6 never reached orbit


def as_satellite(value: Any, key: str, source: str) -> int:
    """The Landsat number of a spacecraft id (``LANDSAT_7``, ``Landsat7`` ...)."""
    match = _SPACECRAFT_RE.match(str(value).strip())
    if match is None or int(match.group(1)) not in _SATELLITES:
        raise MetadataError(
            f"{source}: {key} = {value!r} is not a Landsat spacecraft (expected LANDSAT_1 .. "
            "LANDSAT_5, LANDSAT_7, LANDSAT_8 or LANDSAT_9)"
        )
    return int(match.group(1))


def as_sensor(value: Any, key: str, satellite: int, source: str) -> str:
    """The canonical sensor name (MSS, TM, ETM+, OLI, OLI-2) of a sensor id on ``satellite``."""
    try:
        canonical_sensor_name(str(value), satellite)
    except SensorError as exc:
        raise MetadataError(f"{source}: unknown sensor {key} = {value!r}: {exc}") from None
    try:
        return get_sensor(str(value), satellite).name
    except SensorError as exc:
        raise MetadataError(
            f"{source}: {key} = {value!r} does not fit LANDSAT_{satellite}: {exc}"
        ) from None


def as_sun_elevation(value: float, key: str, source: str) -> float:
    """``value`` checked to be an elevation angle, -90 to 90 degrees."""
    if not -90.0 <= value <= 90.0:
        raise MetadataError(f"{source}: {key} = {value!r} is outside -90..90 degrees")
    return value


def utm_epsg(projection: Any, datum: Any, zone: Any, key: str, source: str) -> int | None:
    """The WGS84 / UTM EPSG code of a zone (negative: south), ``None`` for other projections."""
    if projection is None or str(projection).strip().upper() != "UTM" or zone is None:
        return None
    # Every Landsat product is on WGS84; an explicit other datum gets no EPSG code.
    if datum is not None and str(datum).strip().upper() not in ("WGS84", "WGS_84", "WGS 84"):
        return None
    number = as_integer(zone, key, source)
    if number is None or not 1 <= abs(number) <= 60:
        raise MetadataError(f"{source}: {key} = {zone!r} is not a UTM zone (1..60)")
    # A negative zone (ESPA convention) is the southern zone.
    return (32600 if number > 0 else 32700) + abs(number)


def cloud_cover(value: float | None) -> float | None:
    """Scene cloud cover in per cent, ``None`` when not computed (the files write -1)."""
    # USGS writes -1 when cover was not computed (e.g. early MSS night scenes); a number
    # there would pass any "cloud_cover < x" filter.
    return None if value is None or value < 0 else value


def band_order(label: str) -> tuple:
    """Sort key of band labels in band order: ``"2" < "6_VCID_1" < "6_VCID_2" < "10"``."""
    head, _, tail = label.partition("_")
    return (int(head) if head.isdigit() else math.inf, head, tail)
