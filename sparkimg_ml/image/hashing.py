"""Perceptual hashes of decoded gray pixels: average, difference, DCT and wavelet hashes (no Spark).

Every hash here works on a block of gray pixels that the decode loop already
produced at a fixed size (:func:`hash_image_size`): the image is converted to
gray (``L``, Pillow's ITU-R 601-2 luma, transparent pixels composited onto the
background first) and resized with Lanczos, as the ``imagehash`` package does.
The functions take many images at once (``(n, height * width)`` uint8 rows)
and return ``(n, bits)`` booleans in row-major order, the first bit being the
most significant one of the integer form (:func:`bits_to_int64`), so the bits
match ``imagehash``'s ``ImageHash.hash.flatten()`` and its hex string.

* ``ahash``: ``hash_size x hash_size`` pixels, bit = pixel > mean of the pixels.
* ``dhash``: ``hash_size x (hash_size + 1)`` pixels, bit = pixel > its left neighbour.
* ``phash``: ``4 hash_size x 4 hash_size`` pixels, 2-D DCT-II (unnormalised, as
  ``scipy.fftpack.dct``), bit = low-frequency coefficient > their median.
* ``whash``: ``8 hash_size x 8 hash_size`` pixels, Haar low-pass (block means of
  ``8 x 8`` pixels, the mean removed), bit = coefficient > their median. This is
  ``imagehash.whash(image, hash_size, image_scale=8 * hash_size)``; ``imagehash``'s
  default scale follows the source size (the largest power of two below its
  short side), which a decode to a fixed size cannot know, so bits can differ
  from that default where a block mean sits near the median (bound measured in
  ``tests/unit/test_hashing.py``).

Examples
--------
>>> import numpy as np
>>> pixels = np.array([[10, 200, 30, 40]], dtype=np.uint8)  # one 2x2 image
>>> hash_bits(pixels, "ahash", 2).astype(int).tolist()
[[0, 1, 0, 0]]
>>> bits_to_int64(hash_bits(pixels, "ahash", 2)).tolist()
[4]
"""

from __future__ import annotations

import functools

import numpy as np

HASH_TYPES: tuple[str, ...] = ("phash", "dhash", "ahash", "whash")
#: Hash sizes (bits per side) the hashes accept; ``hash_size ** 2`` bits in all.
MIN_HASH_SIZE = 2
MAX_HASH_SIZE = 32
#: The long form holds at most 64 bits: ``hash_size <= 8``.
MAX_LONG_HASH_SIZE = 8
#: ``phash`` resizes to ``PHASH_FACTOR * hash_size`` pixels per side (imagehash's ``highfreq_factor``).
PHASH_FACTOR = 4
#: ``whash`` resizes to ``WHASH_FACTOR * hash_size`` pixels per side (a power of two).
WHASH_FACTOR = 8


def check_hash_params(hash_type: str, hash_size: int) -> None:
    """Raise ``ValueError`` for an unknown hash type or a size it cannot have.

    Examples
    --------
    >>> check_hash_params("whash", 6)
    Traceback (most recent call last):
    ...
    ValueError: whash needs a hashSize that is a power of two (2, 4, 8, 16, 32); got 6.
    """
    if hash_type not in HASH_TYPES:
        raise ValueError(f"hashType must be one of {HASH_TYPES}; got {hash_type!r}.")
    if not MIN_HASH_SIZE <= hash_size <= MAX_HASH_SIZE:
        raise ValueError(f"hashSize must be in [{MIN_HASH_SIZE}, {MAX_HASH_SIZE}]; got {hash_size}.")
    if hash_type == "whash" and hash_size & (hash_size - 1):
        raise ValueError(f"whash needs a hashSize that is a power of two (2, 4, 8, 16, 32); got {hash_size}.")


def hash_image_size(hash_type: str, hash_size: int) -> tuple[int, int]:
    """``(height, width)`` of the gray image each hash is computed from.

    Examples
    --------
    >>> [hash_image_size(t, 8) for t in HASH_TYPES]
    [(32, 32), (8, 9), (8, 8), (64, 64)]
    """
    check_hash_params(hash_type, hash_size)
    if hash_type == "phash":
        return (PHASH_FACTOR * hash_size, PHASH_FACTOR * hash_size)
    if hash_type == "dhash":
        return (hash_size, hash_size + 1)
    if hash_type == "whash":
        return (WHASH_FACTOR * hash_size, WHASH_FACTOR * hash_size)
    return (hash_size, hash_size)


