"""Decode + resize CPU per image under each fast-decoding choice, against an exact full decode.

    python -m benchmarks.bench_decode                 # 300 corpus images, 32x32 and 224x224
    python -m benchmarks.bench_decode --images 100 --repeats 2 --sizes 224

On the benchmark corpus (:func:`benchmarks.corpus.build_corpus`, real-photo crops:
80 % JPEG, 18 % PNG; the first ``--images`` files), one process times
``preprocess_bytes`` on every image under each variant, side by side: for every
image the variants run back to back in a rotating order, ``--repeats`` times, and
each keeps its least CPU time (``time.thread_time``) per image, so background
load hits all of them alike. The variants:

* ``exact`` -- ``reducedDecode=False``: a full-size decode, then Pillow's resize;
  the reference every error is measured against;
* ``draft m3`` -- the default: a JPEG decoded at 1/2, 1/4 or 1/8 size inside
  libjpeg (``Image.draft``) keeping at least 3 decoded pixels per output pixel
  (``REDUCED_DECODE_MARGIN``);
* ``draft m2`` -- the same with a margin of 2 (the module constant patched for
  the run);
* ``draft m3 + gap g`` -- the default plus ``reducingGap=g``: Pillow's
  ``resize(..., reducing_gap=g)``, a box-average ``Image.reduce`` by an integer
  factor before the resampling filter, for every format;
* ``draft m2 + gap 2`` -- both;
* ``draft m3 + fast idct`` -- what-if only, not a library option: libjpeg's
  fast integer IDCT and plain (not "fancy") chroma upsampling, reached through
  the private ``decoderconfig`` draft flag of Pillow's JPEG plugin;
* ``cv2 reduced m2 + area`` / ``cv2 reduced m3 + area`` -- OpenCV
  (``opencv-python-headless``) written here independently of the library:
  ``cv2.imdecode`` with ``IMREAD_REDUCED_COLOR_{2,4,8}`` (libjpeg's DCT scaling,
  decoded side >= 2x / 3x the output) and ``IMREAD_IGNORE_ORIENTATION``, then
  ``cv2.resize(..., INTER_AREA)``; PNGs decoded by ``cv2.imdecode`` at full size;
  images with alpha go to the library's Pillow path (as ``decoder="auto"`` does);
* ``draft m3 + cv2 area`` -- the default Pillow decode (``draft`` m3), then
  ``cv2.resize(..., INTER_AREA)`` instead of Pillow's bicubic resize;
* ``decoder auto`` -- the library's ``decoder="auto"`` (only with OpenCV
  installed): :mod:`sparkimg_ml.image.opencv` for plain JPEGs.

OpenCV runs with ``cv2.setNumThreads(1)`` so that ``time.thread_time`` sees all
of its work (and because the library's callers run one image per thread).

Pillow has no public switch for libjpeg-turbo's fast IDCT or fast upsampling (the
last variant sets a private attribute, which no release promises to keep), and
``simplejpeg``, which exposes both, is not among the library's allowed
dependencies (pyspark, pillow, numpy, requests, scikit-learn; extras pyarrow,
pandas, fsspec, pyspng, onnxruntime, torch), so it is not measured here.

Reported per output size and variant: CPU per image (ms), the ratio of the total
CPU to the default ``draft m3`` (all images, JPEGs only, PNGs only), and the
distance to ``exact`` on the 0..255 scale: the largest ``|delta|`` of any value,
the mean over all values, and the worst image's mean. Bicubic (the default
filter), ``resizeMode="stretch"``, RGB output.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sparkimg_ml.image import ImageSpec, preprocess_bytes
from sparkimg_ml.image import preprocess as _preprocess
from sparkimg_ml.image import render as _render_module

from .corpus import CorpusSpec, build_corpus


def _has_decoder_param() -> bool:
    return "decoder" in ImageSpec.__dataclass_fields__


@dataclass(frozen=True)
class Variant:
    """One way to decode and resize: ImageSpec changes plus, for what-ifs, a patched margin or IDCT."""

    name: str
    changes: dict[str, Any] = field(default_factory=dict)
    margin: int | None = None
    fast_idct: bool = False
    #: A decode + resize written outside the library: (bytes, size) -> RGB values on the 0..255 scale.
    function: Callable[[bytes, int], np.ndarray] | None = None


def _cv2() -> Any:
    import cv2

    cv2.setNumThreads(1)
    return cv2


def has_alpha_or_is_unusual(data: bytes) -> tuple[bool, tuple[int, int], str]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return image.mode not in ("RGB", "L"), image.size, image.format or ""


def cv2_decode_resize(data: bytes, size: int, margin: int) -> np.ndarray:
    """OpenCV alone: reduced-size JPEG decode (decoded side >= ``margin`` x ``size``), INTER_AREA, RGB."""
    cv2 = _cv2()
    unusual, (width, height), fmt = has_alpha_or_is_unusual(data)
    if unusual:  # as decoder="auto": alpha, CMYK, palettes... take the Pillow path
        return preprocess_bytes(data, ImageSpec(size, size, scale=1.0))
    factor = 1
    if fmt == "JPEG":
        for candidate in (8, 4, 2):
            if -(-width // candidate) >= margin * size and -(-height // candidate) >= margin * size:
                factor = candidate
                break
    flags = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
             8: cv2.IMREAD_REDUCED_COLOR_8}[factor] | cv2.IMREAD_IGNORE_ORIENTATION
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    small = cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA)
    return np.asarray(small[:, :, ::-1], dtype=np.float32).reshape(-1)


def pillow_draft_cv2_resize(data: bytes, size: int) -> np.ndarray:
    """The default Pillow decode (``draft``, margin 3), then OpenCV's INTER_AREA resize."""
    from PIL import Image

    cv2 = _cv2()
    with Image.open(io.BytesIO(data)) as image:
        if image.mode not in ("RGB", "L"):
            return preprocess_bytes(data, ImageSpec(size, size, scale=1.0))
        if image.format == "JPEG":
            image.draft("RGB", (size * 3, size * 3))
        pixels = np.asarray(image.convert("RGB"))
    return np.asarray(cv2.resize(pixels, (size, size), interpolation=cv2.INTER_AREA), np.float32).reshape(-1)


