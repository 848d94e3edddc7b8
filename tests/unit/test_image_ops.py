"""The pure image layer: decoding, orientation, modes, resizing, normalisation, layout."""

from __future__ import annotations

import functools
import io
import json
import pickle
import random
import struct
import sys
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from image_corpus import (
    REFUSED_PILLOW_FORMATS,
    Case,
    build_corpus,
    jpeg_header_bomb,
    png_header_bomb,
    quadrants,
    to_srgb_with_imagecms,
    wide_gamut_icc_profile,
    write_corpus,
)
from PIL import Image, ImageDraw, ImageFile, ImageOps

from sparkimg_ml.errors import REASON_CODES, SourceError
from sparkimg_ml.image import (
    ACCEPTED_FORMATS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    INTERPOLATIONS,
    ImageSpec,
    preprocess_bytes,
    preprocess_pil,
    preprocess_spark_struct,
)
from sparkimg_ml.params import converters as conv
from sparkimg_ml.params.image import IMAGE_PARAM_DEFAULTS, HasImageParams

#: The documented bounds on how far reduced (DCT-domain) JPEG decoding moves a value.
REDUCED_DECODE_PHOTO_MAX_ERROR = 12 / 255
REDUCED_DECODE_MAX_ERROR = 20 / 255
REDUCED_DECODE_MEAN_ERROR = 1 / 255
#: The documented bounds with reducingGap >= 2 (reduced decode on or off), against the exact mode.
REDUCING_GAP_PHOTO_MAX_ERROR = 21 / 255
REDUCING_GAP_MAX_ERROR = 24 / 255
REDUCING_GAP_PHOTO_MEAN_ERROR = 1.5 / 255
REDUCING_GAP_MEAN_ERROR = 3 / 255


class _Stage(HasImageParams):
    """A bare Params holder: the image Params and their converters, without Spark."""


def spec_for(params: dict[str, Any]) -> ImageSpec:
    return _Stage()._set(**params)._image_spec()


def encode(image: Image.Image, fmt: str = "PNG", **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def random_image(width: int, height: int, seed: int = 0, mode: str = "RGB") -> Image.Image:
    channels = {"RGB": 3, "RGBA": 4}[mode]
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)
    return Image.fromarray(pixels, mode)


@pytest.fixture(scope="module")
def image_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Case]]:
    """The corpus written to a temporary directory: ``(directory, cases)``."""
    directory = tmp_path_factory.mktemp("image_corpus")
    return directory, write_corpus(directory)


@pytest.fixture(scope="module")
def photos() -> dict[str, bytes]:
    """Real photographs (shipped by scikit-learn) and adversarial patterns, as JPEG."""
    from sklearn.datasets import load_sample_images

    images = {f"photo{i}": Image.fromarray(a) for i, a in enumerate(load_sample_images().images)}
    images["photo_large"] = images["photo0"].resize((2400, 1600), Image.Resampling.LANCZOS)
    yy, xx = np.mgrid[:1200, :1600]
    images["zoneplate"] = Image.fromarray(((np.sin((xx ** 2 + yy ** 2) / 900.0) + 1) * 127.5).astype(np.uint8))
    images["noise"] = random_image(1600, 1200, seed=1)
    text = Image.new("RGB", (1600, 1200), "white")
    draw = ImageDraw.Draw(text)
    for top in range(0, 1200, 23):
        draw.text((5, top), "The quick brown fox jumps over the lazy dog 0123456789 " * 4, fill=(0, 0, 0))
    images["text"] = text
    return {name: encode(image.convert("RGB"), "JPEG", quality=90) for name, image in images.items()}


# --------------------------------------------------------------------------- corpus

def test_corpus_covers_every_accepted_format(image_corpus):
    import pillow_heif

    pillow_heif.register_heif_opener()  # lets Image.open below name HEIF files
    _, cases = image_corpus
    formats = {Image.open(io.BytesIO(c.data)).format for c in cases if c.error is None}
    assert formats >= set(ACCEPTED_FORMATS)
    assert {c.error for c in cases if c.error} <= set(REASON_CODES)


@pytest.mark.parametrize("name", [c.name for c in build_corpus()])
def test_corpus_file_gives_expected_pixels_or_reason(image_corpus, name):
    directory, cases = image_corpus
    case = next(c for c in cases if c.name == name)
    data = (directory / case.filename).read_bytes()
    spec = spec_for(case.params)
    if case.error:
        with pytest.raises(SourceError) as caught:
            preprocess_bytes(data, spec)
        assert caught.value.code == case.error, caught.value.reason
        return
    out = preprocess_bytes(data, spec)
    assert out.dtype == np.float32 and out.shape == (spec.size,)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, case.expected, rtol=0, atol=case.atol)


@pytest.mark.claim("Grayscale, RGBA, CMYK, 16-bit and EXIF-rotated images are handled")
def test_16bit_gradient_spans_zero_to_one_with_high_precision(image_corpus):
    _, cases = image_corpus
    for case in (c for c in cases if "span01" in c.tags):
        out = preprocess_bytes(case.data, spec_for(case.params))
        assert out.min() == 0.0 and out.max() == pytest.approx(1.0, abs=1e-6)
        assert len(np.unique(out)) > 250  # 256 gradient steps survive: no 8-bit rounding
        # 0x1234 is 0.0711, not the 0.2 that keeping the low byte (0x34) would give.
        assert out[256] == pytest.approx(0x1234 / 65535, abs=1e-6)


@pytest.mark.claim("Grayscale, RGBA, CMYK, 16-bit and EXIF-rotated images are handled")
def test_cmyk_jpeg_matches_its_rgb_twin(image_corpus):
    _, cases = image_corpus
    cmyk = next(c for c in cases if "cmyk" in c.tags)
    twin = next(c for c in cases if "cmyk_twin" in c.tags)
    assert Image.open(io.BytesIO(cmyk.data)).mode == "CMYK"
    spec = spec_for(cmyk.params)
    np.testing.assert_allclose(preprocess_bytes(cmyk.data, spec), preprocess_bytes(twin.data, spec),
                               rtol=0, atol=8 / 255)


