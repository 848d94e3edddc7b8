"""Stage-level image semantics: Spark output vs serving (bit identity), and Spark's image struct.

Spark jobs are few and small: three transforms over the mixed corpus, one
image-source read, one binaryFile read.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from image_corpus import Case, write_corpus
from PIL import Image

import sparkimg_ml
from sparkimg_ml import ImageUrlFeaturizer, SourceError

#: Three Param sets that between them exercise every stage of the image layer.
PARAM_SETS: list[dict[str, Any]] = [
    {"imageSize": [12, 10]},
    {"imageSize": [9, 14], "colorMode": "BGR", "layout": "CHW", "resizeMode": "crop", "interpolation": "lanczos",
     "mean": "imagenet", "std": "imagenet", "background": [0, 0, 255]},
    {"imageSize": [8, 8], "colorMode": "RGBA", "resizeMode": "pad", "padColor": [10, 20, 30],
     "interpolation": "bilinear", "reducedDecode": False, "exifTranspose": False, "scale": 1.0, "mean": [0.5],
     "std": [2.0, 2.0, 2.0, 4.0], "colorProfile": "srgb", "reducingGap": 2.0},
]


@pytest.fixture(scope="module")
def image_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Case]]:
    """The corpus written to a temporary directory: ``(directory, cases)``."""
    directory = tmp_path_factory.mktemp("image_corpus")
    return directory, write_corpus(directory)


def _featurizer(params: dict[str, Any], **columns: Any) -> ImageUrlFeaturizer:
    stage = ImageUrlFeaturizer(**columns)
    for name, value in params.items():
        stage.set(stage.getParam(name), value)
    return stage


def _serve(stage: ImageUrlFeaturizer, data: bytes) -> np.ndarray | str:
    try:
        return stage.preprocess(data)
    except SourceError as error:
        return error.reason


def _assert_same(spark_value: Any, served: np.ndarray | str, what: str) -> None:
    vector, reason = spark_value
    if isinstance(served, str):
        assert vector is None and reason == served, what
    else:
        assert reason is None, (what, reason)
        # float32 -> double in the Vector is exact, so equal doubles mean equal float32 bits.
        np.testing.assert_array_equal(vector.toArray(), served.astype(np.float64), err_msg=what)


@pytest.mark.claim("preprocess / ImageEmbedder.embed give bit-identical values without Spark")
@pytest.mark.parametrize("params", PARAM_SETS, ids=["defaults", "bgr-chw-crop-imagenet", "rgba-pad-full"])
def test_spark_output_is_bit_identical_to_serving_over_mixed_corpus(spark, image_corpus, params):
    directory, cases = image_corpus
    frame = spark.createDataFrame([(c.name, str(directory / c.filename)) for c in cases], "name string, path string")
    stage = _featurizer(params, inputCol="path", handleInvalid="keep", errorCol="why")
    rows = {r["name"]: (r["features"], r["why"]) for r in stage.transform(frame).collect()}
    assert len(rows) == len(cases)
    failures = 0
    for case in cases:
        served = _serve(stage, case.data)
        _assert_same(rows[case.name], served, case.name)
        failures += isinstance(served, str)
    assert 0 < failures < len(cases)
    good = [c for c in cases if not isinstance(_serve(stage, c.data), str)]
    block = stage.preprocess([c.data for c in good])
    np.testing.assert_array_equal(block, np.stack([stage.preprocess(c.data) for c in good]))


@pytest.mark.claim("preprocess / ImageEmbedder.embed give bit-identical values without Spark")
def test_saved_pipeline_model_serves_one_upload_like_spark(spark, image_corpus, tmp_path):
    from pyspark.ml import Pipeline, PipelineModel

    directory, cases = image_corpus
    frame = spark.read.format("binaryFile").load(str(directory)).select("path", "content")
    stage = _featurizer(PARAM_SETS[1], inputCol="content", handleInvalid="skip")
    Pipeline(stages=[stage]).fit(frame).write().overwrite().save(str(tmp_path / "model"))

    model = PipelineModel.load(str(tmp_path / "model"))
    featurizer = model.stages[0]
    assert featurizer._image_spec() == stage._image_spec()
    meta = model.transform(frame).schema["features"].metadata["tensor"]
    assert meta == json.loads(json.dumps(featurizer._image_spec().metadata()))
    upload = next(c for c in cases if c.name == "exif_orientation_6_jpeg")
    spark_row = model.transform(frame).filter(frame.path.endswith("/" + upload.filename)).collect()[0]
    served = featurizer.preprocess(upload.data)
    np.testing.assert_array_equal(spark_row["features"].toArray(), served.astype(np.float64))


@pytest.mark.parametrize("params", PARAM_SETS, ids=["defaults", "bgr-chw-crop-imagenet", "rgba-pad-full"])
def test_preprocess_function_takes_every_image_param_by_name(image_corpus, params):
    _, cases = image_corpus
    upload = next(c for c in cases if c.name == "exif_orientation_6_jpeg")
    np.testing.assert_array_equal(sparkimg_ml.preprocess(upload.data, **params),
                                  _featurizer(params).preprocess(upload.data))


def _write_pngs(directory: Path) -> None:
    """PNGs in the modes Spark's image source handles, plus the two 16-bit kinds."""
    rng = np.random.default_rng(11)
    rgba = Image.fromarray(rng.integers(0, 256, (9, 13, 4), dtype=np.uint8), "RGBA")
    rgba.save(directory / "rgba.png")
    rgba.convert("RGB").save(directory / "rgb.png")
    rgba.convert("L").save(directory / "gray.png")
    rgba.convert("RGB").quantize(16).save(directory / "palette.png")
    Image.fromarray(rng.integers(0, 65536, (9, 13), dtype=np.uint16)).save(directory / "gray16.png")
    # Pillow writes no 16-bit RGB PNG: build one by hand.
    pixels = rng.integers(0, 65536, (9, 13, 3), dtype=np.uint16).astype(">u2")
    raw = b"".join(b"\x00" + row.tobytes() for row in pixels)

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)

    (directory / "rgb16.png").write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 13, 9, 16, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_image_struct_pixels_equal_ours_for_pngs_spark_decodes_correctly(spark, tmp_path):
    _write_pngs(tmp_path)
    params = {"imageSize": [6, 7], "colorMode": "RGBA", "interpolation": "nearest", "scale": 1.0}
    structs = spark.read.format("image").load(str(tmp_path))
    files = spark.read.format("binaryFile").load(str(tmp_path))
    from_struct = {Path(r["image"]["origin"]).name: r["features"].toArray() for r in
                   _featurizer(params, inputCol="image").transform(structs).collect()}
    from_bytes = {Path(r["path"]).name: r["features"].toArray() for r in
                  _featurizer(params, inputCol="content").transform(files).collect()}
    assert set(from_struct) == set(from_bytes) == {"rgb.png", "rgba.png", "gray.png", "palette.png", "rgb16.png",
                                                   "gray16.png"}
    for name in ("rgb.png", "rgba.png", "gray.png", "palette.png"):
        np.testing.assert_array_equal(from_struct[name], from_bytes[name], err_msg=name)
    # 16-bit RGB: both reduce to 8 bits per channel, Spark by rounding and Pillow by keeping the high byte.
    np.testing.assert_allclose(from_struct["rgb16.png"], from_bytes["rgb16.png"], rtol=0, atol=1.0)
    # 16-bit gray: the bytes path keeps the full value; Spark's struct holds only the LOW byte.
    gray16 = np.asarray(Image.open(tmp_path / "gray16.png"), dtype=np.float32)
    sampled = np.asarray(Image.fromarray(gray16 / 257, "F").resize((7, 6), Image.Resampling.NEAREST))
    np.testing.assert_allclose(from_bytes["gray16.png"].reshape(6, 7, 4)[..., 0], sampled, atol=1e-3)
    low_bytes = np.round(sampled * 257).astype(np.int64) & 0xFF
    np.testing.assert_array_equal(from_struct["gray16.png"].reshape(6, 7, 4)[..., 0], low_bytes)


