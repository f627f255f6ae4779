"""Landsat scene metadata: every MTL flavour and the ESPA XML, read into one typed record.

Supported inputs (the format is recognised from the content, not the file name):

- ODL text ``*_MTL.txt`` (any case of the extension): pre-collection and Collection-1 files
  with the ``L1_METADATA_FILE`` group, Collection-2 files with ``LANDSAT_METADATA_FILE``;
  including the oldest pre-2012 field names (``LMAX_BAND1``, ``QCALMAX_BAND61``,
  ``BAND1_FILE_NAME``, ``ACQUISITION_DATE``, ``SCENE_CENTER_SCAN_TIME``, ``STARTING_ROW``,
  ``ZONE_NUMBER``, ``SPACECRAFT_ID = "Landsat7"`` ...);
- Collection-2 XML ``*_MTL.xml`` (root element ``LANDSAT_METADATA_FILE``);
- JSON renderings of the ODL (nested groups, numbers as numbers), as written by rio-toa;
- ESPA XML (``espa_metadata``, namespaced; solar zenith instead of elevation, one element
  per band with its own file name and scale).

Files are parsed, never evaluated. Known quirks of real files are handled: NUL padding after
the text (some LPGS files are padded to 65 535 bytes), CRLF line endings, quoted and unquoted
values, ``NULL``, zero-padded integers (``WRS_ROW = 031``) and stray whitespace after values.
Everything else that is wrong raises :class:`~updm_dask.errors.MetadataError` naming the
file, the line (with the column in JSON written on one line), the field and what was
expected, never the text found there: a path may lead to a file that is not metadata at all
(a symlink to a secret), and messages end up in reports and logs. An acquisition date
outside the Landsat era (before 1972-07-23, or after tomorrow UTC) is such an error.

The reader is group-aware. A Collection-2 Level-2 file repeats ``REFLECTANCE_MULT_BAND_n``:
once in ``LEVEL1_RADIOMETRIC_RESCALING`` (DN -> top-of-atmosphere reflectance) and once in
``LEVEL2_SURFACE_REFLECTANCE_PARAMETERS`` (DN -> surface reflectance). The first becomes
:attr:`BandMetadata.reflectance_mult`, the second :attr:`BandMetadata.sr_mult`; a lookup
that cannot tell them apart is an error, never a silent pick.

The package, one module per concern: :mod:`~updm_dask.metadata.records` (the records),
:mod:`~updm_dask.metadata.read` (bytes, text and format recognition),
:mod:`~updm_dask.metadata.odl` (the ODL parser), :mod:`~updm_dask.metadata.mtl` (MTL
groups -> record), :mod:`~updm_dask.metadata.espa` (ESPA XML -> record) and
:mod:`~updm_dask.metadata.values` (typed values shared by all of them).
"""

from __future__ import annotations

from .odl import parse_odl
from .read import MAX_METADATA_BYTES, read_mtl, read_mtl_text
from .records import BandMetadata, SceneMetadata

__all__ = [
    "MAX_METADATA_BYTES",
    "BandMetadata",
    "SceneMetadata",
    "parse_odl",
    "read_mtl",
    "read_mtl_text",
]
