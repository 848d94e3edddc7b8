"""``read_images``: a folder, a glob or a list of image files as a table with a ``path`` column."""

from __future__ import annotations

import glob
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: File name endings read as images when a folder is given to the command line.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".avif", ".heic", ".heif")
_GLOB_CHARS = set("*?[{")


def _has_glob(text: str) -> bool:
    return any(char in _GLOB_CHARS for char in text)


def split_glob(pattern: str) -> tuple[str, str | None, bool]:
    """``(base, file-name filter, recursive)`` of a path or glob, as Spark's file listing takes them.

    Hadoop's globs have no ``**``; a pattern whose last part is a file-name glob
    becomes its folder plus ``pathGlobFilter``, and ``**`` means "any depth"
    (``recursiveFileLookup``). A pattern without glob characters is returned as
    is, with no filter.

    Examples
    --------
    >>> split_glob("s3://bucket/photos/**/*.jpg")
    ('s3://bucket/photos', '*.jpg', True)
    >>> split_glob("photos/*.png")
    ('photos', '*.png', False)
    >>> split_glob("photos")
    ('photos', None, False)
    """
    head, sep, last = pattern.rstrip("/").rpartition("/")
    if not sep or not _has_glob(last) or last == "**":
        if "**" in pattern.split("/"):
            raise ValueError(f"read_images: {pattern!r}: '**' must be followed by a file-name pattern, "
                             "e.g. 'photos/**/*.jpg'.")
        return pattern, None, False
    parts = head.split("/")
    if "**" in parts:
        index = parts.index("**")
        if index != len(parts) - 1:
            raise ValueError(f"read_images: {pattern!r}: '**' must come right before the file-name pattern, "
                             "e.g. 'photos/**/*.jpg'.")
        return "/".join(parts[:index]) or ".", last, True
    return head or ".", last, False


def _is_local(path: str) -> bool:
    scheme = urlsplit(path).scheme
    return scheme in ("", "file") or (len(scheme) == 1 and Path(path).drive != "")


def _local(path: str) -> str:
    return urlsplit(path).path if path.startswith("file:") else path


def read_images(
    spark: SparkSession, paths: str | Sequence[str], *, recursive: bool = True,
    pathGlobFilter: str | None = None, with_bytes: bool = False,
) -> DataFrame:
    """A table of the image files under ``paths``, ready for the image stages.

    Parameters
    ----------
    spark : SparkSession
        A classic or Spark Connect session.
    paths : str or sequence of str
        A folder, a file, a glob (``photos/*.png``, ``s3://bucket/photos/**/*.jpg``:
        ``**`` means any depth), or a list of them, on any file system Spark
        reads (local, ``s3a://``, ``gs://``, ``abfss://``, ``hdfs://`` ...).
    recursive : bool
        Look into sub-folders of a folder (``recursiveFileLookup``). Default
        True. A glob's depth is its own: ``photos/*.jpg`` reads that folder
        only, ``photos/**/*.jpg`` any depth.
    pathGlobFilter : str, optional
        Keep only files whose name matches, e.g. ``"*.jpg"`` (Spark's
        ``pathGlobFilter``; a glob's last part sets it).
    with_bytes : bool
        False (default) lists the files only; the stage then reads each file
        itself, in its thread pool. True also reads the bytes in Spark
        (``binaryFile``) into a ``content`` column. See the notes for which to
        choose.

    Returns
    -------
    DataFrame
        ``path`` (string: the file's URI, e.g. ``file:/data/a.jpg``),
        ``modificationTime`` (timestamp), ``size`` (long, bytes) and, with
        ``with_bytes``, ``content`` (binary). Give ``inputCol="path"`` (or
        ``"content"``) to :class:`~sparkimg_ml.ImageUrlFeaturizer` or
        :class:`~sparkimg_ml.ImageEmbedder`.

    Notes
    -----
    Both forms list the files with Spark's ``binaryFile`` source; without
    ``with_bytes`` the ``content`` column is never read (Spark prunes it). A
    missing local folder fails here, before any Spark job, naming it.

    Which form to use depends on where the files are, not on speed:

    - ``with_bytes=True`` reads through Spark's own file systems (its Hadoop
      connectors and their credentials), so the executors need no Python
      back-end for the storage.
    - The path-only table (default) has the stage read each path itself:
      local files, or ``s3a://``, ``gs://``, ``abfss://`` ... with the matching
      extra (``sparkimg_ml[s3]`` ...) installed where the executors run.

    Speed was measured once (``benchmarks/bench_sources.py``, 4,000 16x16 PNG
    files on a local disk featurized at 8x8, ``local[2]`` on a shared two-core
    machine, two runs of each form): ``with_bytes=True`` took 0.76x the time
    of the path-only table (medians 90 s and 118 s). The runs varied widely
    (path-only 62 s and 174 s, ``with_bytes`` 74 s and 106 s) and in each pair
    the form that ran first was the slower one, so that measurement shows
    neither form to be faster on local files.

    Examples
    --------
    >>> from sparkimg_ml import ImageUrlFeaturizer, read_images
    >>> images = read_images(spark, "photos/**/*.jpg")  # doctest: +SKIP
    >>> ImageUrlFeaturizer(inputCol="path", imageSize=224).transform(images)  # doctest: +SKIP
    """
    from pyspark.sql import functions as F

    given = [paths] if isinstance(paths, str) else list(paths)
    if not given or not all(isinstance(p, str) and p for p in given):
        raise ValueError(f"read_images: paths must be a path, a glob or a non-empty list of them; got {paths!r}.")
    bases: list[str] = []
    filters: set[str | None] = set()
    depths: set[bool] = set()
    for path in given:
        base, name_filter, deep = split_glob(path)
        bases.append(base)
        filters.add(name_filter)
        depths.add(deep)
        if _is_local(base) and not _has_glob(base) and not Path(_local(base)).exists():
            raise FileNotFoundError(f"read_images: {base!r} does not exist.")
        if _is_local(base) and _has_glob(base) and not glob.glob(_local(base)):
            raise FileNotFoundError(f"read_images: nothing matches {base!r}.")
    if len(filters) > 1:
        raise ValueError(f"read_images: the paths {given!r} end in different file-name patterns; Spark takes one "
                         "pathGlobFilter per read. Read them separately and union the tables.")
    name_filter = filters.pop()
    if name_filter is not None and len(depths) > 1:
        raise ValueError(f"read_images: some of the globs {given!r} have '**' and some do not; Spark looks into "
                         "sub-folders for all of one read or for none. Read them separately and union the tables.")
    # A folder follows `recursive`; a glob follows its own '**'.
    lookup = recursive if name_filter is None else depths.pop()
    if name_filter is not None and pathGlobFilter is not None and name_filter != pathGlobFilter:
        raise ValueError(f"read_images: pathGlobFilter={pathGlobFilter!r} and the glob's file-name pattern "
                         f"{name_filter!r} disagree; give one of them.")
    reader = spark.read.format("binaryFile").option("recursiveFileLookup", str(lookup).lower())
    if pathGlobFilter or name_filter:
        reader = reader.option("pathGlobFilter", pathGlobFilter or name_filter)
    table = reader.load(bases if len(bases) > 1 else bases[0])
    columns = [F.col("path"), F.col("modificationTime"), F.col("length").alias("size")]
    if with_bytes:
        columns.append(F.col("content"))
    return table.select(*columns)
