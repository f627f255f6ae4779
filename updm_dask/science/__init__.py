"""The science: UPDM as numpy kernels, with no I/O, no dask and no scheduling.

Rooms, in dependency order (each imports only those before it):

- :mod:`~updm_dask.science.sensors`: band tables, calibration tables, ESUN, for MSS to OLI-2.
- :mod:`~updm_dask.science.calibration`: eqs. (1)-(7), DN -> radiance -> reflectance,
  Earth-Sun distance, Rayleigh path reflectance.
- :mod:`~updm_dask.science.masks`: fill, saturation, QA cloud and SLC-off gap bits.
- :mod:`~updm_dask.science.patterns`: standard spectra, normalisation, band averaging,
  pattern sets.
- :mod:`~updm_dask.science.decompose`: the exact NNLS kernel (eqs. (8)-(11)).
- :mod:`~updm_dask.science.classify`: MVIUPD, rule tables, cross-sensor conversion.
- :mod:`~updm_dask.science.trends`: Theil-Sen slopes and Mann-Kendall tests.

Everything here takes and returns numpy arrays with the axis contract stated in each
docstring; the dask and xarray layers (:mod:`updm_dask.pipeline`, :mod:`updm_dask.scenes`,
:mod:`updm_dask.query`) call these kernels and add nothing to the numerics.
"""
