"""find_duplicates: LSH candidates + exact distances equal a brute-force search; clusters equal union-find."""

from __future__ import annotations

import numpy as np
import pytest
from pyspark.ml.linalg import Vectors

from sparkimg_ml import find_duplicates
from sparkimg_ml.curation import connected_components


def _union_find(n: int, pairs: list[tuple[int, int]]) -> list[int]:
    """Smallest member of each element's component (an independent reference)."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs:
        ra, rb = root(a), root(b)
        parent[max(ra, rb)] = min(ra, rb)
    return [root(i) for i in range(n)]


def _planted_hashes(seed: int = 1) -> np.ndarray:
    """Random 64-bit hashes, every third one with two copies 0-4 bits away, plus a chain of small steps."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, base in enumerate(rng.random((45, 64)) < 0.5):
        rows.append(base)
        if i % 3 == 0:
            for _ in range(2):
                copy = base.copy()
                copy[rng.choice(64, size=rng.integers(0, 5), replace=False)] ^= True
                rows.append(copy)
    chain = rng.random(64) < 0.5
    for _step in range(6):  # each link 3 bits from the previous: one component, ends far apart
        chain = chain.copy()
        chain[rng.choice(64, size=3, replace=False)] ^= True
        rows.append(chain)
    return np.array(rows)


def _as_long(bits: np.ndarray) -> list[int]:
    values = []
    for row in bits:
        unsigned = int("".join("1" if b else "0" for b in row), 2)
        values.append(unsigned - 2 ** 64 if unsigned >= 2 ** 63 else unsigned)
    return values


@pytest.fixture(scope="module")
def hashes(spark):
    bits = _planted_hashes()
    frame = spark.createDataFrame([(i, v, int(i * 37 % 11)) for i, v in enumerate(_as_long(bits))],
                                  "id long, hash long, size int")
    return bits, frame


def test_pairs_and_clusters_equal_brute_force_and_union_find(hashes):
    bits, frame = hashes
    result = find_duplicates(frame, "hash", threshold=4, id_col="id", keep="largest", keep_by="size")
    distances = (bits[:, None, :] != bits[None, :, :]).sum(axis=2)
    n = len(bits)
    expected = sorted((i, j, int(distances[i, j])) for i in range(n) for j in range(i + 1, n)
                      if distances[i, j] <= 4)
    got = sorted((r["id_a"], r["id_b"], r["distance"]) for r in result.pairs.collect())
    assert got == expected
    assert result.method == "hash" and result.iterations >= 3  # the chain needs several rounds
    rows = sorted(result.clusters.collect(), key=lambda r: r["id"])
    assert [r["cluster"] for r in rows] == _union_find(n, [(i, j) for i, j, _ in expected])
    clusters: dict[int, list] = {}
    for r in rows:
        clusters.setdefault(r["cluster"], []).append(r)
    for members in clusters.values():
        assert all(r["cluster_size"] == len(members) for r in members)
        kept = [r for r in members if r["keep"]]
        best = max(members, key=lambda r: (r["size"], -r["id"]))
        assert kept == [best]
    assert any(len(m) >= 3 for m in clusters.values())


def test_embeddings_use_cosine_distance(spark):
    rng = np.random.default_rng(4)
    base = rng.normal(size=(20, 16))
    vectors = np.concatenate([base, base[:5] * 3.0 + rng.normal(scale=0.01, size=(5, 16))])
    frame = spark.createDataFrame([(i, Vectors.dense(v.tolist())) for i, v in enumerate(vectors)],
                                  ["id", "embedding"])
    result = find_duplicates(frame, "embedding", threshold=0.01, id_col="id", num_hash_tables=16)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    cosine = 1 - unit @ unit.T
    expected = [(i, j) for i in range(25) for j in range(i + 1, 25) if cosine[i, j] <= 0.01]
    got = sorted((r["id_a"], r["id_b"], r["distance"]) for r in result.pairs.collect())
    assert [(a, b) for a, b, _ in got] == expected == [(i, i + 20) for i in range(5)]
    np.testing.assert_allclose([d for _, _, d in got], [cosine[a, b] for a, b in expected], atol=1e-9)
    assert result.method == "embedding"
    kept = result.clusters.filter("keep").count()
    assert kept == 20


def test_row_ids_are_added_when_no_id_column_is_given(hashes):
    _, frame = hashes
    result = find_duplicates(frame.drop("id"), "hash", threshold=2)
    clusters = result.clusters
    assert "row_id" in clusters.columns
    assert clusters.select("row_id").distinct().count() == clusters.count() == frame.count()


def test_connected_components_of_a_long_chain_take_one_round_per_link(spark):
    pairs = spark.createDataFrame([(i, i + 1) for i in range(8)], "id_a long, id_b long")
    labels, rounds = connected_components(pairs)
    assert sorted(r["cluster"] for r in labels.collect()) == [0] * 9
    with pytest.raises(RuntimeError, match="raise max_iterations"):
        connected_components(pairs, max_iterations=2)


def test_mistakes_are_refused_with_what_to_pass(hashes):
    _, frame = hashes
    with pytest.raises(ValueError, match="pass keep_by='<column>'"):
        find_duplicates(frame, "hash", 4, keep="largest")
    with pytest.raises(ValueError, match="keep must be one of"):
        find_duplicates(frame, "hash", 4, keep="last")
    with pytest.raises(ValueError, match=r"differing bits in \[0, 64\)"):
        find_duplicates(frame, "hash", 64, id_col="id")
    with pytest.raises(ValueError, match="method='embedding' needs a Vector or numeric array column"):
        find_duplicates(frame, "hash", 0.1, method="embedding")
    with pytest.raises(ValueError, match="nope"):
        find_duplicates(frame, "nope", 4)
