"""The science: UPDM as numpy kernels, with no I/O of scenes and no scheduling.

Rooms, in dependency order (each imports only those before it):

- :mod:`~updm_dask.science.sensors`: band tables, calibration tables, ESUN, for MSS to OLI-2.
- :mod:`~updm_dask.science.calibration`: eqs. (1)-(7), DN -> radiance -> reflectance,
  Earth-Sun distance, Rayleigh path reflectance.
- :mod:`~updm_dask.science.masks`: fill, saturation, QA cloud and SLC-off gap bits.
- :mod:`~updm_dask.science.spectra`: a block's DN to the spectra the NNLS reads
  (calibration and fill in one compiled pass).
- :mod:`~updm_dask.science.quality`: a block's quality bit flags (those of
  :mod:`~updm_dask.science.masks`) in one compiled pass.
- :mod:`~updm_dask.science.patterns`: spectra math, pattern sets, band patterns.
- :mod:`~updm_dask.science.decompose`: the exact NNLS kernel (eqs. (8)-(11)) and the
  illumination correction.
- :mod:`~updm_dask.science.classify`: MVIUPD, rule tables, the land-cover kernel,
  cross-sensor conversion.
- :mod:`~updm_dask.science.reduce`: reductions numpy does slowly for many short series
  (the median of each pixel's pairwise slopes).
- :mod:`~updm_dask.science.annual`: one year of each pixel's observations summarised in
  one compiled pass (yearly class, median MVIUPD, clear and class counts).
- :mod:`~updm_dask.science.trends`: Theil-Sen slopes and Mann-Kendall tests of series.
- :mod:`~updm_dask.science.accuracy`: error matrices, accuracy and area estimates from a
  stratified reference sample (Olofsson et al. 2014).

Everything here takes and returns numpy arrays with the axis contract stated in each
docstring; scene metadata arrive as records, never read here. The pipeline
(:mod:`updm_dask.pipeline`) runs the kernels fused in one task per chunk and adds nothing
to the numerics. Two labelled conveniences stay for users, because they accept numpy, dask
and xarray alike: :func:`~updm_dask.science.classify.mviupd` and
:func:`~updm_dask.science.classify.classify`; :func:`~updm_dask.science.patterns.band_patterns`
returns a labelled (band, pattern) matrix.
"""
