"""decoder="auto": plain JPEGs through OpenCV, within a documented bound of exact Pillow; everything else Pillow.

The references are independent of the library: exact Pillow is ``Image.open(...)
.convert("RGB").resize(..., BICUBIC)`` written here; OpenCV is required (the
``[opencv]`` extra is in the ``test`` extra, and ``make test`` installs both), so
these tests fail rather than skip when it is missing. The Spark output with
``decoder="auto"`` is compared with ``preprocess`` in tests/spark/test_image_parity.py.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from image_corpus import build_corpus
from PIL import Image, ImageDraw

import sparkimg_ml
from sparkimg_ml import ImageUrlFeaturizer
from sparkimg_ml.errors import SourceError
from sparkimg_ml.image import ImageSpec, opencv, preprocess_bytes

AUTO = {"decoder": "auto", "scale": 1.0}  # values on the 0..255 scale


def _jpeg(pixels: np.ndarray, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", **options)
    return buffer.getvalue()


def _decoded(data: bytes, orientation: int = 1) -> Image.Image:
    """Pillow alone: full decode, upright by the EXIF tag, RGB."""
    with Image.open(io.BytesIO(data)) as opened:
        opened.load()
        image: Image.Image = opened
        if orientation != 1:
            image = image.transpose({2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                                     4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
                                     6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
                                     8: Image.Transpose.ROTATE_90}[orientation])
        return image.convert("RGB")


def _resized(image: Image.Image, height: int, width: int) -> np.ndarray:
    return np.asarray(image.resize((width, height), Image.Resampling.BICUBIC), np.float32).reshape(-1)


def _exact(data: bytes, height: int, width: int, orientation: int = 1) -> np.ndarray:
    """Exact Pillow: full decode, upright, RGB, bicubic resize (0..255)."""
    return _resized(_decoded(data, orientation), height, width)


def _took_opencv(data: bytes, spec: ImageSpec) -> bool:
    with Image.open(io.BytesIO(data)) as image:
        return opencv.preprocess_opencv(image, data, spec) is not None


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    from sklearn.datasets import load_sample_images

    return [np.ascontiguousarray(image) for image in load_sample_images().images]


def _photo_jpegs(photos: list[np.ndarray]) -> list[tuple[str, bytes]]:
    """Crops and rescales of the two sample photos, baseline and progressive, gray too."""
    out = []
    for index, photo in enumerate(photos):
        for width, height, progressive in ((1600, 1067, False), (1600, 1067, True), (700, 466, False),
                                           (2400, 1600, True)):
            image = Image.fromarray(photo).resize((width, height), Image.Resampling.BICUBIC)
            out.append((f"photo{index}-{width}-prog{progressive}",
                        _jpeg(np.asarray(image), quality=85, progressive=progressive)))
        gray = np.asarray(Image.fromarray(photo).convert("L").resize((1280, 854)))
        out.append((f"photo{index}-gray", _jpeg(gray, quality=90)))
    return out


def _patterns(side: int = 1200) -> dict[str, np.ndarray]:
    yy, xx = np.mgrid[:side, :side].astype(np.float64)
    zone = (127.5 + 127.5 * np.cos(np.pi * ((xx - side / 2) ** 2 + (yy - side / 2) ** 2) / side)).astype(np.uint8)
    text = Image.new("RGB", (side, side), "white")
    draw = ImageDraw.Draw(text)
    for y in range(0, side, 14):
        draw.text((2, y), "The quick brown fox jumps over the lazy dog 0123456789 " * 4, fill=(0, 0, 0))
    return {
        "zone plate": np.stack([zone] * 3, axis=2),
        "1-px stripes": np.stack([((xx % 2) * 255).astype(np.uint8)] * 3, axis=2),
        "3-px checker": np.stack([(((xx // 3 + yy // 3) % 2) * 255).astype(np.uint8)] * 3, axis=2),
        "noise": np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8),
        "text": np.asarray(text),
    }


SIZES = ((32, 32), (224, 224), (24, 40), (100, 150))


# ------------------------------------------------------------------------------- the path is taken

def test_opencv_is_installed_and_plain_jpegs_take_its_path(photos):
    """Fails when OpenCV is installed but decoder="auto" does not use it for plain JPEGs."""
    assert opencv.available() and opencv.version() == cv2.__version__
    spec = ImageSpec(32, 32, **AUTO)
    for name, data in _photo_jpegs(photos):
        assert _took_opencv(data, spec), name
        fast = preprocess_bytes(data, spec)
        with Image.open(io.BytesIO(data)) as image:
            np.testing.assert_array_equal(fast, opencv.preprocess_opencv(image, data, spec), err_msg=name)
        assert not np.array_equal(fast, preprocess_bytes(data, spec.replace(decoder="pillow"))), name


def test_decoder_pillow_and_ineligible_specs_never_take_the_opencv_path(photos):
    data = _photo_jpegs(photos)[0][1]
    base = ImageSpec(32, 32, **AUTO)
    for changes in ({"decoder": "pillow"}, {"reduced_decode": False}, {"interpolation": "nearest"},
                    {"interpolation": "box"}, {"resize_mode": "crop"},
                    {"color_mode": "L", "mean": (0.0,), "std": (1.0,)},
                    {"color_mode": "RGBA", "mean": (0.0,), "std": (1.0,)},
                    {"reducing_gap": 2.0}):
        spec = base.replace(**changes)
        assert not _took_opencv(data, spec), changes
        np.testing.assert_array_equal(preprocess_bytes(data, spec),
                                      preprocess_bytes(data, spec.replace(decoder="pillow")), err_msg=str(changes))
    # an enlargement (output larger than the image on an axis) is Pillow's too
    small = _jpeg(photos[0][:20, :30])
    assert not _took_opencv(small, ImageSpec(32, 32, **AUTO))


# ------------------------------------------------------------------------------------ the bound

def test_photos_stay_within_the_documented_bound_of_exact_pillow(photos):
    worst_max = worst_mean = 0.0
    for name, data in _photo_jpegs(photos):
        decoded = _decoded(data)
        for height, width in SIZES:
            delta = np.abs(preprocess_bytes(data, ImageSpec(height, width, **AUTO)) - _resized(decoded, height, width))
            worst_max, worst_mean = max(worst_max, delta.max()), max(worst_mean, delta.mean())
            assert delta.max() <= opencv.MAX_ABS_DELTA_PHOTOS, (name, height, width, delta.max())
            assert delta.mean() <= opencv.MAX_MEAN_DELTA, (name, height, width, delta.mean())
    assert worst_mean > 0.1  # the path was taken: values moved


def test_pad_mode_letterboxes_like_the_exact_pillow_path(photos):
    data = _photo_jpegs(photos)[0][1]
    for height, width in ((32, 32), (40, 24)):
        spec = ImageSpec(height, width, resize_mode="pad", pad_color=(9, 99, 199), **AUTO)
        assert _took_opencv(data, spec)
        got = preprocess_bytes(data, spec)
        # the exact mode of the library, itself tested against Pillow's ImageOps.pad
        want = preprocess_bytes(data, spec.replace(decoder="pillow", reduced_decode=False))
        border = (want.reshape(-1, 3) == [9, 99, 199]).all(axis=1)  # letterbox pixels
        assert 0 < border.sum() < height * width
        np.testing.assert_array_equal(got.reshape(-1, 3)[border], want.reshape(-1, 3)[border])  # same geometry
        assert np.abs(got - want).mean() <= opencv.MAX_MEAN_DELTA


def test_adversarial_patterns_stay_within_the_documented_bound_of_exact_pillow():
    for name, pixels in _patterns().items():
        data = _jpeg(pixels, quality=90)
        for height, width in SIZES:
            delta = np.abs(preprocess_bytes(data, ImageSpec(height, width, **AUTO)) - _exact(data, height, width))
            assert delta.max() <= opencv.MAX_ABS_DELTA_PATTERNS, (name, height, width, delta.max())
            assert delta.mean() <= opencv.MAX_MEAN_DELTA_PATTERNS, (name, height, width, delta.mean())


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_by_us_like_pillow(photos, orientation):
    stored = np.asarray(Image.fromarray(photos[1]).resize((1200, 800), Image.Resampling.BICUBIC))
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _jpeg(stored, quality=90, exif=exif.tobytes())
    for height, width in ((32, 32), (30, 50)):
        spec = ImageSpec(height, width, **AUTO)
        assert _took_opencv(data, spec)
        got = preprocess_bytes(data, spec)
        delta = np.abs(got - _exact(data, height, width, orientation))
        # a wrong turn or flip moves the mean by tens of levels
        assert delta.mean() <= opencv.MAX_MEAN_DELTA and delta.max() <= opencv.MAX_ABS_DELTA_PHOTOS
        # exifTranspose=False keeps the stored orientation
        kept = preprocess_bytes(data, spec.replace(exif_transpose=False))
        assert np.abs(kept - _exact(data, height, width)).mean() <= opencv.MAX_MEAN_DELTA


def test_outputs_follow_layout_channel_order_normalisation_and_uint8():
    pixels = np.kron(np.random.default_rng(5).integers(0, 256, (6, 8, 3)), np.ones((100, 100, 1))).astype(np.uint8)
    data = _jpeg(pixels, quality=95, subsampling=0)
    spec = ImageSpec(12, 16, decoder="auto", mean="imagenet", std="imagenet")
    rgb = preprocess_bytes(data, spec.replace(mean=(0.0,), std=(1.0,), scale=1.0)).reshape(12, 16, 3)
    raw = preprocess_bytes(data, spec, out=np.empty(spec.size, np.uint8)).reshape(12, 16, 3)
    np.testing.assert_array_equal(raw, rgb.astype(np.uint8))
    normalised = preprocess_bytes(data, spec).reshape(12, 16, 3)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(normalised, (rgb / 255.0 - mean) / std, atol=1e-5)
    bgr_chw = preprocess_bytes(data, spec.replace(color_mode="BGR", layout="CHW", mean=(0.0,), std=(1.0,), scale=1.0))
    np.testing.assert_array_equal(bgr_chw.reshape(3, 12, 16), rgb[:, :, ::-1].transpose(2, 0, 1))


# ------------------------------------------------------------------ every unusual kind goes to Pillow

#: Corpus cases OpenCV decodes under decoder="auto" (bicubic, a shrink): plain 8-bit RGB/gray JPEGs,
#: EXIF-rotated ones included. Every other case must fall back to Pillow.
OPENCV_CASES = frozenset({"rgb_jpeg", "exif_orientation_6_jpeg", "exif_orientation_8_jpeg",
                          "exif_orientation_3_jpeg", "exif_orientation_2_jpeg", "cmyk_twin_rgb_jpeg"})


def test_every_unusual_kind_of_the_image_corpus_falls_back_to_pillow():
    seen = set()
    for case in build_corpus():
        params = {**case.params, "interpolation": "bicubic", "decoder": "auto"}
        height, width = params.pop("imageSize")
        stage = ImageUrlFeaturizer(inputCol="x", imageSize=[max(1, height // 2), max(1, width // 2)], **params)
        spec = stage._image_spec()
        assert spec.decoder == "auto"
        pillow = spec.replace(decoder="pillow")
        if case.error is not None:
            with pytest.raises(SourceError) as auto_error:
                preprocess_bytes(case.data, spec)
            with pytest.raises(SourceError) as pillow_error:
                preprocess_bytes(case.data, pillow)
            assert auto_error.value.code == pillow_error.value.code == case.error, case.name
            assert auto_error.value.reason == pillow_error.value.reason, case.name
            continue
        try:
            with Image.open(io.BytesIO(case.data)) as image:
                took = opencv.preprocess_opencv(image, case.data, spec) is not None
        except Exception:  # noqa: BLE001 - formats Pillow itself only opens through a plugin (HEIC)
            took = False
        assert took == (case.name in OPENCV_CASES), case.name
        seen.add(case.name) if took else None
        got, want = preprocess_bytes(case.data, spec), preprocess_bytes(case.data, pillow)
        if took:
            # tiny sharp-edged test images: the pattern bound (an area average vs a bicubic kernel)
            assert np.abs(got - want).max() * 255 <= opencv.MAX_ABS_DELTA_PATTERNS, case.name
        else:
            np.testing.assert_array_equal(got, want, err_msg=case.name)
    assert seen == OPENCV_CASES


def test_truncated_and_srgb_converted_jpegs_fall_back_to_pillow(photos):
    data = _photo_jpegs(photos)[0][1]
    spec = ImageSpec(32, 32, **AUTO)
    cut = data[: len(data) * 7 // 10]
    assert not _took_opencv(cut, spec)
    with pytest.raises(SourceError, match="decode: corrupt or truncated"):
        preprocess_bytes(cut, spec)
    from image_corpus import wide_gamut_icc_profile

    buffer = io.BytesIO()
    Image.fromarray(photos[0]).save(buffer, "JPEG", quality=90, icc_profile=wide_gamut_icc_profile())
    tagged = buffer.getvalue()
    assert _took_opencv(tagged, spec)  # colorProfile="ignore": the profile changes nothing
    srgb = spec.replace(color_profile="srgb")
    assert not _took_opencv(tagged, srgb)
    np.testing.assert_array_equal(preprocess_bytes(tagged, srgb), preprocess_bytes(tagged, srgb.replace(decoder="pillow")))


def test_the_metadata_names_the_decoders():
    spec = ImageSpec(32, 32, **AUTO)
    assert spec.metadata()["decoder"] == "auto"
    assert spec.metadata()["decoders"] == ["opencv", "pillow"]
    assert spec.replace(decoder="pillow").metadata()["decoders"] == ["pillow"]
    assert spec.replace(resize_mode="crop").metadata()["decoders"] == ["pillow"]  # never takes the path


def test_without_opencv_decoder_auto_fails_naming_the_extra(photos, monkeypatch):
    data = _photo_jpegs(photos)[0][1]
    spec = ImageSpec(32, 32, **AUTO)
    pillow = preprocess_bytes(data, spec.replace(decoder="pillow"))
    monkeypatch.setattr(opencv, "_cv2", lambda: None)
    assert not opencv.available() and opencv.version() is None
    hint = r"pip install 'sparkimg_ml\[opencv\]'"
    # every image, not only the JPEGs OpenCV would decode: the setting, not the row, is wrong
    for source in (data, _png_bytes(photos[0])):
        with pytest.raises(ImportError, match=hint):
            preprocess_bytes(source, spec)
    with pytest.raises(ImportError, match=hint):
        sparkimg_ml.preprocess(data, imageSize=[32, 32], decoder="auto")
    with pytest.raises(ImportError, match=hint):
        ImageUrlFeaturizer(inputCol="x", decoder="auto").preprocess(data)
    # decoder="pillow" needs nothing more
    np.testing.assert_array_equal(preprocess_bytes(data, spec.replace(decoder="pillow")), pillow)


def _png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def test_decoder_param_validates_and_reaches_the_spec():
    with pytest.raises(ValueError, match="decoder must be one of"):
        ImageUrlFeaturizer(inputCol="x", decoder="fast")
    with pytest.raises(ValueError, match="decoder must be one of"):
        ImageSpec(decoder="opencv")
    from sparkimg_ml import ImageEmbedder

    assert ImageEmbedder().setDecoder("Auto").getDecoder() == "auto"
    assert ImageUrlFeaturizer(inputCol="x").getDecoder() == "pillow"
    stage = ImageUrlFeaturizer(inputCol="x", decoder="auto")
    assert stage._image_spec().decoder == "auto"
    assert stage.outputMetadata()["tensor"]["decoders"] == ["opencv", "pillow"]