def _photo_files(directory: Path) -> list[Path]:
    """JPEGs that take OpenCV's path under decoder="auto" (baseline, progressive, gray, EXIF-rotated), and a PNG."""
    from sklearn.datasets import load_sample_images

    photos = [Image.fromarray(pixels) for pixels in load_sample_images().images]
    exif = Image.Exif()
    exif[0x0112] = 6
    paths = []
    for index, photo in enumerate(photos):
        for name, image, options in (("baseline.jpg", photo, {"quality": 85}),
                                     ("progressive.jpg", photo.resize((1200, 800)), {"progressive": True}),
                                     ("gray.jpg", photo.convert("L"), {"quality": 90}),
                                     ("rotated.jpg", photo, {"exif": exif.tobytes()}),
                                     ("plain.png", photo.resize((320, 213)), {})):
            path = directory / f"photo{index}-{name}"
            image.save(path, **options)
            paths.append(path)
    return paths


@pytest.mark.claim("preprocess / ImageEmbedder.embed give bit-identical values without Spark")
def test_decoder_auto_spark_output_is_bit_identical_to_preprocess(spark, image_corpus, tmp_path):
    from sparkimg_ml.image import opencv

    directory, cases = image_corpus
    sources = {path.name: path.read_bytes() for path in _photo_files(tmp_path)}
    sources.update({case.filename: case.data for case in cases})
    paths = [str(tmp_path / name) if (tmp_path / name).exists() else str(directory / name) for name in sources]
    stage = ImageUrlFeaturizer(inputCol="path", imageSize=[24, 40], decoder="auto", handleInvalid="keep",
                               errorCol="why")
    frame = stage.transform(spark.createDataFrame([(p,) for p in paths], "path string"))
    assert frame.schema["features"].metadata["tensor"]["decoders"] == ["opencv", "pillow"]
    rows = {Path(r["path"]).name: (r["features"], r["why"]) for r in frame.collect()}
    assert rows.keys() == sources.keys()
    spec, took_opencv = stage._image_spec(), 0
    for name, data in sources.items():
        _assert_same(rows[name], _serve(stage, data), name)
        if name.startswith("photo") and name.endswith(".jpg"):
            with Image.open(io.BytesIO(data)) as image:
                assert opencv.preprocess_opencv(image, data, spec) is not None, name
            took_opencv += 1
    assert took_opencv == 8
    # the values are OpenCV's, not Pillow's
    photo = sources["photo0-baseline.jpg"]
    assert not np.array_equal(stage.preprocess(photo), stage.copy({stage.decoder: "pillow"}).preprocess(photo))


def test_decoder_auto_without_opencv_fails_at_transform_naming_the_extra(spark, monkeypatch):
    from sparkimg_ml import ImageEmbedder
    from sparkimg_ml.image import opencv

    monkeypatch.setattr(opencv, "_cv2", lambda: None)
    frame = spark.createDataFrame([("/no/such/image.jpg",)], "path string")
    hint = r"decoder='auto' .* pip install 'sparkimg_ml\[opencv\]'"
    with pytest.raises(ImportError, match="ImageUrlFeaturizer: " + hint):
        ImageUrlFeaturizer(inputCol="path", decoder="auto").transform(frame)
    with pytest.raises(ImportError, match="ImageEmbedder: " + hint):  # before the model is read
        ImageEmbedder(inputCol="path", modelUri="/no/such/model.onnx", decoder="auto").transform(frame)
    ImageUrlFeaturizer(inputCol="path", handleInvalid="keep").transform(frame)  # decoder="pillow" needs nothing
