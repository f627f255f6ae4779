"""``python -m updm_dask.cli``: the same as the ``updm`` command."""

import sys

from .app import main

sys.exit(main())
