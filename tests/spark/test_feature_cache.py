"""FeatureCache: a re-run computes only new, changed, failed or differently-preprocessed rows, and returns them all."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fault_server import FaultServer

from sparkimg_ml import ImageHasher, ImageUrlFeaturizer, read_images
from sparkimg_ml.curation import FeatureCache
from sparkimg_ml.demo import write_digits_pngs


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with FaultServer() as running:
        yield running


@pytest.fixture
def folder(tmp_path) -> Path:
    """Twelve digit PNGs in a folder of their own (each test adds, changes or deletes files)."""
    source = tmp_path / "all"
    names = [name for name, _ in write_digits_pngs(source)[:12]]
    folder = tmp_path / "images"
    folder.mkdir()
    for name in names:
        shutil.copy(source / name, folder / name)
    return folder


def _stage(**params) -> ImageUrlFeaturizer:
    chosen = {"inputCol": "path", "outputCol": "features", "imageSize": [8, 8], "colorMode": "L",
              "handleInvalid": "keep", "errorCol": "error", "maxRetries": 0, **params}
    return ImageUrlFeaturizer(**chosen)


def _by_path(frame) -> dict:
    return {r["path"]: (None if r["features"] is None else r["features"].toArray().tolist(), r["error"])
            for r in frame.collect()}


def _table(spark, folder: Path):
    """The folder as read_images lists it, plus a column of its own, like a real table."""
    from pyspark.sql import functions as F

    return read_images(spark, str(folder)).withColumn("label", F.regexp_extract("path", r"digit_(\d+)", 1))


@pytest.mark.claim("A FeatureCache re-run computes only new, changed or failed rows and returns every row as "
                   "transform() would")
def test_a_rerun_computes_only_new_and_changed_files_and_returns_what_transform_returns(spark, folder, tmp_path):
    cache = FeatureCache(str(tmp_path / "cache"), validator=["modificationTime", "size"])
    stage = _stage()
    first = cache.transform(stage, _table(spark, folder))
    assert cache.last_run.computed == 12 and cache.last_run.failed == 0
    expected = _by_path(stage.transform(_table(spark, folder)))
    assert _by_path(first) == expected
    assert first.columns == [*_table(spark, folder).columns, "features", "error"]
    assert first.schema["features"].metadata == stage.outputMetadata()

    again = cache.transform(stage, _table(spark, folder))
    assert cache.last_run.computed == 0
    assert _by_path(again) == expected and again.count() == 12

    # One new file, one rewritten (another digit under the same name: its size and mtime change).
    names = sorted(p.name for p in folder.iterdir())
    shutil.copy(folder / names[0], folder / "digit_new.png")
    rewritten = folder / names[1]
    shutil.copy(folder / names[5], rewritten)
    os.utime(rewritten, (1_900_000_000, 1_900_000_000))
    grown = cache.transform(stage, _table(spark, folder))
    assert cache.last_run.computed == 2
    assert _by_path(grown) == _by_path(stage.transform(_table(spark, folder)))
    assert len(_by_path(grown)) == 13

    # Proof that cached rows are not read again: a deleted file keeps answering from the cache
    # while its (unchanged) listing entry is passed in.
    listing = _table(spark, folder).cache()
    listing.count()
    (folder / names[2]).unlink()
    from_cache = _by_path(cache.transform(stage, listing))
    assert cache.last_run.computed == 0
    assert from_cache[f"file:{folder / names[2]}"][0] is not None
    listing.unpersist()


def test_failed_rows_are_tried_again_and_duplicates_are_computed_once(spark, server, tmp_path):
    flaky = server.url(f"/flaky/1/{uuid.uuid4().hex}")  # a 503 first, then the image
    good = server.url("/image.png")
    rows = [(1, good, "a"), (2, good, "b"), (3, flaky, "c"), (4, server.url("/status/404"), "d"), (5, None, "e")]
    frame = spark.createDataFrame(rows, "id long, path string, label string")
    cache = FeatureCache(str(tmp_path / "cache"))
    stage = _stage()

    before = server.hits("/image.png")
    first = {r["id"]: r for r in cache.transform(stage, frame).collect()}
    assert server.hits("/image.png") - before == 1  # two rows, one source: fetched once
    assert cache.last_run.computed == 4 and cache.last_run.failed == 3  # 503, 404, null
    assert first[1]["features"] == first[2]["features"] and first[1]["error"] is None
    assert first[3]["error"].startswith("http_503") and first[4]["error"].startswith("http_404")
    assert first[5]["error"].startswith("missing") and sorted(first) == [1, 2, 3, 4, 5]

    second = {r["id"]: r for r in cache.transform(stage, frame).collect()}
    assert server.hits("/image.png") - before == 1  # the good source came from the cache
    assert cache.last_run.computed == 3 and cache.last_run.failed == 2  # the flaky one recovered
    assert second[3]["error"] is None and second[3]["features"] == first[1]["features"]
    assert second[4]["error"].startswith("http_404") and second[5]["error"].startswith("missing")
    assert [second[i]["label"] for i in sorted(second)] == ["a", "b", "c", "d", "e"]


def test_another_preprocessing_is_computed_again_and_skip_drops_failed_rows(spark, folder, tmp_path):
    cache = FeatureCache(str(tmp_path / "cache"))
    table = _table(spark, folder).unionByName(
        spark.createDataFrame([(f"file:{folder}/absent.png",)], "path string"), allowMissingColumns=True)
    cache.transform(_stage(), table).count()
    assert cache.last_run.computed == 13
    smaller = _stage(imageSize=[6, 6])
    resized = _by_path(cache.transform(smaller, table))
    assert cache.last_run.computed == 13  # a new fingerprint: nothing cached applies
    assert resized == _by_path(smaller.transform(table))
    cache.transform(_stage(), table)
    assert cache.last_run.computed == 1  # back to 8x8: only the failed row again

    skipping = ImageUrlFeaturizer(inputCol="path", outputCol="features", imageSize=[8, 8], colorMode="L",
                                  handleInvalid="skip")
    skipped = cache.transform(skipping, table)
    assert skipped.count() == 12 and "error" not in skipped.columns
    hasher = ImageHasher(inputCol="path", handleInvalid="keep", errorCol="error")
    with pytest.raises(ValueError, match="has no column 'hash'.*another stage's outputs: use another path"):
        cache.transform(hasher, table)
    hashes = FeatureCache(str(tmp_path / "hashes"))
    assert hashes.transform(hasher, table).where("hash IS NOT NULL").count() == 12
    assert hashes.last_run.computed == 13 and hashes.last_run.failed == 1


def test_configuration_mistakes_name_the_problem(spark, folder, tmp_path):
    table = _table(spark, folder)
    with pytest.raises(ValueError, match="'etag' does not exist. Available columns: path"):
        FeatureCache(str(tmp_path / "c1"), validator="etag").transform(_stage(), table)
    with pytest.raises(TypeError, match="caches image stages .* has no fingerprint"):
        from pyspark.ml.feature import VectorAssembler

        FeatureCache(str(tmp_path / "c2")).transform(VectorAssembler(inputCols=["size"]), table)
    with pytest.raises(ValueError, match="already has the output column"):
        FeatureCache(str(tmp_path / "c3")).transform(_stage(), table.withColumn("features", table["size"]))
    with pytest.raises(ValueError, match="both key and validator"):
        FeatureCache(str(tmp_path / "c4"), key="path", validator=["path"])
    FeatureCache(str(tmp_path / "c5")).transform(_stage(), table)
    with pytest.raises(ValueError, match="has no column 'size'.*use another path"):
        FeatureCache(str(tmp_path / "c5"), validator="size").transform(_stage(), table)


def test_embeddings_are_cached_until_the_model_changes(spark, folder, tmp_path):
    from onnx_models import tiny_cnn

    from sparkimg_ml import ImageEmbedder

    model = tiny_cnn(tmp_path / "model-v1.onnx")

    def embedder() -> ImageEmbedder:
        return ImageEmbedder(inputCol="path", outputCol="embedding", modelUri=str(model), outputNode="features",
                             handleInvalid="keep", errorCol="error")

    def values(frame) -> dict:
        return {r["path"]: r["embedding"].toArray().tolist() for r in frame.collect()}

    cache = FeatureCache(str(tmp_path / "cache"), validator=["modificationTime", "size"])
    table = _table(spark, folder)
    first = values(cache.transform(embedder(), table))
    assert cache.last_run.computed == 12 and first == values(embedder().transform(table))
    cache.transform(embedder(), table)
    assert cache.last_run.computed == 0
    # Retrained: other weights, so another SHA-256 in the fingerprint (the URI is not part of it).
    model = tiny_cnn(tmp_path / "model-v2.onnx", seed=5)
    retrained = values(cache.transform(embedder(), table))
    assert cache.last_run.computed == 12
    assert retrained == values(embedder().transform(table)) and retrained != first


def test_source_facts_are_cached_with_the_output(spark, folder, tmp_path):
    cache = FeatureCache(str(tmp_path / "cache"))
    stage = _stage(sourceInfoCol="source")
    expected = {r["path"]: r["source"] for r in stage.transform(_table(spark, folder)).collect()}
    first = cache.transform(stage, _table(spark, folder))
    assert first.columns[-3:] == ["features", "error", "source"]
    assert {r["path"]: r["source"] for r in first.collect()} == expected
    assert cache.last_run.computed == 12 and all(info["format"] == "PNG" for info in expected.values())
    again = cache.transform(stage, _table(spark, folder))
    assert cache.last_run.computed == 0
    assert {r["path"]: r["source"] for r in again.collect()} == expected
