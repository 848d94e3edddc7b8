"""``fingerprint()``, ``savedFingerprint()`` and ``checkFingerprint()`` for the stages that make values from images.

The fingerprint itself (what it covers, how the digest is made) is
:mod:`sparkimg_ml.image.fingerprint`; this mixin gives every image stage the same
three methods, and the writer in :mod:`.persistence` saves ``fingerprint()`` with
the stage so a loaded stage can say what it was saved with.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..image.fingerprint import fingerprint_differences
from ..schema import FINGERPRINT_KEY

Expected = str | Mapping[str, Any] | None


class HasFingerprint:
    """Mixin: the preprocessing fingerprint of an image stage (found in its ``outputMetadata()``)."""

    #: Set by the stage reader to the fingerprint a loaded stage was saved with.
    _saved_fingerprint: dict[str, Any] | None = None

    def fingerprint(self) -> dict[str, Any]:
        """This stage's preprocessing fingerprint here and now: ``{"digest": ..., "components": {...}}``.

        The components are everything that determines the output values (the stage,
        its image Params, the decoder libraries' versions, and for
        :class:`~sparkimg_ml.ImageEmbedder` the model's SHA-256, onnxruntime's version
        and the execution providers); the digest is their SHA-256. The same dict is in
        the output column's metadata under ``fingerprint`` and saved with the stage.
        """
        # Every image stage records it in its output metadata; this is the same dict.
        return self.outputMetadata()[FINGERPRINT_KEY]  # type: ignore[attr-defined]

    def savedFingerprint(self) -> dict[str, Any] | None:
        """The fingerprint this stage was saved with (``None`` for a stage not loaded from a file,
        or saved before 0.3.0)."""
        return self._saved_fingerprint

    def checkFingerprint(self, expected: Expected = None) -> dict[str, Any]:
        """Raise ``ValueError`` unless this stage computes the values ``expected`` describes; return the fingerprint.

        ``expected`` is a fingerprint dict, its digest string, or a column's metadata
        (``df.schema["features"].metadata``) holding one; by default the fingerprint
        the stage was saved with. The error lists each component that differs, e.g.
        ``decoders.pillow: 11.0.0 -> 12.0.0``.

        Examples
        --------
        >>> from sparkimg_ml import ImageUrlFeaturizer
        >>> training = ImageUrlFeaturizer(inputCol="url", imageSize=[32, 32])
        >>> serving = ImageUrlFeaturizer(inputCol="url", imageSize=[32, 32])
        >>> serving.checkFingerprint(training.fingerprint())["digest"] == training.fingerprint()["digest"]
        True
        >>> serving.setImageSize([64, 64]).checkFingerprint(training.outputMetadata())
        Traceback (most recent call last):
        ...
        ValueError: ImageUrlFeaturizer computes other values than expected: image.imageSize: [32, 32] -> [64, 64]; image.shape: [32, 32, 3] -> [64, 64, 3]
        """
        actual = self.fingerprint()
        wanted: Any = self._saved_fingerprint if expected is None else expected
        stage = type(self).__name__
        if wanted is None:
            raise ValueError(f"{stage}: no fingerprint to check against: the stage was not loaded from a file "
                             "saved by sparkimg_ml 0.3.0 or newer; pass the expected fingerprint, its digest or "
                             "the training column's metadata.")
        if isinstance(wanted, Mapping) and FINGERPRINT_KEY in wanted:
            wanted = wanted[FINGERPRINT_KEY]
        if isinstance(wanted, str):
            if wanted != actual["digest"]:
                raise ValueError(f"{stage} computes other values than expected: digest {wanted} expected, "
                                 f"{actual['digest']} here; compare the components of fingerprint().")
            return actual
        if not isinstance(wanted, Mapping) or "digest" not in wanted:
            raise TypeError("expected must be a fingerprint dict, its digest string or a column's metadata "
                            f"holding one; got {type(wanted).__name__}")
        if wanted["digest"] != actual["digest"]:
            differences = "; ".join(fingerprint_differences(wanted, actual))
            raise ValueError(f"{stage} computes other values than expected: {differences}")
        return actual