def _opencv_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("cv2") is not None


VARIANTS = (
    Variant("exact", {"reduced_decode": False}),
    Variant("draft m3 (default)"),
    Variant("draft m2", margin=2),
    Variant("draft m3 + gap 2", {"reducing_gap": 2.0}),
    Variant("draft m3 + gap 3", {"reducing_gap": 3.0}),
    Variant("draft m2 + gap 2", {"reducing_gap": 2.0}, margin=2),
    Variant("draft m3 + fast idct", fast_idct=True),
    *((
        Variant("cv2 reduced m2 + area", function=lambda data, size: cv2_decode_resize(data, size, 2)),
        Variant("cv2 reduced m3 + area", function=lambda data, size: cv2_decode_resize(data, size, 3)),
        Variant("draft m3 + cv2 area", function=pillow_draft_cv2_resize),
    ) if _opencv_installed() else ()),
    *((Variant("decoder auto", {"decoder": "auto"}),) if _opencv_installed() and _has_decoder_param() else ()),
)
REFERENCE, BASELINE = "exact", "draft m3 (default)"
#: The margin of the OpenCV recipe the ceiling uses when the featurizer runs decoder="auto"
#: (the library's ``OPENCV_DECODE_MARGIN``).
OPENCV_MARGIN = 2


@contextlib.contextmanager
def _patched(variant: Variant) -> Iterator[None]:
    """Apply a variant's what-if changes to the image layer for the duration of one call."""
    original_margin, original_draft = _render_module.REDUCED_DECODE_MARGIN, _preprocess._draft
    if variant.margin is not None:
        _render_module.REDUCED_DECODE_MARGIN = variant.margin
    if variant.fast_idct:
        def draft_fast(image: Any, orientation: int, spec: ImageSpec) -> float:
            reduction = original_draft(image, orientation, spec)
            # Pillow's JPEG decoder reads (scale, draft); draft=1 selects JDCT_FASTEST and plain upsampling.
            image.decoderconfig = (image.decoderconfig[0] if image.decoderconfig else 1, 1)
            return reduction

        _preprocess._draft = draft_fast
    try:
        yield
    finally:
        _render_module.REDUCED_DECODE_MARGIN, _preprocess._draft = original_margin, original_draft


