"""What every stage shares: keyword construction, renamed Params, and one treatment of bad rows.

ImageUrlFeaturizer and ImageEmbedder end their ``_transform`` in the same helper
(``params.stage.add_image_output``) over UDFs from the same factory; these tests
hold them to the same behaviour for every output form, and hold every stage to
the same construction rules.
"""

from __future__ import annotations

import inspect
import subprocess
import sys

import numpy as np
import pytest
from onnx_models import tiny_cnn
from PIL import Image
from pyspark.ml.tuning import CrossValidator
from repo_paths import REPO_ROOT, RESOURCES

from sparkimg_ml import ImageEmbedder, ImageUrlFeaturizer, TensorReshaper
from sparkimg_ml.errors import find_row_failure

RESOURCES = RESOURCES
STAGES = (ImageUrlFeaturizer, ImageEmbedder, TensorReshaper)


@pytest.fixture(scope="module")
def sources(tmp_path_factory, static_dir, http_server) -> dict:
    folder = tmp_path_factory.mktemp("contract")
    good = folder / "good.png"
    Image.fromarray(np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)).save(good)
    not_image = folder / "notes.png"
    not_image.write_text("plain text, not an image")
    return {"good": str(good), "404": f"{http_server}/missing/nothing.png", "decode": str(not_image),
            "missing": None}


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    return str(tiny_cnn(tmp_path_factory.mktemp("contract-model") / "tiny.onnx", size=8))


def _frame(spark, sources: dict):
    rows = [(i, name, sources[name]) for i, name in enumerate(("good", "404", "decode", "missing", "good"))]
    return spark.createDataFrame(rows, "id int, kind string, url string")


def _stages(model: str, output_format: str, handle_invalid: str):
    common = {"inputCol": "url", "handleInvalid": handle_invalid, "imageSize": [8, 8], "outputFormat": output_format}
    errors = {"errorCol": "why"} if handle_invalid == "keep" else {}
    return [ImageUrlFeaturizer(**common, **errors),
            ImageEmbedder(**common, **errors, modelUri=model, outputNode="features", layout="CHW")]


@pytest.mark.parametrize("output_format", ["vector", "array"])
def test_featurizer_and_embedder_keep_and_skip_the_same_rows_with_the_same_reasons(spark, sources, model,
                                                                                 output_format):
    frame = _frame(spark, sources)
    kept = []
    for stage in _stages(model, output_format, "keep"):
        rows = stage.transform(frame).orderBy("id").collect()
        kept.append([(row.id, row.why, row[stage.getOutputCol()] is None) for row in rows])
        assert [row.kind for row in rows] == ["good", "404", "decode", "missing", "good"]
    assert kept[0] == kept[1]
    reasons = [why for _, why, _ in kept[0]]
    assert reasons[0] is None and reasons[4] is None
    assert reasons[1].startswith("http_404") and reasons[2].startswith("decode") and reasons[3].startswith("missing")
    assert [null for _, _, null in kept[0]] == [False, True, True, True, False]

    skipped = [[row.id for row in stage.transform(frame).orderBy("id").collect()]
               for stage in _stages(model, output_format, "skip")]
    assert skipped == [[0, 4], [0, 4]]


@pytest.mark.parametrize("output_format", ["vector", "array"])
def test_featurizer_and_embedder_fail_alike_naming_the_row_and_its_reason(spark, sources, model, output_format):
    frame = _frame(spark, sources).where("kind in ('good', 'decode')")
    failures = []
    for stage in _stages(model, output_format, "error"):
        with pytest.raises(Exception, match="could not read the image of row with url=") as error:
            stage.transform(frame).collect()
        failures.append(find_row_failure(str(error.value)))
    assert [f.stage for f in failures] == ["ImageUrlFeaturizer", "ImageEmbedder"]
    assert {(f.column, f.source, f.code) for f in failures} == {("url", sources["decode"], "decode")}


def test_uint8_output_keeps_and_skips_like_the_float_forms(spark, sources):
    frame = _frame(spark, sources)
    as_vector = ImageUrlFeaturizer(inputCol="url", imageSize=[8, 8], handleInvalid="keep", errorCol="why")
    as_uint8 = ImageUrlFeaturizer(inputCol="url", imageSize=[8, 8], handleInvalid="keep", errorCol="why",
                                  outputFormat="uint8")
    rows = [stage.transform(frame).orderBy("id").select("why", "features").collect() for stage in (as_vector, as_uint8)]
    assert [r.why for r in rows[0]] == [r.why for r in rows[1]]
    assert [r.features is None for r in rows[0]] == [r.features is None for r in rows[1]]


