"""sparkimg_ml: images as first-class features in Apache Spark ML.

Stages
------
ImageUrlFeaturizer
    URL / path / bytes / image-struct column -> normalised dense ``Vector``.
TensorReshaper
    flat vector or array <-> shaped tensor column (HWC, CHW, ...).
ImageEmbedder
    image column -> an ONNX model's embedding (or scores) as a ``Vector``.
ImageHasher
    image column -> a perceptual hash (pHash, dHash, aHash, wHash) as a ``long`` or bit ``Vector``.

``find_duplicates`` finds near-duplicate images (by hash or embedding) with Spark's LSH;
``FeatureCache`` makes re-runs compute only new, changed or failed rows.

``preprocess`` applies the featurizer's image semantics to one image without Spark.
``show_images`` and ``failure_report`` show what the pipeline sees, in notebooks and HTML.
``read_images`` lists folders and globs of image files; ``spread`` gives every core a share of a small table.
"""

from ._version import __version__
from .curation import FeatureCache, find_duplicates
from .deploy import ship
from .embedder import ImageEmbedder
from .errors import REASON_CODES, SourceError
from .featurizer import ImageUrlFeaturizer
from .hasher import ImageHasher
from .local import preprocess, preprocess_fingerprint
from .model import ModelError
from .model.export import export_onnx
from .preview import failure_report, show_images
from .quantize import quantize_onnx
from .reshaper import TensorReshaper
from .sources import read_images, spread

__all__ = [
    "__version__", "REASON_CODES", "SourceError", "ImageUrlFeaturizer", "TensorReshaper", "ImageEmbedder",
    "ModelError", "export_onnx", "quantize_onnx", "preprocess", "preprocess_fingerprint", "show_images", "failure_report", "ship",
    "ImageHasher", "find_duplicates", "FeatureCache", "read_images", "spread",
]
