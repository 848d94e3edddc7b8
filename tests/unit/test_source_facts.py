"""source_info: the facts sourceInfoCol writes, read from the header and the bytes, never raising."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from sparkimg_ml.engine.decode import DecodeTask
from sparkimg_ml.engine.featurize import featurize_batches
from sparkimg_ml.fetch import FetchOptions
from sparkimg_ml.image import SOURCE_INFO_FIELDS, ImageSpec, SourceInfo, source_info
from sparkimg_ml.schema import BINARY, SOURCE


def _encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _jpeg_with_orientation(width: int, height: int, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _encoded(Image.new("RGB", (width, height), (200, 10, 10)), "JPEG", exif=exif.tobytes())


@pytest.mark.parametrize(("image", "fmt", "mode"), [
    (Image.new("RGB", (31, 17)), "JPEG", "RGB"),
    (Image.new("L", (31, 17)), "PNG", "L"),
    (Image.new("P", (31, 17)), "PNG", "P"),
    (Image.new("RGBA", (31, 17)), "WEBP", "RGBA"),
    (Image.new("CMYK", (31, 17)), "JPEG", "CMYK"),
    (Image.fromarray(np.full((17, 31), 40000, np.uint16)), "PNG", "I;16"),
    (Image.new("RGB", (31, 17)), "GIF", "P"),
])
def test_size_format_mode_length_and_hash_come_from_the_bytes(image, fmt, mode):
    data = _encoded(image, fmt)
    info = source_info(data)
    assert (info.width, info.height, info.format, info.mode) == (31, 17, fmt, mode)
    assert info.bytes == len(data) and info.sha256 == hashlib.sha256(data).hexdigest()
    assert info.orientation is None


def test_exif_orientation_is_reported_and_the_size_is_as_stored():
    info = source_info(_jpeg_with_orientation(40, 10, 6))
    assert (info.width, info.height, info.orientation) == (40, 10, 6)  # stored landscape, shown portrait


@pytest.mark.parametrize("data", [b"", b"<html>not found</html>", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20])
def test_bytes_that_are_no_image_keep_their_length_and_hash(data):
    assert source_info(data) == SourceInfo(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())


def test_a_truncated_image_still_has_its_header_facts():
    whole = _encoded(Image.new("RGB", (64, 48)), "JPEG")
    data = whole[:whole.index(b"\xff\xda") + 20]  # cut inside the scan, after every header segment
    info = source_info(data)
    assert (info.width, info.height, info.format, info.bytes) == (64, 48, "JPEG", len(data))


def test_featurize_batches_adds_one_field_per_fact_and_copies_facts_to_repeated_sources(tmp_path):
    good = tmp_path / "good.png"
    good.write_bytes(_encoded(Image.new("RGB", (9, 7)), "PNG"))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"<html>oops</html>")
    task = DecodeTask(ImageSpec(2, 2), FetchOptions(), SOURCE, "keep", "url", source_info=True)
    sources = [str(good), None, str(tmp_path / "absent.png"), str(broken), str(good)]
    [out] = featurize_batches([pa.array(sources)], task)
    assert [f.name for f in out.type] == ["features", "error"] + [f"source_{name}" for name, _ in SOURCE_INFO_FIELDS]
    assert out.field("source_width").to_pylist() == [9, None, None, None, 9]
    assert out.field("source_format").to_pylist() == ["PNG", None, None, None, "PNG"]
    assert out.field("source_bytes").to_pylist() == [good.stat().st_size, None, None, 17, good.stat().st_size]
    assert out.field("error").to_pylist()[3].startswith("decode")


def test_without_the_option_the_result_has_only_features_and_error():
    task = DecodeTask(ImageSpec(2, 2), FetchOptions(), BINARY, "keep", "content")
    [out] = featurize_batches([pa.array([_encoded(Image.new("L", (3, 3)), "PNG")], pa.binary())], task)
    assert [f.name for f in out.type] == ["features", "error"]
