"""Class colours shared by the PNG plots and the GeoTIFF colour tables."""

from __future__ import annotations

#: Land-cover class code -> (name, colour as hex RGB). no_data is drawn transparent.
CLASS_STYLE: dict[int, tuple[str, str]] = {
    0: ("no_data", "#000000"),
    1: ("cloud", "#e6e6e6"),
    2: ("water", "#2f6fbf"),
    3: ("vegetation", "#2e9e44"),
    4: ("non_vegetated", "#c0463a"),
}

#: Legend text of a class code, where the bare class name would say too little.
CLASS_LEGEND: dict[int, str] = {4: "non-vegetated (built-up, bare or sparse)"}

#: Sensor -> marker of point-series plots.
SENSOR_MARKERS: dict[str, str] = {"MSS": "s", "TM": "o", "ETM+": "^", "OLI": "D", "OLI-2": "P"}


def rgba(code: int) -> tuple[int, int, int, int]:
    """0-255 RGBA of a class code (no_data and unknown codes fully transparent)."""
    if code not in CLASS_STYLE or code == 0:
        return (0, 0, 0, 0)
    h = CLASS_STYLE[code][1].lstrip("#")
    return (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16), 255)
