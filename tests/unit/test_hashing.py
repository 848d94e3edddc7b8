"""Perceptual hashes (no Spark): the bits of the ``imagehash`` package on the test corpus and on photos.

The reference is ``imagehash`` itself, on images prepared with Pillow alone
(EXIF orientation applied with ``ImageOps.exif_transpose``, transparency
composited onto white), so these tests check the decode-to-gray path and the
hash arithmetic against an independent implementation.
"""

from __future__ import annotations

import io

import imagehash
import numpy as np
import pytest
import pywt
import scipy.fftpack
from image_corpus import build_corpus
from PIL import Image, ImageOps, UnidentifiedImageError
from sklearn.datasets import load_sample_images

from sparkimg_ml import ImageHasher, SourceError
from sparkimg_ml.image import hashing
from sparkimg_ml.image.hashing import (
    HASH_TYPES,
    WHASH_FACTOR,
    bits_to_int64,
    hamming,
    int64_to_bits,
)

REFERENCE = {"ahash": imagehash.average_hash, "dhash": imagehash.dhash, "phash": imagehash.phash}
#: Pixel modes whose gray values imagehash does not define the way the library does: Pillow's
#: convert("L") clips 16/32-bit and float pixels instead of scaling them to 8 bits.
WIDE_MODES = {"I", "I;16", "I;16B", "I;16L", "F"}
#: imagehash.whash with its default scale (the largest power of two below the short side) against
#: the library's fixed scale (8 * hashSize): most measured bits agree (see test below).
WHASH_NATURAL_SCALE_BOUND = {8: 4, 16: 12}  # measured maxima: 2 and 8


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _photos() -> list[bytes]:
    """Crops of scikit-learn's two sample photographs, of many sizes and aspect ratios, as PNG and JPEG."""
    rng = np.random.default_rng(3)
    encoded = []
    for photo in load_sample_images().images:
        for _ in range(6):
            top, left = rng.integers(0, 180), rng.integers(0, 280)
            height, width = rng.integers(40, 240), rng.integers(40, 350)
            crop = Image.fromarray(photo[top:top + height, left:left + width])
            encoded.append(_encode(crop, "PNG"))
            encoded.append(_encode(crop, "JPEG", quality=int(rng.integers(50, 96))))
    return encoded


def _reference_image(data: bytes) -> Image.Image | None:
    """What the library hashes, prepared with Pillow alone; None for pixel modes imagehash reads otherwise
    and for formats plain Pillow cannot open (HEIC: the library decodes it with the ``[heif]`` extra)."""
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        return None
    image.load()
    if image.mode in WIDE_MODES:
        return None
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA", "P") and (image.mode != "P" or "transparency" in image.info):
        rgba = image.convert("RGBA")
        base = Image.new("RGB", rgba.size, (255, 255, 255))
        base.paste(rgba, (0, 0), rgba)
        return base
    if "transparency" in image.info:
        rgba = image.convert("RGBA")
        base = Image.new("RGB", rgba.size, (255, 255, 255))
        base.paste(rgba, (0, 0), rgba)
        return base
    return image


@pytest.fixture(scope="module")
def sources() -> list[tuple[str, bytes]]:
    corpus = [(case.name, case.data) for case in build_corpus()
              if case.error is None and not case.params.get("colorProfile")]
    return corpus + [(f"photo_{i}", data) for i, data in enumerate(_photos())]


def _whash_reference(image: Image.Image, hash_size: int, image_scale: int | None) -> tuple[np.ndarray, np.ndarray]:
    """imagehash.whash's bits, and how far each coefficient is from the median (to see float ties)."""
    bits = imagehash.whash(image, hash_size, image_scale=image_scale).hash.flatten()
    scale = image_scale or 2 ** int(np.log2(min(image.size)))
    pixels = np.asarray(image.convert("L").resize((scale, scale), Image.Resampling.LANCZOS)) / 255.0
    levels = int(np.log2(scale))
    coeffs = list(pywt.wavedec2(pixels, "haar", level=levels))
    coeffs[0] *= 0
    low = pywt.wavedec2(pywt.waverec2(coeffs, "haar"), "haar", level=levels - int(np.log2(hash_size)))[0]
    return bits, np.abs(low.flatten() - np.median(low))


@pytest.mark.parametrize("hash_type", ["ahash", "dhash"])
@pytest.mark.parametrize("hash_size", [8, 5, 16])
def test_hashes_equal_imagehash_bit_for_bit(sources, hash_type, hash_size):
    stage = ImageHasher(hashType=hash_type, hashSize=hash_size, outputFormat="vector")
    compared = 0
    for name, data in sources:
        reference = _reference_image(data)
        if reference is None:
            continue
        expected = REFERENCE[hash_type](reference, hash_size).hash.flatten().astype(np.float64)
        np.testing.assert_array_equal(stage.hash(data), expected, err_msg=name)
        compared += 1
    assert compared >= 40


