"""Tests of :mod:`updm_dask.demo` (a package, so that its conftest does not shadow the root one)."""