def measure(images: list[tuple[str, bytes]], size: int, repeats: int,
            variants: tuple[Variant, ...] = VARIANTS) -> dict[str, dict[str, float]]:
    """Per variant: CPU per image (ms), ratios to the baseline and errors against the reference."""
    base = ImageSpec(size, size, scale=1.0)  # values on the 0..255 scale
    specs = {v.name: base.replace(**v.changes) for v in variants}
    cpu = {v.name: np.full(len(images), np.inf) for v in variants}
    outputs: dict[str, list[np.ndarray]] = {v.name: [] for v in variants}
    out = np.empty(base.size, np.float32)
    for repeat, (index, (_, data)) in itertools.product(range(repeats), enumerate(images)):
        shift = (index + repeat) % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            with _patched(variant):
                start = time.thread_time_ns()
                if variant.function is not None:
                    out[:] = variant.function(data, size)
                else:
                    preprocess_bytes(data, specs[variant.name], out)
                elapsed = time.thread_time_ns() - start
            cpu[variant.name][index] = min(cpu[variant.name][index], elapsed / 1e6)
            if repeat == 0:
                outputs[variant.name].append(out.copy())
    kinds = np.array([kind for kind, _ in images])
    masks = {"all": np.ones(len(images), bool), "jpeg": kinds == "jpeg", "png": kinds == "png"}
    reference = np.stack(outputs[REFERENCE])
    results: dict[str, dict[str, float]] = {}
    for variant in variants:
        error = np.abs(np.stack(outputs[variant.name]) - reference)
        row = {"ms": float(cpu[variant.name].mean())}
        for label, mask in masks.items():
            baseline = cpu[BASELINE][mask].sum()
            row[f"ratio_{label}"] = float(cpu[variant.name][mask].sum() / baseline) if mask.any() else float("nan")
        row["max_err"] = float(error.max())
        row["mean_err"] = float(error.mean())
        row["worst_image_mean"] = float(error.mean(axis=1).max())
        row["changed"] = float((error.max(axis=1) > 0).mean())
        results[variant.name] = row
    return results


def load_images(count: int) -> list[tuple[str, bytes]]:
    """The first ``count`` corpus files as ``(kind, bytes)``, kind ``jpeg`` or ``png``.

    Each corpus image depends on its id only, so a corpus of ``count`` images holds
    the main corpus's first ``count`` files (and builds in a fraction of the time).
    """
    default = CorpusSpec()
    corpus = build_corpus(dataclasses.replace(default, images=min(count, default.images)))
    chosen = corpus.images[:count]
    return [("jpeg" if info.kind.startswith("jpeg") else "png", corpus.path(info.id).read_bytes()) for info in chosen]


def format_table(size: int, results: dict[str, dict[str, float]]) -> str:
    header = (f"{'variant':24s} {'ms/img':>7s} {'ratio':>6s} {'jpeg':>6s} {'png':>6s} "
              f"{'max|d|':>7s} {'mean|d|':>8s} {'worst img':>9s} {'changed':>7s}")
    lines = [f"{size}x{size}", header]
    for name, row in results.items():
        lines.append(
            f"{name:24s} {row['ms']:7.2f} {row['ratio_all']:6.2f} {row['ratio_jpeg']:6.2f} {row['ratio_png']:6.2f} "
            f"{row['max_err']:7.1f} {row['mean_err']:8.3f} {row['worst_image_mean']:9.3f} {row['changed']:7.0%}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300, help="corpus images to use (default 300)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per image and variant (default 3)")
    parser.add_argument("--sizes", default="32,224", help="square output sizes, comma-separated")
    args = parser.parse_args(argv)
    images = load_images(args.images)
    jpegs = sum(kind == "jpeg" for kind, _ in images)
    print(f"{len(images)} images ({jpegs} JPEG, {len(images) - jpegs} PNG), best of {args.repeats}; "
          f"ratio = CPU / '{BASELINE}'; |d| = distance to '{REFERENCE}' on the 0..255 scale")
    for size in (int(s) for s in args.sizes.split(",")):
        print()
        print(format_table(size, measure(images, size, args.repeats)))


if __name__ == "__main__":
    main()
