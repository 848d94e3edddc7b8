"""Params of :class:`~sparkimg_ml.hasher.ImageHasher`: the hash, its output form, and the image semantics it keeps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict, TypeVar

from pyspark.ml.param import Param, Params

from ..image import ImageSpec
from ..image.hashing import (
    HASH_TYPES,
    MAX_HASH_SIZE,
    MAX_LONG_HASH_SIZE,
    check_hash_params,
    hash_image_size,
)
from ..schema import HASH_KEY, HASHER_OUTPUT_FORMATS, LONG, ML_ATTR_KEY, VECTOR
from . import converters as conv
from .image import IMAGE_PARAM_DEFAULTS, HasImageParams
from .output import OutputFormatAccessors

#: The image Params a hash keeps from the featurizer: how the image is read, not how it is resized.
HASH_IMAGE_PARAMS: tuple[str, ...] = ("background", "exifTranspose", "reducedDecode", "maxPixels", "colorProfile")


class HashParamValues(TypedDict, total=False):
    """The hash Params as constructor keywords (for type checkers)."""

    hashType: str
    hashSize: int
    outputFormat: str
    background: Sequence[int]
    exifTranspose: bool
    reducedDecode: bool
    maxPixels: int
    colorProfile: str


H = TypeVar("H", bound="HasHashParams")


class HasHashParams(OutputFormatAccessors):
    """Mixin: ``hashType``, ``hashSize``, ``outputFormat`` and the image Params that apply to a hash.

    The image is read as :class:`~sparkimg_ml.ImageUrlFeaturizer` reads it
    (``background``, ``exifTranspose``, ``reducedDecode``, ``maxPixels`` and
    ``colorProfile`` are the featurizer's own Params), then turned gray and
    resized with Lanczos to the hash's working size, as the ``imagehash`` package
    does. ``reducedDecode`` defaults to False here, so the bits equal
    ``imagehash``'s on the same file; True decodes large JPEGs several times
    faster and may flip a bit that sits on a tie.

    Examples
    --------
    >>> class Stage(HasHashParams):
    ...     pass
    >>> stage = Stage()
    >>> stage.getHashType(), stage.getHashSize(), stage.getOutputFormat(), stage.getReducedDecode()
    ('phash', 8, 'long', False)
    >>> spec = stage._hash_spec()
    >>> (spec.height, spec.width, spec.color_mode, spec.interpolation)
    (32, 32, 'L', 'lanczos')
    """

    hashType: Param[str] = Param(
        Params._dummy(), "hashType",
        f"the perceptual hash: one of {', '.join(HASH_TYPES)} (DCT, difference, average, Haar wavelet).",
        typeConverter=conv.one_of("hashType", HASH_TYPES, case_insensitive=True),
    )
    hashSize: Param[int] = Param(
        Params._dummy(), "hashSize",
        f"bits per side of the hash (hashSize**2 bits in all), 2 to {MAX_HASH_SIZE}; at most "
        f"{MAX_LONG_HASH_SIZE} (64 bits) for outputFormat='long'; a power of two for whash.",
        typeConverter=conv.positive_int("hashSize"),
    )
    outputFormat: Param[str] = Param(
        Params._dummy(), "outputFormat",
        "how each row's hash is stored: 'long' (64-bit signed: the two's complement of the unsigned "
        "hash, first bit most significant) or 'vector' (dense Vector of 0/1 values, one per bit).",
        typeConverter=conv.one_of("outputFormat", HASHER_OUTPUT_FORMATS, case_insensitive=True),
    )
    background = HasImageParams.background
    exifTranspose = HasImageParams.exifTranspose
    reducedDecode = HasImageParams.reducedDecode
    maxPixels = HasImageParams.maxPixels
    colorProfile = HasImageParams.colorProfile

    def __init__(self) -> None:
        super().__init__()
        defaults = {name: IMAGE_PARAM_DEFAULTS[name] for name in HASH_IMAGE_PARAMS}
        defaults["reducedDecode"] = False
        self._setDefault(hashType="phash", hashSize=8, outputFormat=LONG, **defaults)

    def _check_params(self) -> None:
        """Refuse a hash type and size that do not go together, or a long too small for the hash."""
        try:
            check_hash_params(self.getHashType(), self.getHashSize())
        except ValueError as error:
            raise ValueError(f"{type(self).__name__}: {error}") from None
        if self.getOutputFormat() == LONG and self.getHashSize() > MAX_LONG_HASH_SIZE:
            raise ValueError(
                f"{type(self).__name__}: hashSize={self.getHashSize()} gives {self.getHashSize() ** 2} bits, "
                f"more than a long holds; use hashSize <= {MAX_LONG_HASH_SIZE} or outputFormat='vector'."
            )

    def getHashType(self) -> str:
        """Gets the value of hashType or its default value."""
        return self.getOrDefault(self.hashType)

    def setHashType(self: H, value: str) -> H:
        """Sets the value of :py:attr:`hashType`."""
        return self._set(hashType=value)

    def getHashSize(self) -> int:
        """Gets the value of hashSize or its default value."""
        return self.getOrDefault(self.hashSize)

    def setHashSize(self: H, value: int) -> H:
        """Sets the value of :py:attr:`hashSize`."""
        return self._set(hashSize=value)

    def getBackground(self) -> list:
        """Gets the value of background or its default value."""
        return self.getOrDefault(self.background)

    def setBackground(self: H, value: list) -> H:
        """Sets the value of :py:attr:`background`."""
        return self._set(background=value)

    def getExifTranspose(self) -> bool:
        """Gets the value of exifTranspose or its default value."""
        return self.getOrDefault(self.exifTranspose)

    def setExifTranspose(self: H, value: bool) -> H:
        """Sets the value of :py:attr:`exifTranspose`."""
        return self._set(exifTranspose=value)

    def getReducedDecode(self) -> bool:
        """Gets the value of reducedDecode or its default value."""
        return self.getOrDefault(self.reducedDecode)

    def setReducedDecode(self: H, value: bool) -> H:
        """Sets the value of :py:attr:`reducedDecode`."""
        return self._set(reducedDecode=value)

    def getMaxPixels(self) -> int:
        """Gets the value of maxPixels or its default value."""
        return self.getOrDefault(self.maxPixels)

    def setMaxPixels(self: H, value: int) -> H:
        """Sets the value of :py:attr:`maxPixels`."""
        return self._set(maxPixels=value)

    def getColorProfile(self) -> str:
        """Gets the value of colorProfile or its default value."""
        return self.getOrDefault(self.colorProfile)

    def setColorProfile(self: H, value: str) -> H:
        """Sets the value of :py:attr:`colorProfile`."""
        return self._set(colorProfile=value)

    def _hash_bits_count(self) -> int:
        return int(self.getHashSize()) ** 2

    def _hash_spec(self) -> ImageSpec:
        """The gray, Lanczos-resized image the hash is computed from."""
        height, width = hash_image_size(self.getHashType(), self.getHashSize())
        return ImageSpec(
            height=height, width=width, color_mode="L", interpolation="lanczos",
            background=tuple(self.getBackground()), exif_transpose=self.getExifTranspose(),
            reduced_decode=self.getReducedDecode(), max_pixels=self.getMaxPixels(),
            color_profile=self.getColorProfile(),
        )

    def _hash_metadata(self) -> dict[str, Any]:
        """Column metadata of the output: the ``hash`` description, plus ``ml_attr`` for a Vector."""
        bits = self._hash_bits_count()
        spec = self._hash_spec()
        description = {
            "type": self.getHashType(), "size": self.getHashSize(), "bits": bits,
            "format": self.getOutputFormat(), "bitOrder": "row-major, first bit most significant",
            "imageSize": [spec.height, spec.width], "interpolation": spec.interpolation,
            "background": list(spec.background), "exifTranspose": spec.exif_transpose,
            "reducedDecode": spec.reduced_decode, "colorProfile": spec.color_profile,
        }
        if self.getOutputFormat() == VECTOR:
            return {ML_ATTR_KEY: {"num_attrs": bits}, HASH_KEY: description}
        return {HASH_KEY: description}
