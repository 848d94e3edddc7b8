"""show_images, failure_report and image_grid: thumbnails from every column kind, failures as tiles, HTML safety."""

from __future__ import annotations

import base64
import functools
import http.server
import io
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from sparkimg_ml import ImageUrlFeaturizer, TensorReshaper
from sparkimg_ml.preview import (
    Tile,
    failure_report,
    image_grid,
    render_grid,
    show_images,
)
from sparkimg_ml.preview.thumbnails import (
    IMAGE_STRUCT,
    SOURCE,
    ThumbnailPlan,
    thumbnail_batches,
    thumbnail_of_struct,
    thumbnail_of_tensor,
)
from sparkimg_ml.tensors import TensorInfo

#: Distinct solid colours (none close to the page's greys or the failure reds).
COLORS = [(0, 90, 255), (0, 180, 60), (250, 200, 0), (150, 0, 200), (0, 200, 200), (255, 120, 0)]


def decode(data_uri: str) -> np.ndarray:
    """Pixels (RGB) of a thumbnail's data URI."""
    header, payload = data_uri.split(",", 1)
    assert re.fullmatch(r"data:image/(png|jpeg);base64", header), header
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(payload))).convert("RGB"))


def png(color, size=(40, 30), mode="RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, "PNG")
    return buffer.getvalue()


def tile_pixels(grid, index: int, which: str = "image") -> np.ndarray:
    tile = grid.tiles[index]
    thumbnail = tile.image if which == "image" else tile.source
    assert thumbnail is not None, tile.failure or tile.source_failure
    return decode(thumbnail.data_uri)


def center(pixels: np.ndarray) -> tuple:
    return tuple(int(v) for v in pixels[pixels.shape[0] // 2, pixels.shape[1] // 2])


# --------------------------------------------------------------------------- pure core

def test_struct_thumbnail_reads_spark_bgr_order():
    # Spark's image source stores blue, green, red: pure red is bytes (0, 0, 255).
    thumbnail = thumbnail_of_struct(2, 3, 3, 16, bytes([0, 0, 255] * 6), size=24)
    assert center(decode(thumbnail.data_uri)) == (255, 0, 0)


def test_tensor_thumbnail_undoes_imagenet_normalisation_chw_layout_and_bgr():
    featurizer = ImageUrlFeaturizer(imageSize=[4, 4], mean="imagenet", std="imagenet", layout="CHW",
                                    colorMode="BGR")
    values = featurizer.preprocess(png((250, 200, 0)))
    info = TensorInfo.from_metadata(featurizer.outputMetadata())
    pixels = decode(thumbnail_of_tensor(values, info, size=32).data_uri)
    assert pixels.shape == (32, 32, 3)  # 4x4 enlarged 8 times, sharp blocks
    assert np.abs(pixels.astype(int) - (250, 200, 0)).max() <= 1


def test_small_tensor_pixels_stay_sharp_blocks():
    info = TensorInfo(shape=(2, 2, 1), layout="HWC", channel_order="L", dtype="uint8")
    pixels = decode(thumbnail_of_tensor(bytes([0, 255, 255, 0]), info, size=16).data_uri)[:, :, 0]
    assert set(np.unique(pixels)) == {0, 255}
    assert (pixels[:8, :8] == 0).all() and (pixels[:8, 8:] == 255).all()


def test_thumbnail_batches_turn_every_bad_row_into_a_reason(tmp_path):
    good = tmp_path / "good.png"
    good.write_bytes(png((0, 90, 255)))
    (tmp_path / "page.png").write_text("<html>not an image</html>")
    batch = pa.RecordBatch.from_pydict({
        "url": [str(good), str(tmp_path / "missing.png"), str(tmp_path / "page.png"), None, "ftp://x/y.png"],
    })
    out = next(thumbnail_batches([batch], [("url", ThumbnailPlan(SOURCE, size=16))], []))
    failures = out.column("url_failure").to_pylist()
    assert failures[0] is None and out.column("url_uri")[0].as_py().startswith("data:image/")
    assert [f.split(":")[0] for f in failures[1:]] == ["not_found", "decode", "missing", "unsupported_scheme"]


def test_bad_struct_is_a_reason_not_an_exception():
    batch = pa.RecordBatch.from_pydict({"image": [
        {"origin": "x", "height": 2, "width": 2, "nChannels": 3, "mode": 16, "data": b"\x00"},
    ]})
    out = next(thumbnail_batches([batch], [("image", ThumbnailPlan(IMAGE_STRUCT, size=16))], []))
    assert out.column("image_failure").to_pylist()[0].startswith("bad_struct")


@pytest.mark.claim("show_images renders thumbnail grids (HTML, no script) with each failure marked by its reason")
def test_render_grid_escapes_captions_and_reasons_and_has_no_script():
    tiles = [Tile(failure="decode: <script>alert(1)</script>", captions=(("path", '"><img src=x onerror=alert(1)>'),))]
    text = render_grid(tiles, size=64)
    assert "<script" not in text and "<img src=x" not in text
    assert "&lt;script&gt;" in text and "&quot;&gt;&lt;img" in text


def test_render_grid_caps_its_html_size_and_says_how_many_were_left_out():
    images = [np.random.default_rng(i).integers(0, 256, (64, 64, 3), dtype=np.uint8) for i in range(12)]
    tiles = image_grid(images, size=64).tiles
    text = render_grid(tiles, size=64, max_bytes=40_000)
    shown = text.count("<figure")
    assert 1 <= shown < 12 and len(text) < 40_000 + 2_000
    assert f"{12 - shown} more not shown" in text


def test_image_grid_stretches_signed_pictures():
    component = np.linspace(-1.0, 1.0, 16).reshape(4, 4)
    pixels = decode(image_grid([component], size=16, stretch=True).tiles[0].image.data_uri)
    assert pixels.min() == 0 and pixels.max() == 255


# --------------------------------------------------------------------------- Spark

class _CountingHandler(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self) -> None:
        type(self).requests.append(self.path)
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def image_site(tmp_path_factory) -> Iterator[tuple]:
    """A loopback server over solid-colour PNGs ``c0.png`` .. ``c5.png`` and a page that is not an image."""
    root = tmp_path_factory.mktemp("site")
    for index, color in enumerate(COLORS):
        (root / f"c{index}.png").write_bytes(png(color))
    (root / "page.png").write_text("<html>not an image</html>")
    handler = functools.partial(_CountingHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


def colour_table(spark, base: str):
    rows = [(i, f"{base}/c{i}.png", f"colour <{i}>") for i in range(len(COLORS))]
    rows += [(6, f"{base}/missing.png", "404"), (7, f"{base}/page.png", "html"), (8, None, "null")]
    return spark.createDataFrame(rows, "id int, url string, label string").coalesce(1)


@pytest.mark.claim("show_images renders thumbnail grids (HTML, no script) with each failure marked by its reason")
@pytest.mark.compat
def test_show_images_of_urls_marks_each_failure_with_its_reason(spark, image_site):
    base, _ = image_site
    grid = show_images(colour_table(spark, base), "url", n=9, size=32, captions=["label"])
    assert len(grid) == 9 and grid.failed == 3
    for index, color in enumerate(COLORS):
        assert center(tile_pixels(grid, index)) == color
    assert [t.failure.split(":")[0] for t in grid.tiles[6:]] == ["http_404", "decode", "missing"]
    assert "colour &lt;3&gt;" in grid.html and grid.html.count('data-tile="failed"') == 3


def test_show_images_fetches_only_the_first_n_rows(spark, image_site):
    base, _ = image_site
    table = spark.createDataFrame([(f"{base}/c{i % 6}.png?row={i}",) for i in range(300)], "url string")
    _CountingHandler.requests.clear()
    grid = show_images(table.repartition(3), "url", n=5, size=16)
    assert len(grid) == 5 and grid.failed == 0
    assert len(_CountingHandler.requests) == 5


def test_show_images_of_bytes_and_image_structs(spark, image_site):
    _, root = image_site
    files = spark.read.format("binaryFile").load(str(root / "c*.png")).orderBy("path")
    grid = show_images(files, "content", n=6, size=32, captions=["path"])
    assert sorted(center(tile_pixels(grid, i)) for i in range(6)) == sorted(COLORS)
    structs = spark.read.format("image").load(str(root / "c*.png")).orderBy("image.origin")
    grid = show_images(structs, "image", n=6, size=32)  # BGR structs come back as the true colours
    assert sorted(center(tile_pixels(grid, i)) for i in range(6)) == sorted(COLORS)


def test_show_images_takes_its_fetch_limits_from_a_stage(spark, image_site):
    base, _ = image_site
    table = spark.createDataFrame([(f"{base}/c{i}.png",) for i in range(2)], "url string").coalesce(1)
    assert show_images(table, "url", n=2, size=16).failed == 0
    # The PNGs are a few hundred bytes: the featurizer's maxBytes of 16 refuses each of them.
    limited = show_images(table, "url", n=2, size=16, fetch_options=ImageUrlFeaturizer(maxBytes=16))
    assert [tile.failure.split(":")[0] for tile in limited.tiles] == ["too_large", "too_large"]
    with pytest.raises(TypeError, match="fetch_options must be a FetchOptions or a stage with fetch Params"):
        show_images(table, "url", fetch_options={"maxBytes": 16})


@pytest.mark.compat
def test_show_images_side_by_side_shows_source_and_what_the_model_sees(spark, image_site):
    base, _ = image_site
    featurizer = ImageUrlFeaturizer(inputCol="url", imageSize=[4, 4], mean="imagenet", std="imagenet",
                                    layout="CHW", colorMode="BGR", handleInvalid="keep", errorCol="image_error")
    featurized = featurizer.transform(colour_table(spark, base))
    grid = show_images(featurized, "features", n=9, size=32, side_by_side=True, source_col="url",
                       error_col="image_error", captions=["label", "features"])
    assert grid.failed == 3 and all(tile.side_by_side for tile in grid.tiles)
    for index, color in enumerate(COLORS):
        model_view = tile_pixels(grid, index)
        assert model_view.shape == (32, 32, 3)
        assert np.abs(model_view.astype(int) - color).max() <= 1
        assert center(tile_pixels(grid, index, "source")) == color
    assert grid.tiles[6].failure.startswith("http_404") and grid.tiles[6].source_failure.startswith("http_404")
    assert grid.tiles[8].failure.startswith("missing")


def test_show_images_of_reshaped_nested_and_flat_array_tensors(spark, image_site):
    base, _ = image_site
    featurized = ImageUrlFeaturizer(inputCol="url", imageSize=[3, 5]).transform(
        colour_table(spark, base).where("id < 2"))
    for output_type in ("nested", "array"):
        tensors = TensorReshaper(inputCol="features", outputCol="tensor", axes=[2, 0, 1],
                                 outputFormat=output_type).transform(featurized)
        grid = show_images(tensors, "tensor", n=2, size=30)
        pixels = tile_pixels(grid, 1)
        assert pixels.shape == (18, 30, 3)  # 3x5 enlarged 6 times, aspect kept
        assert center(pixels) == COLORS[1]


def test_show_images_of_a_uint8_binary_tensor_column(spark):
    # The featurizer's outputFormat="uint8": raw pixels, one byte per value, in layout order.
    meta = {"tensor": {"shape": [3, 2, 2], "layout": "CHW", "channelOrder": "RGB", "dtype": "uint8",
                       "scale": 1 / 255, "mean": [0.0], "std": [1.0]}}
    red_chw = bytes([255] * 4 + [0] * 4 + [0] * 4)
    table = spark.createDataFrame([(red_chw,), (None,)], "pixels binary").withMetadata("pixels", meta)
    grid = show_images(table, "pixels", n=2, size=16)
    assert center(tile_pixels(grid, 0)) == (255, 0, 0)
    assert grid.tiles[1].failure == "missing: null"


def test_show_images_refuses_configuration_mistakes_with_a_fix(spark, image_site):
    base, _ = image_site
    table = colour_table(spark, base)
    with pytest.raises(ValueError, match="'nope' does not exist. Available columns: id, "):
        show_images(table, "nope")
    with pytest.raises(TypeError, match="expected a string"):
        show_images(table, "id")
    with pytest.raises(ValueError, match="size must be an integer"):
        show_images(table, "url", size=5000)
    with pytest.raises(ValueError, match="col must be a tensor column"):
        show_images(table, "url", side_by_side=True)
    from pyspark.ml.functions import array_to_vector
    from pyspark.sql import functions as F

    plain = table.select(array_to_vector(F.array(F.lit(1.0))).alias("v"))
    with pytest.raises(ValueError, match="records no tensor shape"):
        show_images(plain, "v")


@pytest.mark.claim("failure_report counts failure reasons with redacted examples")
@pytest.mark.compat
def test_failure_report_counts_reasons_with_redacted_examples(spark):
    rows = [("https://u:secret@h.example/a.png?token=abc&w=1", "http_404: Not Found"),
            ("https://h.example/b.png", "http_404: Not Found"),
            ("https://h.example/c.png", "decode: the bytes are an HTML document, not an image"),
            ("https://h.example/d.png", None), ("https://h.example/e.png", None)]
    table = spark.createDataFrame(rows, "url string, image_error string")
    report = failure_report(table, "image_error", source_col="url", examples=2)
    assert report.total_rows == 5 and report.failed_rows == 3
    assert report.counts() == {"http_404": 2, "decode": 1}
    assert report.reasons[0].fraction == pytest.approx(0.4)
    assert report.reasons[0].meaning.startswith("the server answered with a 4xx")
    text = str(report) + report.to_html()
    assert "secret" not in text and "abc" not in text
    assert report.reasons[0].examples == (("https://h.example/b.png", "Not Found"),
                                          ("https://h.example/a.png?token=%2A%2A%2A&w=1", "Not Found"))
    frame = report.dataframe.orderBy("reason").collect()
    assert [(r["reason"], r["count"]) for r in frame] == [("decode", 1), ("http_404", 2)]
    assert frame[1]["examples"][1]["source"].startswith("https://h.example/a.png?token=%2A")
    assert "<table" in report._repr_html_()


def test_failure_report_shows_a_source_that_failed_twice_once(spark):
    rows = [("https://h.example/a.png", "http_404: Not Found")] * 2 + [(None, "missing: null source")] * 2 \
        + [("https://h.example/b.png", "http_404: Not Found")]
    table = spark.createDataFrame(rows, "url string, image_error string")
    report = failure_report(table, "image_error", source_col="url", examples=3)
    assert report.counts() == {"http_404": 3, "missing": 2}
    examples = {reason.reason: reason.examples for reason in report.reasons}
    assert examples["http_404"] == (("https://h.example/a.png", "Not Found"), ("https://h.example/b.png", "Not Found"))
    assert len(examples["missing"]) == 1


def test_failure_report_of_a_clean_table(spark):
    table = spark.createDataFrame([("a", None)], "url string, image_error string")
    report = failure_report(table, "image_error")
    assert report.failed_rows == 0 and report.counts() == {}
    assert "0 of 1 rows failed" in report.to_html()


def test_grid_save_writes_a_standalone_page(tmp_path):
    grid = image_grid([np.zeros((4, 4, 3), np.uint8)], captions=["zero"], size=16)
    page = Path(grid.save(tmp_path / "grid.html")).read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and 'charset="utf-8"' in page and grid.html in page