@pytest.mark.claim("Grayscale, RGBA, CMYK, 16-bit and EXIF-rotated images are handled")
def test_exif_rotated_jpeg_swaps_axes_before_resizing():
    stored = Image.fromarray(quadrants(64, 32)).transpose(Image.Transpose.ROTATE_90)  # 32 wide, 64 high
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(stored, "JPEG", exif=exif.tobytes(), quality=95, subsampling=0)
    upright = preprocess_bytes(data, ImageSpec(2, 2, interpolation="box", resize_mode="crop"))
    np.testing.assert_allclose(upright.reshape(2, 2, 3), quadrants(2, 2) / 255.0, atol=10 / 255)
    sideways = preprocess_bytes(data, ImageSpec(2, 2, interpolation="box", exif_transpose=False))
    np.testing.assert_allclose(sideways.reshape(2, 2, 3), np.asarray(stored.resize((2, 2), Image.BOX)) / 255.0,
                               atol=10 / 255)


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about damaged metadata
def test_corrupt_exif_block_is_ignored_not_fatal():
    image = Image.new("RGB", (8, 8), (10, 20, 30))
    data = encode(image, "JPEG", exif=b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\xff\xff\x01", quality=95)
    out = preprocess_bytes(data, ImageSpec(2, 2, scale=1.0))
    np.testing.assert_allclose(out, np.tile([10, 20, 30], 4), atol=3)


# --------------------------------------------------------------------------- resize vs Pillow

@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
@pytest.mark.parametrize("source_size", [(37, 23), (23, 37)])
@pytest.mark.parametrize("resize_mode", ["stretch", "crop", "pad"])
def test_resize_mode_matches_pillow(resize_mode, source_size, interpolation):
    image = random_image(*source_size, seed=sum(source_size))
    filter_ = getattr(Image.Resampling, interpolation.upper())
    pad_color = (12, 34, 56)
    size = (16, 10)  # (width, height)
    reference = {
        "stretch": lambda: image.resize(size, filter_),
        "crop": lambda: ImageOps.fit(image, size, filter_),
        "pad": lambda: ImageOps.pad(image, size, filter_, color=pad_color),
    }[resize_mode]()
    spec = ImageSpec(10, 16, resize_mode=resize_mode, interpolation=interpolation, pad_color=pad_color, scale=1.0)
    out = preprocess_bytes(encode(image), spec)
    np.testing.assert_array_equal(out.reshape(10, 16, 3), np.asarray(reference, dtype=np.float32))


def test_reduced_decode_off_reproduces_plain_pillow_recipe(photos):
    for name in ("photo0", "photo1", "photo_large"):
        data = photos[name]
        for height, width in ((32, 32), (224, 224), (48, 80)):
            spec = ImageSpec(height, width, reduced_decode=False, reducing_gap=0)
            recipe = Image.open(io.BytesIO(data)).convert("RGB").resize((width, height), Image.BICUBIC)
            expected = np.asarray(recipe, dtype=np.float32).reshape(-1) * np.float32(1 / 255)
            np.testing.assert_array_equal(preprocess_bytes(data, spec), expected, err_msg=f"{name} {height}x{width}")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_reducing_gap_without_reduced_decode_is_pillows_reducing_gap_resize(photos, fmt):
    for name in ("photo0", "photo_large"):
        data = photos[name] if fmt == "JPEG" else encode(Image.open(io.BytesIO(photos[name])))
        for height, width in ((32, 32), (224, 224), (48, 80)):
            for gap in (2.0, 3.0):
                spec = ImageSpec(height, width, reduced_decode=False, reducing_gap=gap)
                recipe = Image.open(io.BytesIO(data)).convert("RGB").resize((width, height), Image.BICUBIC,
                                                                           reducing_gap=gap)
                expected = np.asarray(recipe, dtype=np.float32).reshape(-1) * np.float32(1 / 255)
                np.testing.assert_array_equal(preprocess_bytes(data, spec), expected,
                                              err_msg=f"{name} {height}x{width} gap {gap}")


@functools.cache
def _exact(data: bytes, spec: ImageSpec) -> np.ndarray:
    """The full-size decode the reduced paths are measured against (shared by the bound tests below)."""
    values = preprocess_bytes(data, spec.replace(reduced_decode=False, reducing_gap=0.0))
    values.flags.writeable = False
    return values


@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear", "lanczos", "hamming"])
def test_reduced_decode_moves_values_within_documented_bound(photos, interpolation):
    engaged = 0
    for name, data in photos.items():
        bound = REDUCED_DECODE_PHOTO_MAX_ERROR if name.startswith("photo") else REDUCED_DECODE_MAX_ERROR
        for size in (16, 32, 64, 224) if interpolation == "bicubic" else (16, 64):
            for mode in ("stretch", "crop", "pad"):
                spec = ImageSpec(size, size, resize_mode=mode, interpolation=interpolation)
                fast = preprocess_bytes(data, spec)
                full = _exact(data, spec)
                error = np.abs(fast - full)
                assert error.max() <= bound + 1e-6, (name, size, mode, error.max() * 255)
                assert error.mean() <= REDUCED_DECODE_MEAN_ERROR, (name, size, mode, error.mean() * 255)
                engaged += not np.array_equal(fast, full)
    assert engaged >= 12  # the reduced decode really ran for most of these


@pytest.mark.parametrize("reduced_decode", [True, False])
@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear", "lanczos", "hamming"])
def test_reducing_gap_moves_values_within_documented_bound(photos, interpolation, reduced_decode):
    engaged = 0
    for name, data in photos.items():
        photo = name.startswith("photo")
        bound = REDUCING_GAP_PHOTO_MAX_ERROR if photo else REDUCING_GAP_MAX_ERROR
        mean_bound = REDUCING_GAP_PHOTO_MEAN_ERROR if photo else REDUCING_GAP_MEAN_ERROR
        for size in (16, 32, 64, 224) if interpolation == "bicubic" else (16, 64):
            for mode in ("stretch", "crop", "pad"):
                spec = ImageSpec(size, size, resize_mode=mode, interpolation=interpolation)
                exact = _exact(data, spec)
                for gap in (2.0, 3.0):
                    fast = preprocess_bytes(data, spec.replace(reduced_decode=reduced_decode, reducing_gap=gap))
                    error = np.abs(fast - exact)
                    assert error.max() <= bound + 1e-6, (name, size, mode, gap, error.max() * 255)
                    assert error.mean() <= mean_bound, (name, size, mode, gap, error.mean() * 255)
                    engaged += not np.array_equal(fast, exact)
    assert engaged >= 24  # the reduction really ran for most of these


@pytest.mark.parametrize("interpolation", ["nearest", "box"])
def test_footprint_filters_always_decode_at_full_size(photos, interpolation):
    spec = ImageSpec(16, 16, interpolation=interpolation)
    data = photos["photo_large"]
    np.testing.assert_array_equal(preprocess_bytes(data, spec), preprocess_bytes(data, spec.replace(reduced_decode=False)))
    # ... and resample every source pixel: reducingGap does not apply to them either.
    np.testing.assert_array_equal(preprocess_bytes(data, spec.replace(reducing_gap=2.0)), preprocess_bytes(data, spec))


@pytest.mark.parametrize(("orientation", "resize_mode"), [(o, "crop") for o in range(1, 9)] + [
    (3, "stretch"), (3, "pad"), (6, "stretch"), (6, "pad")])
def test_reduced_decode_keeps_geometry_of_rotated_photos(photos, orientation, resize_mode):
    exif = Image.Exif()
    exif[0x0112] = orientation
    photo = Image.open(io.BytesIO(photos["photo_large"])).crop((0, 0, 2395, 1597))  # not a multiple of 8
    data = encode(photo, "JPEG", quality=90, exif=exif.tobytes())
    spec = ImageSpec(40, 64, resize_mode=resize_mode)
    fast = preprocess_bytes(data, spec)
    full = preprocess_bytes(data, spec.replace(reduced_decode=False))
    assert not np.array_equal(fast, full)
    # A misplaced box (e.g. the partial last block on the wrong side) shows up as 30/255 and more.
    assert np.abs(fast - full).max() <= REDUCED_DECODE_PHOTO_MAX_ERROR + 1e-6


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_reducing_gap_keeps_geometry_of_rotated_photos(photos, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    photo = Image.open(io.BytesIO(photos["photo_large"])).crop((0, 0, 2395, 1597))  # not a multiple of 8
    data = encode(photo, "JPEG", quality=90, exif=exif.tobytes())
    spec = ImageSpec(40, 64, resize_mode="crop", reduced_decode=False)
    for changes in ({"reducing_gap": 2.0}, {"reducing_gap": 2.0, "reduced_decode": True}):
        fast = preprocess_bytes(data, spec.replace(**changes))
        full = preprocess_bytes(data, spec)
        assert not np.array_equal(fast, full)
        assert np.abs(fast - full).max() <= REDUCING_GAP_PHOTO_MAX_ERROR + 1e-6, changes


# --------------------------------------------------------------------------- channels, normalisation, layout

def _base_pixels(data: bytes, spec: ImageSpec) -> np.ndarray:
    """RGB(A) HWC values on the 8-bit scale for the same decode and resize as ``spec``."""
    color = "RGBA" if spec.color_mode == "RGBA" else ("L" if spec.color_mode == "L" else "RGB")
    base = spec.replace(color_mode=color, scale=1.0, mean=(0.0,), std=(1.0,), layout="HWC")
    return preprocess_bytes(data, base).reshape(spec.height, spec.width, base.channels).astype(np.float64)


@pytest.mark.parametrize("color_mode", ["RGB", "BGR", "L", "RGBA"])
@pytest.mark.parametrize("layout", ["HWC", "CHW"])
@pytest.mark.parametrize("stats", ["none", "imagenet", "explicit"])
def test_channel_order_layout_and_mean_std_match_numpy(color_mode, layout, stats):
    data = encode(random_image(20, 14, seed=9, mode="RGBA"))
    channels = {"RGB": 3, "BGR": 3, "L": 1, "RGBA": 4}[color_mode]
    scale = 1 / 255 if stats != "explicit" else 1 / 127.5
    if stats == "none":
        mean, std = np.zeros(channels), np.ones(channels)
        params: dict[str, Any] = {}
    elif stats == "imagenet":
        m, s = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
        mean, std = {"RGB": (m, s), "BGR": (m[::-1], s[::-1]), "L": (m.mean(keepdims=True), s.mean(keepdims=True)),
                     "RGBA": (np.append(m, 0.0), np.append(s, 1.0))}[color_mode]
        params = {"mean": "imagenet", "std": "imagenet"}
    else:
        mean, std = np.linspace(0.5, 1.0, channels), np.linspace(0.25, 2.0, channels)
        params = {"mean": mean.tolist(), "std": std.tolist()}
    spec = ImageSpec(7, 10, color_mode=color_mode, layout=layout, scale=scale, **params)
    pixels = _base_pixels(data, spec)
    if color_mode == "BGR":
        pixels = pixels[..., ::-1]
    expected = (pixels * scale - mean) / std
    if layout == "CHW":
        expected = expected.transpose(2, 0, 1)
    out = preprocess_bytes(data, spec)
    assert spec.shape == expected.shape
    np.testing.assert_allclose(out, expected.reshape(-1), rtol=1e-6, atol=1e-6)


def test_imagenet_preset_follows_scale_and_color_mode():
    assert ImageSpec(mean="imagenet").mean == pytest.approx(IMAGENET_MEAN)
    assert ImageSpec(mean="imagenet", scale=1.0).mean == pytest.approx([255 * m for m in IMAGENET_MEAN])
    assert ImageSpec(std="imagenet", color_mode="BGR").std == pytest.approx(IMAGENET_STD[::-1])
    assert ImageSpec(mean="imagenet", color_mode="L").mean == pytest.approx([sum(IMAGENET_MEAN) / 3])
    assert ImageSpec(std="imagenet", color_mode="RGBA").std == pytest.approx(list(IMAGENET_STD) + [1.0])


@pytest.mark.parametrize(("color_mode", "fill"), [
    ("RGB", [30, 60, 90]), ("BGR", [90, 60, 30]), ("RGBA", [30, 60, 90, 255]),
    ("L", [round(30 * 0.299 + 60 * 0.587 + 90 * 0.114)]),
])
def test_pad_borders_take_pad_color_in_every_color_mode(color_mode, fill):
    data = encode(Image.new("RGB", (40, 10), (200, 200, 200)))
    spec = ImageSpec(8, 8, color_mode=color_mode, resize_mode="pad", pad_color=(30, 60, 90), scale=1.0)
    out = preprocess_bytes(data, spec).reshape(8, 8, -1)
    np.testing.assert_array_equal(out[0, 0], fill)
    np.testing.assert_array_equal(out[-1, -1], fill)
    assert (out[4, :, 0] > 150).all()  # the image band in the middle


def test_opaque_image_gets_full_alpha_and_16bit_gray_fills_every_channel():
    out = preprocess_bytes(encode(Image.new("RGB", (4, 4), (1, 2, 3))), ImageSpec(2, 2, color_mode="RGBA"))
    np.testing.assert_array_equal(out.reshape(4, 4)[:, 3], 1.0)
    gray16 = Image.fromarray(np.full((4, 4), 0x8080, dtype=np.uint16))
    for color_mode, expected in (("RGB", [0x8080 / 65535] * 3), ("RGBA", [0x8080 / 65535] * 3 + [1.0])):
        out = preprocess_bytes(encode(gray16), ImageSpec(2, 2, color_mode=color_mode))
        np.testing.assert_allclose(out.reshape(4, -1), np.tile(expected, (4, 1)), atol=1e-6)


# --------------------------------------------------------------------------- Spark image struct

def _as_spark_struct(data: bytes) -> tuple[int, int, int, int, bytes]:
    """What ``spark.read.format("image")`` yields for a PNG it decodes correctly."""
    image = Image.open(io.BytesIO(data))
    image.load()
    pixels = np.asarray(image)
    if image.mode == "L":
        return image.height, image.width, 1, 0, pixels.tobytes()
    if image.mode == "RGB":
        return image.height, image.width, 3, 16, pixels[..., ::-1].tobytes()
    return image.height, image.width, 4, 24, pixels[..., [2, 1, 0, 3]].tobytes()


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
@pytest.mark.parametrize("color_mode", ["RGB", "BGR", "L", "RGBA"])
def test_spark_struct_gives_same_features_as_png_bytes(mode, color_mode):
    image = random_image(13, 9, seed=4, mode="RGBA").convert(mode)
    data = encode(image)
    spec = ImageSpec(5, 6, color_mode=color_mode, resize_mode="pad", mean="imagenet", std="imagenet")
    np.testing.assert_array_equal(preprocess_spark_struct(*_as_spark_struct(data), spec=spec),
                                  preprocess_bytes(data, spec))


@pytest.mark.parametrize(("fields", "code"), [
    ((-1, -1, -1, -1, b""), "decode"),
    ((2, 2, 3, 16, b"\x00" * 11), "bad_struct"),
    ((2, 2, 3, 24, b"\x00" * 12), "bad_struct"),
    ((2, 2, 2, 0, b"\x00" * 8), "bad_struct"),
    ((0, 2, 1, 0, b""), "bad_struct"),
    ((200, 200, 1, 0, b"\x00" * 40000), "too_many_pixels"),
])
def test_spark_struct_rejects_invalid_rows(fields, code):
    with pytest.raises(SourceError) as caught:
        preprocess_spark_struct(*fields, spec=ImageSpec(4, 4, max_pixels=10_000))
    assert caught.value.code == code


# --------------------------------------------------------------------------- buffers, threads, robustness

def test_out_buffer_row_is_filled_in_place():
    spec = ImageSpec(4, 5)
    data = encode(random_image(9, 7))
    block = np.full((3, spec.size), np.nan, dtype=np.float32)
    result = preprocess_bytes(data, spec, out=block[1])
    assert np.shares_memory(result, block) and np.isfinite(block[1]).all()
    assert np.isnan(block[0]).all() and np.isnan(block[2]).all()
    np.testing.assert_array_equal(block[1], preprocess_bytes(data, spec))
    with pytest.raises(ValueError, match="out must be"):
        preprocess_bytes(data, spec, out=np.empty(spec.size + 1, dtype=np.float32))
    with pytest.raises(ValueError, match="out must be"):
        preprocess_bytes(data, spec, out=np.empty(spec.size, dtype=np.int16))


def test_many_threads_give_the_same_bits_as_one(image_corpus, photos):
    _, cases = image_corpus
    jobs = [(c.data, spec_for(c.params)) for c in cases] + [(d, ImageSpec(24, 24)) for d in photos.values()]
    jobs = jobs * 3

    def run(job: tuple[bytes, ImageSpec]) -> Any:
        try:
            return preprocess_bytes(*job)
        except SourceError as error:
            return error.reason

    serial = [run(job) for job in jobs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        parallel = list(pool.map(run, jobs))
    for one, many in zip(serial, parallel):
        if isinstance(one, str):
            assert one == many
        else:
            np.testing.assert_array_equal(one, many)


def test_pillow_bomb_warning_treated_as_error_when_raised():
    # 10000x10000 is over Pillow's warning threshold but under its hard limit.
    data = png_header_bomb(10_000, 10_000)
    spec = ImageSpec(8, 8, max_pixels=150_000_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(SourceError) as caught:
            preprocess_bytes(data, spec)
    assert caught.value.code == "too_many_pixels"
    # Under the default maxPixels our own check refuses it (Pillow still warns, as it always does).
    with pytest.warns(Image.DecompressionBombWarning), pytest.raises(SourceError) as caught:
        preprocess_bytes(data, ImageSpec(8, 8))
    assert caught.value.code == "too_many_pixels"
    assert "maxPixels" in caught.value.detail


@pytest.mark.claim("Decompression bombs are refused from the header, before decoding")
def test_header_bombs_are_refused_before_decoding():
    for data in (png_header_bomb(), jpeg_header_bomb()):
        with pytest.raises(SourceError) as caught:
            preprocess_bytes(data, ImageSpec(8, 8, max_pixels=10**12))
        assert caught.value.code == "too_many_pixels"


def test_pillow_global_settings_are_never_changed(image_corpus):
    _, cases = image_corpus
    before = (ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS)
    for case in cases:
        try:
            preprocess_bytes(case.data, spec_for(case.params))
        except SourceError:
            pass
    assert (ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS) == before


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about damaged metadata
def test_damaged_bytes_raise_only_source_error(image_corpus):
    _, cases = image_corpus
    rng = random.Random(1234)
    sources = [c.data for c in cases if c.error is None]
    outcomes = {"ok": 0, "error": 0}
    truncated_ok = 0
    for trial in range(400):
        original = rng.choice(sources)
        data = bytearray(original)
        if trial % 2:
            data = data[: rng.randrange(len(data))]
        else:
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        spec = ImageSpec(6, 5, resize_mode=rng.choice(["stretch", "crop", "pad"]))
        try:
            out = preprocess_bytes(bytes(data), spec)
        except SourceError as error:
            assert error.code in REASON_CODES
            outcomes["error"] += 1
        else:
            assert out.shape == (spec.size,) and np.isfinite(out).all()
            outcomes["ok"] += 1
            if trial % 2:
                # Never a partial image: a cut that still decodes only dropped bytes after the pixels
                # (trailing chunks, metadata), so the values are the whole image's.
                np.testing.assert_array_equal(out, preprocess_bytes(original, spec), err_msg=f"trial {trial}")
                truncated_ok += 1
    assert outcomes["ok"] > 0 and outcomes["error"] > 0
    assert truncated_ok < 200  # most cuts land inside the pixel data and must fail


def test_unloaded_pil_image_matches_bytes_path(photos):
    data = photos["photo_large"]
    spec = ImageSpec(32, 48, resize_mode="crop")
    np.testing.assert_array_equal(preprocess_pil(Image.open(io.BytesIO(data)), spec), preprocess_bytes(data, spec))


# --------------------------------------------------------------------------- spec, metadata, Params

def test_spec_is_picklable_hashable_and_metadata_is_json():
    spec = ImageSpec(10, 12, color_mode="BGR", mean="imagenet", std="imagenet", layout="CHW",
                     resize_mode="pad", pad_color=(1, 2, 3))
    assert pickle.loads(pickle.dumps(spec)) == spec and hash(spec) == hash(spec.replace())
    meta = spec.metadata()
    assert json.loads(json.dumps(meta)) == meta
    assert meta["shape"] == [3, 10, 12] and meta["channelOrder"] == "BGR" and meta["dtype"] == "float32"
    for key in ("scale", "mean", "std", "resizeMode", "interpolation", "padColor", "background",
                "exifTranspose", "reducedDecode", "reducingGap", "maxPixels", "decoder", "decoders"):
        assert key in meta
    assert meta["mean"] == pytest.approx(IMAGENET_MEAN[::-1])


@pytest.mark.parametrize(("changes", "message"), [
    ({"height": 0}, "image size"),
    ({"color_mode": "CMYK"}, "color_mode"),
    ({"resize_mode": "fit"}, "resize_mode"),
    ({"layout": "NHWC"}, "layout"),
    ({"mean": (1.0, 2.0)}, "mean needs 1 or 3"),
    ({"std": (0.0,)}, "std values must be > 0"),
    ({"pad_color": (0, 0, 300)}, "pad_color"),
    ({"scale": float("nan")}, "scale"),
    ({"reducing_gap": 1.5}, "reducing_gap must be 0"),
    ({"reducing_gap": -2}, "reducing_gap must be 0"),
    ({"reducing_gap": float("inf")}, "reducing_gap must be 0"),
    ({"reducing_gap": "2"}, "reducing_gap must be 0"),
])
def test_spec_rejects_bad_values_naming_the_field(changes, message):
    with pytest.raises(ValueError, match=message):
        ImageSpec(**changes)


def test_params_defaults_are_json_native_and_build_the_default_spec():
    stage = _Stage()
    values = {param.name: stage.getOrDefault(param) for param in stage.params}
    assert values == IMAGE_PARAM_DEFAULTS
    assert json.loads(json.dumps(values)) == values
    assert stage._image_spec() == ImageSpec()


def test_params_round_trip_to_spec_and_keep_presets_by_name():
    stage = (_Stage().setImageSize([24, 16]).setColorMode("BGR").setScale(1.0).setResizeMode("CROP")
             .setInterpolation("Lanczos").setPadColor((1, 2, 3)).setBackground([4, 5, 6]).setMean("ImageNet")
             .setStd([2.0]).setLayout("chw").setExifTranspose(False).setReducedDecode(False).setMaxPixels(1000)
             .setReducingGap(3).setDecoder("Auto"))
    assert stage.getMean() == "imagenet" and stage.getPadColor() == [1, 2, 3] and stage.getLayout() == "CHW"
    spec = stage._image_spec()
    assert spec == ImageSpec(24, 16, "BGR", 1.0, "crop", "lanczos", (1, 2, 3), (4, 5, 6), "imagenet", (2.0,),
                             "CHW", False, False, 1000, reducing_gap=3.0, decoder="auto")
    assert spec.mean == pytest.approx([255 * m for m in IMAGENET_MEAN[::-1]])


@pytest.mark.parametrize(("name", "value", "error"), [
    ("resizeMode", "fit", ValueError), ("interpolation", "cubic", ValueError), ("layout", 3, TypeError),
    ("padColor", [0, 0], ValueError), ("padColor", "black", TypeError), ("background", [0, 0, -1], ValueError),
    ("mean", "cifar", ValueError), ("mean", [1, 2], ValueError), ("std", [0.0], ValueError),
    ("std", [float("inf")], ValueError), ("exifTranspose", 1, TypeError), ("reducedDecode", "yes", TypeError),
    ("maxPixels", 0, ValueError), ("maxPixels", 1.5, TypeError), ("colorMode", "rgb", ValueError),
    ("reducingGap", 1.0, ValueError), ("reducingGap", -2.0, ValueError), ("reducingGap", float("nan"), ValueError),
    ("reducingGap", float("inf"), ValueError), ("reducingGap", "2", TypeError), ("reducingGap", True, TypeError),
    ("decoder", "opencv", ValueError), ("decoder", 1, TypeError),
])
def test_params_reject_bad_values_naming_the_param(name, value, error):
    with pytest.raises(error, match=name):
        _Stage()._set(**{name: value})


def test_mean_length_that_disagrees_with_color_mode_fails_at_spec_time():
    stage = _Stage().setColorMode("L").setMean([0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="mean needs 1 value for colorMode 'L'"):
        stage._image_spec()


def test_converters_for_colors_presets_and_booleans():
    assert conv.rgb_color("padColor")([0, 128, 255]) == [0, 128, 255]
    assert conv.boolean("exifTranspose")(True) is True
    convert = conv.float_list_or_preset("mean", ["imagenet"], (1, 3, 4))
    assert convert(np.array([1, 2, 3])) == [1.0, 2.0, 3.0]
    with pytest.raises(TypeError, match=r"mean must be a list of numbers or one of \['imagenet'\], got b'imagenet'"):
        convert(b"imagenet")


# --------------------------------------------------------------------------- value range (high bit depths)

def _hard_edges(mode: str, size: tuple[int, int]) -> Image.Image:
    """A checkerboard of each mode's extremes with single bright pixels: every filter overshoots here."""
    low, high = {"I;16": (0, 65535), "I;16B": (0, 65535), "I;16L": (0, 65535), "I": (0, 65535),
                 "F": (0.0, 1.0)}[mode]
    width, height = size
    cells = (np.indices((height, width)).sum(axis=0) % 2).astype(bool)
    cells[:, : width // 3] = False
    cells[height // 2, width // 2] = True
    dtype = {"I;16": "<u2", "I;16L": "<u2", "I;16B": ">u2", "I": "<i4", "F": "<f4"}[mode]
    pixels = np.where(cells, high, low).astype(dtype)
    return Image.frombytes(mode, size, pixels.tobytes())


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I;16L", "I", "F"])
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_high_bit_depth_results_stay_within_zero_and_one_at_the_default_scale(mode, interpolation):
    for source_size in ((7, 5), (40, 24)):
        image = _hard_edges(mode, source_size)
        for height, width in ((3, 4), (16, 16), (33, 57)):
            for color_mode in ("L", "RGB", "RGBA"):
                out = preprocess_pil(image.copy(), ImageSpec(height, width, color_mode=color_mode,
                                                             interpolation=interpolation))
                assert out.min() >= 0.0 and out.max() <= 1.0, (source_size, height, width, color_mode,
                                                               out.min(), out.max())


def test_clamping_keeps_values_inside_the_range_untouched():
    ramp = Image.fromarray(np.linspace(1000, 64000, 64).astype(np.uint16).reshape(8, 8))
    out = preprocess_pil(ramp, ImageSpec(8, 8, color_mode="L", interpolation="lanczos"))
    np.testing.assert_allclose(out, np.asarray(ramp).reshape(-1) / 65535.0, atol=1e-6)


# --------------------------------------------------------------------------- transparency in every form

def _png_chunk(tag: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))


def _filtered_rows(samples: np.ndarray, bytes_per_pixel: int) -> bytes:
    """PNG scanlines with every filter type in turn (None, Sub, Up, Average, Paeth)."""
    rows = [np.frombuffer(row.tobytes(), dtype=np.uint8).astype(np.int32) for row in samples]
    previous = np.zeros_like(rows[0])
    out = b""
    for index, row in enumerate(rows):
        kind = index % 5
        left = np.concatenate([np.zeros(bytes_per_pixel, np.int32), row[:-bytes_per_pixel]])
        up_left = np.concatenate([np.zeros(bytes_per_pixel, np.int32), previous[:-bytes_per_pixel]])
        if kind == 0:
            predicted = np.zeros_like(row)
        elif kind == 1:
            predicted = left
        elif kind == 2:
            predicted = previous
        elif kind == 3:
            predicted = (left + previous) // 2
        else:
            p = left + previous - up_left
            pa, pb, pc = np.abs(p - left), np.abs(p - previous), np.abs(p - up_left)
            predicted = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, previous, up_left))
        out += bytes([kind]) + ((row - predicted) % 256).astype(np.uint8).tobytes()
        previous = row
    return out


def rgb16_png(samples: np.ndarray, key: tuple[int, int, int] | None) -> bytes:
    """A 16-bit RGB PNG (Pillow writes none) with an optional tRNS key."""
    height, width, _ = samples.shape
    chunks = [_png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0))]
    if key is not None:
        chunks.append(_png_chunk(b"tRNS", struct.pack(">HHH", *key)))
    chunks.append(_png_chunk(b"IDAT", zlib.compress(_filtered_rows(samples.astype(">u2"), 6))))
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks) + _png_chunk(b"IEND", b"")


def _transparency_forms() -> dict[str, tuple[bytes, np.ndarray, np.ndarray]]:
    """Name -> (file, colours as 8-bit-scale floats (h, w, 3), alpha in [0, 1] (h, w))."""
    rng = np.random.default_rng(21)
    forms: dict[str, tuple[bytes, np.ndarray, np.ndarray]] = {}
    rgba = rng.integers(0, 256, (6, 9, 4), dtype=np.uint8)
    rgba[..., 3] = rng.choice([0, 70, 255], (6, 9))
    forms["RGBA"] = (encode(Image.fromarray(rgba, "RGBA")), rgba[..., :3].astype(float), rgba[..., 3] / 255)
    la = rgba[..., [0, 3]]
    forms["LA"] = (encode(Image.fromarray(la, "LA")), np.repeat(la[..., :1], 3, axis=2).astype(float), la[..., 1] / 255)
    forms["WebP alpha"] = (encode(Image.fromarray(rgba, "RGBA"), "WEBP", lossless=True, exact=True),
                           rgba[..., :3].astype(float), rgba[..., 3] / 255)
    frames = [Image.fromarray(rgba, "RGBA"), Image.new("RGBA", (9, 6), (1, 2, 3, 255))]
    forms["APNG alpha"] = (encode(frames[0], "PNG", save_all=True, append_images=frames[1:]),
                           rgba[..., :3].astype(float), rgba[..., 3] / 255)
    index = rng.integers(0, 4, (6, 9), dtype=np.uint8)
    palette = np.array([(200, 10, 10), (10, 200, 10), (10, 10, 200), (90, 90, 90)], dtype=np.uint8)
    image = Image.fromarray(index, "P")
    image.putpalette(palette.reshape(-1).tolist())
    forms["palette, one index"] = (encode(image, "PNG", transparency=2), palette[index].astype(float),
                                   (index != 2).astype(float))
    alphas = np.array([255, 0, 128, 30], dtype=np.uint8)
    forms["palette, alpha table"] = (encode(image, "PNG", transparency=alphas.tobytes()),
                                     palette[index].astype(float), alphas[index] / 255)
    forms["GIF index"] = (encode(image, "GIF", transparency=1), palette[index].astype(float),
                          (index != 1).astype(float))
    gray = rng.integers(0, 256, (6, 9), dtype=np.uint8)
    gray[::2, ::3] = 77
    forms["gray 8-bit tRNS"] = (encode(Image.fromarray(gray, "L"), "PNG", transparency=77),
                                np.repeat(gray[..., None], 3, axis=2).astype(float), (gray != 77).astype(float))
    gray16 = rng.integers(0, 65536, (6, 9), dtype=np.uint16)
    gray16[1::2, ::2] = 0x1234
    gray16[0, 0] = 0x1235  # differs from the key by one step: opaque
    forms["gray 16-bit tRNS"] = (encode(Image.fromarray(gray16), "PNG", transparency=0x1234),
                                 np.repeat(gray16[..., None] / 257.0, 3, axis=2), (gray16 != 0x1234).astype(float))
    rgb = rng.integers(0, 256, (6, 9, 3), dtype=np.uint8)
    rgb[::2, 1::2] = (5, 6, 7)
    forms["RGB 8-bit tRNS"] = (encode(Image.fromarray(rgb), "PNG", transparency=(5, 6, 7)), rgb.astype(float),
                               (rgb != (5, 6, 7)).any(axis=2).astype(float))
    rgb16 = rng.integers(0, 65536, (6, 9, 3), dtype=np.uint16)
    key = (0x1234, 0x5678, 0x9ABC)
    rgb16[::2, ::2] = key
    rgb16[1, 1] = (0x1234, 0x5678, 0x9A00)  # same high bytes as the key: opaque all the same
    forms["RGB 16-bit tRNS"] = (rgb16_png(rgb16, key), (rgb16 >> 8).astype(float),
                                (rgb16 != key).any(axis=2).astype(float))
    return forms


TRANSPARENCY_FORMS = _transparency_forms()


@pytest.mark.parametrize("form", sorted(TRANSPARENCY_FORMS))
def test_every_transparency_form_shows_the_background_or_keeps_its_alpha(form):
    data, colours, alpha = TRANSPARENCY_FORMS[form]
    height, width = alpha.shape
    background = (0, 0, 255)
    spec = ImageSpec(height, width, interpolation="nearest", scale=1.0, background=background)
    composited = colours * alpha[..., None] + np.asarray(background, float) * (1 - alpha[..., None])
    # 8-bit compositing rounds once; 16-bit gray keeps its fraction.
    np.testing.assert_allclose(preprocess_bytes(data, spec).reshape(height, width, 3), composited, atol=1.0)
    kept = preprocess_bytes(data, ImageSpec(height, width, color_mode="RGBA", interpolation="nearest",
                                            scale=1.0)).reshape(height, width, 4)
    np.testing.assert_array_equal(kept[..., 3], np.round(alpha * 255))
    visible = alpha > 0
    np.testing.assert_allclose(kept[..., :3][visible], colours[visible], atol=1.0 if "WebP" in form else 1e-3)


def test_16bit_rgb_with_a_transparency_key_keeps_its_exif_orientation():
    samples = np.zeros((4, 6, 3), dtype=np.uint16)
    samples[:, :3] = (0x1234, 0x5678, 0x9ABC)  # transparent left half
    samples[:, 3:] = (65535, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 3  # upside down: the transparent half ends up on the right
    data = rgb16_png(samples, (0x1234, 0x5678, 0x9ABC))
    data = data[:33] + _png_chunk(b"eXIf", exif.tobytes()) + data[33:]
    out = preprocess_bytes(data, ImageSpec(4, 6, interpolation="nearest", background=(0, 255, 0)))
    np.testing.assert_array_equal(out.reshape(4, 6, 3)[:, :3], np.tile([1.0, 0.0, 0.0], (4, 3, 1)))
    np.testing.assert_array_equal(out.reshape(4, 6, 3)[:, 3:], np.tile([0.0, 1.0, 0.0], (4, 3, 1)))


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_16bit_gray_with_a_transparency_key_resizes_like_its_8bit_twin(interpolation):
    gray16 = np.kron(np.random.default_rng(2).integers(0, 256, (6, 6)), np.ones((4, 4))).astype(np.uint16) * 257
    gray16[:8, :8] = 0
    twin8 = (gray16 // 257).astype(np.uint8)
    for color_mode in ("RGB", "RGBA", "L"):
        spec = ImageSpec(10, 7, color_mode=color_mode, interpolation=interpolation, background=(40, 90, 250))
        wide = preprocess_bytes(encode(Image.fromarray(gray16), "PNG", transparency=0), spec)
        narrow = preprocess_bytes(encode(Image.fromarray(twin8, "L"), "PNG", transparency=0), spec)
        if color_mode == "RGBA":
            # Colours under a faint alpha are rounded away by 8-bit premultiplication: compare them weighted.
            wide, narrow = (np.concatenate([v[:, :3] * v[:, 3:], v[:, 3:]], axis=1) for v in
                            (wide.reshape(-1, 4), narrow.reshape(-1, 4)))
        # Pillow's 8-bit resize rounds and clamps between its two passes, so at edges where bicubic and
        # lanczos overshoot the two differ by a few 1/255; a pixel composited wrongly is off by ~100/255.
        np.testing.assert_allclose(wide, narrow, atol=6 / 255, err_msg=color_mode)


# --------------------------------------------------------------------------- TIFF orientation

_UPRIGHT_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                      4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
                      6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}


@pytest.mark.parametrize("compression", ["raw", "group4", "tiff_lzw", "tiff_adobe_deflate", "jpeg"])
@pytest.mark.parametrize("orientation", range(2, 9))
def test_tiff_orientation_follows_exif_transpose_whichever_decoder_reads_it(compression, orientation):
    # Pillow's TIFF decoders (libtiff for compressed files) turn the image upright themselves.
    bits = np.zeros((6, 10), dtype=bool)
    bits[:2, :3] = True  # marks the stored top-left corner
    bits[4:, 7:] = True
    bits[0, 9] = True  # no turn or flip maps this picture onto itself
    stored = Image.fromarray(bits) if compression == "group4" else Image.fromarray(quadrants(10, 6))
    exif = Image.Exif()
    exif[0x0112] = orientation
    options: dict[str, Any] = {"quality": 95} if compression == "jpeg" else {}
    data = encode(stored, "TIFF", compression=compression, exif=exif.tobytes(), **options)
    upright = stored.transpose(_UPRIGHT_TRANSPOSE[orientation])
    atol = 12 / 255 if compression == "jpeg" else 1e-6
    for exif_transpose, expected in ((True, upright), (False, stored)):
        spec = ImageSpec(expected.height, expected.width, interpolation="nearest", exif_transpose=exif_transpose)
        np.testing.assert_allclose(preprocess_bytes(data, spec),
                                   np.asarray(expected.convert("RGB"), dtype=np.float32).reshape(-1) / 255,
                                   atol=atol, err_msg=f"exifTranspose={exif_transpose}")


# --------------------------------------------------------------------------- formats

def test_avif_takes_the_first_frame_and_is_refused_by_its_header_before_decoding(monkeypatch):
    from PIL import AvifImagePlugin

    frames = [Image.new("RGB", (64, 32), color) for color in ((250, 0, 0), (0, 250, 0))]
    data = encode(frames[0], "AVIF", save_all=True, append_images=frames[1:], quality=95, subsampling="4:4:4")
    assert Image.open(io.BytesIO(data)).n_frames == 2
    np.testing.assert_allclose(preprocess_bytes(data, ImageSpec(2, 2)).reshape(4, 3), [[250 / 255, 0, 0]] * 4,
                               atol=6 / 255)
    monkeypatch.setattr(AvifImagePlugin.AvifImageFile, "load", lambda self: pytest.fail("decoded"))
    with pytest.raises(SourceError, match="^too_many_pixels"):
        preprocess_bytes(data, ImageSpec(2, 2, max_pixels=64 * 32 - 1))


def test_heic_is_refused_by_its_header_before_decoding(monkeypatch, image_corpus):
    from pillow_heif.as_plugin import HeifImageFile

    _, cases = image_corpus
    heic = next(c for c in cases if c.name == "heic")
    assert preprocess_bytes(heic.data, ImageSpec(4, 8)).shape == (96,)
    monkeypatch.setattr(HeifImageFile, "load", lambda self: pytest.fail("decoded"))
    with pytest.raises(SourceError, match="^too_many_pixels"):
        preprocess_bytes(heic.data, ImageSpec(4, 8, max_pixels=64 * 32 - 1))


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", ["avif", "heic"])
def test_damaged_avif_and_heic_raise_only_source_error_and_cuts_are_decode_errors(image_corpus, name):
    _, cases = image_corpus
    data = next(c for c in cases if c.name == name).data
    rng = random.Random(7)
    for trial in range(120):
        damaged = bytearray(data)
        if trial % 2:
            damaged = damaged[: rng.randrange(64, len(damaged))]  # the ftyp box survives: still AVIF/HEIC
        else:
            for _ in range(rng.randint(1, 8)):
                damaged[rng.randrange(64, len(damaged))] = rng.randrange(256)
        try:
            out = preprocess_bytes(bytes(damaged), ImageSpec(6, 5))
        except SourceError as error:
            assert error.code == "decode" if trial % 2 else error.code in REASON_CODES, error.reason
        else:
            assert np.isfinite(out).all()


def test_heic_without_the_extra_names_the_extra_to_install(monkeypatch, image_corpus):
    from sparkimg_ml.image import decode as image_decode

    _, cases = image_corpus
    heic = next(c for c in cases if c.name == "heic")
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # import fails as if not installed
    image_decode._heif_available.cache_clear()
    try:
        with pytest.raises(SourceError) as caught:
            preprocess_bytes(heic.data, ImageSpec(4, 4))
    finally:
        image_decode._heif_available.cache_clear()
    assert caught.value.reason == "unsupported_format: HEIC (install sparkimg_ml[heif])"


def test_refused_formats_are_named_in_the_reason(image_corpus):
    _, cases = image_corpus
    refused = [c for c in cases if c.name.startswith("refused_")]
    assert len(refused) == len(REFUSED_PILLOW_FORMATS)
    for case, (fmt, _, _) in zip(refused, REFUSED_PILLOW_FORMATS):
        with pytest.raises(SourceError) as caught:
            preprocess_bytes(case.data, ImageSpec(4, 4))
        assert caught.value.reason.startswith(f"unsupported_format: {fmt}"), (case.name, caught.value.reason)


# --------------------------------------------------------------------------- colour profiles

@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF", "WEBP"])
def test_color_profile_srgb_converts_an_embedded_wide_gamut_profile_like_imagecms(fmt):
    icc = wide_gamut_icc_profile()
    stored = random_image(12, 8, seed=3)
    options: dict[str, Any] = {"quality": 100} if fmt in ("JPEG", "WEBP") else {}
    data = encode(stored, fmt, icc_profile=icc, lossless=True, **options) if fmt == "WEBP" else \
        encode(stored, fmt, icc_profile=icc, **options)
    decoded = Image.open(io.BytesIO(data)).convert("RGB")
    spec = ImageSpec(8, 12, interpolation="nearest", scale=1.0)
    as_stored = preprocess_bytes(data, spec)
    converted = preprocess_bytes(data, spec.replace(color_profile="srgb"))
    np.testing.assert_array_equal(as_stored, np.asarray(decoded, dtype=np.float32).reshape(-1))
    np.testing.assert_array_equal(converted,
                                  np.asarray(to_srgb_with_imagecms(decoded, icc), dtype=np.float32).reshape(-1))
    assert np.abs(converted - as_stored).max() >= 20  # a wide gamut moves colours visibly


def test_color_profile_keeps_alpha_and_ignores_profiles_that_cannot_apply():
    icc = wide_gamut_icc_profile()
    rgba = random_image(6, 4, seed=8, mode="RGBA")
    spec = ImageSpec(4, 6, interpolation="nearest", scale=1.0, color_mode="RGBA", color_profile="srgb")
    out = preprocess_bytes(encode(rgba, "PNG", icc_profile=icc), spec).reshape(4, 6, 4)
    np.testing.assert_array_equal(out[..., 3], np.asarray(rgba)[..., 3])
    np.testing.assert_array_equal(out[..., :3], np.asarray(to_srgb_with_imagecms(rgba.convert("RGB"), icc)))
    plain = random_image(6, 4, seed=9)
    expected = preprocess_bytes(encode(plain), spec)
    for unusable in (b"not an ICC profile at all", icc[:200]):
        np.testing.assert_array_equal(preprocess_bytes(encode(plain, "PNG", icc_profile=unusable), spec), expected)


def test_color_profile_is_a_param_recorded_in_the_metadata():
    stage = _Stage().setColorProfile("SRGB")
    assert stage.getColorProfile() == "srgb" and stage._image_spec().color_profile == "srgb"
    assert stage._image_spec().metadata()["colorProfile"] == "srgb"
    assert ImageSpec().metadata()["colorProfile"] == "ignore"
    with pytest.raises(ValueError, match="colorProfile"):
        _Stage().setColorProfile("display-p3")
    with pytest.raises(ValueError, match="color_profile"):
        ImageSpec(color_profile="adobe")


def test_reducing_gap_is_a_param_recorded_in_the_metadata():
    stage = _Stage().setReducingGap(2)
    assert stage.getReducingGap() == 2.0 and isinstance(stage.getReducingGap(), float)
    assert stage._image_spec().reducing_gap == 2.0 and stage._image_spec().metadata()["reducingGap"] == 2.0
    assert _Stage().getReducingGap() == 0.0 and ImageSpec().metadata()["reducingGap"] == 0.0
    assert _Stage().setReducingGap(0)._image_spec() == ImageSpec()


def test_optional_decoders_load_only_when_an_image_needs_them():
    import subprocess

    probe = ("import sys, sparkimg_ml; from sparkimg_ml.image import ImageSpec; ImageSpec(color_profile='srgb'); "
             "print(sorted(m for m in ('pillow_heif', 'PIL.ImageCms') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"
