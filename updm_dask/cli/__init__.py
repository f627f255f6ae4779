"""The ``updm`` command: parsing arguments and printing results, nothing else.

Each sub-module adds its commands to the parser and calls the library; none computes.
"""

from .app import JobProgressBar, main

__all__ = ["JobProgressBar", "main"]
