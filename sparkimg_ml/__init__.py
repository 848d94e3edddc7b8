"""sparkimg_ml: images as first-class features in Apache Spark ML."""

from ._version import __version__
from .errors import REASON_CODES, SourceError

__all__ = ["__version__", "REASON_CODES", "SourceError"]
