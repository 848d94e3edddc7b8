"""The code users copy from the README and the guides runs as written and does what the text says."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def _python_blocks(text: str) -> list:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_readme_quickstart_pipeline_runs_as_written_after_pip_install(tmp_path):
    readme = (ROOT / "README.md").read_text()
    quickstart = next(block for block in _python_blocks(readme) if "write_digits_pngs" in block)
    script = tmp_path / "quickstart.py"
    script.write_text(quickstart)
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "1 of 1798 rows failed (image_error)" in done.stdout
    assert "not_found" in done.stdout and "digits/missing.png" in done.stdout
    accuracy = float(re.search(r"training accuracy: ([0-9.]+)", done.stdout).group(1))
    assert accuracy > 0.9
    assert len(list((tmp_path / "digits").glob("*.png"))) == 1797


def test_bad_rows_guide_pipeline_saves_no_filter_and_scores_every_row(spark, tmp_path):
    from pyspark.ml import PipelineModel
    from pyspark.ml.feature import SQLTransformer

    guide = (ROOT / "docs" / "guides" / "inputs-and-bad-rows.md").read_text()
    fit_block, score_block = _python_blocks(guide)[:2]
    rng = np.random.default_rng(0)
    rows = []
    for index in range(40):
        label = index % 2  # dark or bright images: two separable classes
        pixels = rng.integers(0, 90, (40, 40, 3)) + (150 if label else 0)
        path = tmp_path / f"image_{index}.png"
        Image.fromarray(pixels.astype(np.uint8)).save(path)
        rows.append((str(path), float(label), index))
    table = spark.createDataFrame(rows + [(str(tmp_path / "missing.png"), 0.0, 40), (None, 1.0, 41)],
                                  "image_url string, label double, id int")
    saved = tmp_path / "model"
    namespace = {"wide_table": table}
    # As written, but 8x8 images (192 values) keep PCA's eigen-decomposition small and 30 iterations the MLP's
    # training short (one Spark job each); its 10 outputs cover labels 0/1.
    for text in ("imageSize=[32, 32]", "s3://bucket/models/images", "layers=[64, 128, 10])"):
        assert text in fit_block, text
    fit_block = fit_block.replace("imageSize=[32, 32]", "imageSize=[8, 8]").replace(
        "layers=[64, 128, 10])", "layers=[64, 128, 10], maxIter=30)")
    exec(fit_block.replace("s3://bucket/models/images", str(saved)), namespace)
    model = PipelineModel.load(str(saved))
    assert not any(isinstance(stage, SQLTransformer) for stage in model.stages)
    assert model.stages[0].getHandleInvalid() == "keep"

    namespace.update(model=model, new_table=table)
    exec(score_block, namespace)
    scored = namespace["scored"]
    assert scored.count() == table.count()  # no row dropped
    failed = {row.id: row for row in scored.where("prediction IS NULL").collect()}
    assert set(failed) == {40, 41}
    assert failed[40].image_error.startswith("not_found") and failed[41].image_error.startswith("missing")
    assert scored.where("prediction IS NOT NULL AND prediction = label").count() >= 36
