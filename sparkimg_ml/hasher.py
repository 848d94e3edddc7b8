"""``ImageHasher``: an image column becomes a perceptual hash column (pHash, dHash, aHash, wHash)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import numpy as np
from pyspark.ml import Transformer
from pyspark.sql import DataFrame

from .engine.decode import DecodeTask
from .engine.hash import HashTask, hash_batches, hash_block
from .engine.udf import make_image_udf, udf_output_format
from .image.fingerprint import make_fingerprint
from .local import ImageInput, preprocess_with
from .params.fetch import FetchParamValues, HasFetchParams
from .params.fingerprint import HasFingerprint
from .params.hash import HasHashParams, HashParamValues
from .params.keywords import KeywordParams
from .params.persistence import StageReadable, StageWritable
from .params.rows import HasInvalidRowParams, InvalidRowParamValues
from .params.stage import (
    HasColumns,
    add_image_output,
    check_storage_backends,
    checked_image_input,
)
from .schema import FINGERPRINT_KEY, HASH_KEY, HASHER_OUTPUT_COL, LONG, UINT8

if TYPE_CHECKING:
    from typing_extensions import Unpack


class HasherParamValues(HashParamValues, FetchParamValues, InvalidRowParamValues, total=False):
    """Every Param of :class:`ImageHasher` as a constructor keyword (for type checkers)."""

    inputCol: str
    outputCol: str


class ImageHasher(
    Transformer, HasColumns, HasInvalidRowParams, HasHashParams, HasFetchParams,
    KeywordParams, HasFingerprint, StageReadable, StageWritable,
):
    """Compute a perceptual hash of the image in each row: near-identical images get near-identical bits.

    The input column is read exactly as :class:`~sparkimg_ml.ImageUrlFeaturizer`
    reads it (URLs, paths, encoded bytes or the image struct of
    ``spark.read.format("image")``; EXIF orientation applied; transparent pixels
    composited onto ``background``). The image is then turned gray and resized
    with Lanczos, and hashed with ``hashType``:

    * ``"phash"`` (default): the signs of the low-frequency 2-D DCT coefficients
      around their median; robust to re-encoding, resizing and colour changes.
    * ``"dhash"``: whether each pixel is brighter than its left neighbour.
    * ``"ahash"``: whether each pixel is brighter than the mean.
    * ``"whash"``: the Haar low-pass coefficients around their median.

    The bits are those of the ``imagehash`` package (see
    :mod:`sparkimg_ml.image.hashing` for the one documented difference, wHash's
    working scale). ``outputFormat="long"`` (default, ``hashSize <= 8``) stores
    them as one 64-bit signed integer, the two's complement of the unsigned hash
    whose most significant bit is the first bit (``hex(value % 2**64)`` is
    ``str(imagehash_hash)``); ``"vector"`` stores one 0/1 value per bit. The
    Hamming distance between two long hashes is ``bit_count(a ^ b)`` in Spark SQL.
    The column metadata describes the hash under ``hash``.

    Rows whose image cannot be read follow ``handleInvalid`` (``"error"``,
    ``"skip"``, ``"keep"`` with a null hash) and ``errorCol``, as in every image stage.

    Examples
    --------
    >>> from sparkimg_ml import ImageHasher
    >>> hasher = ImageHasher(inputCol="url", hashType="dhash", handleInvalid="keep")
    >>> hasher.getOutputCol(), hasher.getHashSize(), hasher.getOutputFormat()
    ('hash', 8, 'long')
    >>> ImageHasher(inputCol="url", hashSize=16)
    Traceback (most recent call last):
    ...
    ValueError: ImageHasher: hashSize=16 gives 256 bits, more than a long holds; use hashSize <= 8 or outputFormat='vector'.
    >>> hashes = hasher.transform(df)  # doctest: +SKIP
    """

    def __init__(self, **params: Unpack[HasherParamValues]) -> None:
        super().__init__()
        self._setDefault(outputCol=HASHER_OUTPUT_COL)
        self.setParams(**params)

    def outputMetadata(self) -> dict[str, Any]:
        """Column metadata of the output: the ``hash`` description (plus ``ml_attr`` for a Vector).

        Examples
        --------
        >>> meta = ImageHasher(inputCol="url", hashType="ahash", hashSize=4).outputMetadata()
        >>> meta["hash"]["type"], meta["hash"]["bits"], meta["hash"]["format"]
        ('ahash', 16, 'long')
        """
        self._check_params()
        metadata = self._hash_metadata()
        metadata[FINGERPRINT_KEY] = make_fingerprint(type(self).__name__, image=self._hash_spec().metadata(),
                                                     hash=metadata[HASH_KEY])
        return metadata

    def _task(self, kind: str, udf_format: str) -> HashTask:
        decode = DecodeTask(
            spec=self._hash_spec(), fetch=self._fetch_options(), input_kind=kind,
            handle_invalid=self.getHandleInvalid(), input_col=self.getInputCol(),
            features_format=UINT8, stage_name=type(self).__name__,
        )
        return HashTask(decode, self.getHashType(), self.getHashSize(), udf_format)

    def hash(self, images: ImageInput | list[ImageInput]) -> Any:
        """Hash one image or a list of images with this stage's Params, without Spark.

        ``images`` may be URLs, paths, encoded bytes, or a list of them. With
        ``outputFormat="long"`` returns one ``int`` per image (a Python int for one
        image, an int64 array for a list); with ``"vector"`` a float64 array of
        0/1 values of shape ``(bits,)`` or ``(n, bits)``. The values equal this
        stage's Spark output for the same bytes. A bad image raises
        :class:`~sparkimg_ml.SourceError` naming the reason.

        Examples
        --------
        >>> import io
        >>> from PIL import Image
        >>> buffer = io.BytesIO()
        >>> Image.new("RGB", (16, 16), (200, 10, 10)).save(buffer, "PNG")
        >>> ImageHasher(hashType="ahash").hash(buffer.getvalue())
        0
        """
        self._check_params()
        many = isinstance(images, (list, tuple))
        items: list[ImageInput] = list(images) if isinstance(images, (list, tuple)) else [images]
        pixels = preprocess_with(items, self._hash_spec(), self._fetch_options(), np.uint8)
        output_format = self.getOutputFormat()
        hashed = hash_block(pixels, self.getHashType(), self.getHashSize(), output_format)
        if many:
            return hashed
        return int(hashed[0]) if output_format == LONG else hashed[0]

    def _transform(self, dataset: DataFrame) -> DataFrame:
        self._check_params()
        kind = checked_image_input(self, dataset)
        error_col = self.getErrorCol()
        output_format = self.getOutputFormat()
        udf_format = udf_output_format(output_format)
        task = self._task(kind, udf_format)
        check_storage_backends(dataset, type(self).__name__, self.getInputCol(), kind, task.decode.handle_invalid,
                               task.decode.fetch.storage_protocols)
        return add_image_output(
            dataset, uid=self.uid, input_col=self.getInputCol(), kind=kind,
            udf=make_image_udf(functools.partial(hash_batches, task=task), udf_format, kind),
            udf_format=udf_format, output_format=output_format, handle_invalid=task.decode.handle_invalid,
            output_col=self.getOutputCol(), error_col=error_col, metadata=self.outputMetadata(),
        )
