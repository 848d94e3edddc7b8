"""Public surfaces the compatibility matrix needs beyond the other files' ``compat`` tests.

* model selection: ``CrossValidator`` and ``TrainValidationSplit`` over a pipeline that starts
  with ``ImageUrlFeaturizer``, each fitted, saved, loaded in a new process and compared
  prediction by prediction with the fitting process;
* ``write_tensors`` + ``TensorFiles`` (no torch needed) and ``TensorDataset`` (marked ``torch``:
  the matrix deselects it in environments without torch).

Every expected value is computed here with numpy/Pillow from the PNG files, not with the
library's helpers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pyspark.ml import Pipeline
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.evaluation import MulticlassClassificationEvaluator
from pyspark.ml.tuning import (
    CrossValidator,
    CrossValidatorModel,
    ParamGridBuilder,
    TrainValidationSplit,
    TrainValidationSplitModel,
)
from repo_paths import SUPPORT

from sparkimg_ml import ImageUrlFeaturizer, TensorReshaper
from sparkimg_ml.demo import digits_frame, write_digits_pngs
from sparkimg_ml.training import TensorFiles, write_tensors

LOADER = SUPPORT / "load_and_predict.py"


@pytest.fixture(scope="module")
def digit_site(spark, static_dir, http_server):
    """160 digit PNGs over loopback HTTP plus three broken rows: (frame, {id: png path})."""
    directory = static_dir / "compat_digits"
    pairs = write_digits_pngs(directory)[:160]
    frame = digits_frame(spark, f"{http_server}/compat_digits", pairs, broken=3, extra_columns=2)
    files = {i: directory / name for i, (name, _) in enumerate(pairs)}
    return frame.cache(), files


def _selection_pipeline():
    featurizer = ImageUrlFeaturizer(inputCol="url", outputCol="pixels", imageSize=[8, 8], colorMode="L",
                                    handleInvalid="skip")
    classifier = LogisticRegression(featuresCol="pixels", labelCol="label", maxIter=5, regParam=0.01)
    grid = ParamGridBuilder().addGrid(featurizer.imageSize, [[8, 8], [6, 6]]).build()
    evaluator = MulticlassClassificationEvaluator(labelCol="label", metricName="accuracy")
    return Pipeline(stages=[featurizer, classifier]), grid, evaluator


def _predict_in_new_process(kind: str, model_path: Path, frame, tmp_path: Path) -> dict:
    rows_path, out_path = tmp_path / "rows.json", tmp_path / "out.json"
    rows_path.write_text(json.dumps([[r["id"], r["url"]] for r in frame.select("id", "url").collect()]))
    subprocess.run([sys.executable, str(LOADER), kind, str(model_path), str(rows_path), str(out_path)],
                   check=True, timeout=600)
    return json.loads(out_path.read_text())


def _predictions(model, frame) -> dict:
    return {str(r["id"]): [r["prediction"], r["probability"].toArray().tolist()]
            for r in model.transform(frame).select("id", "prediction", "probability").collect()}


@pytest.mark.compat
@pytest.mark.claim("CrossValidator tunes featurizer Params; the fitted model saves and loads in a new process")
def test_cross_validator_over_the_featurizer_reloads_in_a_new_process(digit_site, tmp_path, record_property):
    frame, _ = digit_site
    pipeline, grid, evaluator = _selection_pipeline()
    model = CrossValidator(estimator=pipeline, estimatorParamMaps=grid, evaluator=evaluator, numFolds=2,
                           seed=11).fit(frame)
    record_property("avgMetrics", model.avgMetrics)
    assert len(model.avgMetrics) == 2 and min(model.avgMetrics) > 0.75, model.avgMetrics
    best = max(range(2), key=lambda i: model.avgMetrics[i])
    assert model.bestModel.stages[0].getImageSize() == list(grid[best][model.bestModel.stages[0].imageSize])
    path = tmp_path / "cv"
    model.write().overwrite().save(str(path))
    sample = frame.orderBy("id").limit(30)
    here = _predictions(model, sample)
    there = _predict_in_new_process("crossvalidator", path, sample, tmp_path)
    assert there.pop("avgMetrics") == model.avgMetrics
    assert there == here and len(here) == 30
    loaded = CrossValidatorModel.load(str(path))
    assert loaded.avgMetrics == model.avgMetrics
    # imageSize is a list-valued Param: the saved grid gives the lists back, in order.
    assert [m[loaded.bestModel.stages[0].imageSize] for m in loaded.getEstimatorParamMaps()] == [[8, 8], [6, 6]]


# Not in the compatibility matrix: pyspark.ml.tuning saves and loads it with the same machinery as
# CrossValidator, which the matrix runs everywhere; this runs on the main Spark.
@pytest.mark.claim("TrainValidationSplit tunes featurizer Params; the fitted model saves and loads in a new process")
def test_train_validation_split_over_the_featurizer_reloads_in_a_new_process(digit_site, tmp_path, record_property):
    frame, _ = digit_site
    pipeline, grid, evaluator = _selection_pipeline()
    model = TrainValidationSplit(estimator=pipeline, estimatorParamMaps=grid, evaluator=evaluator,
                                 trainRatio=0.7, seed=11).fit(frame)
    record_property("validationMetrics", model.validationMetrics)
    assert len(model.validationMetrics) == 2 and min(model.validationMetrics) > 0.75, model.validationMetrics
    path = tmp_path / "tvs"
    model.write().overwrite().save(str(path))
    loaded = TrainValidationSplitModel.load(str(path))
    assert loaded.validationMetrics == model.validationMetrics
    assert [m[pipeline.getStages()[0].imageSize] for m in loaded.getEstimatorParamMaps()] == \
        [[8, 8], [6, 6]]
    sample = frame.orderBy("id").limit(30)
    here = _predictions(model, sample)
    there = _predict_in_new_process("trainvalidationsplit", path, sample, tmp_path)
    assert there.pop("validationMetrics") == model.validationMetrics
    assert there == here and len(here) == 30


def _expected_chw(png: Path) -> np.ndarray:
    """What featurizer (8x8 RGB, [0, 1]) -> reshaper (HWC -> CHW) gives, computed with Pillow and numpy."""
    with Image.open(png) as image:
        rgb = image.convert("RGB")
        if rgb.size != (8, 8):
            rgb = rgb.resize((8, 8), Image.Resampling.BILINEAR)
        pixels = np.asarray(rgb, dtype=np.float32) / np.float32(255)
    return pixels.transpose(2, 0, 1)


@pytest.fixture(scope="module")
def written_tensors(digit_site, tmp_path_factory):
    frame, files = digit_site
    featurizer = ImageUrlFeaturizer(inputCol="url", outputCol="hwc", imageSize=[8, 8], colorMode="RGB",
                                    handleInvalid="keep", errorCol="error")
    reshaper = TensorReshaper(inputCol="hwc", outputCol="chw", axes=[2, 0, 1], outputFormat="array")
    tensors = reshaper.transform(featurizer.transform(frame.where("id < 40 OR id >= 160")))
    path = tmp_path_factory.mktemp("compat_tensors") / "tensors"
    summary = write_tensors(tensors, str(path), "chw", label_col="id")
    return summary, path, files


@pytest.mark.compat
@pytest.mark.claim("write_tensors writes reshaped tensors to Parquet and drops failed rows, counting them")
def test_write_tensors_and_tensor_files_give_back_each_image(written_tensors):
    summary, path, files = written_tensors
    # ids 160..162 are the broken rows: a missing file, a page that is not an image, a null URL
    assert (summary.rows, summary.dropped, summary.null_tensors) == (40, 3, 3)
    reader = TensorFiles(str(path))
    assert reader.num_rows == 40
    values, labels = zip(*reader.batches(batch_size=16))
    values, labels = np.concatenate(values), np.concatenate(labels)
    assert reader.info.shape == (3, 8, 8) and values.shape == (40, 3 * 8 * 8) and values.dtype == np.float32
    values = values.reshape(40, 3, 8, 8)
    assert sorted(labels.tolist()) == list(range(40))
    for row, label in zip(values, labels):
        np.testing.assert_allclose(row, _expected_chw(files[int(label)]), atol=1e-6)


@pytest.mark.compat
@pytest.mark.torch
@pytest.mark.claim("TensorDataset streams tensor files into a torch DataLoader")
def test_tensor_dataset_yields_the_written_tensors_as_torch_batches(written_tensors):
    import torch
    from torch.utils.data import DataLoader

    from sparkimg_ml.training import TensorDataset

    _, path, files = written_tensors
    dataset = TensorDataset(str(path), batch_size=8, rank=0, world_size=1)
    batches = list(DataLoader(dataset, batch_size=None))
    x = torch.cat([b[0] for b in batches]).numpy()
    y = torch.cat([b[1] for b in batches]).numpy()
    assert x.shape == (40, 3, 8, 8) and sorted(y.tolist()) == list(range(40))
    for row, label in zip(x, y):
        np.testing.assert_allclose(row, _expected_chw(files[int(label)]), atol=1e-6)
