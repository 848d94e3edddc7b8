"""Dataset curation on Spark: near-duplicate pairs, clusters and de-duplication (:func:`find_duplicates`)."""

from .duplicates import DuplicateResult, connected_components, find_duplicates

__all__ = ["DuplicateResult", "connected_components", "find_duplicates"]
