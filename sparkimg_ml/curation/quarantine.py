"""Quarantine and replay: failed rows go to a table of their own and are re-run later, merged back once.

The quarantine table is append-only (Parquet, or any format Spark writes): one
record per attempt at a row, holding every input column and four more:

==========================  ===================================================
``quarantine_source``       the row's source (its image column), as a string
``quarantine_reason``       the reason of this attempt (null once it succeeded)
``quarantine_attempted_at`` when this attempt's results were recorded (UTC)
``quarantine_attempt``      1 for the first failure, then 2, 3, ...
==========================  ===================================================

A row is *pending* while its latest record has a reason. :meth:`Quarantine.replay`
re-runs only the pending rows, records the outcome of each as a new attempt, and
returns the results with those rows replaced by their new outcome: each key once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

SOURCE, REASON, ATTEMPTED_AT, ATTEMPT = (
    "quarantine_source", "quarantine_reason", "quarantine_attempted_at", "quarantine_attempt")
BOOKKEEPING = (SOURCE, REASON, ATTEMPTED_AT, ATTEMPT)


class Quarantine:
    """A table of failed rows at ``path``, keyed by ``key``, for a stage writing ``output_cols``.

    Parameters
    ----------
    path : str
        Where the quarantine table lives (created by the first :meth:`add`).
    key : str or list of str
        Column(s) that identify a row, unique in the results (an id, or the source itself).
    error_col : str
        The stage's ``errorCol`` (the stage must run with ``handleInvalid="keep"``).
    output_cols : list of str
        The columns the stage adds (its ``outputCol`` and ``errorCol``); every other column
        is an input column and is kept in the quarantine table.
    source_col : str
        The stage's ``inputCol``, recorded as ``quarantine_source``.
    format : str, default "parquet"
        The table's format (``"delta"`` works where Delta Lake is installed).

    Examples
    --------
    >>> from sparkimg_ml.curation import Quarantine
    >>> quarantine = Quarantine("s3://bucket/quarantine", key="id", error_col="error",
    ...                         output_cols=["features", "error"], source_col="url")
    >>> results = stage.transform(frame)  # doctest: +SKIP
    >>> results.write.parquet("s3://bucket/features/v1")  # doctest: +SKIP
    >>> quarantine.add(spark.read.parquet("s3://bucket/features/v1"))  # doctest: +SKIP
    >>> # later, when the hosts are back:
    >>> merged = quarantine.replay(stage, spark.read.parquet("s3://bucket/features/v1"))  # doctest: +SKIP
    >>> merged.write.parquet("s3://bucket/features/v2")  # doctest: +SKIP
    """

    def __init__(self, path: str, *, key: str | Sequence[str], error_col: str, output_cols: Sequence[str],
                 source_col: str, format: str = "parquet") -> None:
        self.path = path
        self.key = [key] if isinstance(key, str) else list(key)
        if not self.key:
            raise ValueError("key must name at least one column")
        self.error_col = error_col
        self.output_cols = list(output_cols)
        if error_col not in self.output_cols:
            raise ValueError(f"output_cols must include the error column {error_col!r}; got {self.output_cols}")
        self.source_col = source_col
        self.format = format

    # -- writing -------------------------------------------------------------------
    def add(self, results: DataFrame, attempted_at: dt.datetime | None = None) -> int:
        """Record the failed rows of ``results`` (first attempts); returns how many.

        Rows whose key is already in the table are not added again: :meth:`replay` records
        their later attempts.
        """
        from pyspark.sql import functions as F

        self._check_columns(results, "results")
        failed = results.where(F.col(self.error_col).isNotNull())
        known = self._existing_keys(results.sparkSession)
        if known is not None:
            failed = failed.join(known, self.key, "left_anti")
        records = self._records(failed, F.lit(1), attempted_at).cache()
        try:
            count = records.count()
            if count:
                records.write.format(self.format).mode("append").save(self.path)
            return count
        finally:
            records.unpersist()

    def replay(self, stage: Any, results: DataFrame, attempted_at: dt.datetime | None = None) -> DataFrame:
        """Run ``stage`` again on the pending rows only; record each outcome; return the merged results.

        The returned frame has the columns of ``results`` and each key once: the pending
        rows carry their new outcome (a vector, or a new reason), every other row is as it
        was. It reads ``results`` lazily: write it to a new location, not over ``results``.
        """
        from pyspark.sql import functions as F

        self._check_columns(results, "results")
        pending = self.pending(results.sparkSession)
        inputs = [c for c in pending.columns if c not in BOOKKEEPING]
        # Checkpointed (eagerly, lineage cut): the outcome recorded in the table and the one
        # merged into the results are the same run, never a second fetch of the sources.
        replayed = stage.transform(pending.select(*inputs, ATTEMPT)).localCheckpoint()
        records = self._records(replayed, F.col(ATTEMPT) + 1, attempted_at, keep_success=True)
        records.write.format(self.format).mode("append").save(self.path)
        merged = (results.join(replayed.select(*self.key), self.key, "left_anti")
                  .unionByName(replayed.select(*results.columns)))
        return merged

    # -- reading -------------------------------------------------------------------
    def table(self, spark: SparkSession) -> DataFrame:
        """Every attempt recorded so far."""
        return spark.read.format(self.format).load(self.path)

    def pending(self, spark: SparkSession) -> DataFrame:
        """The latest record of each row whose latest attempt failed (one row per key)."""
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        latest = Window.partitionBy(*self.key).orderBy(F.col(ATTEMPT).desc())
        return (self.table(spark).withColumn("__rank", F.row_number().over(latest))
                .where((F.col("__rank") == 1) & F.col(REASON).isNotNull()).drop("__rank"))

    # -- helpers -------------------------------------------------------------------
    def _records(self, frame: DataFrame, attempt: Any, attempted_at: dt.datetime | None,
                 keep_success: bool = False) -> DataFrame:
        from pyspark.sql import functions as F

        when = attempted_at or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)  # noqa: UP017 - Python 3.9
        inputs = [c for c in frame.columns if c not in self.output_cols and c not in BOOKKEEPING]
        error = F.col(self.error_col)
        return frame.select(
            *inputs, F.col(self.source_col).cast("string").alias(SOURCE),
            (error if keep_success else F.coalesce(error, F.lit(""))).alias(REASON),
            F.lit(when).cast("timestamp").alias(ATTEMPTED_AT), attempt.cast("int").alias(ATTEMPT))

    def _existing_keys(self, spark: SparkSession) -> DataFrame | None:
        try:
            return self.table(spark).select(*self.key).distinct()
        except Exception as exc:  # noqa: BLE001 - Spark raises a JVM-specific "path does not exist"
            if "PATH_NOT_FOUND" in str(exc) or "does not exist" in str(exc):
                return None
            raise

    def _check_columns(self, frame: DataFrame, name: str) -> None:
        missing = [c for c in [*self.key, *self.output_cols, self.source_col] if c not in frame.columns]
        if missing:
            raise ValueError(f"{name} has no column {', '.join(map(repr, missing))}; its columns: {frame.columns}")
