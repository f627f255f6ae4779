"""One immutable mapping for every frozen record of the package.

Records (scene metadata, scene sources, rule tables, conversions) are frozen dataclasses that
travel to dask workers and into task tokens, so their mapping fields must be read-only,
picklable (``types.MappingProxyType`` is not), hashable and tokenize deterministically.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

__all__ = ["FrozenMap", "freeze"]


class FrozenMap(Mapping):
    """A read-only mapping that pickles, hashes and tokenizes deterministically.

    Equality is :class:`~collections.abc.Mapping`'s (order-independent), so the hash is
    order-independent too: two equal maps always hash equal. Iteration keeps insertion
    order, which rule tables use for their class order.

    Parameters
    ----------
    items : mapping or iterable of (key, value) pairs
        Copied; nested containers are not converted (see :func:`freeze`).
    """

    __slots__ = ("_data",)

    def __init__(self, items: Mapping | Iterable[tuple[Any, Any]] = ()) -> None:
        object.__setattr__(self, "_data", dict(items))

    def __getitem__(self, key: Any) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __reduce__(self):
        return (FrozenMap, (tuple(self._data.items()),))

    def __dask_tokenize__(self):
        return ("FrozenMap", tuple(sorted(self._data.items(), key=lambda kv: str(kv[0]))))


def freeze(obj: Any) -> Any:
    """``obj`` with every nested mapping a :class:`FrozenMap` and every list a tuple."""
    if isinstance(obj, Mapping):
        return FrozenMap({k: freeze(v) for k, v in obj.items()})
    if isinstance(obj, list | tuple):
        return tuple(freeze(v) for v in obj)
    return obj
