"""Previews rendered in a real headless browser: the screenshot shows every tile, good rows as pictures.

Set ``SPARKIMG_ML_WRITE_DOCS=1`` to also refresh ``docs/preview-grid.png``, the README's screenshot.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from browser import regions, screenshot
from PIL import Image
from repo_paths import REPO_ROOT

from sparkimg_ml import ImageUrlFeaturizer
from sparkimg_ml.preview import show_images

DOCS_SCREENSHOT = REPO_ROOT / "docs" / "preview-grid.png"
COLORS = [(0, 90, 255), (0, 180, 60), (250, 200, 0), (150, 0, 200), (0, 200, 200), (255, 120, 0)]
FAILURE_BACKGROUND = (253, 226, 226)  # preview._FAILURE_BACKGROUND


@pytest.mark.claim("show_images renders thumbnail grids (HTML, no script) with each failure marked by its reason")
def test_side_by_side_grid_in_chromium_shows_each_picture_and_each_failure(spark, tmp_path):
    for index, color in enumerate(COLORS):
        Image.new("RGB", (40, 30), color).save(tmp_path / f"c{index}.png")
    (tmp_path / "page.png").write_text("<html>not an image</html>")
    rows = [(i, str(tmp_path / f"c{i}.png")) for i in range(len(COLORS))]
    rows += [(6, str(tmp_path / "missing.png")), (7, str(tmp_path / "page.png")), (8, None)]
    table = spark.createDataFrame(rows, "id int, path string").coalesce(1)
    featurizer = ImageUrlFeaturizer(inputCol="path", imageSize=[4, 4], mean="imagenet", std="imagenet",
                                    layout="CHW", colorMode="BGR", handleInvalid="keep", errorCol="image_error")
    grid = show_images(featurizer.transform(table), "features", n=9, size=64, side_by_side=True,
                       source_col="path", error_col="image_error", captions=["id"])
    page = grid.save(tmp_path / "grid.html")
    pixels = screenshot(page, tmp_path / "grid.png", width=900, height=700)

    for color in COLORS:
        found = regions(pixels, color, min_area=300)
        # The source (40x30 letterboxed to 64x48) and the model's 4x4 view (enlarged to 64x64).
        assert len(found) == 2, (color, found)
        assert sorted((h, w) for _, _, h, w, _ in found) == [(48, 64), (64, 64)], (color, found)
    failures = regions(pixels, FAILURE_BACKGROUND, tolerance=4, min_area=1000)
    assert len(failures) == 3 * 2, failures  # both halves of each failed tile
    assert all((h, w) == (64, 64) for _, _, h, w, _ in failures), failures


def _photo_crops(directory: Path) -> list:
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images  # china.jpg and flower.jpg, shipped with scikit-learn
    paths = []
    for index, (photo, (top, left)) in enumerate(zip([photos[0], photos[1]] * 2, [(0, 0), (0, 0), (150, 300), (100, 200)])):
        crop = Image.fromarray(photo[top:top + 300, left:left + 400])
        path = directory / f"preview_photo_{index}.jpg"
        crop.save(path, quality=90)
        paths.append(str(path))
    return paths


def test_photo_grid_in_chromium_and_the_readme_screenshot(spark, tmp_path, static_dir, http_server):
    names = [Path(p).name for p in _photo_crops(static_dir)]
    (static_dir / "preview_notes.png").write_text("<html>not an image</html>")
    labels = ["temple", "flower", "temple, detail", "flower, detail"]
    rows = [(f"{http_server}/{name}", label) for name, label in zip(names, labels)]
    rows += [(f"{http_server}/preview_gone.jpg", "deleted"), (f"{http_server}/preview_notes.png", "html page")]
    table = spark.createDataFrame(rows, "url string, label string").coalesce(1)
    featurizer = ImageUrlFeaturizer(inputCol="url", imageSize=[24, 24], resizeMode="crop", handleInvalid="keep",
                                    errorCol="image_error")
    grid = show_images(featurizer.transform(table), "features", n=6, size=96, side_by_side=True,
                       source_col="url", error_col="image_error", captions=["label"], title="url vs features")
    assert len(grid) == 6 and grid.failed == 2
    page = grid.save(tmp_path / "photos.html")
    pixels = screenshot(page, tmp_path / "photos.png", width=700, height=330)

    failures = regions(pixels, FAILURE_BACKGROUND, tolerance=4, min_area=1000)
    assert len(failures) == 2 * 2, failures
    # Every good tile shows photographs: colourful, detailed pixels (a broken-image icon is not).
    hsv = np.asarray(Image.fromarray(pixels).convert("HSV")).astype(int)
    colourful = (hsv[:, :, 1] > 60) & (hsv[:, :, 2] > 40)
    assert colourful.sum() > 8 * 0.5 * 96 * 72, colourful.sum()

    if os.environ.get("SPARKIMG_ML_WRITE_DOCS") == "1":
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        Image.fromarray(pixels).quantize(colors=192, method=Image.Quantize.MEDIANCUT).save(
            DOCS_SCREENSHOT, optimize=True)
        assert DOCS_SCREENSHOT.stat().st_size < 200_000
