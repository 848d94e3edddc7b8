"""``read_images`` and ``spread`` through the Python API, on files written here.

Expected sizes, bytes and pixels come from the files themselves and from Pillow,
not from the library.
"""

from __future__ import annotations

import io
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pyspark.sql import functions as F

from sparkimg_ml import ImageUrlFeaturizer, read_images, spread
from sparkimg_ml.sources import default_parallelism

PNG_COLORS = {"top.png": (200, 30, 10), "a/one.png": (0, 90, 255), "a/b/deep.png": (10, 180, 60)}
JPEG_COLORS = {"cover.jpg": (250, 200, 0), "a/inner.jpg": (40, 40, 160)}


def _encode(color: tuple[int, int, int], fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (6, 4), color).save(buffer, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """``photos/`` with PNGs and JPEGs at three depths, and a text file that is no image."""
    root = tmp_path_factory.mktemp("sources") / "photos"
    for names, fmt in ((PNG_COLORS, "PNG"), (JPEG_COLORS, "JPEG")):
        for name, color in names.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(_encode(color, fmt))
    (root / "a" / "notes.txt").write_text("not an image\n")
    return root


def _by_name(rows, root: Path) -> dict[str, dict]:
    found = {}
    for row in rows:
        values = row.asDict()
        assert values["path"].startswith("file:"), values["path"]
        found[values["path"].split(str(root) + "/", 1)[1]] = values
    return found


def test_a_folder_is_read_with_its_subfolders_as_path_time_and_size(spark, photos):
    table = read_images(spark, str(photos))
    assert table.columns == ["path", "modificationTime", "size"]
    rows = _by_name(table.collect(), photos)
    assert set(rows) == set(PNG_COLORS) | set(JPEG_COLORS) | {"a/notes.txt"}  # a folder: every file, any depth
    for name, row in rows.items():
        assert row["size"] == (photos / name).stat().st_size, name
        assert abs(row["modificationTime"].timestamp() - os.path.getmtime(photos / name)) < 1, name
    shallow = _by_name(read_images(spark, str(photos), recursive=False).collect(), photos)
    assert set(shallow) == {"top.png", "cover.jpg"}


@pytest.mark.parametrize("paths, kwargs, expected", [
    ("{root}/**/*.png", {}, set(PNG_COLORS)),  # ** : any depth
    ("{root}/*.jpg", {}, {"cover.jpg"}),  # no ** : that folder only
    ("{root}", {"pathGlobFilter": "*.jpg"}, set(JPEG_COLORS)),
    (["{root}/a/b", "{root}/top.png"], {}, {"a/b/deep.png", "top.png"}),  # a list: a folder and a file
    ("file:{root}/**/*.png", {}, set(PNG_COLORS)),  # a file: URI
])
def test_globs_filters_and_lists_choose_the_files(spark, photos, paths, kwargs, expected):
    given = [p.format(root=photos) for p in paths] if isinstance(paths, list) else paths.format(root=photos)
    assert set(_by_name(read_images(spark, given, **kwargs).collect(), photos)) == expected


def test_with_bytes_holds_each_file_and_featurizes_like_the_paths(spark, photos):
    images = read_images(spark, f"{photos}/**/*.png", with_bytes=True)
    assert images.columns == ["path", "modificationTime", "size", "content"]

    # Both columns featurized in one job: from the paths (the stage reads each file) and from the bytes.
    by_path = ImageUrlFeaturizer(inputCol="path", outputCol="from_path", imageSize=[2, 3], handleInvalid="error")
    by_bytes = ImageUrlFeaturizer(inputCol="content", outputCol="from_bytes", imageSize=[2, 3],
                                  handleInvalid="error")
    out = _by_name(by_bytes.transform(by_path.transform(images)).select("path", "content", "from_path",
                                                                         "from_bytes").collect(), photos)
    assert set(out) == set(PNG_COLORS)
    for name, row in out.items():
        assert bytes(row["content"]) == (photos / name).read_bytes(), name
    for name, color in PNG_COLORS.items():  # a solid PNG: each pixel its colour, HWC, scale 1/255
        expected = np.tile(np.asarray(color, np.float64) / 255.0, 6)
        np.testing.assert_allclose(out[name]["from_path"].toArray(), expected, atol=1e-6)
        np.testing.assert_array_equal(out[name]["from_bytes"].toArray(), out[name]["from_path"].toArray())


def test_the_path_only_table_does_not_read_the_bytes(spark, photos):
    table = read_images(spark, str(photos))
    if not hasattr(table, "_jdf"):
        pytest.skip("the physical plan is read through the JVM DataFrame of a classic session")
    plan = table._jdf.queryExecution().executedPlan().toString()
    assert "ReadSchema: struct<path:string,modificationTime:timestamp,length:bigint>" in plan, plan
    assert "content" not in plan


def test_mistakes_fail_before_any_spark_job(spark, photos, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_images(spark, str(tmp_path / "no-such-folder"))
    with pytest.raises(FileNotFoundError, match="nothing matches"):
        read_images(spark, f"{tmp_path}/x*/y/*.png")
    with pytest.raises(ValueError, match="different file-name patterns"):
        read_images(spark, [f"{photos}/*.png", f"{photos}/*.jpg"])
    with pytest.raises(ValueError, match="some of the globs .* have '\\*\\*' and some do not"):
        read_images(spark, [f"{photos}/**/*.png", f"{photos}/a/*.png"])
    with pytest.raises(ValueError, match="disagree"):
        read_images(spark, f"{photos}/*.png", pathGlobFilter="*.jpg")
    with pytest.raises(ValueError, match="'\\*\\*' must"):
        read_images(spark, f"{photos}/**")
    with pytest.raises(ValueError, match="non-empty list"):
        read_images(spark, [])


def test_spread_gives_a_one_partition_table_every_core_and_keeps_its_rows(spark, tmp_path):
    urls = [f"http://images.example/{i}.jpg" for i in range(10_000)]
    csv = tmp_path / "urls.csv"
    csv.write_text("url\n" + "\n".join(urls) + "\n")
    table = spark.read.option("header", "true").csv(str(csv))
    if not hasattr(table, "rdd"):
        pytest.skip("partition counts are read from the RDD of a classic session")
    assert table.rdd.getNumPartitions() == 1  # one small file: one task would fetch everything
    cores = spark.sparkContext.defaultParallelism
    assert default_parallelism(spark) == cores

    spread_table = spread(table)
    assert spread_table.rdd.getNumPartitions() == 2 * cores  # the default: two per core, so >= the cores
    # One job, in the JVM: each row with the partition it landed in.
    rows = spread_table.select("url", F.spark_partition_id().alias("partition")).collect()
    assert sorted(row["url"] for row in rows) == sorted(urls)  # every row, once
    sizes = Counter(row["partition"] for row in rows)
    assert len(sizes) == 2 * cores and max(sizes.values()) - min(sizes.values()) <= 1, sizes  # equal shares

    assert spread(spread_table) is spread_table  # enough partitions already: unchanged, no shuffle
    assert spread(table, 3).rdd.getNumPartitions() == 3
    for wrong in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="partitions must be an integer >= 1"):
            spread(table, wrong)
