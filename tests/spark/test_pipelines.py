"""Real data end to end: digits over loopback HTTP, Pipeline/PipelineModel persistence (CrossValidator: test_compat_surfaces.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.evaluation import MulticlassClassificationEvaluator
from pyspark.ml.feature import PCA
from repo_paths import RESOURCES, SUPPORT

from sparkimg_ml import ImageUrlFeaturizer, TensorReshaper
from sparkimg_ml.demo import (
    EXTRA_COLUMNS,
    build_pipeline,
    digits_frame,
    write_digits_pngs,
)

LOADER = SUPPORT / "load_and_predict.py"
RESOURCES = RESOURCES


@pytest.fixture(scope="module")
def digits(spark, static_dir, http_server):
    pairs = write_digits_pngs(static_dir / "digits")
    (static_dir / "digits" / "not_an_image.png").write_text("<html>not a png</html>")
    table = digits_frame(spark, f"{http_server}/digits", pairs, broken=6)
    train, test = table.randomSplit([0.8, 0.2], seed=42)
    return table, train.cache(), test.cache()


@pytest.fixture(scope="module")
def fitted(digits, tmp_path_factory):
    _, train, test = digits
    model = build_pipeline(max_iter=150).fit(train)
    path = tmp_path_factory.mktemp("models") / "digits_model"
    model.write().overwrite().save(str(path))
    return model, path


def _predict_in_new_process(kind: str, model_path: Path, frame, tmp_path: Path) -> dict:
    rows_path, out_path = tmp_path / "rows.json", tmp_path / "out.json"
    json.dump([[r["id"], r["url"]] for r in frame.select("id", "url").collect()], open(rows_path, "w"))
    subprocess.run([sys.executable, str(LOADER), kind, str(model_path), str(rows_path), str(out_path)],
                   check=True, timeout=600)
    return json.load(open(out_path))


@pytest.mark.compat
def test_digits_pipeline_is_accurate_on_a_wide_table_with_broken_rows(digits, fitted):
    table, _, test = digits
    model, _ = fitted
    assert len(table.columns) >= 100 + 3 and EXTRA_COLUMNS >= 100
    predictions = model.transform(test)
    accuracy = MulticlassClassificationEvaluator(
        labelCol="label", predictionCol="prediction", metricName="accuracy").evaluate(predictions)
    assert accuracy >= 0.90
    # every unrelated column passes through the whole pipeline
    assert set(table.columns) <= set(predictions.columns)
    reasons = model.stages[0].transform(table).where("image_error IS NOT NULL").select("image_error").collect()
    codes = sorted(r[0].split(":")[0] for r in reasons)
    assert codes == ["decode", "decode", "http_404", "http_404", "missing", "missing"]


@pytest.mark.claim("Saved PipelineModels load in a new process and predict identically")
@pytest.mark.compat
def test_pipeline_model_loads_in_a_new_process_with_identical_predictions(spark, digits, fitted, tmp_path):
    _, _, test = digits
    model, path = fitted
    sample = test.orderBy("id").limit(60)  # a plain limit may pick other rows in each job on a cluster
    here = {str(r["id"]): [r["prediction"], r["probability"].toArray().tolist()]
            for r in model.transform(sample).select("id", "prediction", "probability").collect()}
    there = _predict_in_new_process("pipeline", path, sample, tmp_path)
    assert there == here and len(here) > 0
    reloaded = PipelineModel.load(str(path))
    featurizer = reloaded.stages[0]
    assert isinstance(featurizer, ImageUrlFeaturizer)
    assert featurizer.getImageSize() == [8, 8] and featurizer.getColorMode() == "L"
    assert featurizer.getErrorCol() == "image_error"


@pytest.mark.compat
def test_stage_and_unfitted_pipeline_round_trip_every_param(spark, tmp_path):
    featurizer = ImageUrlFeaturizer(inputCol="u", outputCol="v", errorCol="e", handleInvalid="keep",
                                    imageSize=[7, 9], colorMode="L", scale=0.5, concurrency=4, timeout=3.0,
                                    reducingGap=3.0)
    featurizer.save(str(tmp_path / "stage"))
    loaded = ImageUrlFeaturizer.load(str(tmp_path / "stage"))
    assert loaded.uid == featurizer.uid
    assert {p.name: v for p, v in loaded.extractParamMap().items()} == \
        {p.name: v for p, v in featurizer.extractParamMap().items()}
    Pipeline(stages=[featurizer, PCA(k=2, inputCol="v")]).write().overwrite().save(str(tmp_path / "pipe"))
    stages = Pipeline.load(str(tmp_path / "pipe")).getStages()
    assert stages[0].getImageSize() == [7, 9] and stages[0].getErrorCol() == "e"
    assert stages[0].getReducingGap() == 3.0 and stages[0]._image_spec().metadata()["reducingGap"] == 3.0


@pytest.mark.claim("Stages saved by 0.1.0 still load")
@pytest.mark.compat
def test_stages_saved_by_version_0_1_0_still_load(spark):
    """Module paths and Param names are an on-disk format: these files were written by 0.1.0."""
    stage = ImageUrlFeaturizer.load(str(RESOURCES / "v0_1_0" / "featurizer"))
    assert stage.getInputCol() == "url" and stage.getImageSize() == [16, 16]
    assert stage.getHandleInvalid() == "keep" and stage.getErrorCol() == "error"
    pipeline = Pipeline.load(str(RESOURCES / "v0_1_0" / "pipeline"))
    assert isinstance(pipeline.getStages()[0], ImageUrlFeaturizer)
    reshaper = TensorReshaper.load(str(RESOURCES / "v0_1_0" / "reshaper"))
    assert reshaper.getAxes() == [2, 0, 1] and reshaper.getOutputFormat() == "array"
