"""ImageHasher on Spark: the same hashes as ``hash()`` for every input kind, bad rows, metadata, persistence."""

from __future__ import annotations

import io

import imagehash
import numpy as np
import pytest
from PIL import Image, ImageOps
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.linalg import VectorUDT
from pyspark.sql import functions as F
from pyspark.sql.types import LongType

from sparkimg_ml import ImageHasher
from sparkimg_ml.engine.decode import ImageFeaturizationError


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def images() -> list[bytes]:
    rng = np.random.default_rng(7)
    smooth = np.cumsum(rng.integers(0, 9, (60, 80, 3)), axis=1).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned; upright it is `smooth`
    rgba = np.dstack([smooth, np.tile(np.linspace(0, 255, 80, dtype=np.uint8), (60, 1))])
    return [
        _encode(Image.fromarray(smooth), "PNG"),
        _encode(Image.fromarray(smooth).transpose(Image.Transpose.ROTATE_90), "JPEG", quality=95, exif=exif),
        _encode(Image.fromarray(rgba, "RGBA"), "PNG"),
        _encode(Image.fromarray(smooth[::-1]), "JPEG", quality=70),
    ]


@pytest.fixture(scope="module")
def frame(spark, images, tmp_path_factory):
    directory = tmp_path_factory.mktemp("hash_images")
    rows = []
    for i, data in enumerate(images):
        path = directory / f"image_{i}.img"
        path.write_bytes(data)
        rows.append((i, str(path), data))
    rows.append((len(images), str(directory / "missing.png"), b"not an image"))
    return spark.createDataFrame(rows, "id int, path string, content binary").coalesce(1)


def _by_id(frame, column: str) -> list:
    return [row[column] for row in frame.orderBy("id").collect()]


def test_spark_long_hashes_equal_hash_without_spark_for_paths_and_bytes(frame, images):
    """All four hashes in one job (one stage per hash and input column), checked against hash()."""
    pairs = [(hash_type, "content") for hash_type in ("phash", "dhash", "ahash", "whash")] + [("phash", "path")]
    stages = [ImageHasher(inputCol=column, outputCol=f"{hash_type}_{column}", hashType=hash_type,
                          handleInvalid="keep", errorCol=f"why_{hash_type}_{column}") for hash_type, column in pairs]
    out = frame
    for stage in stages:
        out = stage.transform(out)
    rows = out.orderBy("id").collect()
    for stage in stages:
        name = stage.getOutputCol()
        assert out.schema[name].dataType == LongType()
        expected = stage.hash(images).tolist()
        assert [row[name] for row in rows][:-1] == expected, name
        assert rows[-1][name] is None
        assert [row[stage.getErrorCol()] for row in rows][:-1] == [None] * len(images)
    assert rows[-1]["why_phash_path"].startswith("not_found")
    assert rows[-1]["why_phash_content"].startswith("decode")


def test_values_are_imagehash_on_the_upright_composited_image(frame, images):
    stage = ImageHasher(inputCol="content", hashType="dhash", handleInvalid="skip")
    values = _by_id(stage.transform(frame), "hash")
    assert len(values) == len(images)  # the bad row is skipped
    upright = ImageOps.exif_transpose(Image.open(io.BytesIO(images[1])))
    rgba = Image.open(io.BytesIO(images[2]))
    composited = Image.new("RGB", rgba.size, (255, 255, 255))
    composited.paste(rgba, (0, 0), rgba)
    for value, reference in ((values[1], upright), (values[2], composited)):
        assert f"{value % 2 ** 64:016x}" == str(imagehash.dhash(reference))
    # the EXIF-rotated JPEG hashes like its upright PNG original, up to JPEG noise
    assert bin((values[0] ^ values[1]) % 2 ** 64).count("1") <= 4


def test_vector_output_and_metadata(frame, images):
    stage = ImageHasher(inputCol="content", hashType="phash", hashSize=16, outputFormat="vector",
                        handleInvalid="keep")
    out = stage.transform(frame)
    assert isinstance(out.schema["hash"].dataType, VectorUDT)
    metadata = out.schema["hash"].metadata
    assert metadata["hash"]["type"] == "phash" and metadata["hash"]["bits"] == 256
    assert metadata["ml_attr"] == {"num_attrs": 256}
    vectors = _by_id(out, "hash")
    assert vectors[-1] is None
    np.testing.assert_array_equal(np.stack([v.toArray() for v in vectors[:-1]]), stage.hash(images))


def test_error_rows_name_their_source(frame):
    stage = ImageHasher(inputCol="path")
    with pytest.raises(Exception, match=r"ImageHasher.*missing\.png.*not_found") as info:
        stage.transform(frame).collect()
    assert "ImageFeaturizationError" in str(info.value) or isinstance(info.value, ImageFeaturizationError)


def test_hamming_distance_in_spark_sql(frame, images):
    out = ImageHasher(inputCol="content", handleInvalid="skip").transform(frame).localCheckpoint()
    pairs = (out.alias("a").join(out.alias("b"), F.col("a.id") < F.col("b.id"))
             .select("a.id", "b.id", F.bit_count(F.col("a.hash").bitwiseXOR(F.col("b.hash"))).alias("d")))
    by_pair = {(r[0], r[1]): r[2] for r in pairs.collect()}
    reference = [imagehash.phash(Image.open(io.BytesIO(images[i]))) for i in (0, 3)]
    assert by_pair[(0, 3)] == reference[0] - reference[1]


def test_save_and_load_keep_every_param(frame, tmp_path):
    stage = ImageHasher(inputCol="content", hashType="whash", hashSize=4, background=[0, 0, 0],
                        reducedDecode=True, handleInvalid="keep", errorCol="why")
    path = str(tmp_path / "hasher")
    stage.write().overwrite().save(path)
    loaded = ImageHasher.load(path)
    assert loaded.extractParamMap() == {loaded.getParam(p.name): v for p, v in stage.extractParamMap().items()}
    model = Pipeline(stages=[stage]).fit(frame)
    model.write().overwrite().save(str(tmp_path / "pipeline"))
    reloaded = PipelineModel.load(str(tmp_path / "pipeline"))
    assert _by_id(reloaded.transform(frame), "hash") == _by_id(stage.transform(frame), "hash")
