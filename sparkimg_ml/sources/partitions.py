"""``spread``: enough partitions that every core fetches."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: Partitions per core by default: a slow partition does not leave a core idle at the end.
PARTITIONS_PER_CORE = 2


def default_parallelism(spark: SparkSession) -> int:
    """The cores Spark counts on: ``defaultParallelism`` (classic), else the configuration (Spark Connect).

    Connect sessions have no ``sparkContext``; there ``spark.default.parallelism``
    is read when set, else the number in a ``local[N]`` master, else this
    machine's CPU count.
    """
    try:
        return int(spark.sparkContext.defaultParallelism)
    except Exception:  # noqa: BLE001 - a Spark Connect session has no sparkContext
        pass
    configured = spark.conf.get("spark.default.parallelism", None)
    if configured:
        return int(configured)
    master = spark.conf.get("spark.master", None) or ""
    found = re.fullmatch(r"local\[(\d+)(?:,\s*\d+)?\]", master)
    if found:
        return int(found.group(1))
    return os.cpu_count() or 1


def partition_count(df: DataFrame) -> int | None:
    """The partitions of ``df``, or None where the client cannot see them (Spark Connect)."""
    try:
        return int(df.rdd.getNumPartitions())
    except Exception:  # noqa: BLE001 - Spark Connect: no RDDs; the count is not known on the client
        return None


def spread(df: DataFrame, partitions: int | None = None) -> DataFrame:
    """``df`` in at least ``partitions`` partitions, so that every core fetches images.

    A table read from one small file (a CSV of 100,000 URLs) is one partition:
    one task, on one core, does all the fetching while the others wait. ``spread``
    repartitions such a table (round robin: equal shares) into ``partitions``,
    by default twice :func:`default_parallelism`; a table that already has as many
    partitions is returned unchanged (no shuffle). On Spark Connect, where the
    client cannot see the partition count, it always repartitions.

    Parameters
    ----------
    df : DataFrame
        Any table, e.g. of URLs.
    partitions : int, optional
        The number of partitions wanted; default ``2 x`` the session's parallelism.

    Examples
    --------
    >>> from sparkimg_ml import ImageUrlFeaturizer, spread
    >>> urls = spread(spark.read.csv("urls.csv", header=True))  # doctest: +SKIP
    >>> ImageUrlFeaturizer(inputCol="url").transform(urls).write.parquet("out")  # doctest: +SKIP
    """
    if partitions is not None and (isinstance(partitions, bool) or not isinstance(partitions, int)
                                   or partitions < 1):
        raise ValueError(f"spread: partitions must be an integer >= 1; got {partitions!r}.")
    target = partitions if partitions is not None else default_parallelism(df.sparkSession) * PARTITIONS_PER_CORE
    current = partition_count(df)
    if current is not None and current >= target:
        return df
    return df.repartition(target)