@pytest.mark.parametrize("stage_type", STAGES)
def test_every_stage_refuses_an_unknown_param_naming_its_params(stage_type):
    with pytest.raises(TypeError, match=rf"{stage_type.__name__} got an unknown Param 'inputcol'\. Its Params: .*inputCol"):
        stage_type(inputcol="url")


@pytest.mark.parametrize("stage_type", STAGES)
def test_none_clears_a_param_in_every_stage(stage_type):
    stage = stage_type(inputCol="url", outputCol="out")
    assert stage.getOutputCol() == "out"
    stage.setParams(outputCol=None)
    assert not stage.isSet(stage.outputCol)
    assert stage.getOutputCol() == stage_type().getOutputCol()
    assert stage.setParams(inputCol=None).isDefined(stage.inputCol) is False


@pytest.mark.parametrize("stage_type", STAGES)
def test_every_stage_shows_its_params_as_keywords(stage_type):
    signature = inspect.signature(stage_type)
    names = {p.name for p in stage_type().params}
    assert set(signature.parameters) == names
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is None for p in signature.parameters.values())


def test_a_square_image_size_is_one_number():
    assert ImageUrlFeaturizer(imageSize=224).getImageSize() == [224, 224]
    assert ImageEmbedder(imageSize=[96]).getImageSize() == [96, 96]
    assert ImageUrlFeaturizer(imageSize="96x128").getImageSize() == [96, 128]
    with pytest.raises(ValueError, match="imageSize values must be >= 1"):
        ImageUrlFeaturizer(imageSize=0)


@pytest.mark.parametrize("stage_type", [ImageEmbedder, TensorReshaper])
def test_the_old_output_type_name_still_works_with_a_warning(stage_type):
    with pytest.warns(DeprecationWarning, match="'outputType' is now called 'outputFormat'"):
        stage = stage_type(outputType="array")
    assert stage.getOutputFormat() == "array"
    with pytest.warns(DeprecationWarning, match=r"getOutputType\(\) is now getOutputFormat\(\)"):
        assert stage.getOutputType() == "array"
    assert stage.getParam("outputType") is stage.outputFormat


def test_stages_saved_by_0_2_0_load_with_their_output_form(spark):
    saved = RESOURCES / "v0_2_0"
    embedder = ImageEmbedder.load(str(saved / "embedder"))
    assert embedder.getOutputFormat() == "array"
    assert (embedder.getModelUri(), embedder.getBatchSize(), embedder.getLayout()) == ("/models/tiny.onnx", 16, "CHW")
    reshaper = TensorReshaper.load(str(saved / "reshaper"))
    assert (reshaper.getOutputFormat(), reshaper.getAxes()) == ("vector", [2, 0, 1])
    featurizer = ImageUrlFeaturizer.load(str(saved / "featurizer"))
    assert (featurizer.getOutputFormat(), featurizer.getReducingGap(), featurizer.getErrorCol()) == ("uint8", 2.0, "err")
    # A grid over the old Param name, saved with a CrossValidator, still finds the renamed Param.
    validator = CrossValidator.load(str(saved / "crossvalidator"))
    reshaper_stage = validator.getEstimator().getStages()[1]
    grid_params = {param.name for grid in validator.getEstimatorParamMaps() for param in grid}
    assert "outputFormat" in grid_params
    assert reshaper_stage.getOutputFormat() == "vector"


def test_chained_setters_keep_the_stage_type_for_type_checkers(tmp_path):
    snippet = tmp_path / "chain.py"
    snippet.write_text(
        "from sparkimg_ml import ImageEmbedder, ImageUrlFeaturizer, TensorReshaper\n"
        "f = ImageUrlFeaturizer(inputCol='url').setImageSize([8, 8]).setTimeout(2.0).setHandleInvalid('keep')\n"
        "f.setOutputFormat('uint8').preprocess(b'')\n"
        "e = ImageEmbedder().setBatchSize(8).setMaxRetries(1).setLayout('CHW')\n"
        "e.embed(b'')\n"
        "t = TensorReshaper().setInputCol('x').setOutputFormat('array').setShape([2, 3])\n"
        "t.getShape()\n")
    result = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary", "--ignore-missing-imports",
                             "--follow-imports=silent", str(snippet)], capture_output=True, text=True,
                            cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_constructor_keywords_are_checked_by_type_checkers(tmp_path):
    snippet = tmp_path / "wrong.py"
    snippet.write_text("from sparkimg_ml import ImageUrlFeaturizer\nImageUrlFeaturizer(imageSise=[8, 8])\n")
    result = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary", "--ignore-missing-imports",
                             "--follow-imports=silent", str(snippet)], capture_output=True, text=True,
                            cwd=REPO_ROOT)
    assert result.returncode == 1 and "imageSise" in result.stdout, result.stdout

