"""Typed values from metadata files, with errors that name the file, the line and the field.

Shared by the readers of every format: untyped ODL text becomes int, float, ``None`` or str
(:func:`scalar`); fields become numbers, integers, dates, times, a Landsat number, a
canonical sensor name, a UTM EPSG code.

A message names the file, the place in it (``line 12``; ``line 1, column 840`` in a JSON
file written on one line) when the reader knows it, the field and what was expected, and
never the value found there: the path may point at a file that is not metadata at all
(a mistyped path, a symlink to a secret), and its content must not end up in a log or a
failure report. What was found is described by its kind only ("got text").
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

from ..errors import MetadataError, SensorError
from ..science.sensors import SENSOR_NAMES, canonical_sensor_name, get_sensor

_INT_RE = re.compile(r"[+-]?\d+\Z")
# Written so that no two parts can match the same digits: "\d+\.?\d*" backtracked
# quadratically over a long run of digits followed by another character.
_FLOAT_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\Z")

# Landsat 1 was launched on 1972-07-23: no Landsat scene is older. A scene cannot be newer
# than today either; one day of slack covers a clock or time zone ahead of this machine's.
LANDSAT_ERA_START = dt.date(1972, 7, 23)
FUTURE_SLACK = dt.timedelta(days=1)


# No Landsat integer needs more digits; longer runs of digits stay text (Python refuses to
# convert integers of more than 4300 digits, and converting long ones is quadratic).
_MAX_INT_DIGITS = 64


def scalar(text: str) -> Any:
    """Type an unquoted value: NULL -> None, integers, floats; anything else stays a str."""
    if text == "NULL":
        return None
    if _INT_RE.match(text) and len(text) <= _MAX_INT_DIGITS:
        return int(text)
    if _FLOAT_RE.match(text):
        return float(text)
    return text


def at(source: str, line: str | int | None = None) -> str:
    """The head of a message: ``source``, or ``source: line 12`` when the place is known.

    ``line`` is a line number or an already formatted place (``"line 1, column 840"``).
    """
    if line is None:
        return source
    return f"{source}: line {line}" if isinstance(line, int) else f"{source}: {line}"


_NAME_SHOWN_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}\Z")


def shown_name(name: Any) -> str:
    """A key, group or element name from a file, fit to be shown in a message.

    Names are what a message has to point at, so a plain identifier of up to 64 characters
    is shown as it is; anything else (it may be a fragment of an unrelated file) is not.
    """
    text = str(name)
    return text if _NAME_SHOWN_RE.match(text) else "(a name that is not an identifier)"


def kind(value: Any) -> str:
    """What a value is, without what it says: ``"got text"``, ``"got a list"`` ..."""
    if value is None:
        return "got NULL"
    if isinstance(value, bool):
        return "got true/false"
    if isinstance(value, int):
        return "got an integer"
    if isinstance(value, float):
        return "got a number" if math.isfinite(value) else "got a number that is not finite"
    if isinstance(value, str):
        return "got an empty text" if not value.strip() else "got text"
    if isinstance(value, list | tuple):
        return "got a list"
    if isinstance(value, dict):
        return "got a group"
    return f"got a {type(value).__name__}"


def as_number(value: Any, key: str, source: str, line: str | int | None = None) -> float | None:
    """``value`` as a finite float; ``None`` stays ``None``.

    Like every function here that takes them, the error names ``source`` (the file),
    ``line`` (the place in it, when known) and ``key`` (the field), never ``value``.
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
        raise MetadataError(
            f"{at(source, line)}: {key} is not a number (expected a finite decimal number "
            f"such as 0.25 or -1.2E-03; {kind(value)})"
        )
    return number


