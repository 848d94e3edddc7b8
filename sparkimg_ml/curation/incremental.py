"""Re-runs that only do new work: a cache of a stage's outputs, keyed by source, content and fingerprint.

:class:`FeatureCache` remembers what an image stage (``ImageUrlFeaturizer``,
``ImageEmbedder``, ``ImageHasher``) computed for each source. On the next run over
a grown or changed table it fetches and decodes only the rows that are

* **new**: their key is not in the cache;
* **changed**: their key is there, but with another content validator (a file's
  modification time and size, an ETag, a content hash: whatever columns you name);
* **failed last time**: the cached output is null (a timeout, a host that was down);
* **computed differently**: the cache entry was made with another preprocessing
  fingerprint (another image size, decoder version, model...).

Every other row takes its output from the cache, and the result has every row of
the input with its columns, as ``stage.transform(df)`` would give. Rows that share
a key and validator are computed once.

The cache is an append-only table (Parquet by default) of one entry per computed
source::

    <key columns>  <validator columns>  <outputCol>  [<errorCol>]  [<sourceInfoCol>]
    cache_fingerprint   the digest of stage.fingerprint() the entry was made with
    cache_run           the run that computed it (a random id)
    cache_computed_at   when (UTC)

Each run appends the entries it computed and never rewrites the others, so a run
that dies leaves the cache as it was, and a run that reads the cache while another
appends sees either all of that run's entries or none.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import missing_column
from ..schema import FINGERPRINT_KEY
from ..sources.partitions import PARTITIONS_PER_CORE, default_parallelism, partition_count

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

FINGERPRINT, RUN, COMPUTED_AT = "cache_fingerprint", "cache_run", "cache_computed_at"
#: The column sources are matched on while a run joins (not stored).
SOURCE_KEY = "__sparkimg_cache_key"
BOOKKEEPING = (FINGERPRINT, RUN, COMPUTED_AT)


@dataclass(frozen=True)
class CacheRun:
    """What one :meth:`FeatureCache.transform` did: its id and how many sources it computed."""

    run: str
    #: Distinct (key, validator) pairs fetched and decoded by this run (the rest came from the cache).
    computed: int
    #: Of those, how many have a null output (failed; computed again by the next run).
    failed: int


class FeatureCache:
    """A cache of an image stage's outputs at ``path``: re-runs compute only new, changed or failed rows.

    Parameters
    ----------
    path : str
        Where the cache table lives (created by the first run); any path Spark writes.
    key : str or list of str, optional
        Column(s) that name a source: the stage's ``inputCol`` by default (a URL or a
        path). Use an id column when one source can hold different images over time and
        you have a better identity for them.
    validator : str or list of str, optional
        Column(s) that change when a source's content changes: ``modificationTime`` and
        ``size`` of a :func:`~sparkimg_ml.read_images` table, an ETag or Last-Modified
        column you keep for URLs, a content hash. A row whose validator differs from the
        cached one is computed again. Without a validator, a key is computed once per
        fingerprint.
    format : str, default "parquet"
        The cache table's format (``"delta"`` works where Delta Lake is installed).

    Examples
    --------
    >>> from sparkimg_ml import ImageUrlFeaturizer, read_images
    >>> from sparkimg_ml.curation import FeatureCache
    >>> stage = ImageUrlFeaturizer(inputCol="path", outputCol="features", handleInvalid="keep",
    ...                            errorCol="error")
    >>> cache = FeatureCache("s3://bucket/feature-cache", validator=["modificationTime", "size"])
    >>> images = read_images(spark, "s3://bucket/photos/**/*.jpg")  # doctest: +SKIP
    >>> features = cache.transform(stage, images)  # doctest: +SKIP
    >>> features.write.parquet("s3://bucket/features/2026-12-05")  # doctest: +SKIP
    >>> cache.last_run.computed  # doctest: +SKIP
    1204
    """

    def __init__(self, path: str, *, key: str | Sequence[str] | None = None,
                 validator: str | Sequence[str] = (), format: str = "parquet") -> None:
        self.path = path
        self.key = None if key is None else _column_list(key, "key")
        self.validator = _column_list(validator, "validator", allow_empty=True)
        overlap = set(self.key or ()) & set(self.validator)
        if overlap:
            raise ValueError(f"FeatureCache: {sorted(overlap)} cannot be both key and validator columns")
        reserved = set(BOOKKEEPING) & {*(self.key or ()), *self.validator}
        if reserved:
            raise ValueError(f"FeatureCache: {sorted(reserved)} are the cache's own columns; rename yours")
        self.format = format
        #: What the latest :meth:`transform` computed (None before the first).
        self.last_run: CacheRun | None = None

    # -- the run -------------------------------------------------------------------
    def transform(self, stage: Any, df: DataFrame) -> DataFrame:
        """``stage.transform(df)``, computing only rows the cache cannot answer; record what was computed.

        The rows to compute are found, computed once and appended to the cache before this
        returns (that is the expensive part, and it runs now, not when the result is
        written); the returned frame then joins every row of ``df`` with its cache entry.
        Its columns are ``df``'s followed by the stage's ``outputCol`` (and ``errorCol``, ``sourceInfoCol``),
        with the output column's metadata; with ``handleInvalid="skip"`` failed rows are
        dropped, with ``"error"`` the first failure fails the run and nothing is recorded.
        """
        from pyspark.sql import functions as F

        spark = df.sparkSession
        input_col, outputs = self._stage_columns(stage, df)
        key = self.key or [input_col]
        match = [*key, *self.validator]
        for name in match:
            if name not in df.columns:
                raise missing_column("FeatureCache", "key/validator column", name, df.columns)
        # fingerprint() is read from outputMetadata(): one call (an embedder reads its model for it).
        metadata = stage.outputMetadata()
        digest = metadata[FINGERPRINT_KEY]["digest"]
        run = "r" + uuid.uuid4().hex  # the "r" keeps Spark from reading an all-digit id as a number
        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)  # noqa: UP017 - Python 3.10

        # Sources are matched on one struct of the key and validator columns: struct equality treats
        # nulls as equal (a row without a validator value still finds its entry), and de-duplicating
        # and joining on the same column lets Spark shuffle the cached outputs once.
        types = {c: df.schema[c].dataType for c in match}

        def source_key() -> Any:
            return F.struct(*[F.col(c).cast(types[c]).alias(c) for c in match]).alias(SOURCE_KEY)

        # 1. What the cache answers: successful entries made with this fingerprint.
        known = self._entries(spark, digest, match, outputs)
        wanted = df.select(*dict.fromkeys([*match, input_col])).dropDuplicates(match)
        if known is not None:
            answered = known.where(F.col(outputs[0]).isNotNull()).select(source_key())
            wanted = wanted.withColumn(SOURCE_KEY, source_key()).join(answered, SOURCE_KEY, "left_anti")
        # 2. Compute those once and record them; the cache is the only copy (no second fetch).
        # After the shuffles above, adaptive execution would pack these few small rows into one
        # partition (one core fetching everything): spread them over at least two tasks per core.
        tasks = max(partition_count(df) or 0, default_parallelism(spark) * PARTITIONS_PER_CORE)
        computed = stage.transform(wanted.repartition(tasks)).select(
            *match, *outputs, F.lit(digest).alias(FINGERPRINT), F.lit(run).alias(RUN),
            F.lit(now).cast("timestamp").alias(COMPUTED_AT))
        # One directory per run: this run's entries are found (and counted) without reading the others.
        computed.write.format(self.format).mode("append").partitionBy(RUN).save(self.path)
        counts = (self.table(spark).where(F.col(RUN) == run)
                  .agg(F.count(F.lit(1)).alias("n"),
                       F.sum(F.col(outputs[0]).isNull().cast("int")).alias("failed")).first())
        assert counts is not None  # a global aggregate has one row
        self.last_run = CacheRun(run, int(counts["n"]), int(counts["failed"] or 0))

        # 3. Every row of df with its entry: an earlier success, or what this run computed.
        entries = self._entries(spark, digest, match, outputs)
        assert entries is not None  # step 2 created the table
        entries = (entries.where(F.col(outputs[0]).isNotNull() | (F.col(RUN) == run))
                   .select(source_key(), *outputs).dropDuplicates([SOURCE_KEY]))
        how = "inner" if stage.getHandleInvalid() == "skip" else "left"
        joined = df.withColumn(SOURCE_KEY, source_key()).join(entries, SOURCE_KEY, how)
        if how == "inner":  # skip mode: failed entries are dropped like the stage drops them
            joined = joined.where(F.col(outputs[0]).isNotNull())
        return joined.select(*df.columns, F.col(outputs[0]).alias(outputs[0], metadata=metadata), *outputs[1:])

    # -- reading -------------------------------------------------------------------
    def table(self, spark: SparkSession) -> DataFrame:
        """Every entry recorded so far (all runs, all fingerprints)."""
        return spark.read.format(self.format).load(self.path)

    def _entries(self, spark: SparkSession, digest: str, match: list[str], outputs: list[str]) -> DataFrame | None:
        from pyspark.sql import functions as F

        try:
            table = self.table(spark)
            columns = table.columns  # resolves the schema: a missing path fails here, on Connect too
        except Exception as exc:  # noqa: BLE001 - Spark raises a JVM-specific "path does not exist"
            if "PATH_NOT_FOUND" in str(exc) or "does not exist" in str(exc):
                return None
            raise
        missing = [c for c in [*match, *outputs, *BOOKKEEPING] if c not in columns]
        if missing:
            raise ValueError(f"FeatureCache: the cache at {self.path} has no column {', '.join(map(repr, missing))} "
                             f"(its columns: {columns}); it was made with other key/validator columns or another "
                             "stage's outputs: use another path")
        return table.where(F.col(FINGERPRINT) == digest)

    def _stage_columns(self, stage: Any, df: DataFrame) -> tuple[str, list[str]]:
        for method in ("fingerprint", "getInputCol", "getOutputCol", "getHandleInvalid", "outputMetadata"):
            if not hasattr(stage, method):
                raise TypeError(f"FeatureCache caches image stages (ImageUrlFeaturizer, ImageEmbedder, "
                                f"ImageHasher); {type(stage).__name__} has no {method}()")
        input_col = stage.getInputCol()
        if input_col not in df.columns:
            raise missing_column(type(stage).__name__, "input column", input_col, df.columns)
        error_col = stage.getErrorCol() if stage.getHandleInvalid() == "keep" else None
        info_col = stage.getSourceInfoCol() if hasattr(stage, "getSourceInfoCol") else None
        outputs = [stage.getOutputCol(), *([error_col] if error_col else []), *([info_col] if info_col else [])]
        taken = [c for c in outputs if c in df.columns]
        if taken:
            raise ValueError(f"FeatureCache: the input already has the output column(s) {taken}; drop them or "
                             "choose another outputCol/errorCol/sourceInfoCol")
        return input_col, outputs


def _column_list(value: str | Sequence[str], name: str, allow_empty: bool = False) -> list[str]:
    columns = [value] if isinstance(value, str) else list(value)
    if not columns and not allow_empty:
        raise ValueError(f"FeatureCache: {name} must name at least one column")
    if not all(isinstance(c, str) and c for c in columns):
        raise TypeError(f"FeatureCache: {name} must be a column name or a list of them; got {value!r}")
    return columns

