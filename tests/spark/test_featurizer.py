"""ImageUrlFeaturizer in Spark: inputs, outputs, handleInvalid, metadata and configuration errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pyspark.ml.functions import vector_to_array
from pyspark.sql import functions as F

from sparkimg_ml import ImageUrlFeaturizer

SIZE = [6, 5]  # height, width: deliberately not square


def _expected(image: Image.Image, mode: str = "RGB") -> np.ndarray:
    """The plain Pillow recipe the featurizer must reproduce for PNG input."""
    resized = image.convert(mode).resize((SIZE[1], SIZE[0]), Image.Resampling.BICUBIC)
    return (np.asarray(resized, dtype=np.float32) * np.float32(1 / 255)).reshape(-1)


@pytest.fixture(scope="module")
def images(static_dir: Path) -> dict:
    """Small PNGs of several modes written under the served directory."""
    rng = np.random.default_rng(3)
    folder = static_dir / "featurizer"
    folder.mkdir(exist_ok=True)
    made = {
        "rgb": Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8), "RGB"),
        "gray": Image.fromarray(rng.integers(0, 256, (17, 11), dtype=np.uint8), "L"),
        "rgba": Image.fromarray(rng.integers(0, 256, (9, 14, 4), dtype=np.uint8), "RGBA"),
    }
    for name, image in made.items():
        image.save(folder / f"{name}.png")
    (folder / "notes.txt").write_text("not an image")
    return {"dir": folder, **made}


def _vectors(frame, column="features"):
    return [None if row[0] is None else np.asarray(row[0], dtype=np.float32)
            for row in frame.select(vector_to_array(column, "float32")).collect()]


@pytest.mark.claim("Inputs: URLs, local paths, file:// URIs, binary content and Spark image structs (BGR order handled)")
@pytest.mark.compat
def test_featurizer_reads_paths_file_uris_and_http_urls_to_hwc_rgb(spark, images, http_server):
    folder = images["dir"]
    sources = [str(folder / "rgb.png"), (folder / "rgb.png").as_uri(),
               f"{http_server}/featurizer/rgb.png"]
    frame = spark.createDataFrame([(i, s) for i, s in enumerate(sources)], "id int, url string")
    out = ImageUrlFeaturizer(inputCol="url", imageSize=SIZE).transform(frame).orderBy("id")
    expected = _expected(images["rgb"])
    vectors = _vectors(out)
    assert len(vectors) == 3
    for vector in vectors:
        assert vector.shape == (SIZE[0] * SIZE[1] * 3,)
        np.testing.assert_array_equal(vector, expected)


@pytest.mark.claim("Grayscale, RGBA, CMYK, 16-bit and EXIF-rotated images are handled")
def test_featurizer_converts_gray_and_rgba_to_the_requested_mode(spark, images):
    folder = images["dir"]
    frame = spark.createDataFrame([(str(folder / "gray.png"),), (str(folder / "rgba.png"),)], "url string")
    rgb = _vectors(ImageUrlFeaturizer(inputCol="url", imageSize=SIZE).transform(frame))
    gray = _vectors(ImageUrlFeaturizer(inputCol="url", imageSize=SIZE, colorMode="L").transform(frame))
    assert [v.shape for v in rgb] == [(90,), (90,)]
    assert [v.shape for v in gray] == [(30,), (30,)]
    np.testing.assert_array_equal(gray[0], _expected(images["gray"], "L"))
    assert all(np.isfinite(v).all() and v.min() >= 0 and v.max() <= 1 for v in rgb + gray)


@pytest.mark.claim("Inputs: URLs, local paths, file:// URIs, binary content and Spark image structs (BGR order handled)")
@pytest.mark.compat
def test_featurizer_reads_binary_file_content_column(spark, images):
    frame = spark.read.format("binaryFile").option("pathGlobFilter", "rgb.png").load(str(images["dir"]))
    out = ImageUrlFeaturizer(inputCol="content", imageSize=SIZE).transform(frame)
    [vector] = _vectors(out)
    np.testing.assert_array_equal(vector, _expected(images["rgb"]))


@pytest.mark.claim("Inputs: URLs, local paths, file:// URIs, binary content and Spark image structs (BGR order handled)")
def test_featurizer_reads_spark_image_struct_with_bgr_order_accounted_for(spark, images):
    frame = spark.read.format("image").option("pathGlobFilter", "rgb.png").load(str(images["dir"]))
    out = ImageUrlFeaturizer(inputCol="image", imageSize=SIZE).transform(frame)
    [vector] = _vectors(out)
    np.testing.assert_array_equal(vector, _expected(images["rgb"]))


@pytest.mark.claim("handleInvalid=\"keep\" keeps every row (null vector) and errorCol gives each failed row a reason code")
@pytest.mark.compat
def test_featurizer_keep_mode_keeps_every_row_and_column_with_reasons(spark, images, http_server):
    folder = images["dir"]
    rows = [
        (1, str(folder / "rgb.png")),
        (2, None),
        (3, f"{http_server}/featurizer/absent.png"),
        (4, str(folder / "notes.txt")),
        (5, "   "),
        (6, str(folder / "rgb.png")),
    ]
    frame = spark.createDataFrame(rows, "id int, url string").withColumn("other", F.col("id") * 10)
    out = ImageUrlFeaturizer(inputCol="url", imageSize=SIZE, handleInvalid="keep",
                             errorCol="why").transform(frame).orderBy("id")
    assert out.columns == ["id", "url", "other", "features", "why"]
    collected = out.collect()
    assert [r["other"] for r in collected] == [10, 20, 30, 40, 50, 60]
    reasons = [r["why"] for r in collected]
    assert reasons[0] is None and reasons[5] is None
    assert reasons[1].startswith("missing")
    assert reasons[2].startswith("http_404")
    assert reasons[3].startswith("decode")
    assert reasons[4].startswith("missing")
    assert [r["features"] is None for r in collected] == [False, True, True, True, True, False]


@pytest.mark.claim("handleInvalid=\"skip\" drops exactly the rows whose image cannot be read")
@pytest.mark.compat
def test_featurizer_skip_mode_drops_only_bad_rows(spark, images):
    folder = images["dir"]
    frame = spark.createDataFrame(
        [(1, str(folder / "rgb.png")), (2, str(folder / "notes.txt")), (3, None)], "id int, url string")
    out = ImageUrlFeaturizer(inputCol="url", imageSize=SIZE, handleInvalid="skip").transform(frame)
    assert [r["id"] for r in out.collect()] == [1]
    assert "features" in out.columns


@pytest.mark.claim("handleInvalid=\"error\" fails the job with a message naming the row's source (secrets redacted) and the cause")
@pytest.mark.compat
def test_featurizer_error_mode_fails_naming_the_url_and_the_cause(spark, http_server):
    url = f"{http_server}/featurizer/absent.png"
    frame = spark.createDataFrame([(url,)], "url string")
    with pytest.raises(Exception) as failure:
        ImageUrlFeaturizer(inputCol="url", imageSize=SIZE).transform(frame).collect()
    message = str(failure.value)
    assert url in message and "http_404" in message and "handleInvalid" in message


@pytest.mark.compat
def test_featurizer_output_metadata_describes_the_tensor(spark, images):
    frame = spark.createDataFrame([(str(images["dir"] / "rgb.png"),)], "url string")
    out = ImageUrlFeaturizer(inputCol="url", imageSize=SIZE).transform(frame)
    meta = out.schema["features"].metadata
    assert meta["ml_attr"] == {"num_attrs": 90}
    assert meta["tensor"]["shape"] == [6, 5, 3]
    assert meta["tensor"]["layout"] == "HWC"
    assert meta["tensor"]["channelOrder"] == "RGB"


@pytest.mark.claim("Only the image column crosses into Python")
def test_only_the_image_column_crosses_into_python(spark, images):
    frame = spark.createDataFrame([(1, str(images["dir"] / "rgb.png"), "x" * 10)], "id int, url string, text string")
    plan = ImageUrlFeaturizer(inputCol="url", imageSize=SIZE).transform(frame)._jdf.queryExecution() \
        .executedPlan().toString()
    python_nodes = [line for line in plan.splitlines() if "ArrowEvalPython" in line]
    assert len(python_nodes) == 1
    udf_inputs = python_nodes[0].split("[", 1)[1].split("]", 1)[0]
    assert "url#" in udf_inputs and "text#" not in udf_inputs and "id#" not in udf_inputs


def test_pandas_udf_fallback_gives_the_same_vectors(spark, images, force_pandas_udf):
    folder = images["dir"]
    frame = spark.createDataFrame(
        [(str(folder / "rgb.png"),), (None,), (str(folder / "gray.png"),)], "url string")
    featurizer = ImageUrlFeaturizer(inputCol="url", imageSize=SIZE, handleInvalid="keep", errorCol="why")
    arrow_rows = featurizer.transform(frame).collect()
    force_pandas_udf("sparkimg_ml.featurizer")
    pandas_out = featurizer.transform(frame)
    assert "ArrowEvalPython" in pandas_out._jdf.queryExecution().executedPlan().toString()
    pandas_rows = pandas_out.collect()
    assert [r["why"] for r in pandas_rows] == [r["why"] for r in arrow_rows]
    for a, b in zip(arrow_rows, pandas_rows):
        assert (a["features"] is None) == (b["features"] is None)
        if a["features"] is not None:
            np.testing.assert_array_equal(a["features"].toArray(), b["features"].toArray())


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        ({"imageSize": [0, 32]}, ValueError, "imageSize"),
        ({"imageSize": [32, 32, 3]}, ValueError, "imageSize"),
        ({"imageSize": "32 by 32"}, ValueError, "imageSize must be [height, width], one number for a square, or 'HxW'"),
        ({"colorMode": "XYZ"}, ValueError, "colorMode"),
        ({"allowLocalFiles": "yes"}, TypeError, "allowLocalFiles"),
        ({"blockPrivateNetworks": 1}, TypeError, "blockPrivateNetworks"),
        ({"handleInvalid": "drop"}, ValueError, "'error', 'skip', 'keep'"),
        ({"scale": -1.0}, ValueError, "scale"),
        ({"concurrency": 0}, ValueError, "concurrency"),
        ({"timeout": 0}, ValueError, "timeout"),
        ({"reducingGap": 1.0}, ValueError, "reducingGap must be 0 (off) or a finite number >= 2.0"),
        ({"reducingGap": "fast"}, TypeError, "reducingGap"),
    ],
)
def test_featurizer_rejects_bad_params_at_construction(kwargs, error, words):
    with pytest.raises(error) as failure:
        ImageUrlFeaturizer(inputCol="url", **kwargs)
    assert words in str(failure.value)


def test_featurizer_rejects_bad_columns_at_transform(spark):
    frame = spark.createDataFrame([(1, "a", 2.0)], "id int, url string, features double")
    with pytest.raises(ValueError, match="inputCol is not set"):
        ImageUrlFeaturizer().transform(frame)
    with pytest.raises(ValueError, match="'nope' does not exist"):
        ImageUrlFeaturizer(inputCol="nope").transform(frame)
    with pytest.raises(TypeError, match="has type int"):
        ImageUrlFeaturizer(inputCol="id", outputCol="v").transform(frame)
    with pytest.raises(ValueError, match="already exists"):
        ImageUrlFeaturizer(inputCol="url").transform(frame)
    with pytest.raises(ValueError, match="must differ"):
        ImageUrlFeaturizer(inputCol="url", outputCol="v", errorCol="v").transform(frame)


def test_featurizer_params_have_getters_setters_and_defaults():
    featurizer = ImageUrlFeaturizer()
    assert featurizer.getOutputCol() == "features"
    assert featurizer.getHandleInvalid() == "error"
    assert featurizer.getImageSize() == [32, 32]
    assert featurizer.getColorMode() == "RGB"
    assert featurizer.getScale() == pytest.approx(1 / 255)
    assert featurizer.getErrorCol() is None
    featurizer.setInputCol("u").setOutputCol("o").setErrorCol("e").setHandleInvalid("keep") \
        .setImageSize((8, 9)).setColorMode("L").setScale(2.0).setConcurrency(3).setTimeout(4.5)
    assert (featurizer.getInputCol(), featurizer.getOutputCol(), featurizer.getErrorCol()) == ("u", "o", "e")
    assert featurizer.getImageSize() == [8, 9] and featurizer.getColorMode() == "L"
    assert featurizer.getScale() == 2.0 and featurizer.getConcurrency() == 3 and featurizer.getTimeout() == 4.5
    assert featurizer.outputMetadata()["ml_attr"]["num_attrs"] == 72
    copied = featurizer.copy({featurizer.imageSize: [2, 2]})
    assert copied.getImageSize() == [2, 2] and featurizer.getImageSize() == [8, 9]


@pytest.mark.claim("preprocess / ImageEmbedder.embed give bit-identical values without Spark")
def test_serving_preprocess_matches_spark_output_bit_for_bit(spark, images):
    path = str(images["dir"] / "rgb.png")
    featurizer = ImageUrlFeaturizer(inputCol="url", imageSize=SIZE)
    [spark_vector] = _vectors(featurizer.transform(spark.createDataFrame([(path,)], "url string")))
    data = Path(path).read_bytes()
    np.testing.assert_array_equal(featurizer.preprocess(path), spark_vector)
    np.testing.assert_array_equal(featurizer.preprocess([data, path])[1], spark_vector)



@pytest.mark.compat
@pytest.mark.parametrize("columnar_input", ["true", "false"])
@pytest.mark.parametrize("source", ["parquet", "cached parquet", "binary parquet"])
def test_columnar_children_parquet_and_cache_give_vectors(spark, images, tmp_path, source, columnar_input):
    """A Parquet scan or a cached table feeds Arrow UDFs column-wise on Spark 4.3 when
    ``spark.sql.execution.arrow.pythonUDF.columnarInput.enabled`` is on; that path
    cannot return a Vector, so the stage must keep its UDF on the row path."""
    folder = images["dir"]
    rows = [(0, str(folder / "rgb.png")), (1, None), (2, str(folder / "gray.png")), (3, "/no/such.png")]
    frame = spark.createDataFrame(rows, "id int, url string")
    column = "url"
    if source == "binary parquet":
        frame = frame.select("id", F.when(F.col("url").isNotNull() & (F.col("id") != 3), F.col("url")).alias("url"))
        content = {r.id: (None if r.url is None else Path(r.url).read_bytes()) for r in frame.collect()}
        frame = spark.createDataFrame(sorted(content.items()), "id int, content binary")
        column = "content"
    frame.write.parquet(str(tmp_path / "table"))
    table = spark.read.parquet(str(tmp_path / "table"))
    if source == "cached parquet":
        table = table.cache()
        table.count()
    # The conf exists from Spark 4.3 on; reading it earlier raises SQL_CONF_NOT_FOUND, and setting
    # it there changes nothing, so older versions run the row path both times.
    conf = "spark.sql.execution.arrow.pythonUDF.columnarInput.enabled"
    previous = spark.conf.get(conf, None)
    spark.conf.set(conf, columnar_input)
    try:
        out = ImageUrlFeaturizer(inputCol=column, imageSize=SIZE, handleInvalid="keep", errorCol="why") \
            .transform(table).orderBy("id")
        collected = out.select("features", "why").collect()
        vectors = [None if r.features is None else r.features.toArray().astype(np.float32) for r in collected]
        reasons = [r.why for r in collected]
    finally:
        if previous is None:
            spark.conf.unset(conf)
        else:
            spark.conf.set(conf, previous)
        table.unpersist()
    np.testing.assert_array_equal(vectors[0], _expected(images["rgb"]))
    np.testing.assert_array_equal(vectors[2], _expected(images["gray"]))
    assert vectors[1] is None and reasons[1].startswith("missing")
    assert reasons[0] is None and reasons[2] is None
    assert vectors[3] is None and reasons[3].startswith("not_found" if column == "url" else "missing")


def test_filters_after_the_stage_still_prune_partitions_before_any_image_is_read(spark, images, tmp_path):
    folder = images["dir"]
    frame = spark.createDataFrame(
        [(day, str(folder / "rgb.png")) for day in (1, 2, 3)], "day int, url string")
    frame.write.partitionBy("day").parquet(str(tmp_path / "by_day"))
    table = spark.read.parquet(str(tmp_path / "by_day"))
    out = ImageUrlFeaturizer(inputCol="url", imageSize=SIZE).transform(table).where("day = 2")
    scan = [line for line in out._jdf.queryExecution().executedPlan().toString().splitlines()
            if "FileScan parquet" in line]
    assert len(scan) == 1 and "PartitionFilters: [isnotnull(day" in scan[0] and "(day#" in scan[0]
    assert [row.day for row in out.select("day").collect()] == [2]