@pytest.mark.parametrize("hash_size", [8, 5, 16])
def test_phash_equals_imagehash_except_float_ties(sources, hash_size):
    """Equal bits, except where a DCT coefficient equals the median in exact arithmetic (flat or blocky
    images): scipy's FFT leaves it 1e-13 on either side, the library rounds it to an exact tie."""
    stage = ImageHasher(hashType="phash", hashSize=hash_size, outputFormat="vector")
    compared = ties = 0
    for name, data in sources:
        reference = _reference_image(data)
        if reference is None:
            continue
        expected = imagehash.phash(reference, hash_size).hash.flatten()
        side = 4 * hash_size
        pixels = np.asarray(reference.convert("L").resize((side, side), Image.Resampling.LANCZOS))
        low = scipy.fftpack.dct(scipy.fftpack.dct(pixels, axis=0), axis=1)[:hash_size, :hash_size].flatten()
        differs = stage.hash(data).astype(bool) != expected
        assert np.all(np.abs(low - np.median(low))[differs] < 1e-6), name
        compared += 1
        ties += int(differs.any())
    assert compared >= 40
    assert ties <= 3  # only the flat and blocky corpus pictures


@pytest.mark.parametrize("hash_size", [4, 8, 16])
def test_whash_equals_imagehash_at_the_same_scale_except_float_ties(sources, hash_size):
    """Against imagehash.whash(image_scale=8 * hashSize): equal bits, except where pywt's float round trip
    puts a coefficient that equals the median 1e-16 above it (the library sums integers: exact ties)."""
    stage = ImageHasher(hashType="whash", hashSize=hash_size, outputFormat="vector")
    ties = 0
    for name, data in sources:
        reference = _reference_image(data)
        if reference is None:
            continue
        expected, gap = _whash_reference(reference, hash_size, WHASH_FACTOR * hash_size)
        differs = stage.hash(data).astype(bool) != expected
        assert np.all(gap[differs] < 1e-9), name
        ties += int(differs.sum())
    assert ties <= 5


@pytest.mark.parametrize("hash_size", [8, 16])
def test_whash_at_imagehash_default_scale_stays_within_the_documented_bound(sources, hash_size):
    """imagehash's default wHash scale follows the source size; a fixed-size decode cannot, so bits differ
    where a block mean sits near the median. The Hamming distance stays within the documented bound."""
    stage = ImageHasher(hashType="whash", hashSize=hash_size, outputFormat="vector")
    distances = []
    for _, data in sources:
        reference = _reference_image(data)
        if reference is None or min(reference.size) < hash_size:
            continue
        expected = imagehash.whash(reference, hash_size).hash.flatten()
        distances.append(int((stage.hash(data).astype(bool) != expected).sum()))
    assert len(distances) >= 30
    assert max(distances) <= WHASH_NATURAL_SCALE_BOUND[hash_size]
    assert np.mean(distances) <= WHASH_NATURAL_SCALE_BOUND[hash_size] / 3


@pytest.mark.parametrize("hash_type", HASH_TYPES)
def test_long_form_is_the_twos_complement_of_imagehash_hex(sources, hash_type):
    stage = ImageHasher(hashType=hash_type)
    values = stage.hash([data for _, data in sources[-8:]])
    assert values.dtype == np.int64
    for value, (_, data) in zip(values, sources[-8:]):
        if hash_type == "whash":
            expected = str(imagehash.whash(_reference_image(data), 8, image_scale=64))
        else:
            expected = str(REFERENCE[hash_type](_reference_image(data)))
        assert f"{int(value) % 2 ** 64:016x}" == expected
    assert any(v < 0 for v in values) or all(int(v) < 2 ** 63 for v in values)


def test_bit_conversions_round_trip_and_hamming_counts_differing_bits():
    rng = np.random.default_rng(0)
    bits = rng.random((50, 64)) < 0.5
    values = bits_to_int64(bits)
    np.testing.assert_array_equal(int64_to_bits(values, 64), bits)
    unsigned = [int("".join("1" if b else "0" for b in row), 2) for row in bits]
    assert [int(v) % 2 ** 64 for v in values] == unsigned
    np.testing.assert_array_equal(hamming(values[:-1], values[1:]), (bits[:-1] != bits[1:]).sum(axis=1))
    with pytest.raises(ValueError, match="does not fit 64 bits"):
        bits_to_int64(np.zeros((1, 65), bool))


def test_hash_params_are_checked_with_messages_saying_what_to_do():
    with pytest.raises(ValueError, match="whash needs a hashSize that is a power of two"):
        ImageHasher(hashType="whash", hashSize=6, outputFormat="vector")
    with pytest.raises(ValueError, match="more than a long holds; use hashSize <= 8 or outputFormat='vector'"):
        ImageHasher(hashSize=9)
    with pytest.raises(ValueError, match=r"hashSize must be in \[2, 32\]"):
        ImageHasher(hashSize=33, outputFormat="vector")
    with pytest.raises(ValueError, match="hashType must be one of"):
        ImageHasher(hashType="colorhash")
    with pytest.raises(TypeError, match="unknown Param 'imageSize'"):
        ImageHasher(imageSize=[8, 8])
    assert ImageHasher(hashType="PHASH").getHashType() == "phash"
    assert hashing.hash_image_size("dhash", 4) == (4, 5)


def test_hash_without_spark_reads_paths_and_reports_bad_images(tmp_path):
    photo = _photos()[1]
    path = tmp_path / "photo.jpg"
    path.write_bytes(photo)
    stage = ImageHasher(hashType="dhash")
    assert stage.hash(str(path)) == stage.hash(photo)
    assert isinstance(stage.hash(photo), int)
    with pytest.raises(SourceError, match="decode"):
        stage.hash(b"not an image at all")
