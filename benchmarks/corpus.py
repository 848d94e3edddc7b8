"""Deterministic benchmark corpus built from the photos scikit-learn ships.

:func:`build_corpus` turns the two ``load_sample_images`` photos (427x640) into
``images`` files by random crops and rescales (longest side log-uniform between
~200 and ~1600 px): about 80% baseline or progressive JPEG (quality 70-95), 18%
PNG, 1% grayscale JPEG and 1% RGBA PNG. Next to the files it writes a *wide*
Parquet table, split into ``parts`` files so that Spark reads it as that many
partitions: ``id``, ``path`` (absolute), ``url`` (the server-relative path,
``/images/000042.jpg``, which the benchmark prefixes with a loopback server's
base URL), ``label`` (which photo the crop came from) and ``extra_columns``
filler columns (doubles, longs and short strings), so the benchmarks measure a
featurizer among many pass-through columns.

:func:`build_big_corpus` writes ``rows`` rows whose images are 4000x3000
JPEGs: a few distinct files behind one hard link per row, so every row has its
own path (no de-duplication) while the disk holds only the distinct files.

:func:`build_photo_corpus` writes ``rows`` rows of large photos like phone and
product shots: ``distinct`` JPEGs of 2-12 megapixels (log-uniform), in the
aspect ratios cameras and shops use (4:3, 3:2, 16:9, 1:1, portrait 3:4), each a
random crop of a sample photo upscaled with sensor-like noise and encoded at
quality 85-95 (a fifth progressive), so their file sizes (about 0.2-0.45 bytes per
pixel) are those of real camera JPEGs; rows hard-link them like the big corpus.

Both are cached under a directory named by a hash of their parameters, built
in a temporary directory and renamed into place, so concurrent runs never see a
half-written corpus. The same parameters give the same pixels (for a given
Pillow/libjpeg build), and the manifest records a SHA-256 digest of all files.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import math
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

#: Bump when the generator changes what it writes for the same parameters.
GENERATOR_VERSION = 1

DEFAULT_CACHE_DIR = Path(__file__).resolve().parent / ".corpus"

#: Share of each kind of file, in the order they are drawn.
KINDS = (
    ("jpeg_rgb", 0.80),
    ("png_rgb", 0.18),
    ("jpeg_gray", 0.01),
    ("png_rgba", 0.01),
)


@dataclass(frozen=True)
class CorpusSpec:
    """Parameters of the main corpus; the cache key is a hash of them."""

    images: int = 2000
    seed: int = 7
    parts: int = 4
    extra_columns: int = 200
    min_side: int = 200
    max_side: int = 1600

    def key(self) -> str:
        return _key("corpus", asdict(self))


@dataclass(frozen=True)
class BigCorpusSpec:
    """Parameters of the large-image corpus (rows of 4000x3000 JPEGs by default)."""

    rows: int = 10_000
    distinct: int = 8
    width: int = 4000
    height: int = 3000
    seed: int = 11
    parts: int = 4
    extra_columns: int = 200

    def key(self) -> str:
        return _key("big", asdict(self))


@dataclass(frozen=True)
class PhotoCorpusSpec:
    """Parameters of the large-photo corpus (2-12 MP JPEGs of several aspect ratios)."""

    rows: int = 400
    distinct: int = 40
    min_megapixels: float = 2.0
    max_megapixels: float = 12.0
    seed: int = 13
    parts: int = 4
    extra_columns: int = 200

    def key(self) -> str:
        return _key("photos", asdict(self))


#: Width / height of the photo corpus's shots: phone landscape and portrait, DSLR, video still, product square.
PHOTO_ASPECTS = (4 / 3, 3 / 4, 3 / 2, 16 / 9, 1.0)


@dataclass(frozen=True)
class ImageInfo:
    """One corpus file: where it is and how it was written."""

    id: int
    file: str
    kind: str
    mode: str
    width: int
    height: int
    label: int
    quality: int | None
    progressive: bool


@dataclass(frozen=True)
class Corpus:
    """A built corpus: its directory, Parquet table, file list and digest."""

    root: Path
    table: Path
    images: list[ImageInfo]
    digest: str
    spec: dict[str, Any]

    def path(self, image_id: int) -> Path:
        return self.root / self.images[image_id].file

    def url_path(self, image_id: int) -> str:
        return "/" + self.images[image_id].file

    def describe(self) -> dict[str, Any]:
        kinds: dict[str, int] = {}
        for info in self.images:
            kinds[info.kind] = kinds.get(info.kind, 0) + 1
        sides = [max(info.width, info.height) for info in self.images]
        total_bytes = sum(self.path(i).stat().st_size for i in range(len(self.images)))
        return {
            "root": str(self.root), "spec": self.spec, "digest": self.digest, "files": len(self.images),
            "kinds": kinds, "longest_side_px": {"min": min(sides), "median": int(np.median(sides)),
                                                "max": max(sides)},
            "mean_file_kb": round(total_bytes / len(self.images) / 1024, 1),
        }


def _key(name: str, params: dict[str, Any]) -> str:
    blob = json.dumps({"name": name, "params": params, "version": GENERATOR_VERSION}, sort_keys=True)
    return f"{name}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def sample_photos() -> list[np.ndarray]:
    """The two 427x640 RGB photos that scikit-learn ships (china, flower)."""
    from sklearn.datasets import load_sample_images

    return [np.ascontiguousarray(image) for image in load_sample_images().images]


def _draw_kind(rng: np.random.Generator) -> str:
    u = rng.random()
    for kind, share in KINDS:
        if u < share:
            return kind
        u -= share
    return KINDS[-1][0]


def _render(photo: np.ndarray, rng: np.random.Generator, min_side: int, max_side: int) -> Image.Image:
    """A random crop of ``photo`` rescaled so its longest side is log-uniform in [min_side, max_side]."""
    photo_h, photo_w = photo.shape[:2]
    crop_w = int(rng.integers(photo_w // 4, photo_w + 1))
    aspect = math.exp(rng.uniform(math.log(0.6), math.log(1.7)))
    crop_h = int(min(photo_h, max(photo_h // 4, round(crop_w / aspect))))
    x0 = int(rng.integers(0, photo_w - crop_w + 1))
    y0 = int(rng.integers(0, photo_h - crop_h + 1))
    side = math.exp(rng.uniform(math.log(min_side), math.log(max_side)))
    factor = side / max(crop_w, crop_h)
    size = (max(1, round(crop_w * factor)), max(1, round(crop_h * factor)))
    return Image.fromarray(photo[y0:y0 + crop_h, x0:x0 + crop_w]).resize(size, Image.Resampling.BICUBIC)


def _encode(image: Image.Image, kind: str, rng: np.random.Generator) -> tuple[bytes, ImageInfo]:
    buffer = io.BytesIO()
    quality: int | None = None
    progressive = False
    if kind.startswith("jpeg"):
        if kind == "jpeg_gray":
            image = image.convert("L")
        quality = int(rng.integers(70, 96))
        progressive = bool(rng.random() < 0.25)
        image.save(buffer, "JPEG", quality=quality, progressive=progressive)
    else:
        if kind == "png_rgba":
            # A left-to-right fade keeps the colour data while making alpha matter.
            alpha = np.linspace(255, 40, image.width, dtype=np.float32)
            image = image.convert("RGBA")
            image.putalpha(Image.fromarray(np.tile(alpha.astype(np.uint8), (image.height, 1)), "L"))
        image.save(buffer, "PNG")
    info = ImageInfo(id=-1, file="", kind=kind, mode=image.mode, width=image.width, height=image.height,
                     label=-1, quality=quality, progressive=progressive)
    return buffer.getvalue(), info


def _filler_columns(rows: int, count: int, seed: int) -> dict[str, pa.Array]:
    """``count`` pass-through columns: mostly doubles, some longs and short strings."""
    rng = np.random.default_rng([seed, 1])
    columns: dict[str, pa.Array] = {}
    for j in range(count):
        if j % 10 == 8:
            columns[f"i{j:03d}"] = pa.array(rng.integers(0, 1_000_000, rows))
        elif j % 10 == 9:
            codes = rng.integers(0, 26 ** 3, rows)
            columns[f"s{j:03d}"] = pa.array([f"tag-{c:05d}" for c in codes])
        else:
            columns[f"d{j:03d}"] = pa.array(rng.standard_normal(rows))
    return columns


def write_wide_table(directory: Path, ids: list[int], paths: list[str], urls: list[str],
                     labels: list[int], parts: int, extra_columns: int, seed: int) -> None:
    """Write the wide table as ``parts`` Parquet files of consecutive ids."""
    columns: dict[str, Any] = {
        "id": pa.array(ids, pa.int64()), "path": pa.array(paths, pa.string()),
        "url": pa.array(urls, pa.string()), "label": pa.array(labels, pa.int32()),
    }
    columns.update(_filler_columns(len(ids), extra_columns, seed))
    table = pa.table(columns)
    directory.mkdir(parents=True)
    bounds = np.linspace(0, len(ids), max(1, min(parts, len(ids))) + 1).astype(int)
    for part, (start, stop) in enumerate(itertools.pairwise(bounds)):
        pq.write_table(table.slice(int(start), int(stop - start)), directory / f"part-{part:05d}.parquet")


def _digest(root: Path, files: list[str]) -> str:
    digest = hashlib.sha256()
    for name in sorted(set(files)):
        digest.update(name.encode())
        digest.update((root / name).read_bytes())
    return digest.hexdigest()


def _build_cached(cache_dir: Path, key: str, build: Callable[[Path, Path], dict[str, Any]]) -> Path:
    """Return ``cache_dir/key``, building it with ``build(tmp_dir, final_dir)`` unless present."""
    final = cache_dir / key
    manifest_path = final / "manifest.json"
    if manifest_path.exists():
        if json.loads(manifest_path.read_text()).get("root") == str(final):
            return final
        shutil.rmtree(final)  # the cache was moved: its table names stale absolute paths
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / f".{key}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        manifest = {**build(tmp, final), "root": str(final)}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "manifest.json").exists():  # not a concurrent build that won the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _load(root: Path) -> Corpus:
    manifest = json.loads((root / "manifest.json").read_text())
    return Corpus(root=root, table=root / "table", images=[ImageInfo(**info) for info in manifest["images"]],
                  digest=manifest["digest"], spec=manifest["spec"])


def build_corpus(spec: CorpusSpec = CorpusSpec(), cache_dir: Path = DEFAULT_CACHE_DIR,
                 threads: int | None = None) -> Corpus:
    """Build (or reuse from ``cache_dir``) the main corpus for ``spec``.

    Examples
    --------
    >>> import tempfile
    >>> corpus = build_corpus(CorpusSpec(images=6, parts=2, extra_columns=4), Path(tempfile.mkdtemp()))
    >>> len(corpus.images), sorted(p.name for p in corpus.table.iterdir())
    (6, ['part-00000.parquet', 'part-00001.parquet'])
    """

    def build(tmp: Path, final: Path) -> dict[str, Any]:
        photos = sample_photos()
        (tmp / "images").mkdir()

        def make(image_id: int) -> ImageInfo:
            rng = np.random.default_rng([spec.seed, image_id])
            label = int(rng.integers(len(photos)))
            image = _render(photos[label], rng, spec.min_side, spec.max_side)
            data, info = _encode(image, _draw_kind(rng), rng)
            name = f"images/{image_id:06d}.{'jpg' if info.kind.startswith('jpeg') else 'png'}"
            (tmp / name).write_bytes(data)
            return ImageInfo(**{**asdict(info), "id": image_id, "file": name, "label": label})

        # Pillow releases the GIL while encoding, so threads use every core.
        with ThreadPoolExecutor(threads or os.cpu_count() or 2) as pool:
            images = list(pool.map(make, range(spec.images)))
        return _table_and_manifest(tmp, final, spec, images, images)

    return _load(_build_cached(Path(cache_dir), spec.key(), build))


def _rows_of_distinct_sources(tmp: Path, final: Path, spec: BigCorpusSpec | PhotoCorpusSpec,
                              sources: list[ImageInfo]) -> dict[str, Any]:
    """``spec.rows`` rows cycling over ``sources`` (hard links under ``rows/``), their wide table, the manifest."""
    rows: list[ImageInfo] = []
    for row in range(spec.rows):
        source = sources[row % spec.distinct]
        name = f"rows/{row:06d}.jpg"
        os.link(tmp / source.file, tmp / name)
        rows.append(ImageInfo(**{**asdict(source), "id": row, "file": name}))
    return _table_and_manifest(tmp, final, spec, rows, sources)


def _table_and_manifest(tmp: Path, final: Path, spec: CorpusSpec | BigCorpusSpec | PhotoCorpusSpec,
                        rows: list[ImageInfo], files: list[ImageInfo]) -> dict[str, Any]:
    """Write the wide table of ``rows``; return the manifest (its digest covers the distinct ``files``)."""
    write_wide_table(
        tmp / "table", ids=[r.id for r in rows], paths=[str(final / r.file) for r in rows],
        urls=["/" + r.file for r in rows], labels=[r.label for r in rows],
        parts=spec.parts, extra_columns=spec.extra_columns, seed=spec.seed,
    )
    return {"spec": asdict(spec), "version": GENERATOR_VERSION, "pillow": Image.__version__,
            "digest": _digest(tmp, [f.file for f in files]), "images": [asdict(r) for r in rows]}


def build_big_corpus(spec: BigCorpusSpec = BigCorpusSpec(), cache_dir: Path = DEFAULT_CACHE_DIR) -> Corpus:
    """Build (or reuse) ``spec.rows`` rows of ``spec.width`` x ``spec.height`` JPEGs.

    The ``distinct`` files are crops of the sample photos upscaled to full size
    with mild sensor-like noise, so they compress and decode like camera photos
    rather than like flat upscales.
    """

    def build(tmp: Path, final: Path) -> dict[str, Any]:
        photos = sample_photos()
        (tmp / "src").mkdir()
        (tmp / "rows").mkdir()
        sources: list[ImageInfo] = []
        for index in range(spec.distinct):
            rng = np.random.default_rng([spec.seed, index])
            label = index % len(photos)
            photo = photos[label]
            image = Image.fromarray(photo).resize((spec.width, spec.height), Image.Resampling.BICUBIC)
            noisy = np.asarray(image, dtype=np.int16) + rng.normal(0, 4, (spec.height, spec.width, 3)).astype(np.int16)
            image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
            quality = int(rng.integers(80, 96))
            name = f"src/{index:03d}.jpg"
            image.save(tmp / name, "JPEG", quality=quality)
            sources.append(ImageInfo(id=index, file=name, kind="jpeg_rgb", mode="RGB", width=spec.width,
                                     height=spec.height, label=label, quality=quality, progressive=False))
        return _rows_of_distinct_sources(tmp, final, spec, sources)

    return _load(_build_cached(Path(cache_dir), spec.key(), build))


def _large_photo(photo: np.ndarray, rng: np.random.Generator, megapixels: float) -> Image.Image:
    """A random crop of ``photo`` upscaled to about ``megapixels`` with sensor-like noise."""
    aspect = PHOTO_ASPECTS[int(rng.integers(len(PHOTO_ASPECTS)))]
    width = int(round(math.sqrt(megapixels * 1e6 * aspect)))
    height = int(round(width / aspect))
    photo_h, photo_w = photo.shape[:2]
    # The largest crop of the photo's own size with the shot's aspect, shrunk by up to a half.
    crop_w, crop_h = (photo_w, photo_w / aspect) if photo_w / aspect <= photo_h else (photo_h * aspect, photo_h)
    shrink = rng.uniform(0.5, 1.0)
    crop_w, crop_h = max(8, int(crop_w * shrink)), max(8, int(crop_h * shrink))
    x0 = int(rng.integers(0, photo_w - crop_w + 1))
    y0 = int(rng.integers(0, photo_h - crop_h + 1))
    image = Image.fromarray(photo[y0:y0 + crop_h, x0:x0 + crop_w]).resize((width, height), Image.Resampling.BICUBIC)
    noise = rng.normal(0, rng.uniform(5.0, 9.0), (height, width, 3)).astype(np.float32)
    noisy = np.asarray(image, dtype=np.float32) + noise
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def build_photo_corpus(spec: PhotoCorpusSpec = PhotoCorpusSpec(), cache_dir: Path = DEFAULT_CACHE_DIR,
                       threads: int | None = None) -> Corpus:
    """Build (or reuse) ``spec.rows`` rows of ``spec.distinct`` large photo JPEGs (see the module doc)."""

    def build(tmp: Path, final: Path) -> dict[str, Any]:
        photos = sample_photos()
        (tmp / "src").mkdir()
        (tmp / "rows").mkdir()

        def make(index: int) -> ImageInfo:
            rng = np.random.default_rng([spec.seed, index])
            label = int(rng.integers(len(photos)))
            megapixels = math.exp(rng.uniform(math.log(spec.min_megapixels), math.log(spec.max_megapixels)))
            image = _large_photo(photos[label], rng, megapixels)
            quality = int(rng.integers(85, 96))
            progressive = bool(rng.random() < 0.2)
            name = f"src/{index:03d}.jpg"
            image.save(tmp / name, "JPEG", quality=quality, progressive=progressive)
            return ImageInfo(id=index, file=name, kind="jpeg_rgb", mode="RGB", width=image.width,
                             height=image.height, label=label, quality=quality, progressive=progressive)

        with ThreadPoolExecutor(threads or os.cpu_count() or 2) as pool:
            sources = list(pool.map(make, range(spec.distinct)))
        return _rows_of_distinct_sources(tmp, final, spec, sources)

    return _load(_build_cached(Path(cache_dir), spec.key(), build))
