"""Near-duplicate images at scale: Spark's own LSH for candidates, an exact distance, clusters, one keeper each.

:func:`find_duplicates` takes a column of perceptual hashes (``long`` or bit
``Vector``, from :class:`~sparkimg_ml.ImageHasher`) or of embeddings (``Vector``
or ``array``, e.g. from :class:`~sparkimg_ml.ImageEmbedder`) and returns every
pair of rows within ``threshold`` of each other, the connected components of
those pairs (clusters), and one row to keep per cluster. No cross join: the
candidate pairs come from locality-sensitive hashing (bit sampling for hashes,
Spark ML's ``BucketedRandomProjectionLSH`` for embeddings), and each candidate is
then checked with the exact distance.

**Hashes.** Bit-sampling LSH in Spark SQL: ``num_hash_tables`` keys per hash, key
``s`` the value of ``bits_per_key`` bit positions drawn at random (with ``seed``),
tagged with ``s``. Rows become ``(key, id)`` pairs (a few bytes each), an equi-join
on the key gives the candidates, and only then are the hashes joined back for the
exact Hamming distance, so the shuffled data stays small whatever the table size
(Spark's ``approxSimilarityJoin`` carries every row's whole vectors through its
exploded join, which ran out of memory on 20,000 rows with a 3 GB driver). Two
hashes share key ``s`` exactly when they agree on all of its bits, which for a
Hamming distance ``d`` of ``n`` bits has probability ``p = (1 - d / n) **
bits_per_key``; a pair is a candidate when any key agrees: ``1 - (1 - p) **
num_hash_tables``. With the defaults (64 bits, 20 bits per key, 64 keys) that is
1.0 for ``d <= 4``, 0.99 for ``d = 8`` and 0.89 for ``d = 10``, while two
unrelated (uniform) hashes become a candidate with probability about ``6e-5``
(300,000 candidates among 100,000 rows). Raise ``num_hash_tables`` for more recall
at large thresholds; raise ``bits_per_key`` for fewer candidates on very large tables.

**Embeddings.** Vectors are L2-normalised; the distance is the cosine distance
``1 - cos``, which for unit vectors is ``|a - b|^2 / 2``, so candidates come from
``BucketedRandomProjectionLSH`` with Euclidean threshold ``sqrt(2 * threshold)``.

**Clusters** are the connected components of the pairs, found by iterative
label propagation in Spark SQL (each row takes the smallest id among itself and
its neighbours until nothing changes); no graph library.

Examples
--------
>>> from sparkimg_ml import ImageHasher, find_duplicates
>>> hashed = ImageHasher(inputCol="path", handleInvalid="skip").transform(images)  # doctest: +SKIP
>>> result = find_duplicates(hashed, "hash", threshold=8, id_col="path")  # doctest: +SKIP
>>> deduplicated = result.clusters.filter("keep")  # doctest: +SKIP
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from pyspark.ml.feature import BucketedRandomProjectionLSH
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.ml.linalg import VectorUDT
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, LongType, NumericType

from ..errors import missing_column
from ..schema import HASH_KEY, ML_ATTR_KEY

METHODS: tuple[str, ...] = ("hash", "embedding")
KEEP_CHOICES: tuple[str, ...] = ("first", "largest", "smallest")
#: Column names of the result (see :class:`DuplicateResult`).
ID_A, ID_B, DISTANCE = "id_a", "id_b", "distance"
CLUSTER, CLUSTER_SIZE, KEEP = "cluster", "cluster_size", "keep"
#: Id column added when ``id_col`` is not given.
ROW_ID = "row_id"


@dataclass
class DuplicateResult:
    """What :func:`find_duplicates` returns.

    Attributes
    ----------
    pairs : DataFrame
        One row per pair within the threshold, each pair once:
        ``id_a`` < ``id_b`` (the type of the id column) and ``distance``
        (``int``: differing bits for hashes; ``double``: cosine distance for embeddings).
    clusters : DataFrame
        The input rows, every column kept, plus the id column (``row_id`` when
        ``id_col`` was not given), ``cluster`` (the smallest id of the row's
        connected component; the row's own id when it has no duplicate),
        ``cluster_size`` (``int``, 1 for unique rows) and ``keep`` (``boolean``,
        true on exactly one row per cluster: ``clusters.filter("keep")`` is the
        de-duplicated table).
    method : str
        ``"hash"`` or ``"embedding"``.
    iterations : int
        Label-propagation rounds the clusters took.
    """

    pairs: DataFrame
    clusters: DataFrame
    method: str
    iterations: int


def _hash_bits(df: DataFrame, col: str) -> tuple[Column, int]:
    """An ``array<int>`` column of the hash's bits (first bit most significant), and the number of bits."""
    field = df.schema[col]
    metadata = field.metadata or {}
    if isinstance(field.dataType, LongType):
        bits = int(metadata.get(HASH_KEY, {}).get("bits", 64))
        last = bits - 1
        return F.expr(f"transform(sequence(0, {last}), j -> cast(shiftright(`{col}`, {last} - j) & 1 as int))"), bits
    bits = int(metadata.get(HASH_KEY, {}).get("bits") or metadata.get(ML_ATTR_KEY, {}).get("num_attrs") or 0)
    if not bits:
        first = df.select(F.size(vector_to_array(F.col(col)))).filter(F.col(col).isNotNull()).first()
        if first is None:
            raise ValueError(f"find_duplicates: column {col!r} has no non-null hash to learn its length from.")
        bits = int(first[0])
    return F.transform(vector_to_array(F.col(col)), lambda x: (x > 0.5).cast("int")), bits


def _key_positions(bits: int, bits_per_key: int, num_keys: int, seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [sorted(rng.choice(bits, size=bits_per_key, replace=False).tolist()) for _ in range(num_keys)]


def _key_indices(bits_column: str, positions: list[list[int]], bits_per_key: int) -> Column:
    """``array<long>``: for key ``s``, ``s * 2**bits_per_key`` plus the value of its bits (sorted, distinct)."""
    literal = "array(" + ", ".join("array(" + ", ".join(str(p) for p in key) + ")" for key in positions) + ")"
    return F.expr(
        f"transform({literal}, (key, s) -> cast(s as bigint) * {1 << bits_per_key} + "
        f"aggregate(transform(key, (p, i) -> shiftleft(cast(`{bits_column}`[p] as bigint), i)), "
        "cast(0 as bigint), (acc, v) -> acc + v))"
    )


def _hash_candidates(frame: DataFrame, col: str, threshold: float, num_hash_tables: int,
                     bits_per_key: int, seed: int) -> DataFrame:
    bit_array, bits = _hash_bits(frame, col)
    if not 0 <= threshold < bits:
        raise ValueError(f"find_duplicates: threshold is a number of differing bits in [0, {bits}); got {threshold}.")
    bits_per_key = min(bits_per_key, bits)
    positions = _key_positions(bits, bits_per_key, num_hash_tables, seed)
    hashed = frame.select("__id", bit_array.alias("__bits")).localCheckpoint()  # the bits, computed once
    keys = hashed.select("__id", F.explode(_key_indices("__bits", positions, bits_per_key)).alias("__key"))
    a, b = keys.alias("a"), keys.alias("b")
    candidates = (a.join(b, F.col("a.__key") == F.col("b.__key")).where(F.col("a.__id") < F.col("b.__id"))
                  .select(F.col("a.__id").alias(ID_A), F.col("b.__id").alias(ID_B)).distinct())
    pairs = (candidates.join(hashed.select(F.col("__id").alias(ID_A), F.col("__bits").alias("__a")), ID_A)
             .join(hashed.select(F.col("__id").alias(ID_B), F.col("__bits").alias("__b")), ID_B))
    distance = F.aggregate(F.zip_with("__a", "__b", lambda x, y: (x != y).cast("int")), F.lit(0),
                           lambda acc, v: acc + v)
    return pairs.select(ID_A, ID_B, distance.alias(DISTANCE)).filter(F.col(DISTANCE) <= threshold)


def _unit_vectors(col: Column) -> Column:
    values = vector_to_array(col, dtype="float64")
    norm = F.sqrt(F.aggregate(values, F.lit(0.0), lambda acc, x: acc + x * x))
    return array_to_vector(F.transform(values, lambda x: x / norm))


def _embedding_candidates(frame: DataFrame, col: str, threshold: float, num_hash_tables: int,
                          bucket_length: float | None, seed: int) -> DataFrame:
    if not 0 <= threshold <= 2:
        raise ValueError(f"find_duplicates: threshold is a cosine distance (1 - cos) in [0, 2]; got {threshold}.")
    data_type = frame.schema[col].dataType
    source = F.col(col) if isinstance(data_type, VectorUDT) else array_to_vector(F.col(col))
    unit = frame.withColumn("__unit", _unit_vectors(source))
    euclid = math.sqrt(2.0 * threshold)
    lsh = BucketedRandomProjectionLSH(inputCol="__unit", outputCol="__lsh", numHashTables=num_hash_tables,
                                      bucketLength=bucket_length or max(4.0 * euclid, 0.05), seed=seed)
    joined = lsh.fit(unit).approxSimilarityJoin(unit, unit, euclid + 1e-9, distCol="__euclid")
    pairs = joined.select(F.col("datasetA.__id").alias(ID_A), F.col("datasetB.__id").alias(ID_B),
                          F.col("datasetA.__unit").alias("__a"), F.col("datasetB.__unit").alias("__b"))
    pairs = pairs.filter(F.col(ID_A) < F.col(ID_B))
    dot = F.aggregate(F.zip_with(vector_to_array(F.col("__a")), vector_to_array(F.col("__b")), lambda x, y: x * y),
                      F.lit(0.0), lambda acc, v: acc + v)
    return pairs.select(ID_A, ID_B, (F.lit(1.0) - dot).alias(DISTANCE)).filter(F.col(DISTANCE) <= threshold + 1e-12)


def connected_components(pairs: DataFrame, max_iterations: int = 100) -> tuple[DataFrame, int]:
    """``(id, cluster)`` for every id in ``pairs`` (columns ``id_a``, ``id_b``): the smallest id of its component.

    Label propagation in Spark SQL: every id starts with itself as label and
    repeatedly takes the smallest label among itself and its neighbours, until no
    label changes (at most the component's diameter rounds). Returns the labels
    and the number of rounds; raises ``RuntimeError`` when ``max_iterations`` is not enough.
    """
    edges = pairs.select(F.col(ID_A).alias("src"), F.col(ID_B).alias("dst")).union(
        pairs.select(F.col(ID_B).alias("src"), F.col(ID_A).alias("dst"))).localCheckpoint()
    labels = edges.groupBy("src").agg(F.least(F.min("dst"), F.col("src")).alias("label")) \
        .withColumnRenamed("src", "id").localCheckpoint()
    for iteration in range(1, max_iterations + 1):
        proposed = (edges.join(labels.withColumnRenamed("id", "dst"), "dst")
                    .groupBy("src").agg(F.min("label").alias("proposed")))
        updated = (labels.join(proposed.withColumnRenamed("src", "id"), "id")
                   .select("id", F.least("label", "proposed").alias("label"), (F.col("proposed") < F.col("label")).alias("changed"))
                   .localCheckpoint())
        changed = updated.filter("changed").limit(1).count()
        labels = updated.select("id", "label")
        if not changed:
            return labels.withColumnRenamed("label", CLUSTER), iteration
    raise RuntimeError(f"connected_components: labels still changed after {max_iterations} rounds; "
                       "raise max_iterations (a long chain of near-duplicates needs one round per link).")


def find_duplicates(
    df: DataFrame,
    col: str,
    threshold: float,
    *,
    id_col: str | None = None,
    method: str | None = None,
    keep: str = "first",
    keep_by: str | None = None,
    num_hash_tables: int | None = None,
    bits_per_key: int = 20,
    num_keys: int | None = None,
    bucket_length: float | None = None,
    seed: int = 7,
    max_iterations: int = 100,
) -> DuplicateResult:
    """Pairs of near-duplicate rows, their clusters, and one row to keep per cluster.

    Parameters
    ----------
    df : DataFrame
        Any DataFrame with a hash or embedding column. Rows whose ``col`` is null
        are kept in ``clusters`` as unique rows.
    col : str
        ``long`` hashes (``ImageHasher``'s default), bit ``Vector`` s
        (``outputFormat="vector"``), or embeddings (``Vector`` or numeric ``array``).
    threshold : float
        The largest distance of a duplicate pair: differing bits for hashes
        (e.g. 8 of 64), the cosine distance ``1 - cos`` for embeddings (e.g. 0.05).
    id_col : str, optional
        A column identifying rows (unique, orderable). Without it a ``row_id``
        column is added (``monotonically_increasing_id``; the input is
        checkpointed so the ids stay stable).
    method : {"hash", "embedding"}, optional
        Default: ``"hash"`` for a ``long`` column or a Vector whose metadata
        describes a hash, ``"embedding"`` otherwise.
    keep : {"first", "largest", "smallest"}
        Which row of a cluster gets ``keep = true``: the smallest id
        (``"first"``), or the largest / smallest value of ``keep_by`` (ties: smallest id).
    keep_by : str, optional
        Column that ``"largest"`` / ``"smallest"`` compare (e.g. pixel count or file size).
    num_hash_tables : int, optional
        LSH tables (OR-ed): default 64 for hashes (one key of sampled bits each), 8 for embeddings.
    bits_per_key : int
        Hash method only: bits sampled per key (see the module docs).
    num_keys : None
        No longer used (the keys per hash are ``num_hash_tables``); passing it warns.
    bucket_length : float, optional
        Embedding method only: ``BucketedRandomProjectionLSH``'s bucket width
        (default ``4 * sqrt(2 * threshold)``).
    seed : int
        Seed of the key positions and of the LSH models: equal seeds, equal results.
    max_iterations : int
        Bound on the label-propagation rounds.

    Returns
    -------
    DuplicateResult
        ``pairs`` and ``clusters`` DataFrames (schema in :class:`DuplicateResult`).

    Raises
    ------
    ValueError
        For a missing column, an unknown ``method``/``keep``, a ``keep`` that needs
        ``keep_by`` without it, or a threshold out of range, saying what to pass.
    """
    for name in [col] + [c for c in (id_col, keep_by) if c]:
        if name not in df.columns:
            raise missing_column("find_duplicates", "column", name, df.columns)
    if keep not in KEEP_CHOICES:
        raise ValueError(f"find_duplicates: keep must be one of {KEEP_CHOICES}; got {keep!r}.")
    if keep != "first" and keep_by is None:
        raise ValueError(f"find_duplicates: keep={keep!r} compares a column; pass keep_by='<column>' "
                         "(e.g. the image's pixel count or file size).")
    if num_keys is not None:
        warnings.warn("find_duplicates: num_keys is no longer used; each of the num_hash_tables tables is one key "
                      "of bits_per_key sampled bits.", DeprecationWarning, stacklevel=2)
    data_type = df.schema[col].dataType
    is_hash_vector = isinstance(data_type, VectorUDT) and HASH_KEY in (df.schema[col].metadata or {})
    if method is None:
        method = "hash" if isinstance(data_type, LongType) or is_hash_vector else "embedding"
    if method not in METHODS:
        raise ValueError(f"find_duplicates: method must be one of {METHODS}; got {method!r}.")
    if method == "hash" and not isinstance(data_type, (LongType, VectorUDT)):
        raise ValueError(f"find_duplicates: method='hash' needs a long or bit Vector column (ImageHasher's "
                         f"output); {col!r} is {data_type.simpleString()}.")
    if method == "embedding" and not (isinstance(data_type, VectorUDT) or (
            isinstance(data_type, ArrayType) and isinstance(data_type.elementType, NumericType))):
        raise ValueError(f"find_duplicates: method='embedding' needs a Vector or numeric array column; "
                         f"{col!r} is {data_type.simpleString()}.")
    if id_col is None:
        if ROW_ID in df.columns:
            raise ValueError(f"find_duplicates: the input already has a {ROW_ID!r} column; pass id_col='{ROW_ID}'.")
        df = df.withColumn(ROW_ID, F.monotonically_increasing_id()).localCheckpoint()
        id_col = ROW_ID
    frame = df.select(F.col(id_col).alias("__id"), F.col(col)).filter(F.col(col).isNotNull())
    if method == "hash":
        pairs = _hash_candidates(frame, col, threshold, num_hash_tables or 64, bits_per_key, seed)
    else:
        pairs = _embedding_candidates(frame, col, threshold, num_hash_tables or 8, bucket_length, seed)
    pairs = pairs.localCheckpoint()
    labels, iterations = connected_components(pairs, max_iterations)
    clusters = df.join(labels.withColumnRenamed("id", id_col), id_col, "left")
    clusters = clusters.withColumn(CLUSTER, F.coalesce(F.col(CLUSTER), F.col(id_col)))
    by_cluster = Window.partitionBy(CLUSTER)
    order = [F.col(id_col).asc()]
    if keep == "largest":
        order.insert(0, F.col(keep_by).desc_nulls_last())  # type: ignore[arg-type]
    elif keep == "smallest":
        order.insert(0, F.col(keep_by).asc_nulls_last())  # type: ignore[arg-type]
    clusters = (clusters.withColumn(CLUSTER_SIZE, F.count(F.lit(1)).over(by_cluster).cast("int"))
                .withColumn(KEEP, F.row_number().over(by_cluster.orderBy(*order)) == 1))
    return DuplicateResult(pairs=pairs, clusters=clusters, method=method, iterations=iterations)
