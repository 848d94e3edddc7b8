"""Names and defaults every layer shares: output forms, input kinds, metadata keys, stage defaults.

One concept, one name, defined here once. The image and fetching defaults live
with the plain values that carry them to the executors
(:class:`~sparkimg_ml.image.ImageSpec`, :class:`~sparkimg_ml.fetch.FetchOptions`);
the stages, the command line and the docs read every default from the stages'
Params, which take them from here and from those two classes.

This module imports nothing of the package and nothing of Spark.
"""

from __future__ import annotations

# -- how a stage stores each row's output (the ``outputFormat`` Param of every stage) ------------

#: MLlib dense ``Vector`` (float32 values widened to double, as MLlib stores them).
VECTOR = "vector"
#: ``array<float>``, flat in the tensor's layout.
ARRAY = "array"
#: ``binary``, one byte per value: the pixels before ``scale``/``mean``/``std``.
UINT8 = "uint8"
#: Arrays nested one level per dimension (``TensorReshaper`` only).
NESTED = "nested"
#: ``long``: a hash of at most 64 bits, two's complement of the unsigned value (``ImageHasher`` only).
LONG = "long"

FEATURIZER_OUTPUT_FORMATS: tuple[str, ...] = (VECTOR, ARRAY, UINT8)
EMBEDDER_OUTPUT_FORMATS: tuple[str, ...] = (VECTOR, ARRAY)
RESHAPER_OUTPUT_FORMATS: tuple[str, ...] = (NESTED, ARRAY, VECTOR)
HASHER_OUTPUT_FORMATS: tuple[str, ...] = (LONG, VECTOR)
#: The Param name each stage had for its output form before 0.3.0; saved stages that use it
#: still load (see :mod:`sparkimg_ml.params.persistence`).
LEGACY_OUTPUT_FORMAT_PARAM = "outputType"

# -- what an image column holds -------------------------------------------------------------------

#: A URL, path or fsspec URL (``string`` column).
SOURCE = "source"
#: Encoded image bytes (``binary`` column, e.g. ``binaryFile``'s ``content``).
BINARY = "binary"
#: The struct of ``spark.read.format("image")``.
IMAGE_STRUCT = "image_struct"
#: A tensor column the library wrote (previews only).
TENSOR = "tensor"
IMAGE_INPUT_KINDS: tuple[str, ...] = (SOURCE, BINARY, IMAGE_STRUCT)
#: Fields of ``spark.read.format("image")``'s struct that are read.
IMAGE_STRUCT_FIELDS: tuple[str, ...] = ("height", "width", "nChannels", "mode", "data")

# -- column metadata --------------------------------------------------------------------------------

#: Key of the tensor description (shape, layout, dtype, normalisation) in column metadata.
TENSOR_KEY = "tensor"
#: Key of the embedding description (model, output node, dimension) in column metadata.
EMBEDDING_KEY = "embedding"
#: Key of the hash description (type, size, bits, form) in column metadata.
HASH_KEY = "hash"
#: Column metadata key and saved-stage key of the preprocessing fingerprint (``{"digest", "components"}``).
FINGERPRINT_KEY = "fingerprint"
#: MLlib's key for a Vector column's attributes (``{"num_attrs": n}``).
ML_ATTR_KEY = "ml_attr"

# -- rows whose image (or tensor) cannot be read ------------------------------------------------------

HANDLE_INVALID_OPTIONS: tuple[str, ...] = ("error", "skip", "keep")
DEFAULT_HANDLE_INVALID = "error"

# -- stage defaults that no core value carries ---------------------------------------------------------

FEATURIZER_OUTPUT_COL = "features"
EMBEDDER_OUTPUT_COL = "embedding"
RESHAPER_OUTPUT_COL = "tensor"
HASHER_OUTPUT_COL = "hash"

#: Prefix of the flat source-info fields (``source_width``, ...) of an image UDF's result struct.
SOURCE_INFO_PREFIX = "source_"

#: ``ImageEmbedder``'s model Params (``modelUri``, ``modelSha256`` and ``outputNode`` have no default).
MODEL_DEFAULTS: dict[str, object] = {
    "flatten": True,
    "batchSize": 64,
    "intraOpThreads": 0,
}