#: Decimals the DCT coefficients are rounded to (they are sums of at most 128 x 128 pixels, < 1e8).
_DCT_DECIMALS = 6


@functools.lru_cache(maxsize=8)
def _dct_matrix(n: int) -> np.ndarray:
    """``scipy.fftpack.dct`` type II, unnormalised: ``y[k] = 2 sum_j x[j] cos(pi k (2j + 1) / 2n)``."""
    k = np.arange(n)[:, None]
    j = np.arange(n)[None, :]
    return 2.0 * np.cos(np.pi * k * (2 * j + 1) / (2 * n))


def _median_bits(values: np.ndarray) -> np.ndarray:
    """``values > median`` per row of an ``(n, m)`` array."""
    return values > np.median(values, axis=1, keepdims=True)


def hash_bits(pixels: np.ndarray, hash_type: str, hash_size: int) -> np.ndarray:
    """The ``(n, hash_size ** 2)`` boolean hashes of ``(n, h * w)`` gray uint8 pixels.

    ``pixels`` are rows of the size :func:`hash_image_size` gives, row-major.
    """
    height, width = hash_image_size(hash_type, hash_size)
    images = np.asarray(pixels).reshape(-1, height, width)
    n = images.shape[0]
    if hash_type == "ahash":
        flat = images.reshape(n, -1).astype(np.float64)
        return flat > flat.mean(axis=1, keepdims=True)
    if hash_type == "dhash":
        return (images[:, :, 1:] > images[:, :, :-1]).reshape(n, -1)
    if hash_type == "phash":
        dct = _dct_matrix(height)
        coefficients = dct @ images.astype(np.float64) @ dct.T  # along axis 0, then axis 1
        # Rounded so that coefficients that are equal in exact arithmetic (flat or blocky images)
        # compare equal whatever the BLAS: a tie never depends on the last bits of a float sum.
        low = np.round(coefficients[:, :hash_size, :hash_size].reshape(n, -1), _DCT_DECIMALS)
        return _median_bits(low)
    # whash: Haar low-pass = block sums (exact integers); removing the overall mean moves
    # every coefficient by the same amount, so it cannot change a comparison with the median.
    block = height // hash_size
    sums = images.astype(np.int64).reshape(n, hash_size, block, hash_size, block).sum(axis=(2, 4))
    return _median_bits(sums.reshape(n, -1))


def bits_to_uint64(bits: np.ndarray) -> np.ndarray:
    """Rows of at most 64 bits as unsigned integers, the first bit the most significant."""
    bits = np.asarray(bits, dtype=bool)
    count = bits.shape[1]
    if count > 64:
        raise ValueError(f"a hash of {count} bits does not fit 64 bits; use hashSize <= {MAX_LONG_HASH_SIZE}.")
    weights = np.left_shift(np.uint64(1), np.arange(count - 1, -1, -1, dtype=np.uint64))
    return (bits.astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64)


def bits_to_int64(bits: np.ndarray) -> np.ndarray:
    """Rows of at most 64 bits as ``long`` values: the two's complement reading of :func:`bits_to_uint64`.

    A 64-bit hash whose first bit is set is negative; ``value & (2**64 - 1)`` (or
    ``value % 2**64`` in Python) gives the unsigned hash back.
    """
    return bits_to_uint64(bits).view(np.int64)


def int64_to_bits(values: np.ndarray, bits: int) -> np.ndarray:
    """The inverse of :func:`bits_to_int64`: ``(n, bits)`` booleans, first bit the most significant."""
    unsigned = np.asarray(values, dtype=np.int64).view(np.uint64)
    shifts = np.arange(bits - 1, -1, -1, dtype=np.uint64)
    return ((unsigned[:, None] >> shifts) & np.uint64(1)).astype(bool)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bits that differ between long hashes ``a`` and ``b`` (element-wise).

    Examples
    --------
    >>> hamming(np.array([0b1011]), np.array([-1])).tolist()
    [61]
    """
    xor = np.bitwise_xor(np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)).view(np.uint64)
    return np.unpackbits(xor.astype(">u8").view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)
