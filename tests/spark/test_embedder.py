"""ImageEmbedder in Spark: parity with onnxruntime and serving, model defaults and errors, bad rows,
the per-worker model cache, persistence, and a digits classifier in a saved and reloaded pipeline."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx_models import digits_cnn, digits_filters, not_an_image_model, tiny_cnn
from PIL import Image
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.evaluation import MulticlassClassificationEvaluator
from pyspark.ml.linalg import DenseVector
from pyspark.ml.tuning import CrossValidator, CrossValidatorModel, ParamGridBuilder
from pyspark.sql import functions as F
from repo_paths import SUPPORT

from sparkimg_ml import ImageEmbedder, ImageUrlFeaturizer, ModelError, preprocess
from sparkimg_ml.demo import digits_frame, write_digits_pngs

LOADER = SUPPORT / "load_and_predict.py"


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list:
    """Paths of 12 random RGB PNGs of assorted sizes."""
    directory = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(3)
    paths = []
    for index in range(12):
        height, width = rng.integers(6, 40, size=2)
        path = directory / f"photo_{index:02d}.png"
        path.write_bytes(_png(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)))
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    directory = tmp_path_factory.mktemp("models")
    return {
        "nchw": tiny_cnn(directory / "tiny_nchw.onnx"),
        "nhwc": tiny_cnn(directory / "tiny_nhwc.onnx", layout="NHWC", seed=1),
        "free": tiny_cnn(directory / "tiny_free.onnx", size=None, seed=2),
        "linear": not_an_image_model(directory / "linear.onnx"),
    }


def _frame(spark, paths: list, partitions: int = 2):
    return spark.createDataFrame([(i, p) for i, p in enumerate(paths)], "id int, path string").repartition(
        partitions, "id")


def _embeddings(frame, column: str = "embedding") -> dict:
    return {r["id"]: (None if r[column] is None else np.asarray(r[column].toArray()
                                                              if hasattr(r[column], "toArray") else r[column],
                                                              dtype=np.float32))
            for r in frame.select("id", column).collect()}


@pytest.mark.claim("ImageEmbedder's embeddings equal onnxruntime's on the featurizer's preprocessing")
@pytest.mark.compat
def test_embeddings_match_onnxruntime_on_preprocess_output(spark, photos, models):
    embedder = ImageEmbedder(inputCol="path", modelUri=str(models["nchw"]), outputNode="features",
                             mean="imagenet", std="imagenet", batchSize=5)
    out = embedder.transform(_frame(spark, photos))
    got = _embeddings(out)
    pixels = preprocess(photos, imageSize=[8, 8], layout="CHW", mean="imagenet", std="imagenet")
    (expected,) = ort.InferenceSession(str(models["nchw"])).run(
        ["features"], {"pixels": pixels.reshape(-1, 3, 8, 8)})
    for row, vector in enumerate(expected):
        np.testing.assert_allclose(got[row], vector, atol=1e-6)
    meta = out.schema["embedding"].metadata
    assert meta["ml_attr"] == {"num_attrs": 4}
    embedding = meta["embedding"]
    assert embedding["modelUri"] == str(models["nchw"]) and embedding["outputNode"] == "features"
    assert embedding["modelSha256"] == hashlib.sha256(models["nchw"].read_bytes()).hexdigest()
    assert embedding["dimension"] == 4 and embedding["input"]["layout"] == "NCHW"
    assert embedding["image"]["imageSize"] == [8, 8] and embedding["image"]["mean"][0] == pytest.approx(0.485)


@pytest.mark.claim("preprocess / ImageEmbedder.embed give bit-identical values without Spark")
def test_serving_embed_is_bit_identical_to_spark(spark, photos, models):
    embedder = ImageEmbedder(inputCol="path", modelUri=str(models["nhwc"]), outputNode="conv",
                             resizeMode="pad", padColor=[10, 200, 30], batchSize=4)
    spark_rows = _embeddings(embedder.transform(_frame(spark, photos, partitions=3)))
    served = embedder.embed(photos)
    assert served.shape == (len(photos), 4 * 8 * 8) and served.dtype == np.float32
    for row, vector in enumerate(served):
        assert np.array_equal(spark_rows[row], vector)
    one = embedder.embed(Path(photos[0]).read_bytes())
    assert np.array_equal(one, served[0])


def test_image_size_and_layout_come_from_the_model_and_array_output(spark, photos, models):
    embedder = ImageEmbedder(inputCol="path", modelUri=str(models["nhwc"]), outputFormat="array")
    out = embedder.transform(_frame(spark, photos[:3]))
    assert out.schema["embedding"].dataType.simpleString() == "array<float>"
    meta = out.schema["embedding"].metadata
    assert "ml_attr" not in meta
    assert meta["embedding"]["input"]["layout"] == "NHWC" and meta["embedding"]["image"]["imageSize"] == [8, 8]
    assert meta["embedding"]["outputNode"] == "logits" and meta["embedding"]["dimension"] == 2
    pixels = preprocess(photos[:3], imageSize=[8, 8], layout="HWC")
    (expected,) = ort.InferenceSession(str(models["nhwc"])).run(["logits"], {"pixels": pixels.reshape(-1, 8, 8, 3)})
    got = _embeddings(out)
    for row in range(3):
        np.testing.assert_allclose(got[row], expected[row], atol=1e-6)
    assert embedder.getImageSize() == [32, 32] and not embedder.isSet(embedder.imageSize)


def test_free_image_size_follows_image_size_and_probes_the_output_size(spark, photos, models):
    embedder = ImageEmbedder(inputCol="path", modelUri=str(models["free"]), outputNode="conv",
                             imageSize=[5, 7])
    out = embedder.transform(_frame(spark, photos[:4]))
    assert out.schema["embedding"].metadata["ml_attr"] == {"num_attrs": 4 * 5 * 7}
    assert all(len(v) == 140 for v in _embeddings(out).values())
    with pytest.raises(ValueError, match=r"takes \[N, 3, \?, \?\], whose height and width are free; set imageSize"):
        ImageEmbedder(inputCol="path", modelUri=str(models["free"])).transform(_frame(spark, photos[:1]))


def test_a_contradiction_with_the_model_input_fails_at_transform_naming_both_shapes(spark, photos, models):
    frame = _frame(spark, photos[:2])
    wrong_size = ImageEmbedder(inputCol="path", modelUri=str(models["nchw"]), imageSize=[16, 16])
    with pytest.raises(ValueError, match=r"takes \[N, 3, 8, 8\] \(NCHW\) but the images are \[N, 3, 16, 16\]"):
        wrong_size.transform(frame)
    wrong_layout = ImageEmbedder(inputCol="path", modelUri=str(models["nchw"]), layout="HWC")
    with pytest.raises(ValueError, match=r"\[N, 3, 8, 8\] \(NCHW\) but the images are \[N, 8, 8, 3\] \(NHWC\)"):
        wrong_layout.transform(frame)
    gray = ImageEmbedder(inputCol="path", modelUri=str(models["nchw"]), colorMode="L")
    with pytest.raises(ValueError, match=r"\[N, 1, 8, 8\].*colorMode='L'"):
        gray.transform(frame)
    not_flat = ImageEmbedder(inputCol="path", modelUri=str(models["nchw"]), outputNode="conv", flatten=False)
    with pytest.raises(ValueError, match=r"'conv' .* has shape \[N, 4, 8, 8\], not \[N, D\]"):
        not_flat.transform(frame)


@pytest.mark.parametrize(("case", "pattern"), [
    ("checksum", r"tiny_nchw\.onnx has SHA-256 [0-9a-f]{64} but modelSha256 is f{64}"),
    ("missing", r"cannot read the model .*no_such\.onnx: not_found"),
    ("garbage", r"onnxruntime cannot load the model .*garbage\.onnx"),
    ("not_an_image", r"linear\.onnx takes 'vector' as tensor\(float\) \[N, 10\]"),
    ("output", r"tiny_nchw\.onnx has no output 'penultimate'; its outputs are 'logits'"),
    ("no_model", r"modelUri is not set"),
])
def test_model_problems_fail_at_transform_naming_the_model(spark, photos, models, tmp_path, case, pattern):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07" * 100)
    params = {
        "checksum": {"modelUri": str(models["nchw"]), "modelSha256": "F" * 64},
        "missing": {"modelUri": str(tmp_path / "no_such.onnx")},
        "garbage": {"modelUri": str(garbage)},
        "not_an_image": {"modelUri": str(models["linear"])},
        "output": {"modelUri": str(models["nchw"]), "outputNode": "penultimate"},
        "no_model": {},
    }[case]
    with pytest.raises(ValueError, match=pattern) as error:
        ImageEmbedder(inputCol="path", **params).transform(_frame(spark, photos[:2]))
    assert isinstance(error.value, ModelError) == (case != "no_model")


def test_bad_configuration_fails_at_construction():
    with pytest.raises(ValueError, match="modelSha256 must be the 64 hex digits"):
        ImageEmbedder(modelSha256="abc")
    with pytest.raises(ValueError, match="batchSize must be > 0"):
        ImageEmbedder(batchSize=0)
    with pytest.raises(ValueError, match="outputFormat must be one of 'vector', 'array'"):
        ImageEmbedder(outputFormat="tensor")
    with pytest.raises(ValueError, match="reducingGap must be 0 \\(off\\) or a finite number >= 2"):
        ImageEmbedder(reducingGap=1.5)
    assert ImageEmbedder(reducingGap=2).getReducingGap() == 2.0


@pytest.mark.compat
def test_bad_rows_follow_handle_invalid_and_never_reach_the_model(spark, photos, models, tmp_path, monkeypatch):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"<html>not an image</html>")
    paths = photos[:3] + [str(broken), None, str(tmp_path / "absent.png")]
    frame = _frame(spark, paths)
    kept = ImageEmbedder(inputCol="path", modelUri=str(models["nchw"]), handleInvalid="keep",
                         errorCol="why").transform(frame)
    rows = {r["id"]: (r["embedding"], r["why"]) for r in kept.collect()}
    assert [rows[i][1] for i in range(3)] == [None] * 3
    assert all(isinstance(rows[i][0], DenseVector) for i in range(3))
    assert [rows[i][0] for i in range(3, 6)] == [None] * 3
    assert [rows[i][1].split(":")[0] for i in range(3, 6)] == ["decode", "missing", "not_found"]
    skipped = ImageEmbedder(inputCol="path", modelUri=str(models["nchw"]), handleInvalid="skip").transform(frame)
    assert sorted(r["id"] for r in skipped.collect()) == [0, 1, 2]
    with pytest.raises(Exception, match=r"ImageEmbedder could not read the image of row with path=.*broken\.png"):
        ImageEmbedder(inputCol="path", modelUri=str(models["nchw"])).transform(
            _frame(spark, photos[:2] + [str(broken)])).collect()

    # "Never reach the model", counted: the batch loop the Spark UDF runs, in this process, with every
    # onnxruntime call recording how many images it was given.
    import pyarrow as pa

    from sparkimg_ml.engine.decode import DecodeTask
    from sparkimg_ml.engine.embed import EmbedTask, embed_batches
    from sparkimg_ml.schema import ARRAY, SOURCE

    given: list = []
    run = ort.InferenceSession.run

    def counting_run(self, output_names, feed, *args, **kwargs):
        given.extend(len(batch) for batch in feed.values())
        return run(self, output_names, feed, *args, **kwargs)

    monkeypatch.setattr(ort.InferenceSession, "run", counting_run)
    embedder = ImageEmbedder(inputCol="path", modelUri=str(models["nchw"]), handleInvalid="keep", batchSize=8)
    model = embedder._load_model()
    spec = embedder._model_spec(model)
    task = EmbedTask(
        images=DecodeTask(spec=spec, fetch=embedder._fetch_options(), input_kind=SOURCE, handle_invalid="keep",
                             input_col="path", features_format=ARRAY, stage_name="ImageEmbedder"),
        model_uri=str(models["nchw"]), model_sha256=model.sha256, output_node="features", output_size=4,
        batch_size=8, intra_op_threads=1,
    )
    out = [row for batch in embed_batches([pa.array(paths)], task) for row in batch.field("features").to_pylist()]
    assert [row is None for row in out] == [False] * 3 + [True] * 3
    assert given == [3]  # one call, with the three readable images only


def test_vectors_are_refused_as_input(spark, models):
    frame = spark.createDataFrame([(DenseVector([1.0, 2.0]),)], ["features"])
    with pytest.raises(TypeError, match="ImageEmbedder reads images, not feature vectors"):
        ImageEmbedder(inputCol="features", modelUri=str(models["nchw"])).transform(frame)


class _CountingHandler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args, counts: Counter, **kwargs):
        self.counts = counts
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        self.counts[self.path] += 1
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture()
def counting_server(tmp_path) -> Iterator[tuple]:
    counts: Counter = Counter()
    handler = functools.partial(_CountingHandler, directory=str(tmp_path), counts=counts)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path, counts
    server.shutdown()
    server.server_close()


@pytest.mark.claim("Each Python worker reads the ONNX model once")
def test_each_python_worker_reads_the_model_once_across_many_tasks(spark, photos, counting_server):
    base_url, directory, counts = counting_server
    uri = f"{base_url}/cached.onnx"
    tiny_cnn(directory / "cached.onnx", seed=5)
    embedder = ImageEmbedder(inputCol="path", modelUri=uri, batchSize=2)
    frame = _frame(spark, photos * 2, partitions=16)
    tasks = frame.rdd.getNumPartitions()
    assert len(embedder.transform(frame).collect()) == 2 * len(photos)
    # The driver reads the model once to inspect it; every other read is a Python worker's
    # first use. Spark reuses a handful of workers (local[2]) for all 16 tasks.
    worker_loads = counts["/cached.onnx"] - 1
    assert 1 <= worker_loads < tasks

    @F.pandas_udf("string")
    def loads_here(ids):  # runs in the same pool of reused Python workers
        import os

        import pandas as pd

        from sparkimg_ml.model.onnx import model_loads

        return pd.Series([f"{os.getpid()}:{model_loads(uri)}"] * len(ids))

    reports = {r[0] for r in spark.range(0, 64, numPartitions=16).select(loads_here("id")).collect()}
    per_worker = {int(pid): int(loads) for pid, loads in (report.split(":") for report in reports)}
    assert all(loads <= 1 for loads in per_worker.values()) and sum(per_worker.values()) >= 1
    # Exactly one read per worker that ran the stage: idle workers are taken first in, first out,
    # so 16 tasks on the reused pool visit every worker, and each one that read the model says so.
    assert sum(per_worker.values()) == worker_loads


@pytest.mark.claim("A saved ImageEmbedder stores the model's URI and checksum, not its bytes; a wrong checksum names both digests")
@pytest.mark.compat
def test_saved_stage_stores_the_model_reference_not_its_bytes(spark, photos, models, tmp_path):
    digest = hashlib.sha256(models["nchw"].read_bytes()).hexdigest()
    embedder = ImageEmbedder(inputCol="path", modelUri=str(models["nchw"]), modelSha256=digest,
                             outputNode="features", batchSize=7)
    path = tmp_path / "embedder"
    embedder.save(str(path))
    files = [p for p in path.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 4096
    metadata = json.loads(next(p for p in files if p.name.startswith("part-")).read_text())
    assert metadata["class"] == "sparkimg_ml.embedder.ImageEmbedder"
    assert metadata["paramMap"]["modelUri"] == str(models["nchw"])
    assert metadata["paramMap"]["modelSha256"] == digest
    assert "imageSize" not in metadata["paramMap"]  # still follows the model
    loaded = ImageEmbedder.load(str(path))
    assert loaded.getBatchSize() == 7 and not loaded.isSet(loaded.imageSize)
    frame = _frame(spark, photos[:4])
    reloaded, original = _embeddings(loaded.transform(frame)), _embeddings(embedder.transform(frame))
    assert reloaded.keys() == original.keys() == set(range(4))
    for key in original:
        np.testing.assert_array_equal(reloaded[key], original[key])
    np.testing.assert_array_equal(loaded.embed(photos[:4]), embedder.embed(photos[:4]))


# -- a digits classifier: fitted CNN filters -> ImageEmbedder -> LogisticRegression ------------------

@pytest.fixture(scope="module")
def digits(spark, static_dir, http_server, tmp_path_factory):
    from sklearn.datasets import load_digits

    pairs = write_digits_pngs(static_dir / "embed_digits")
    (static_dir / "embed_digits" / "not_an_image.png").write_text("<html>not a png</html>")
    table = digits_frame(spark, f"{http_server}/embed_digits", pairs, broken=3, extra_columns=20)
    # 600 training and 300 test digits keep the cross-validation quick; the broken rows
    # at the end of the table go to the training side (handleInvalid="skip" drops them).
    train = table.where("id % 3 != 0 AND (id < 900 OR id >= 1797)").cache()
    test = table.where("id % 3 = 0 AND id < 900").cache()
    # The filters are fitted on the training images only.
    images = load_digits().images / 16.0
    filters = digits_filters(images[[i for i in range(900) if i % 3 != 0]])
    model = digits_cnn(tmp_path_factory.mktemp("digits_model") / "digits_cnn.onnx", filters)
    return train, test, model


def _digits_pipeline(model: Path, **embedder_params) -> Pipeline:
    embedder = ImageEmbedder(inputCol="url", modelUri=str(model), outputNode="features", colorMode="L",
                             handleInvalid="skip", modelSha256=hashlib.sha256(model.read_bytes()).hexdigest(),
                             **embedder_params)
    classifier = LogisticRegression(featuresCol="embedding", labelCol="label", maxIter=40, regParam=1e-3)
    return Pipeline(stages=[embedder, classifier])


@pytest.mark.claim("CrossValidator tunes featurizer Params; the fitted model saves and loads in a new process")
def test_digits_classifier_tuned_by_cross_validation_is_accurate_and_reloads_in_a_new_process(
        spark, digits, tmp_path):
    train, test, model = digits
    pipeline = _digits_pipeline(model)
    embedder = pipeline.getStages()[0]
    grid = ParamGridBuilder().addGrid(embedder.outputNode, ["global", "features"]).build()
    evaluator = MulticlassClassificationEvaluator(labelCol="label", metricName="accuracy")
    cv = CrossValidator(estimator=pipeline, estimatorParamMaps=grid, evaluator=evaluator, numFolds=2,
                        parallelism=2, seed=3)
    tuned = cv.fit(train)
    global_accuracy, features_accuracy = tuned.avgMetrics
    assert features_accuracy > global_accuracy
    best = tuned.bestModel
    assert best.stages[0].getOutputNode() == "features"
    assert evaluator.evaluate(best.transform(test)) >= 0.95

    cv_path = tmp_path / "cv"
    tuned.write().overwrite().save(str(cv_path))
    loaded = CrossValidatorModel.load(str(cv_path))
    assert loaded.bestModel.stages[0].getOutputNode() == "features"
    assert list(loaded.avgMetrics) == list(tuned.avgMetrics)

    path = tmp_path / "digits_pipeline"
    best.write().overwrite().save(str(path))
    sample = test.where("url IS NOT NULL").limit(40)
    here = {str(r["id"]): [r["prediction"], r["probability"].toArray().tolist()]
            for r in best.transform(sample).select("id", "prediction", "probability").collect()}
    rows_path, out_path = tmp_path / "rows.json", tmp_path / "out.json"
    json.dump([[r["id"], r["url"]] for r in sample.select("id", "url").collect()], open(rows_path, "w"))
    subprocess.run([sys.executable, str(LOADER), "pipeline", str(path), str(rows_path), str(out_path)],
                   check=True, timeout=600)
    there = json.load(open(out_path))
    assert there == here and len(here) == 40
    reloaded = PipelineModel.load(str(path)).stages[0]
    assert isinstance(reloaded, ImageEmbedder) and reloaded.getModelUri() == str(model)


def test_the_batch_loop_without_spark_and_the_pandas_udf_fallback_give_the_stage_values(spark, photos, models):
    import functools

    import pyarrow as pa

    from sparkimg_ml.engine.decode import DecodeTask
    from sparkimg_ml.engine.embed import EmbedTask, embed_batches
    from sparkimg_ml.engine.udf import make_image_udf, udf_output_format
    from sparkimg_ml.schema import ARRAY, SOURCE

    embedder = ImageEmbedder(inputCol="path", modelUri=str(models["nchw"]), outputNode="conv", batchSize=3,
                             handleInvalid="keep", mean="imagenet", std="imagenet")
    model = embedder._load_model()
    spec = embedder._model_spec(model)
    task = EmbedTask(
        images=DecodeTask(spec=spec, fetch=embedder._fetch_options(), input_kind=SOURCE, handle_invalid="keep",
                             input_col="path", features_format=ARRAY, stage_name="ImageEmbedder"),
        model_uri=str(models["nchw"]), model_sha256=model.sha256, output_node="conv", output_size=256,
        batch_size=3, intra_op_threads=1,
    )
    served = embedder.embed(photos)
    batches = [pa.array(photos[:5]), pa.array([None, photos[5]]), pa.array(photos[6:])]
    out = [row for batch in embed_batches(batches, task) for row in batch.field("features").to_pylist()]
    assert out[5] is None
    assert all(np.array_equal(np.asarray(v, np.float32), served[i if i < 5 else i - 1])
               for i, v in enumerate(out) if i != 5)

    assert udf_output_format("vector", use_arrow_udf=False) == ARRAY
    pandas_udf = make_image_udf(functools.partial(embed_batches, task=task), ARRAY, SOURCE, use_arrow_udf=False)
    rows = _frame(spark, photos[:4]).select("id", pandas_udf("path").getField("features").alias("e")).collect()
    for row in rows:
        assert np.array_equal(np.asarray(row["e"], np.float32), served[row["id"]])


def test_binary_file_content_gives_the_embeddings_of_the_paths(spark, photos, models):
    embedder = ImageEmbedder(inputCol="content", modelUri=str(models["nchw"]), outputNode="features")
    files = spark.read.format("binaryFile").load(str(Path(photos[0]).parent))
    rows = embedder.transform(files).select("path", "embedding").collect()
    served = dict(zip(photos, embedder.embed(photos)))
    assert len(rows) == len(photos)
    for row in rows:
        assert np.array_equal(row["embedding"].toArray().astype(np.float32), served[row["path"].replace("file:", "")])


def test_source_info_col_gives_the_featurizers_facts_next_to_the_embeddings(spark, photos, models, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"<html>not an image</html>")
    frame = _frame(spark, photos[:3] + [str(broken), None])
    embedded = ImageEmbedder(inputCol="path", modelUri=str(models["nchw"]), handleInvalid="keep", errorCol="why",
                             sourceInfoCol="source").transform(frame)
    featurized = ImageUrlFeaturizer(inputCol="path", imageSize=[4, 4], handleInvalid="keep",
                                    sourceInfoCol="source").transform(frame)
    facts = {r["id"]: r["source"] for r in embedded.select("id", "source").collect()}
    assert facts == {r["id"]: r["source"] for r in featurized.select("id", "source").collect()}
    assert [facts[i]["format"] for i in range(3)] == ["PNG"] * 3
    assert facts[3]["bytes"] == broken.stat().st_size and facts[3]["width"] is None and facts[4] is None
    assert embedded.where("embedding IS NULL").count() == 2
