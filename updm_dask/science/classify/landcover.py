"""Land-cover classes from UPDM coefficients: the numpy kernel and its labelled wrapper.

:func:`classify_array` is the numpy kernel (components on the last axis, numpy in and out);
the pipeline runs :func:`~updm_dask.science.classify.fused.classify_block`, which gives the
same codes bit for bit in one compiled pass. :func:`classify` is the labelled API for
users: a Dataset of ``uCw``/``uCv``/``uCs``[/``uC4``], a DataArray with a component
dimension, or a plain array, numpy- or dask-backed (lazy for dask), in; a ``land_cover``
DataArray with CF flag attributes out. Both apply a :class:`~.rules.RuleTable` as
:mod:`~updm_dask.science.classify.rules` defines it.
"""

from __future__ import annotations

import os

import dask.array as da
import numpy as np
import xarray as xr
from dask.base import is_dask_collection

from ...errors import RuleError
from .index import mviupd
from .rules import RuleTable, load_rules

__all__ = ["classify", "classify_array"]

_COMPARE = {
    ">=": np.greater_equal,
    ">": np.greater,
    "<=": np.less_equal,
    "<": np.less,
}


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
        Below the dark limit (``S < 0.025``) MVIUPD is undefined and no condition on it
        holds (see :mod:`~updm_dask.science.classify.rules`).

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
                cache[name] = mviupd(parts["uCw"], parts["uCv"], parts["uCs"], parts.get("uC4"))
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
