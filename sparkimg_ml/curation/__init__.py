"""Dataset curation on Spark: near-duplicates (:func:`find_duplicates`), failed rows kept aside and re-run
(:class:`Quarantine`), and re-runs that compute only new work (:class:`FeatureCache`)."""

from .duplicates import DuplicateResult, connected_components, find_duplicates
from .incremental import CacheRun, FeatureCache
from .quarantine import Quarantine

__all__ = ["CacheRun", "DuplicateResult", "connected_components", "FeatureCache", "find_duplicates", "Quarantine"]
