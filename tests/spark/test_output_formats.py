"""outputFormat: Vector, array<float> and uint8 binary tensors carry the same values as preprocess()."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
from PIL import Image
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.linalg import VectorUDT
from pyspark.sql.types import ArrayType, BinaryType, FloatType
from repo_paths import RESOURCES

from sparkimg_ml import ImageUrlFeaturizer, preprocess, schema
from sparkimg_ml.engine import decode, featurize
from sparkimg_ml.tensors import TensorInfo, flat_values

RESOURCES = RESOURCES
SIZE = [5, 7]


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def encoded() -> list:
    """8-bit images of every kind the formats must agree on: photo-like JPEG, RGBA, gray, palette."""
    rng = np.random.default_rng(11)
    smooth = np.cumsum(rng.integers(0, 9, (40, 52, 3)), axis=1).astype(np.uint8)
    return [
        _encode(Image.fromarray(smooth), "JPEG", quality=85),
        _encode(Image.fromarray(rng.integers(0, 256, (13, 9, 4), dtype=np.uint8), "RGBA"), "PNG"),
        _encode(Image.fromarray(rng.integers(0, 256, (8, 21), dtype=np.uint8), "L"), "PNG"),
        _encode(Image.fromarray(rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)).convert("P"), "GIF"),
    ]


@pytest.fixture(scope="module")
def frame(spark, encoded):
    rows = [(i, data) for i, data in enumerate(encoded)] + [(len(encoded), b"not an image")]
    return spark.createDataFrame(rows, "id int, content binary")


def _rows(frame, column: str) -> list:
    return [None if row[0] is None else flat_values(row[0])
            for row in frame.orderBy("id").select(column).collect()]


@pytest.mark.claim("uint8 output normalised with the recorded metadata equals the vector/array output bit for bit")
@pytest.mark.compat
def test_uint8_tensors_normalise_to_the_float_output_bit_for_bit(frame, encoded):
    """Through Spark, every colour mode, layout and mean/std preset: to_float32(uint8) == Vector == array.

    Each configuration runs on its own single-partition copy of the rows and the copies are unioned,
    so they run as small tasks that reuse Python workers. The full cross product runs without
    Spark below, through the same batch function the UDF calls.
    """
    from pyspark.sql import functions as F

    configs = [("RGB", "HWC", "imagenet"), ("BGR", "CHW", "plain"), ("L", "CHW", "imagenet"),
               ("RGBA", "HWC", "imagenet"), ("RGB", "CHW", "plain")]
    stages, parts = {}, []
    for number, (color_mode, layout, preset) in enumerate(configs):
        stats = {"mean": "imagenet", "std": "imagenet"} if preset == "imagenet" else {}
        part = frame.coalesce(1).withColumn("config", F.lit(number))
        for output_format in ("vector", "array", "uint8"):
            stages[number, output_format] = ImageUrlFeaturizer(
                inputCol="content", outputCol=output_format, imageSize=SIZE, colorMode=color_mode,
                layout=layout, outputFormat=output_format, handleInvalid="keep", **stats)
            part = stages[number, output_format].transform(part)
        parts.append(part.select("config", "id", "vector", "array", "uint8"))
    union = parts[0]
    for part in parts[1:]:
        union = union.unionByName(part)
    collected = {(row.config, row.id): row for row in union.collect()}
    assert len(collected) == len(configs) * (len(encoded) + 1)
    for number in range(len(configs)):
        info = TensorInfo.from_metadata(stages[number, "uint8"].outputMetadata())
        assert info.dtype == "uint8"
        bad = collected[number, len(encoded)]
        assert bad.vector is None and bad.array is None and bad.uint8 is None
        for row, data in enumerate(encoded):
            values = collected[number, row]
            expected = stages[number, "vector"].preprocess(data)
            np.testing.assert_array_equal(values.vector.toArray().astype(np.float32), expected)
            np.testing.assert_array_equal(np.asarray(values.array, np.float32), expected)
            pixels = flat_values(values.uint8)
            np.testing.assert_array_equal(pixels, stages[number, "uint8"].preprocess(data))
            np.testing.assert_array_equal(info.to_float32(pixels).reshape(-1), expected, err_msg=str(configs[number]))


@pytest.mark.claim("uint8 output normalised with the recorded metadata equals the vector/array output bit for bit")
@pytest.mark.parametrize("color_mode", ["RGB", "BGR", "L", "RGBA"])
@pytest.mark.parametrize("layout", ["HWC", "CHW"])
@pytest.mark.parametrize("preset", ["plain", "imagenet"])
def test_uint8_batches_normalise_to_the_float_batches_for_every_configuration(encoded, color_mode, layout, preset):
    import pyarrow as pa

    stats = {"mean": "imagenet", "std": "imagenet"} if preset == "imagenet" else {}
    stage = ImageUrlFeaturizer(inputCol="content", imageSize=SIZE, colorMode=color_mode, layout=layout,
                               handleInvalid="keep", **stats)
    task = decode.DecodeTask(stage._image_spec(), stage._fetch_options(), schema.BINARY, "keep", "content")
    batch = pa.array(encoded, pa.binary())
    outputs = {}
    for output_format in schema.FEATURIZER_OUTPUT_FORMATS:
        [out] = featurize.featurize_batches([batch], dataclasses.replace(task, features_format=output_format))
        outputs[output_format] = out.field("features")
    info = TensorInfo.from_metadata(stage.setOutputFormat("uint8").outputMetadata())
    pixels = np.stack([np.frombuffer(v, np.uint8) for v in outputs["uint8"].to_pylist()])
    floats = np.asarray(outputs["array"].to_pylist(), np.float32)
    doubles = np.asarray(outputs["vector"].field("values").to_pylist())
    np.testing.assert_array_equal(info.to_float32(pixels).reshape(len(encoded), -1), floats)
    np.testing.assert_array_equal(doubles, floats.astype(np.float64))


@pytest.mark.compat
def test_each_format_has_its_column_type_and_metadata(frame):
    out = frame
    for output_format in ("vector", "array", "uint8"):
        out = ImageUrlFeaturizer(inputCol="content", outputCol=output_format, imageSize=SIZE,
                                 outputFormat=output_format, handleInvalid="keep").transform(out)
    assert isinstance(out.schema["vector"].dataType, VectorUDT)
    assert out.schema["array"].dataType == ArrayType(FloatType(), containsNull=False)
    assert out.schema["uint8"].dataType == BinaryType()
    metadata = {name: out.schema[name].metadata for name in ("vector", "array", "uint8")}
    assert metadata["vector"]["ml_attr"] == {"num_attrs": 105}
    assert "ml_attr" not in metadata["array"] and "ml_attr" not in metadata["uint8"]
    assert [metadata[name]["tensor"]["dtype"] for name in ("vector", "array", "uint8")] == \
        ["float32", "float32", "uint8"]
    tensor = metadata["uint8"]["tensor"]
    assert tensor["shape"] == [5, 7, 3] and tensor["scale"] == pytest.approx(1 / 255)
    assert tensor["mean"] == [0.0, 0.0, 0.0] and tensor["std"] == [1.0, 1.0, 1.0]
    lengths = [len(row[0]) for row in out.filter("id = 0").select("uint8").collect()]
    assert lengths == [105]  # one byte per value


@pytest.mark.compat
def test_uint8_rows_follow_handle_invalid(frame):
    featurizer = ImageUrlFeaturizer(inputCol="content", outputCol="pixels", imageSize=SIZE,
                                    outputFormat="uint8", handleInvalid="keep", errorCol="why")
    kept = featurizer.transform(frame).orderBy("id").select("pixels", "why").collect()
    assert [row.pixels is None for row in kept] == [False] * 4 + [True]
    assert kept[-1].why.startswith("decode")
    assert featurizer.setHandleInvalid("skip").transform(frame).count() == 4


def test_pandas_udf_fallback_returns_the_same_uint8_bytes(frame, force_pandas_udf):
    featurizer = ImageUrlFeaturizer(inputCol="content", outputCol="pixels", imageSize=SIZE,
                                    outputFormat="uint8", handleInvalid="keep")
    arrow_rows = _rows(featurizer.transform(frame), "pixels")
    force_pandas_udf("sparkimg_ml.featurizer")
    pandas_out = featurizer.transform(frame)
    assert pandas_out.schema["pixels"].dataType == BinaryType()
    pandas_rows = _rows(pandas_out, "pixels")
    assert [r is None for r in pandas_rows] == [r is None for r in arrow_rows]
    for a, b in zip(arrow_rows, pandas_rows):
        if a is not None:
            np.testing.assert_array_equal(a, b)


def test_preprocess_returns_the_values_of_the_output_format(encoded):
    floats = preprocess(encoded[:2], imageSize=SIZE, mean="imagenet", std="imagenet")
    pixels = preprocess(encoded[:2], imageSize=SIZE, mean="imagenet", std="imagenet", outputFormat="uint8",
                        inputCol="ignored", handleInvalid="keep")
    assert floats.dtype == np.float32 and pixels.dtype == np.uint8 and pixels.shape == floats.shape == (2, 105)
    info = TensorInfo.from_metadata(ImageUrlFeaturizer(imageSize=SIZE, mean="imagenet", std="imagenet",
                                                       outputFormat="uint8").outputMetadata())
    np.testing.assert_array_equal(info.to_float32(pixels).reshape(2, -1), floats)
    with pytest.raises(ValueError, match="outputFormat must be one of"):
        preprocess(encoded[0], outputFormat="int8")
    with pytest.raises(TypeError, match="unknown Param 'imageSise'"):
        preprocess(encoded[0], imageSise=[4, 4])


@pytest.mark.claim("High-bit-depth sources are rounded to 8 bits in uint8 output")
def test_uint8_output_rounds_high_bit_depth_sources_to_8_bits():
    rng = np.random.default_rng(5)
    wide = Image.fromarray(rng.integers(0, 65536, (12, 10), dtype=np.uint16))  # 16-bit gray
    data = _encode(wide, "PNG")
    floats = preprocess(data, imageSize=SIZE, colorMode="L", interpolation="bilinear", scale=1.0)
    pixels = preprocess(data, imageSize=SIZE, colorMode="L", interpolation="bilinear", scale=1.0,
                        outputFormat="uint8")
    assert not np.array_equal(floats, np.round(floats))  # the float output keeps the precision
    np.testing.assert_array_equal(pixels, np.clip(np.rint(floats), 0, 255).astype(np.uint8))


def test_output_format_is_validated_and_case_insensitive():
    assert ImageUrlFeaturizer(outputFormat="UINT8").getOutputFormat() == "uint8"
    with pytest.raises(ValueError, match="'vector', 'array', 'uint8'"):
        ImageUrlFeaturizer(outputFormat="tinyint")
    assert ImageUrlFeaturizer().setOutputFormat("array").getOutputFormat() == "array"


def test_output_format_persists_in_pipelines_and_old_stages_load_as_vectors(spark, frame, tmp_path):
    featurizer = ImageUrlFeaturizer(inputCol="content", outputCol="pixels", imageSize=SIZE,
                                    outputFormat="uint8", handleInvalid="skip")
    model = Pipeline(stages=[featurizer]).fit(frame)
    model.write().overwrite().save(str(tmp_path / "model"))
    loaded = PipelineModel.load(str(tmp_path / "model"))
    assert loaded.stages[0].getOutputFormat() == "uint8"
    out = loaded.transform(frame)
    assert out.schema["pixels"].metadata == featurizer.outputMetadata()
    assert _rows(out, "pixels")[0].tolist() == featurizer.preprocess(frame.orderBy("id").first().content).tolist()
    old = ImageUrlFeaturizer.load(str(RESOURCES / "v0_1_0" / "featurizer"))  # saved before outputFormat
    assert old.getOutputFormat() == "vector" and "ml_attr" in old.outputMetadata()
