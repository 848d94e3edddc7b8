"""The libspng fast path for plain PNGs: taken only where it cannot change a result."""

from __future__ import annotations

import ctypes
import io
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from sparkimg_ml import _png
from sparkimg_ml.errors import SourceError
from sparkimg_ml.image_ops import ImageSpec, preprocess_bytes

RNG = np.random.default_rng(11)


def _png_bytes(image: Image.Image, **save_args) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **save_args)
    return buffer.getvalue()


def _noise(mode: str, size=(37, 23)) -> Image.Image:
    channels = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}[mode]
    pixels = RNG.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    return Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels, mode)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _insert_after_ihdr(png: bytes, chunk: bytes) -> bytes:
    return png[:33] + chunk + png[33:]


def _with_exif_orientation(image: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _png_bytes(image, exif=exif.tobytes())


PLAIN = {mode: _png_bytes(_noise(mode)) for mode in ("L", "RGB", "RGBA")}
NOT_PLAIN = {
    "gray+alpha": _png_bytes(_noise("LA")),
    "palette": _png_bytes(_noise("RGB").convert("P", palette=Image.Palette.ADAPTIVE)),
    "16-bit gray": _png_bytes(Image.fromarray(RNG.integers(0, 65536, (9, 7), dtype=np.uint16))),
    "1-bit": _png_bytes(_noise("L").convert("1")),
    "transparency key": _png_bytes(_noise("RGB"), transparency=(1, 2, 3)),
    "exif orientation": _with_exif_orientation(_noise("RGB"), 6),
    "animated": _png_bytes(_noise("RGB"), save_all=True, append_images=[_noise("RGB")]),
    "exif in a text chunk": _insert_after_ihdr(
        PLAIN["RGB"], _chunk(b"tEXt", b"Raw profile type exif\x00\nexif\n 0\n")),
    "interlaced flag": PLAIN["RGB"][:8] + _chunk(b"IHDR", PLAIN["RGB"][16:28] + b"\x01") + PLAIN["RGB"][33:],
    "bad text-chunk checksum": _insert_after_ihdr(PLAIN["RGB"], _chunk(b"tEXt", b"note\x00hi")[:-1] + b"\x00"),
    "truncated": PLAIN["RGB"][: len(PLAIN["RGB"]) // 2],
    "not a PNG": b"GIF89a" + bytes(40),
}

SPECS = [
    ImageSpec(8, 8),
    ImageSpec(5, 9, color_mode="BGR", layout="CHW", resize_mode="pad", pad_color=(9, 99, 199)),
    ImageSpec(6, 6, color_mode="L", resize_mode="crop", interpolation="lanczos"),
    ImageSpec(7, 4, color_mode="RGBA", mean="imagenet", std="imagenet"),
    ImageSpec(64, 48, interpolation="nearest", background=(255, 0, 128)),
]


def _without_fast_path(monkeypatch, data: bytes, spec: ImageSpec):
    with monkeypatch.context() as patch:
        patch.setattr(_png, "_LIBSPNG", None)
        return _outcome(data, spec)


def _outcome(data: bytes, spec: ImageSpec):
    try:
        return preprocess_bytes(data, spec)
    except SourceError as error:
        return error.reason


def test_plain_png_modes_are_recognised_and_the_rest_is_left_to_pillow():
    assert {mode: _png.plain_png_mode(data) for mode, data in PLAIN.items()} == {m: m for m in PLAIN}
    assert {name: _png.plain_png_mode(data) for name, data in NOT_PLAIN.items()} == {n: None for n in NOT_PLAIN}


@pytest.mark.parametrize("name", sorted(PLAIN) + sorted(NOT_PLAIN))
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.height}x{s.width}-{s.color_mode}-{s.resize_mode}")
def test_results_and_errors_do_not_depend_on_the_fast_path(monkeypatch, name, spec):
    data = PLAIN.get(name, NOT_PLAIN.get(name))
    with_fast, without = _outcome(data, spec), _without_fast_path(monkeypatch, data, spec)
    if isinstance(without, str):
        assert with_fast == without
    else:
        np.testing.assert_array_equal(with_fast, without)


@pytest.mark.skipif(not _png.available(), reason="pyspng (the [fast] extra) is not installed")
def test_plain_pngs_are_decoded_by_libspng_to_pillows_pixels():
    for mode, data in PLAIN.items():
        fast = _png.decode_plain_png(data, max_pixels=10**9)
        assert fast is not None and fast.mode == mode
        np.testing.assert_array_equal(np.asarray(fast), np.asarray(Image.open(io.BytesIO(data))))


@pytest.mark.skipif(not _png.available(), reason="pyspng (the [fast] extra) is not installed")
def test_libspng_runs_without_the_gil_and_threads_decode_independently():
    # ctypes.CDLL (unlike PyDLL) releases the GIL for each call, so a task's fetch
    # threads keep running while one of them decodes a PNG.
    assert isinstance(_png._LIBSPNG, ctypes.CDLL) and not isinstance(_png._LIBSPNG, ctypes.PyDLL)
    images = [_noise(mode, size=(64 + i, 48)) for i in range(4) for mode in ("L", "RGB", "RGBA")]
    encoded = [_png_bytes(image) for image in images]
    with ThreadPoolExecutor(4) as pool:
        decoded = list(pool.map(lambda data: _png.decode_plain_png(data, 10**9), encoded * 3))
    for image, fast in zip(images * 3, decoded):
        np.testing.assert_array_equal(np.asarray(fast), np.asarray(image))


@pytest.mark.skipif(not _png.available(), reason="pyspng (the [fast] extra) is not installed")
def test_limits_and_libspng_failures_fall_back_to_pillow(monkeypatch):
    data = PLAIN["RGB"]
    assert _png.decode_plain_png(data, max_pixels=37 * 23 - 1) is None
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    assert _png.decode_plain_png(data, max_pixels=10**9) is None
    monkeypatch.undo()
    # Damaged pixel data under a valid chunk checksum: libspng refuses, Pillow reports it.
    start = data.index(b"IDAT") - 4
    length = struct.unpack(">I", data[start:start + 4])[0]
    body = bytes(b ^ 0x5A for b in data[start + 8:start + 8 + length])
    damaged = data[:start] + _chunk(b"IDAT", body) + data[start + 12 + length:]
    assert _png.plain_png_mode(damaged) == "RGB"
    assert _png.decode_plain_png(damaged, max_pixels=10**9) is None
    with pytest.raises(SourceError, match="^decode"):
        preprocess_bytes(damaged, ImageSpec(4, 4))
    with pytest.raises(SourceError, match="^too_many_pixels"):
        preprocess_bytes(data, ImageSpec(4, 4, max_pixels=100))
