"""sparkimg_ml: images as first-class features in Apache Spark ML.

Stages
------
ImageUrlFeaturizer
    URL / path / bytes / image-struct column -> normalised dense ``Vector``.
TensorReshaper
    flat vector or array <-> shaped tensor column (HWC, CHW, ...).

``preprocess`` applies the featurizer's image semantics to one image without Spark.
``show_images`` and ``failure_report`` show what the pipeline sees, in notebooks and HTML.
"""

from ._version import __version__
from .errors import REASON_CODES, SourceError
from .featurizer import ImageUrlFeaturizer
from .preview import failure_report, show_images
from .reshaper import TensorReshaper
from .serving import preprocess

__all__ = [
    "__version__", "REASON_CODES", "SourceError", "ImageUrlFeaturizer", "TensorReshaper", "preprocess",
    "show_images", "failure_report",
]
