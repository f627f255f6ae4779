"""Cross-sensor conversion of rule tables: the note's Table 7, or a line fitted to pairs.

UPDM coefficients of one pixel seen by two sensors are close but not equal. A
:class:`LinearConversion` maps each quantity linearly from one sensor to the other;
:func:`convert_rules` carries a whole rule table across (how the note derived its MSS
Table 8 from the TM Table 5), and :func:`fit_conversion` fits the lines to paired
observations.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import xarray as xr

from ...errors import RuleError
from ...frozen import FrozenMap
from .index import mviupd
from .rules import Condition, Rule, RuleTable, _is_number, _rule_where, load_rules

__all__ = ["NOTE_TABLE7_TM_TO_MSS", "LinearConversion", "convert_rules", "fit_conversion"]

_CONVERTIBLE = ("uCw", "uCv", "uCs", "uC4", "mviupd", "S")


@dataclass(frozen=True)
class LinearConversion:
    """Per-quantity linear maps ``target = a * source + b`` between two sensors.

    Parameters
    ----------
    coefficients : Mapping[str, tuple[float, float]]
        Quantity (``uCw``, ``uCv``, ``uCs``, ``uC4``, ``mviupd``, ``S``) -> ``(a, b)``.
    name : str
        Name recorded in converted tables.
    source : str, optional
        Where the numbers come from.
    from_sensor, to_sensor : str, optional
        The sensors mapped from and to; ``to_sensor`` is the default sensor of a table
        made by :func:`convert_rules`.
    r, n : Mapping[str, float], Mapping[str, int], optional
        Correlation coefficient and number of pairs per quantity, when fitted.
    """

    coefficients: Mapping[str, tuple[float, float]]
    name: str
    source: str = ""
    from_sensor: str | None = None
    to_sensor: str | None = None
    r: Mapping[str, float] | None = None
    n: Mapping[str, int] | None = None

    def __post_init__(self) -> None:
        where = f"conversion {self.name!r}"
        if not isinstance(self.coefficients, Mapping) or not self.coefficients:
            raise RuleError(f"{where}: coefficients: expected a mapping quantity -> (a, b)")
        checked = {}
        for quantity, pair in self.coefficients.items():
            if quantity not in _CONVERTIBLE:
                raise RuleError(
                    f"{where}: coefficients: unknown quantity {quantity!r}; expected one of "
                    f"{', '.join(_CONVERTIBLE)}"
                )
            try:
                a, b = pair
            except (TypeError, ValueError):
                raise RuleError(
                    f"{where}: coefficients[{quantity!r}]: {pair!r}; expected a pair (a, b)"
                ) from None
            if not (_is_number(a) and _is_number(b) and math.isfinite(a) and math.isfinite(b)):
                raise RuleError(
                    f"{where}: coefficients[{quantity!r}]: {pair!r}; expected finite numbers"
                )
            checked[quantity] = (float(a), float(b))
        object.__setattr__(self, "coefficients", FrozenMap(checked))
        for key in ("r", "n"):
            value = getattr(self, key)
            if value is not None:
                object.__setattr__(self, key, FrozenMap(value))

    def apply(self, quantity: str, values):
        """Map values of ``quantity`` from the source to the target sensor (``a*x + b``)."""
        if quantity not in self.coefficients:
            raise RuleError(
                f"conversion {self.name!r}: no coefficients for quantity {quantity!r}; "
                f"has {', '.join(self.coefficients)}"
            )
        a, b = self.coefficients[quantity]
        return a * values + b

    def __dask_tokenize__(self):
        return ("updm_dask.LinearConversion", self.name, tuple(self.coefficients.items()))


#: The note's Table 7: MSS = a * TM + b for coefficients of the same pixels seen by
#: Landsat-5 MSS and TM on 1985-06-05 (Kansai).
#:
#: The uCw intercept is 0.547e-4, not the 0.547e-5 the table prints: with the printed
#: value Table 5's cloud threshold 0.00663 maps to 0.00369, while Table 8 gives 0.00374,
#: which is exactly what 0.547e-4 yields (0.556 * 0.00663 + 0.547e-4 = 0.003741); uCv's
#: intercept (0.557e-4) has the same exponent. The printed exponent is a misprint.
NOTE_TABLE7_TM_TO_MSS = LinearConversion(
    coefficients={
        "uCw": (0.556, 0.547e-4),  # printed 0.547e-5: a misprint, see above
        "uCv": (0.706, 0.557e-4),
        "uCs": (0.639, 0.022),
        "mviupd": (0.941, -0.145),
        "S": (0.663, 0.023),
    },
    name="note-table7-TM-to-MSS",
    source=(
        "Aoi, Muramatsu, Furumi & Daigo, 'Application of the Universal Pattern Decomposition "
        "Method to Landsat/MSS', World Wide Business Review 9(1), Table 7: regression of "
        "Landsat-5 MSS on TM coefficients of the same pixels, 1985-06-05, Kansai. The uCw "
        "intercept is taken as 0.547e-4 instead of the printed 0.547e-5: only 0.547e-4 maps "
        "Table 5's 0.00663 to Table 8's 0.00374."
    ),
    from_sensor="TM",
    to_sensor="MSS",
)


def convert_rules(
    rules: RuleTable,
    conversion: LinearConversion,
    name: str | None = None,
    sensor: str | None = None,
) -> RuleTable:
    """Derive a rule table for another sensor by mapping every threshold linearly.

    Each threshold ``t`` of quantity ``q`` becomes ``a * t + b`` with ``(a, b) =
    conversion.coefficients[q]``; operators, classes and order are kept. This is how the
    note derived its MSS Table 8 from the TM Table 5 through Table 7.

    Parameters
    ----------
    rules : RuleTable
    conversion : LinearConversion
        Must cover every quantity the rules test, each with ``a > 0``.
    name : str, optional
        Name of the new table; default ``"<rules.name> via <conversion.name>"``.
    sensor : str, optional
        Sensor of the new table; default ``conversion.to_sensor``, else ``rules.sensor``.

    Returns
    -------
    RuleTable
        Thresholds are not rounded.

    Raises
    ------
    RuleError
        A tested quantity has no coefficients, or its slope ``a <= 0``. A negative slope
        would flip every inequality on that quantity; rather than flipping operators
        silently, this is refused, because between two sensors measuring the same pixels it
        points to a wrong or degenerate fit.
    """
    rules = load_rules(rules)
    converted = []
    for index, rule in enumerate(rules.rules):
        conditions = []
        for condition in rule.conditions:
            where = f"convert_rules: {_rule_where(index, rule)}, quantity {condition.quantity!r}"
            if condition.quantity not in conversion.coefficients:
                raise RuleError(
                    f"{where}: conversion {conversion.name!r} has no coefficients for it "
                    f"(has {', '.join(conversion.coefficients)})"
                )
            a, b = conversion.coefficients[condition.quantity]
            if a <= 0:
                raise RuleError(
                    f"{where}: slope a = {a!r}; expected a > 0 (a non-positive slope would "
                    "reverse or erase the inequality)"
                )
            conditions.append(
                Condition(condition.quantity, condition.operator, a * condition.threshold + b)
            )
        converted.append(Rule(rule.class_name, rule.class_value, tuple(conditions)))
    lines = [f"  {q}: a = {a!r}, b = {b!r}" for q, (a, b) in conversion.coefficients.items()]
    source = (
        f"Derived from rule table {rules.name!r} ({rules.sensor}) through the linear "
        f"conversion {conversion.name!r} (threshold -> a * threshold + b):\n"
        + "\n".join(lines)
        + (f"\nConversion source: {conversion.source}" if conversion.source else "")
        + (f"\nOriginal table source: {rules.source}" if rules.source else "")
    )
    return RuleTable(
        name=name if name is not None else f"{rules.name} via {conversion.name}",
        sensor=sensor if sensor is not None else (conversion.to_sensor or rules.sensor),
        rules=tuple(converted),
        source=source,
        classes=rules.classes,
    )


_FIT_QUANTITIES = ("uCw", "uCv", "uCs", "mviupd", "S")


def _quantity_values(data, quantity: str, role: str) -> np.ndarray:
    def get(key: str):
        if isinstance(data, xr.Dataset):
            return data[key].values if key in data.data_vars else None
        return data.get(key) if isinstance(data, Mapping) else None

    if not isinstance(data, xr.Dataset | Mapping):
        raise RuleError(f"{role}: expected a Mapping of arrays or an xarray Dataset")
    value = get(quantity)
    if value is None and quantity in ("S", "mviupd"):
        parts = [get(k) for k in ("uCw", "uCv", "uCs")]
        if all(p is not None for p in parts):
            parts = [np.asarray(p, dtype=np.float64) for p in parts]
            if quantity == "S":
                value = parts[0] + parts[1] + parts[2]
            else:
                uC4 = get("uC4")
                value = mviupd(*parts, None if uC4 is None else np.asarray(uC4, dtype=np.float64))
    if value is None:
        raise RuleError(
            f"{role}: no values for quantity {quantity!r} (and, for S or mviupd, not all of "
            "uCw, uCv, uCs to derive it from)"
        )
    return np.asarray(value, dtype=np.float64).ravel()


def fit_conversion(
    source,
    target,
    quantities: Iterable[str] = _FIT_QUANTITIES,
    *,
    name: str = "fitted",
    from_sensor: str | None = None,
    to_sensor: str | None = None,
) -> LinearConversion:
    """Fit ``target = a * source + b`` per quantity from paired observations.

    Parameters
    ----------
    source, target : Mapping[str, array_like] or xarray.Dataset
        The same pixels seen by two sensors (e.g. on the same day), pairs matched by
        position. ``S`` and ``mviupd`` are derived from uCw, uCv, uCs (and uC4) when not
        given. Dask-backed inputs are computed.
    quantities : iterable of str, optional
        Quantities to fit; default uCw, uCv, uCs, mviupd, S.
    name : str, optional
        Name of the result.
    from_sensor, to_sensor : str, optional
        Recorded in the result.

    Returns
    -------
    LinearConversion
        Ordinary least squares ``a``, ``b`` per quantity, with the correlation ``r`` and
        the number ``n`` of pairs used (pairs with a NaN on either side are dropped).

    Raises
    ------
    RuleError
        Missing quantity, source and target of different sizes, fewer than 3 valid pairs,
        or zero variance in the source or target values; the message names the quantity.
    """
    coefficients, r_values, counts = {}, {}, {}
    for quantity in quantities:
        if quantity not in _CONVERTIBLE:
            raise RuleError(
                f"fit_conversion: quantities: unknown quantity {quantity!r}; expected one of "
                f"{', '.join(_CONVERTIBLE)}"
            )
        x = _quantity_values(source, quantity, "fit_conversion: source")
        y = _quantity_values(target, quantity, "fit_conversion: target")
        if x.shape != y.shape:
            raise RuleError(
                f"fit_conversion: quantity {quantity!r}: source has {x.size} values, target "
                f"{y.size}; expected paired observations of equal size"
            )
        keep = np.isfinite(x) & np.isfinite(y)
        x, y = x[keep], y[keep]
        if x.size < 3:
            raise RuleError(
                f"fit_conversion: quantity {quantity!r}: {x.size} valid pairs; expected at least 3"
            )
        dx, dy = x - x.mean(), y - y.mean()
        sxx, syy, sxy = float(dx @ dx), float(dy @ dy), float(dx @ dy)
        if sxx == 0 or syy == 0:
            side = "source" if sxx == 0 else "target"
            raise RuleError(
                f"fit_conversion: quantity {quantity!r}: the {side} values do not vary; "
                "a line cannot be fitted"
            )
        a = sxy / sxx
        coefficients[quantity] = (a, float(y.mean() - a * x.mean()))
        r_values[quantity] = sxy / math.sqrt(sxx * syy)
        counts[quantity] = int(x.size)
    if not coefficients:
        raise RuleError("fit_conversion: quantities: expected at least one quantity")
    return LinearConversion(
        coefficients=coefficients,
        name=name,
        source=f"least-squares fit on {min(counts.values())}-{max(counts.values())} pairs",
        from_sensor=from_sensor,
        to_sensor=to_sensor,
        r=r_values,
        n=counts,
    )
