"""MVIUPD, land-cover rule tables, and the cross-sensor conversion of rules.

UPDM expresses every pixel of every Landsat sensor in the same few coefficients (uCw, uCv,
uCs and optionally uC4). Land cover then follows from a short, ordered list of threshold
rules on those coefficients, their sum ``S = uCw + uCv + uCs`` and the vegetation index
MVIUPD. The rules are *data*: a :class:`RuleTable` is loaded from a TOML file, hashed for
provenance, and can be derived for another sensor through a :class:`LinearConversion`
(the research note's Table 7) or one fitted from paired observations.

Semantics of a rule table
-------------------------
- Rules are tried top first; a pixel takes the class of the first rule whose conditions
  all hold (conditions of one rule are combined with AND). A rule with no conditions
  ("otherwise") matches everything and may only be the last rule.
- A pixel is invalid when uCw, uCv or uCs is NaN or infinite, or uC4 is infinite; it gets
  class 0, ``no_data``. A NaN uC4 next to finite uCw, uCv, uCs means "no supplementary
  pattern" (the cube stores MSS scenes that way) and counts as ``uC4 = 0``, as section 7 of
  the method prescribes. A valid pixel that no rule matches also gets ``no_data`` (the
  shipped tables cover every pixel with non-negative coefficients, so this happens only for
  hand-written tables with gaps, or for coefficients that break the non-negativity of UPDM).
- Comparisons happen in the floating-point type of the coefficients: for float32 input each
  threshold is first rounded to float32, so a value stored as ``float32(t)`` counts as on
  the threshold ``t``.
- Class codes are fixed across sensors because the cube stores them: 0 ``no_data``,
  1 ``cloud``, 2 ``water``, 3 ``vegetation``, 4 ``urban``. A user table may add classes with
  other codes (5-255).

The three tiers: :func:`classify_array` and the MVIUPD kernel are numpy only; the dask
wrappers map them over blocks; :func:`classify` and :func:`mviupd` are the labelled API.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from dask.base import is_dask_collection

from ..errors import RuleError
from ..frozen import FrozenMap

__all__ = [
    "CLASS_CODES",
    "LAND_COVER_CLASSES",
    "MVIUPD_SOIL_WEIGHT",
    "NOTE_TABLE7_TM_TO_MSS",
    "OPERATORS",
    "QUANTITIES",
    "RULE_TABLE_ALIASES",
    "Condition",
    "LinearConversion",
    "Rule",
    "RuleTable",
    "classify",
    "classify_array",
    "convert_rules",
    "fit_conversion",
    "load_rules",
    "mviupd",
]

#: Weight of the soil coefficient in MVIUPD (the note's footnote 1).
MVIUPD_SOIL_WEIGHT = 0.2

#: Quantities a condition may test. ``S`` is ``uCw + uCv + uCs``.
QUANTITIES = ("uCw", "uCv", "uCs", "uC4", "S", "mviupd")

#: Comparison operators a condition may use.
OPERATORS = (">=", ">", "<=", "<")

_COMPARE = {
    ">=": np.greater_equal,
    ">": np.greater,
    "<=": np.less_equal,
    "<": np.less,
}

# Keys of the TOML format; anything else is rejected so that a typo cannot silently
# drop a condition.
_TABLE_KEYS = ("name", "sensor", "source", "classes", "rules")
_TABLE_REQUIRED = ("name", "sensor", "rules")
_RULE_KEYS = ("class", "value", "conditions")
_CONDITION_KEYS = ("quantity", "operator", "threshold")

# Class names end up space-separated in CF flag_meanings and as bare TOML keys.
_CLASS_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

_NO_DATA = "no_data"


#: The fixed class codes every rule table and every cube share.
LAND_COVER_CLASSES: Mapping[str, int] = FrozenMap(
    {_NO_DATA: 0, "cloud": 1, "water": 2, "vegetation": 3, "urban": 4}
)
#: Alias of :data:`LAND_COVER_CLASSES` (class name -> code).
CLASS_CODES = LAND_COVER_CLASSES


# --------------------------------------------------------------------------------------
# MVIUPD
# --------------------------------------------------------------------------------------


def _mviupd_kernel(uCw, uCv, uCs, uC4=None):
    # errstate here, inside the kernel, is what keeps warnings out of dask computations too:
    # the kernel is what runs on the workers.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        numerator = uCv - uCw - MVIUPD_SOIL_WEIGHT * uCs
        if uC4 is not None:
            numerator = numerator - uC4
        denominator = uCw + uCv + uCs
        ratio = numerator / denominator
        return np.where(denominator == 0, np.nan, ratio)


def _dtype_of(value: Any) -> np.dtype:
    dtype = getattr(value, "dtype", None)
    return np.dtype(dtype) if dtype is not None else np.asarray(value).dtype


def mviupd(uCw, uCv, uCs, uC4=None):
    """The UPDM vegetation index MVIUPD.

    ``MVIUPD = (uCv - uCw - 0.2 * uCs - uC4) / (uCw + uCv + uCs)``, with ``uC4 = 0`` when
    no supplementary pattern is used (the note's footnote 1).

    Parameters
    ----------
    uCw, uCv, uCs : array_like, dask.array.Array or xarray.DataArray
        Water, vegetation and soil coefficients; broadcast against each other.
    uC4 : same, optional
        Supplementary-pattern coefficient; omitted means 0.

    Returns
    -------
    numpy.ndarray, dask.array.Array or xarray.DataArray
        MVIUPD, of the floating type of the inputs. NaN where any input is NaN or where the
        denominator is 0 (no division warnings are emitted, also not at dask compute
        time). Lazy for dask-backed input; an xarray result is named ``"mviupd"``.
    """
    args = [a for a in (uCw, uCv, uCs, uC4) if a is not None]
    probe = [np.ones(1, dtype=_dtype_of(a)) for a in args]
    dtype = np.result_type(_mviupd_kernel(*probe).dtype, np.float16)
    if any(isinstance(a, xr.DataArray | xr.Variable) for a in args):
        result = xr.apply_ufunc(
            _mviupd_kernel,
            *args,
            dask="parallelized",
            output_dtypes=[dtype],
            keep_attrs=False,
        )
        if isinstance(result, xr.DataArray):
            result = result.rename("mviupd")
            result.attrs = {"long_name": "UPDM vegetation index MVIUPD", "units": "1"}
        return result
    if any(is_dask_collection(a) for a in args):
        arrays = da.broadcast_arrays(*[da.asarray(a) for a in args])
        return da.map_blocks(_mviupd_kernel, *arrays, dtype=dtype, token="updm-mviupd")
    return _mviupd_kernel(*[np.asarray(a) for a in args])


# --------------------------------------------------------------------------------------
# Rule tables
# --------------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    # bool is an int subclass; "threshold = true" is a mistake, not the number 1.
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclass(frozen=True)
class Condition:
    """One comparison ``quantity operator threshold``, e.g. ``uCw >= 0.00663``.

    Parameters
    ----------
    quantity : str
        One of :data:`QUANTITIES`.
    operator : str
        One of :data:`OPERATORS`.
    threshold : float
        A finite number.
    """

    quantity: str
    operator: str
    threshold: float

    def __post_init__(self) -> None:
        if self.quantity not in QUANTITIES:
            raise RuleError(
                f"key 'quantity': unknown quantity {self.quantity!r}; "
                f"expected one of {', '.join(QUANTITIES)}"
            )
        if self.operator not in OPERATORS:
            raise RuleError(
                f"key 'operator': unknown operator {self.operator!r}; "
                f"expected one of {', '.join(OPERATORS)}"
            )
        if not _is_number(self.threshold):
            raise RuleError(
                f"key 'threshold': {self.threshold!r} is not a number; expected a finite number"
            )
        threshold = float(self.threshold)
        if not math.isfinite(threshold):
            raise RuleError(f"key 'threshold': {threshold!r}; expected a finite number")
        object.__setattr__(self, "threshold", threshold)

    def __str__(self) -> str:
        return f"{self.quantity} {self.operator} {self.threshold!r}"


@dataclass(frozen=True)
class Rule:
    """One line of a rule table: a class and the conditions (AND) that select it.

    Parameters
    ----------
    class_name : str
        Class name (letters, digits, underscore; not ``"no_data"``).
    class_value : int
        Class code, 1-255 (0 is reserved for ``no_data``).
    conditions : tuple of Condition
        Combined with AND; empty means "otherwise" (matches every valid pixel).
    """

    class_name: str
    class_value: int
    conditions: tuple[Condition, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.class_name, str) or not _CLASS_NAME.match(self.class_name):
            raise RuleError(
                f"key 'class': {self.class_name!r}; expected a name of letters, digits "
                "and underscores"
            )
        if self.class_name == _NO_DATA:
            raise RuleError(
                f"key 'class': {_NO_DATA!r} is reserved for invalid pixels; no rule may assign it"
            )
        if not isinstance(self.class_value, numbers.Integral) or isinstance(self.class_value, bool):
            raise RuleError(f"key 'value': {self.class_value!r}; expected an integer 1-255")
        if not 1 <= int(self.class_value) <= 255:
            raise RuleError(
                f"key 'value': {self.class_value!r}; expected an integer 1-255 "
                "(0 is no_data, and codes are stored as uint8)"
            )
        object.__setattr__(self, "class_value", int(self.class_value))
        conditions = tuple(self.conditions)
        for condition in conditions:
            if not isinstance(condition, Condition):
                raise RuleError(f"key 'conditions': {condition!r} is not a Condition")
        object.__setattr__(self, "conditions", conditions)

    def __str__(self) -> str:
        test = " and ".join(str(c) for c in self.conditions) or "otherwise"
        return f"{self.class_name} ({self.class_value}): {test}"


def _rule_where(index: int, rule: Rule) -> str:
    return f"rules[{index}] (class {rule.class_name!r})"


@dataclass(frozen=True)
class RuleTable:
    """An ordered land-cover rule table for one sensor (highest priority first).

    Parameters
    ----------
    name : str
        Name recorded with every classification (e.g. ``"note-table5-TM"``).
    sensor : str
        Sensor the thresholds were set for.
    rules : tuple of Rule
        Priority order, top first. Only the last rule may be unconditional.
    source : str, optional
        Where the thresholds come from (publication, table, interpretation).
    classes : Mapping[str, int], optional
        Class name -> code, for CF flag attributes. Defaults to the fixed
        :data:`LAND_COVER_CLASSES` plus any further class the rules assign; when given, it
        must contain those.

    Notes
    -----
    :attr:`sha256` identifies what the table does: it hashes the rules and the classes,
    not the name, sensor or source text, so two tables that classify identically share it.
    Tables pickle and tokenize deterministically, so they travel to dask workers and give
    stable task names.
    """

    name: str
    sensor: str
    rules: tuple[Rule, ...]
    source: str = ""
    classes: Mapping[str, int] = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        where = f"rule table {self.name!r}"
        if not isinstance(self.name, str) or not self.name.strip():
            raise RuleError(f"{where}: key 'name': expected a non-empty string")
        if not isinstance(self.sensor, str) or not self.sensor.strip():
            raise RuleError(f"{where}: key 'sensor': {self.sensor!r}; expected a sensor name")
        if not isinstance(self.source, str):
            raise RuleError(f"{where}: key 'source': {self.source!r}; expected a string")
        rules = tuple(self.rules)
        if not rules:
            raise RuleError(f"{where}: key 'rules': expected at least one rule")
        seen_names: dict[str, int] = {}
        seen_values: dict[int, str] = {}
        for index, rule in enumerate(rules):
            if not isinstance(rule, Rule):
                raise RuleError(f"{where}: rules[{index}]: {rule!r} is not a Rule")
            at = f"{where}: {_rule_where(index, rule)}"
            if rule.class_name in seen_names:
                raise RuleError(
                    f"{at}: key 'class': duplicate class, already assigned by "
                    f"rules[{seen_names[rule.class_name]}]; expected each class once"
                )
            if rule.class_value in seen_values:
                raise RuleError(
                    f"{at}: key 'value': duplicate code {rule.class_value}, already used by "
                    f"class {seen_values[rule.class_value]!r}"
                )
            fixed = LAND_COVER_CLASSES.get(rule.class_name)
            if fixed is not None and fixed != rule.class_value:
                raise RuleError(
                    f"{at}: key 'value': {rule.class_value}; class {rule.class_name!r} has "
                    f"the fixed code {fixed}"
                )
            if fixed is None and rule.class_value in LAND_COVER_CLASSES.values():
                raise RuleError(
                    f"{at}: key 'value': code {rule.class_value} is reserved for a standard "
                    "class; expected 5-255 for a new class"
                )
            if not rule.conditions and index != len(rules) - 1:
                raise RuleError(
                    f"{at}: key 'conditions': an unconditional rule must be the last one; "
                    "the rules after it could never apply"
                )
            seen_names[rule.class_name] = index
            seen_values[rule.class_value] = rule.class_name
        object.__setattr__(self, "rules", rules)

        derived = dict(LAND_COVER_CLASSES)
        derived.update((rule.class_name, rule.class_value) for rule in rules)
        if self.classes is None:
            classes = derived
        else:
            classes = self._check_classes(where, self.classes, derived)
        ordered = sorted(classes.items(), key=lambda item: item[1])
        object.__setattr__(self, "classes", FrozenMap(ordered))

    @staticmethod
    def _check_classes(
        where: str, classes: Mapping[str, int], derived: Mapping[str, int]
    ) -> dict[str, int]:
        if not isinstance(classes, Mapping):
            raise RuleError(f"{where}: key 'classes': expected a table of name = code")
        checked: dict[str, int] = {}
        by_value: dict[int, str] = {}
        for name, value in classes.items():
            key = f"{where}: key 'classes.{name}'"
            if not isinstance(name, str) or not _CLASS_NAME.match(name):
                raise RuleError(f"{key}: expected a name of letters, digits and underscores")
            if not isinstance(value, numbers.Integral) or isinstance(value, bool):
                raise RuleError(f"{key}: {value!r}; expected an integer 0-255")
            if not 0 <= int(value) <= 255:
                raise RuleError(f"{key}: {value!r}; expected an integer 0-255")
            if int(value) in by_value:
                raise RuleError(
                    f"{key}: duplicate code {value}, already used by {by_value[int(value)]!r}"
                )
            by_value[int(value)] = name
            checked[name] = int(value)
        for name, value in derived.items():
            if checked.get(name) != value:
                raise RuleError(
                    f"{where}: key 'classes.{name}': {checked.get(name)!r}; expected {value} "
                    "(fixed code or the code the rules assign)"
                )
        return checked

    # -- derived views ------------------------------------------------------------------

    @property
    def flag_values(self) -> np.ndarray:
        """Class codes in increasing order, as uint8 (CF ``flag_values``)."""
        return np.array(list(self.classes.values()), dtype=np.uint8)

    @property
    def flag_meanings(self) -> str:
        """Space-separated class names matching :attr:`flag_values` (CF ``flag_meanings``)."""
        return " ".join(self.classes)

    @property
    def quantities(self) -> frozenset[str]:
        """The quantities the conditions test."""
        return frozenset(c.quantity for rule in self.rules for c in rule.conditions)

    @cached_property
    def sha256(self) -> str:
        """Hex SHA-256 of the rules and classes (independent of name, sensor and source)."""
        content = {
            "classes": [[name, value] for name, value in self.classes.items()],
            "rules": [
                [
                    rule.class_name,
                    rule.class_value,
                    # repr is the shortest exact spelling of a float, so equal tables hash
                    # equal on every platform.
                    [[c.quantity, c.operator, repr(c.threshold)] for c in rule.conditions],
                ]
                for rule in self.rules
            ],
        }
        text = json.dumps(content, separators=(",", ":"), sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def __dask_tokenize__(self):
        return ("updm_dask.RuleTable", self.name, self.sensor, self.sha256)

    def __str__(self) -> str:
        lines = [f"rule table {self.name!r} ({self.sensor})"]
        lines += [f"  {i + 1}. {rule}" for i, rule in enumerate(self.rules)]
        return "\n".join(lines)

    # -- TOML ---------------------------------------------------------------------------

    def to_toml(self) -> str:
        """Serialise to the TOML format :func:`load_rules` reads (exact round trip).

        Returns
        -------
        str
            TOML text; thresholds are written with ``repr`` so they read back bit-exact.
        """
        out = [
            f"# Land-cover rule table {self.name!r} for sensor {self.sensor}.",
            "# Rules apply top first: a pixel takes the class of the first rule whose",
            "# conditions all hold. S = uCw + uCv + uCs;",
            "# mviupd = (uCv - uCw - 0.2 uCs - uC4) / S.",
            f"name = {_toml_string(self.name)}",
            f"sensor = {_toml_string(self.sensor)}",
            f"source = {_toml_multiline(self.source)}",
            "",
            "[classes]",
        ]
        out += [f"{name} = {value}" for name, value in self.classes.items()]
        for rule in self.rules:
            out += [
                "",
                "[[rules]]",
                f"class = {_toml_string(rule.class_name)}",
                f"value = {rule.class_value}",
            ]
            if not rule.conditions:
                out.append("conditions = []  # otherwise")
                continue
            out.append("conditions = [")
            out += [
                f"    {{ quantity = {_toml_string(c.quantity)}, operator = "
                f"{_toml_string(c.operator)}, threshold = {c.threshold!r} }},"
                for c in rule.conditions
            ]
            out.append("]")
        return "\n".join(out) + "\n"

    def save(self, path: str | os.PathLike) -> Path:
        """Write :meth:`to_toml` to ``path`` (UTF-8) and return the path."""
        path = Path(path)
        path.write_text(self.to_toml(), encoding="utf-8")
        return path

    @classmethod
    def from_toml(cls, text: str, origin: str = "<string>") -> RuleTable:
        """Parse TOML text into a validated table.

        Parameters
        ----------
        text : str
            TOML in the format of :meth:`to_toml`.
        origin : str, optional
            Name used in error messages (normally the file path).

        Raises
        ------
        RuleError
            On bad TOML syntax, unknown or missing keys, unknown quantities or operators,
            non-numeric thresholds, duplicate classes or codes; the message names the file,
            the rule (index and class) and the key.
        """
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise RuleError(f"{origin}: not valid TOML: {exc}") from exc
        return _table_from_dict(data, origin)


# Basic TOML strings take the JSON-like escapes; control characters (and DEL) must be
# escaped, everything else may appear as UTF-8.
def _toml_escape(text: str, keep_newlines: bool) -> str:
    out = []
    for char in text:
        if char == "\\":
            out.append("\\\\")
        elif char == '"':
            out.append('\\"')
        elif char == "\n" and keep_newlines:
            out.append("\n")
        elif char == "\t":
            out.append("\\t")
        elif char == "\n":
            out.append("\\n")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return "".join(out)


def _toml_string(text: str) -> str:
    return '"' + _toml_escape(text, keep_newlines=False) + '"'


def _toml_multiline(text: str) -> str:
    # TOML drops a newline right after the opening quotes, so the text starts on its own
    # line without gaining a leading newline.
    return '"""\n' + _toml_escape(text, keep_newlines=True) + '"""'


def _check_keys(where: str, table: Any, allowed: tuple, required: tuple) -> None:
    if not isinstance(table, dict):
        raise RuleError(f"{where}: expected a table, got {type(table).__name__}")
    unknown = [key for key in table if key not in allowed]
    if unknown:
        raise RuleError(f"{where}: unknown key {unknown[0]!r}; expected only {', '.join(allowed)}")
    missing = [key for key in required if key not in table]
    if missing:
        raise RuleError(f"{where}: missing key {missing[0]!r}")


def _table_from_dict(data: dict, origin: str) -> RuleTable:
    _check_keys(origin, data, _TABLE_KEYS, _TABLE_REQUIRED)
    for key in ("name", "sensor", "source"):
        if key in data and not isinstance(data[key], str):
            raise RuleError(f"{origin}: key {key!r}: {data[key]!r}; expected a string")
    raw_rules = data["rules"]
    if not isinstance(raw_rules, list) or not raw_rules:
        raise RuleError(f"{origin}: key 'rules': expected a non-empty array of [[rules]] tables")
    rules = []
    for index, raw in enumerate(raw_rules):
        label = raw.get("class") if isinstance(raw, dict) else None
        where = f"{origin}: rules[{index}]" + (f" (class {label!r})" if label else "")
        _check_keys(where, raw, _RULE_KEYS, _RULE_KEYS)
        raw_conditions = raw["conditions"]
        if not isinstance(raw_conditions, list):
            raise RuleError(
                f"{where}: key 'conditions': expected an array of "
                "{ quantity, operator, threshold } tables ([] for 'otherwise')"
            )
        conditions = []
        for number, raw_condition in enumerate(raw_conditions):
            at = f"{where}: conditions[{number}]"
            _check_keys(at, raw_condition, _CONDITION_KEYS, _CONDITION_KEYS)
            try:
                conditions.append(Condition(**raw_condition))
            except RuleError as exc:
                raise RuleError(f"{at}: {exc}") from exc
        try:
            rules.append(Rule(raw["class"], raw["value"], tuple(conditions)))
        except RuleError as exc:
            raise RuleError(f"{where}: {exc}") from exc
    try:
        return RuleTable(
            name=data["name"],
            sensor=data["sensor"],
            rules=tuple(rules),
            source=data.get("source", ""),
            classes=data.get("classes"),
        )
    except RuleError as exc:
        raise RuleError(f"{origin}: {exc}") from exc


#: Names :func:`load_rules` accepts for the shipped tables (case-insensitive). TM's Table 5
#: serves ETM+, OLI and OLI-2 too: their reflective bands match TM's closely, and UPDM
#: coefficients are meant to be sensor-independent.
RULE_TABLE_ALIASES: Mapping[str, str] = FrozenMap(
    {
        "TM": "rules_TM.toml",
        "ETM+": "rules_TM.toml",
        "OLI": "rules_TM.toml",
        "OLI-2": "rules_TM.toml",
        "MSS": "rules_MSS.toml",
    }
)


def load_rules(name_or_path: str | os.PathLike | RuleTable) -> RuleTable:
    """Load a shipped rule table by sensor name, or a user table from a TOML file.

    Parameters
    ----------
    name_or_path : str, path-like or RuleTable
        ``"TM"`` (the note's Table 5; also ``"ETM+"``, ``"OLI"``, ``"OLI-2"``), ``"MSS"``
        (Table 8), or the path of a TOML file. A string that is a known name always means
        the shipped table. A RuleTable is returned unchanged.

    Returns
    -------
    RuleTable

    Raises
    ------
    RuleError
        Unknown name, unreadable file, or a malformed table (see
        :meth:`RuleTable.from_toml`).
    """
    if isinstance(name_or_path, RuleTable):
        return name_or_path
    if isinstance(name_or_path, str):
        wanted = name_or_path.strip().upper()
        for alias, filename in RULE_TABLE_ALIASES.items():
            if alias.upper() == wanted:
                resource = resources.files("updm_dask").joinpath("data", filename)
                return RuleTable.from_toml(
                    resource.read_text(encoding="utf-8"), origin=f"updm_dask/data/{filename}"
                )
    if not isinstance(name_or_path, str | os.PathLike):
        raise RuleError(
            f"rules: {name_or_path!r}; expected a sensor name, a TOML path or a RuleTable"
        )
    path = Path(name_or_path)
    if not path.is_file():
        raise RuleError(
            f"rules: {str(name_or_path)!r} is neither a known rule table "
            f"({', '.join(RULE_TABLE_ALIASES)}) nor an existing TOML file"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleError(f"{path}: cannot read rule table: {exc}") from exc
    return RuleTable.from_toml(text, origin=str(path))


# --------------------------------------------------------------------------------------
# Classification kernel and wrappers
# --------------------------------------------------------------------------------------


def classify_array(coefficients: np.ndarray, rules: RuleTable) -> np.ndarray:
    """Classify pixels by a rule table (numpy kernel).

    Parameters
    ----------
    coefficients : numpy.ndarray, shape (..., k)
        UPDM coefficients on the last axis in the order water, vegetation, soil
        [, supplementary]; k is 3 or 4. Integer input is treated as float64.
    rules : RuleTable

    Returns
    -------
    numpy.ndarray of uint8, shape (...)
        Class codes: 0 (no_data) where uCw, uCv or uCs is NaN or infinite, uC4 is
        infinite, or no rule matches; else the code of the first matching rule. MVIUPD
        includes uC4 when k = 4; a NaN uC4 means "no supplementary pattern" and counts as 0.

    Raises
    ------
    RuleError
        Wrong last-axis length, or the table tests uC4 but only 3 coefficients are given.
    """
    coefficients = np.asarray(coefficients)
    if coefficients.ndim < 1 or coefficients.shape[-1] not in (3, 4):
        raise RuleError(
            f"coefficients: shape {coefficients.shape}; expected (..., 3) or (..., 4) with "
            "components water, vegetation, soil[, supplementary] on the last axis"
        )
    if not np.issubdtype(coefficients.dtype, np.floating):
        coefficients = coefficients.astype(np.float64)
    k = coefficients.shape[-1]
    if "uC4" in rules.quantities and k == 3:
        raise RuleError(
            f"rule table {rules.name!r} tests uC4, but the coefficients have only 3 "
            "components (no supplementary pattern)"
        )
    parts = {"uCw": coefficients[..., 0], "uCv": coefficients[..., 1], "uCs": coefficients[..., 2]}
    valid = np.isfinite(coefficients[..., :3]).all(axis=-1)
    if k == 4:
        supplementary = coefficients[..., 3]
        valid &= ~np.isinf(supplementary)
        parts["uC4"] = np.where(np.isnan(supplementary), 0, supplementary)
    cache: dict[str, np.ndarray] = dict(parts)

    def quantity(name: str) -> np.ndarray:
        if name not in cache:
            if name == "S":
                cache[name] = parts["uCw"] + parts["uCv"] + parts["uCs"]
            else:  # mviupd
                cache[name] = _mviupd_kernel(
                    parts["uCw"], parts["uCv"], parts["uCs"], parts.get("uC4")
                )
        return cache[name]

    scalar = coefficients.dtype.type
    out = np.zeros(coefficients.shape[:-1], dtype=np.uint8)
    pending = valid
    with np.errstate(over="ignore", invalid="ignore"):
        for rule in rules.rules:
            if not pending.any():
                break
            hit = pending.copy()
            for condition in rule.conditions:
                compare = _COMPARE[condition.operator]
                hit &= compare(quantity(condition.quantity), scalar(condition.threshold))
            out[hit] = rule.class_value
            pending &= ~hit
    return out


def _classify_components(*components: np.ndarray, rules: RuleTable) -> np.ndarray:
    # Blocks of separate uCw/uCv/uCs[/uC4] variables: stacking inside the block keeps the
    # graph free of a concatenate task per chunk.
    return classify_array(np.stack(np.broadcast_arrays(*components), axis=-1), rules)


_COMPONENT_ALIASES = {
    0: ("uCw", "w", "water"),
    1: ("uCv", "v", "vegetation"),
    2: ("uCs", "s", "soil"),
    3: ("uC4", "4", "supplementary", "yellow_leaf", "yellow"),
}
_COMPONENT_INDEX = {
    alias.lower(): index for index, names in _COMPONENT_ALIASES.items() for alias in names
}


def _land_cover(data, dims, coords, table: RuleTable) -> xr.DataArray:
    return xr.DataArray(
        data,
        dims=dims,
        coords=coords,
        name="land_cover",
        attrs={
            "long_name": "land-cover class (UPDM rule table)",
            "flag_values": table.flag_values,
            "flag_meanings": table.flag_meanings,
            "rules": table.name,
            "rules_sha256": table.sha256,
        },
    )


def _classify_dataset(ds: xr.Dataset, table: RuleTable, supplementary: bool | None):
    names = ["uCw", "uCv", "uCs"]
    if supplementary is True or (supplementary is None and "uC4" in ds.data_vars):
        names.append("uC4")
    missing = [n for n in names if n not in ds.data_vars]
    if missing:
        raise RuleError(
            f"coefficients: Dataset lacks variable {missing[0]!r}; expected uCw, uCv, uCs"
            f"{', uC4' if supplementary else ''} (found {', '.join(map(str, ds.data_vars))})"
        )
    variables = xr.broadcast(*[ds[n] for n in names])
    template = variables[0]
    datas = [v.data for v in variables]
    if any(is_dask_collection(d) for d in datas):
        datas = [da.asarray(d) for d in datas]
        data = da.map_blocks(
            _classify_components,
            *datas,
            dtype=np.uint8,
            rules=table,
            token="updm-classify",
        )
    else:
        data = _classify_components(*datas, rules=table)
    coords = dict(template.coords.items())
    return _land_cover(data, template.dims, coords, table)


def _component_dim(array: xr.DataArray, dim: str | None) -> str:
    if dim is not None:
        if dim not in array.dims:
            raise RuleError(f"dim: {dim!r} is not a dimension of the coefficients {array.dims}")
        return dim
    found = [d for d in ("component", "pattern") if d in array.dims]
    if len(found) != 1:
        raise RuleError(
            f"coefficients: DataArray dims {array.dims}; expected exactly one of "
            "'component' or 'pattern' (or pass dim=)"
        )
    return found[0]


def _classify_dataarray(
    array: xr.DataArray, table: RuleTable, supplementary: bool | None, dim: str | None
):
    dim = _component_dim(array, dim)
    size = array.sizes[dim]
    if size not in (3, 4):
        raise RuleError(
            f"coefficients: dimension {dim!r} has {size} entries; expected 3 or 4 "
            "(water, vegetation, soil[, supplementary])"
        )
    if dim in array.coords:
        labels = [str(v) for v in array[dim].values]
        try:
            order = sorted(range(size), key=lambda i: _COMPONENT_INDEX[labels[i].lower()])
        except KeyError as exc:
            raise RuleError(
                f"coefficients: unknown {dim!r} label {exc.args[0]!r}; expected "
                "uCw/uCv/uCs/uC4 or water/vegetation/soil/supplementary"
            ) from None
        positions = sorted(_COMPONENT_INDEX[labels[i].lower()] for i in order)
        if positions != list(range(size)):
            raise RuleError(
                f"coefficients: {dim!r} labels {labels}; expected water, vegetation, soil"
                "[, supplementary], each once"
            )
        array = array.isel({dim: order})
    if supplementary is True and size == 3:
        raise RuleError(f"coefficients: supplementary=True but {dim!r} has only 3 entries")
    if supplementary is False and size == 4:
        array = array.isel({dim: slice(0, 3)})
    array = array.transpose(..., dim)
    template = array.isel({dim: 0}, drop=True)
    data = array.data
    if is_dask_collection(data):
        data = da.asarray(data)
        if data.numblocks[-1] != 1:
            # 3-4 entries: merging them into one chunk is cheap and the kernel needs them.
            data = data.rechunk({data.ndim - 1: -1})
        data = da.map_blocks(
            classify_array,
            data,
            drop_axis=data.ndim - 1,
            dtype=np.uint8,
            rules=table,
            token="updm-classify",
        )
    else:
        data = classify_array(data, table)
    return _land_cover(data, template.dims, dict(template.coords.items()), table)


def classify(
    coefficients,
    rules: RuleTable | str | os.PathLike = "TM",
    *,
    supplementary: bool | None = None,
    dim: str | None = None,
) -> xr.DataArray:
    """Land-cover classes from UPDM coefficients (labelled API).

    Parameters
    ----------
    coefficients : xarray.Dataset, xarray.DataArray, numpy or dask array
        - Dataset with variables ``uCw``, ``uCv``, ``uCs`` and optionally ``uC4``
          (any other variable, e.g. a stored ``mviupd``, is ignored: MVIUPD is recomputed);
        - DataArray with a ``"component"`` or ``"pattern"`` dimension (or ``dim``); its
          labels, if any, may be uCw/uCv/uCs/uC4 or water/vegetation/soil/supplementary
          in any order, without labels the order is water, vegetation, soil[, suppl.];
        - array with the components on the last axis, in that order.
    rules : RuleTable, str or path-like
        A table, or anything :func:`load_rules` accepts. Default: the TM table.
    supplementary : bool, optional
        Use uC4. ``None`` (default) uses it when present; ``False`` ignores it; ``True``
        requires it. Where uC4 is NaN (the cube's way of storing scenes decomposed without
        a supplementary pattern, e.g. MSS) it counts as 0, as in :func:`classify_array`.
    dim : str, optional
        Name of the component dimension of a DataArray.

    Returns
    -------
    xarray.DataArray of uint8
        Named ``"land_cover"``, the input's dims minus the component dim, with attrs
        ``flag_values``, ``flag_meanings``, ``rules`` (table name), ``rules_sha256`` and
        ``long_name``. Lazy (nothing computed) when the input is dask-backed.

    Raises
    ------
    RuleError
        Missing variables, unknown component labels, wrong component count, bad rules.
    """
    table = load_rules(rules)
    if isinstance(coefficients, xr.Dataset):
        return _classify_dataset(coefficients, table, supplementary)
    if isinstance(coefficients, xr.DataArray):
        return _classify_dataarray(coefficients, table, supplementary, dim)
    if is_dask_collection(coefficients):
        data = da.asarray(coefficients)
    else:
        data = np.asarray(coefficients)
    if data.ndim < 1:
        raise RuleError("coefficients: a scalar; expected (..., 3) or (..., 4) components")
    dims = (*(f"dim_{i}" for i in range(data.ndim - 1)), "component")
    return _classify_dataarray(xr.DataArray(data, dims=dims), table, supplementary, "component")


# --------------------------------------------------------------------------------------
# Cross-sensor conversion
# --------------------------------------------------------------------------------------

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
                value = _mviupd_kernel(
                    *parts, None if uC4 is None else np.asarray(uC4, dtype=np.float64)
                )
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
