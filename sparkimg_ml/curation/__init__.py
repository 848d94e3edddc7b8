"""Dataset curation on Spark: near-duplicates (:func:`find_duplicates`), and failed rows kept aside and re-run
(:class:`Quarantine`)."""

from .duplicates import DuplicateResult, connected_components, find_duplicates
from .quarantine import Quarantine

__all__ = ["DuplicateResult", "connected_components", "find_duplicates", "Quarantine"]
