"""vidloc: find when things happen in videos."""

__version__ = "0.1.0"