def as_integer(value: Any, key: str, source: str, line: str | int | None = None) -> int | None:
    """``value`` as an int (``"031"`` and ``31.0`` too; ``None`` stays ``None``)."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if (
        isinstance(value, str)
        and _INT_RE.match(value.strip())
        and len(value.strip()) <= _MAX_INT_DIGITS
    ):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    got = "got a number with a fraction" if isinstance(value, float) else kind(value)
    raise MetadataError(
        f"{at(source, line)}: {key} is not an integer (expected whole digits such as 31; {got})"
    )


def as_text(value: Any) -> str | None:
    """``value`` as a str; ``None`` (``NULL``) stays ``None``."""
    return None if value is None else str(value)


_DATE_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})\Z")
_TIME_RE = re.compile(r"(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d+))?Z?\Z")


def as_date(value: Any, key: str, source: str, line: str | int | None = None) -> dt.date:
    """A ``YYYY-MM-DD`` date."""
    match = _DATE_RE.match(str(value).strip())
    date = None
    if match is not None:
        try:
            date = dt.date(*(int(g) for g in match.groups()))
        except ValueError:
            pass  # raised below, outside the handler: no exception context to carry along
    if date is None:
        raise MetadataError(
            f"{at(source, line)}: {key} is not a date (expected YYYY-MM-DD, a real day of "
            "the calendar)"
        )
    return date


def landsat_era(today: dt.date | None = None) -> tuple[dt.date, dt.date]:
    """First and last acquisition date a Landsat scene can have: 1972-07-23 to tomorrow.

    Parameters
    ----------
    today
        The current date; default today in UTC.
    """
    today = today or dt.datetime.now(dt.UTC).date()
    return LANDSAT_ERA_START, today + FUTURE_SLACK


def as_acquisition_date(
    value: Any,
    key: str,
    source: str,
    line: str | int | None = None,
    *,
    today: dt.date | None = None,
) -> dt.date:
    """A ``YYYY-MM-DD`` acquisition date within the Landsat era (:func:`landsat_era`).

    A date before the launch of Landsat 1 or after tomorrow is a corrupt or forged file:
    stored in a cube it would also sit outside the calendar range its readers decode.
    """
    date = as_date(value, key, source, line)
    first, last = landsat_era(today)
    if not first <= date <= last:
        raise MetadataError(
            f"{at(source, line)}: {key} is outside the Landsat era (expected a date from "
            f"{first.isoformat()}, the launch of Landsat 1, to {last.isoformat()}, one day "
            "after today UTC)"
        )
    return date


def as_time(value: Any, key: str, source: str, line: str | int | None = None) -> dt.time:
    """An ``HH:MM:SS[.fffffff][Z]`` time of day, to the microsecond."""
    match = _TIME_RE.match(str(value).strip())
    time = None
    if match is not None:
        hour, minute, second, fraction = match.groups()
        # Files give up to 7 decimals; datetime keeps microseconds.
        micro = int(((fraction or "") + "000000")[:6])
        try:
            time = dt.time(int(hour), int(minute), int(second), micro)
        except ValueError:
            pass  # raised below, outside the handler: no exception context to carry along
    if time is None:
        raise MetadataError(
            f"{at(source, line)}: {key} is not a time of day (expected HH:MM:SS.fffZ, hours 0-23)"
        )
    return time


_SPACECRAFT_RE = re.compile(r"LANDSAT[_\s-]?(\d)\Z", re.IGNORECASE)
_SATELLITES = (1, 2, 3, 4, 5, 7, 8, 9)  # Landsat 6 never reached orbit


def as_satellite(value: Any, key: str, source: str, line: str | int | None = None) -> int:
    """The Landsat number of a spacecraft id (``LANDSAT_7``, ``Landsat7`` ...)."""
    match = _SPACECRAFT_RE.match(str(value).strip())
    if match is None or int(match.group(1)) not in _SATELLITES:
        raise MetadataError(
            f"{at(source, line)}: {key} is not a Landsat spacecraft (expected LANDSAT_1 .. "
            "LANDSAT_5, LANDSAT_7, LANDSAT_8 or LANDSAT_9)"
        )
    return int(match.group(1))


def as_sensor(
    value: Any, key: str, satellite: int, source: str, line: str | int | None = None
) -> str:
    """The canonical sensor name (MSS, TM, ETM+, OLI, OLI-2) of a sensor id on ``satellite``."""
    # The errors are raised outside the handlers: the SensorError quotes the value, and
    # must not travel along as the MetadataError's __context__.
    try:
        name: str | None = canonical_sensor_name(str(value), satellite)
    except SensorError:
        name = None
    if name is None:
        raise MetadataError(
            f"{at(source, line)}: {key} is not a known Landsat sensor (expected one of "
            f"{', '.join(SENSOR_NAMES)}, or an MTL SENSOR_ID such as OLI_TIRS)"
        )
    try:
        return get_sensor(name, satellite).name
    except SensorError as exc:
        # Its message names the canonical sensor (from the alias table), not the file's text.
        reason = str(exc)
    raise MetadataError(
        f"{at(source, line)}: {key} ({name}) does not fit LANDSAT_{satellite}: {reason}"
    )


def as_sun_elevation(value: float, key: str, source: str, line: str | int | None = None) -> float:
    """``value`` checked to be an elevation angle, -90 to 90 degrees."""
    if not -90.0 <= value <= 90.0:
        raise MetadataError(
            f"{at(source, line)}: {key} is outside -90..90 degrees (expected an elevation angle)"
        )
    return value


def utm_epsg(
    projection: Any,
    datum: Any,
    zone: Any,
    key: str,
    source: str,
    line: str | int | None = None,
) -> int | None:
    """The WGS84 / UTM EPSG code of a zone (negative: south), ``None`` for other projections."""
    if projection is None or str(projection).strip().upper() != "UTM" or zone is None:
        return None
    # Every Landsat product is on WGS84; an explicit other datum gets no EPSG code.
    if datum is not None and str(datum).strip().upper() not in ("WGS84", "WGS_84", "WGS 84"):
        return None
    number = as_integer(zone, key, source, line)
    if number is None or not 1 <= abs(number) <= 60:
        raise MetadataError(
            f"{at(source, line)}: {key} is not a UTM zone (expected 1..60, negative for south)"
        )
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
    # A label of thousands of digits (a hostile file) sorts last instead of overflowing int().
    number = int(head) if head.isdigit() and len(head) <= _MAX_INT_DIGITS else math.inf
    return (number, head, tail)
