"""Preprocessing fingerprints: in the output metadata, saved with the stage, equal to the no-Spark path's,
changed by what changes values and only by that."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from onnx_models import tiny_cnn
from PIL import Image
from pyspark.ml import Pipeline, PipelineModel
from repo_paths import RESOURCES

from sparkimg_ml import ImageEmbedder, ImageHasher, ImageUrlFeaturizer, preprocess_fingerprint


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def images(spark):
    return spark.createDataFrame([(i, _png(i)) for i in range(4)], "id long, image binary")


def _digest(stage) -> str:
    return stage.fingerprint()["digest"]


def test_the_featurizer_records_its_fingerprint_in_the_output_and_preprocess_reports_the_same(images):
    stage = ImageUrlFeaturizer(inputCol="image", imageSize=[6, 6], mean="imagenet", std="imagenet")
    recorded = stage.transform(images).schema["features"].metadata["fingerprint"]
    assert recorded == stage.fingerprint()
    assert recorded == preprocess_fingerprint(imageSize=[6, 6], mean="imagenet", std="imagenet")
    components = recorded["components"]
    assert components["stage"] == "ImageUrlFeaturizer"
    assert components["image"]["imageSize"] == [6, 6] and components["image"]["dtype"] == "float32"
    assert set(components["decoders"]) == {"pillow", "libjpeg"}


def test_only_what_changes_values_changes_the_fingerprint():
    base = dict(inputCol="url", imageSize=[8, 8])
    reference = _digest(ImageUrlFeaturizer(**base))
    # Same values: column names, bad-row handling, fetching and the Vector/array form.
    for same in (dict(outputCol="x", errorCol="e", handleInvalid="keep"), dict(timeout=5.0, concurrency=2),
                 dict(outputFormat="array")):
        assert _digest(ImageUrlFeaturizer(**base, **same)) == reference, same
    # Other values: every image Param and the uint8 form.
    for other in (dict(imageSize=[8, 9]), dict(colorMode="L"), dict(scale=1.0), dict(mean="imagenet"),
                  dict(resizeMode="crop"), dict(interpolation="bilinear"), dict(layout="CHW"),
                  dict(background=[0, 0, 0]), dict(exifTranspose=False), dict(reducedDecode=False),
                  dict(colorProfile="srgb"), dict(outputFormat="uint8"), dict(decoder="auto")):
        assert _digest(ImageUrlFeaturizer(**{**base, **other})) != reference, other


def test_decoder_auto_puts_the_opencv_version_among_the_decoders_where_opencv_decodes():
    import cv2

    auto = ImageUrlFeaturizer(inputCol="url", imageSize=[8, 8], decoder="auto").fingerprint()["components"]
    assert auto["image"]["decoders"] == ["opencv", "pillow"]
    assert auto["decoders"]["opencv"] == cv2.__version__
    # 'crop' never takes the OpenCV path, so its values do not depend on OpenCV's version.
    crop = ImageUrlFeaturizer(inputCol="url", imageSize=[8, 8], decoder="auto", resizeMode="crop").fingerprint()
    assert "opencv" not in crop["components"]["decoders"]


def test_a_saved_stage_keeps_its_fingerprint_and_check_fingerprint_names_what_changed(tmp_path):
    stage = ImageUrlFeaturizer(inputCol="url", imageSize=[8, 8])
    path = str(tmp_path / "featurizer")
    stage.write().save(path)
    loaded = ImageUrlFeaturizer.load(path)
    assert loaded.savedFingerprint() == stage.fingerprint()
    assert loaded.checkFingerprint() == stage.fingerprint()

    # The file as a training machine with another Pillow would have written it.
    metadata_file = next(Path(path, "metadata").glob("part-*"))
    saved = json.loads(metadata_file.read_text())
    saved["fingerprint"]["components"]["decoders"]["pillow"] = "9.0.0"
    saved["fingerprint"]["digest"] = "0" * 64
    metadata_file.write_text(json.dumps(saved))
    for checksum in Path(path, "metadata").glob(".*.crc"):  # Hadoop would refuse the edited file
        checksum.unlink()
    drifted = ImageUrlFeaturizer.load(path)
    with pytest.raises(ValueError, match=r"computes other values than expected: decoders\.pillow: 9\.0\.0 -> "):
        drifted.checkFingerprint()
    with pytest.raises(ValueError, match=r"digest 0{64} expected"):
        loaded.checkFingerprint("0" * 64)


def test_a_pipeline_model_keeps_the_fingerprints_of_its_stages(spark, images, tmp_path):
    model = Pipeline(stages=[
        ImageUrlFeaturizer(inputCol="image", imageSize=[4, 4]),
        ImageHasher(inputCol="image", outputCol="hash", hashType="dhash"),
    ]).fit(images)
    path = str(tmp_path / "pipeline")
    model.save(path)
    featurizer, hasher = PipelineModel.load(path).stages
    assert featurizer.savedFingerprint() == model.stages[0].fingerprint()
    assert hasher.savedFingerprint() == model.stages[1].fingerprint()
    output = PipelineModel.load(path).transform(images)
    # Serving checks its stage against the column the model was trained on.
    assert featurizer.checkFingerprint(output.schema["features"].metadata)["digest"] == _digest(featurizer)
    assert output.schema["hash"].metadata["fingerprint"]["components"]["hash"]["type"] == "dhash"


def test_files_saved_before_fingerprints_load_without_one():
    loaded = ImageUrlFeaturizer.load(str(RESOURCES / "v0_2_0" / "featurizer"))
    assert loaded.savedFingerprint() is None
    with pytest.raises(ValueError, match="no fingerprint to check against"):
        loaded.checkFingerprint()


def test_the_embedder_fingerprint_covers_the_model(images, tmp_path):
    first = tiny_cnn(tmp_path / "a.onnx", seed=0)
    second = tiny_cnn(tmp_path / "b.onnx", seed=1)
    stage = ImageEmbedder(inputCol="image", modelUri=str(first), outputNode="features")
    recorded = stage.transform(images).schema["embedding"].metadata["fingerprint"]
    assert recorded == stage.fingerprint()
    model = recorded["components"]["model"]
    assert model["outputNode"] == "features" and len(model["sha256"]) == 64
    assert model["executionProviders"] == ["CPUExecutionProvider"]
    other = ImageEmbedder(inputCol="image", modelUri=str(second), outputNode="features")
    with pytest.raises(ValueError, match=r"other values than expected: model\.sha256: [0-9a-f]{64} -> [0-9a-f]{64}$"):
        other.checkFingerprint(recorded)
    path = str(tmp_path / "embedder")
    stage.write().save(path)
    assert ImageEmbedder.load(path).checkFingerprint() == recorded
