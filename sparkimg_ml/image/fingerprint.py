"""Preprocessing fingerprints: one digest of everything that determines a stage's output values.

A model trained on features made one way must be served with features made the
same way. Every image stage describes what determines its values (its class, its
image Params as the executors see them, the decoder libraries' versions, the
model's SHA-256 for the embedder) as a JSON-native dict, the *components*; the
*digest* is the SHA-256 of their canonical JSON. The pair is recorded in the
output column's metadata and saved with the stage, so serving code can check that
it runs the preprocessing a model was trained with, and a cache of outputs can
tell which rows a change of Params invalidates.

Column Params (``inputCol``, ``errorCol``), row handling and fetching Params are
not part of it: they decide which rows get values, not what the values are.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import PIL
from PIL import features

from . import opencv

#: Bump when a change of this library alters output values for the same Params
#: and decoder versions, so fingerprints made before and after the change differ.
ALGORITHM_VERSION = 1


def decoder_versions(opencv_decodes: bool = False) -> dict[str, str]:
    """Versions of the decoding libraries whose output the values depend on.

    Pillow's resampling and the JPEG library's IDCT (libjpeg-turbo) can change
    pixel values between versions; the PNG fast path is bit-identical to Pillow
    (tested), so it is not listed. OpenCV is listed when it decodes some images
    (``decoder="auto"``, see :mod:`.opencv`).

    Examples
    --------
    >>> sorted(decoder_versions())
    ['libjpeg', 'pillow']
    """
    versions = {"pillow": PIL.__version__, "libjpeg": str(features.version("jpg") or "none")}
    if opencv_decodes:
        versions["opencv"] = opencv.version() or "none"
    return versions


def digest_of(components: Mapping[str, Any]) -> str:
    """SHA-256 hex digest of the canonical JSON of ``components`` (sorted keys, no spaces)."""
    canonical = json.dumps(components, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def make_fingerprint(stage: str, **parts: Any) -> dict[str, Any]:
    """The fingerprint of ``stage`` whose values depend on ``parts`` (JSON-native values).

    Returns ``{"digest": ..., "components": {...}}``: the form recorded in column
    metadata and in saved stages.

    Examples
    --------
    >>> first = make_fingerprint("ImageUrlFeaturizer", image={"imageSize": [32, 32]})
    >>> sorted(first["components"])
    ['algorithm', 'decoders', 'image', 'stage']
    >>> first == make_fingerprint("ImageUrlFeaturizer", image={"imageSize": [32, 32]})
    True
    >>> first["digest"] == make_fingerprint("ImageUrlFeaturizer", image={"imageSize": [64, 64]})["digest"]
    False
    """
    image = parts.get("image")
    opencv_decodes = isinstance(image, Mapping) and "opencv" in image.get("decoders", ())
    components = {"stage": stage, "algorithm": ALGORITHM_VERSION, "decoders": decoder_versions(opencv_decodes),
                  **parts}
    return {"digest": digest_of(components), "components": components}


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        flat: dict[str, Any] = {}
        for key, inner in value.items():
            flat.update(_flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def fingerprint_differences(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> list[str]:
    """What differs between two fingerprints, one ``"name: expected -> actual"`` line per component.

    Examples
    --------
    >>> a = make_fingerprint("ImageUrlFeaturizer", image={"imageSize": [32, 32], "scale": 1.0})
    >>> b = make_fingerprint("ImageUrlFeaturizer", image={"imageSize": [64, 64], "scale": 1.0})
    >>> fingerprint_differences(a, b)
    ['image.imageSize: [32, 32] -> [64, 64]']
    >>> fingerprint_differences(a, a)
    []
    """
    before = _flatten(expected.get("components", {}))
    after = _flatten(actual.get("components", {}))
    lines = []
    for name in sorted(set(before) | set(after)):
        if before.get(name, "<absent>") != after.get(name, "<absent>"):
            lines.append(f"{name}: {before.get(name, '<absent>')} -> {after.get(name, '<absent>')}")
    if not lines and expected.get("digest") != actual.get("digest"):
        lines.append(f"digest: {expected.get('digest')} -> {actual.get('digest')}")
    return lines
