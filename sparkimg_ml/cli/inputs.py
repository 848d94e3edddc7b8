"""What the command reads: Parquet, CSV, JSON lines, URL lists, folders and globs of images, or ``-`` (stdin).

:func:`resolve_input` looks at a local input before Spark starts -- that it
exists, which format it is, that it holds what its format says, and which
columns it has -- so that every input problem is a one-line error with nothing
started. :func:`read_input` then reads it in Spark.
"""

from __future__ import annotations

import glob
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING
from urllib.parse import urlsplit

from ..sources import IMAGE_SUFFIXES, read_images
from .options import UsageError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

INPUT_FORMATS = ("auto", "parquet", "csv", "json", "txt", "images")
TABLE_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".ndjson": "json",
                  ".parquet": "parquet", ".pq": "parquet", ".txt": "txt", ".urls": "txt"}
#: The column of a URL list, and of a table of image files.
URL_COL, PATH_COL = "url", "path"
_GLOB = re.compile(r"[*?\[{]")
_SOURCE = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|data:|file:|/|~|\.{1,2}/|[a-zA-Z]:\\)|\.(?:"
                     + "|".join(s.lstrip(".") for s in IMAGE_SUFFIXES) + r")$", re.IGNORECASE)


def looks_like_source(text: str) -> bool:
    """Whether a CSV cell looks like an image URL or path (so the first row is data, not a header).

    Examples
    --------
    >>> [looks_like_source(t) for t in ("https://h/a.jpg", "photos/a.png", "url", "label", "s3://b/k")]
    [True, True, False, False, True]
    """
    return bool(_SOURCE.search(text.strip().strip('"')))


@dataclass
class InputPlan:
    """An input, checked: its format, where it is, and what the command learnt about it."""

    text: str
    format: str
    location: str = ""
    header: bool = True
    separator: str = ","
    #: A URL list read from stdin.
    urls: list[str] | None = None
    #: Columns known before Spark starts (None: learnt from Spark).
    columns: list[str] | None = None
    #: The image column when --input-col is not given (None: the user must say).
    default_col: str | None = None
    notes: list[str] = field(default_factory=list)


def _is_local(path: str) -> bool:
    scheme = urlsplit(path).scheme
    return scheme in ("", "file") or len(scheme) == 1


def _local(path: str) -> Path:
    return Path(urlsplit(path).path if path.startswith("file:") else path).expanduser()


def _by_suffix(path: str) -> str | None:
    name = path.rstrip("/").lower()
    for suffix, fmt in TABLE_SUFFIXES.items():
        if name.endswith(suffix):
            return fmt
    if name.endswith(IMAGE_SUFFIXES):
        return "images"
    return None


def _first_line(path: Path) -> str:
    with path.open("rb") as handle:
        for raw in handle:
            line = raw.decode("utf-8", errors="replace").strip()
            if line:
                return line
    return ""


def _files_in(folder: Path, limit: int = 10_000) -> list[Path]:
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith((".", "_"))]
        found.extend(Path(root) / name for name in files if not name.startswith((".", "_")))
        if len(found) >= limit:
            break
    return found


def _folder_format(folder: Path) -> str:
    files = _files_in(folder)
    kinds = {_by_suffix(str(f)) for f in files}
    for fmt in ("parquet", "images", "csv", "json"):
        if fmt in kinds:
            return fmt
    if not files:
        raise UsageError(f"input folder {str(folder)!r} is empty")
    raise UsageError(f"input folder {str(folder)!r} holds no Parquet, CSV, JSON or image files; "
                     "pass --input-format to say what it holds")


def _parquet_columns(path: Path) -> list[str]:
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path) if path.is_file() else ds.dataset(path, format="parquet").schema
    except Exception as exc:  # noqa: BLE001 - any reason it does not read as Parquet
        raise UsageError(f"input {str(path)!r} is not readable as Parquet ({str(exc).splitlines()[0][:200]}); "
                         "pass --input-format csv, json, txt or images if it is one of those") from None
    return list(schema.names)


def _check_file_format(plan: InputPlan, path: Path) -> None:
    fmt = plan.format
    if fmt == "parquet":
        if path.is_file():
            with path.open("rb") as handle:
                magic = handle.read(4)
            if magic != b"PAR1":
                raise UsageError(f"input {plan.text!r} is not a Parquet file; pass --input-format csv, json or "
                                 "txt if it is one of those")
        plan.columns = _parquet_columns(path)
    elif fmt == "json" and path.is_file():
        first = _first_line(path)
        try:
            value = json.loads(first) if first else None
        except json.JSONDecodeError as exc:
            raise UsageError(f"input {plan.text!r} is not JSON lines: line 1 is not JSON ({exc.msg})") from None
        if not isinstance(value, dict):
            raise UsageError(f"input {plan.text!r} is not JSON lines (one object per line)")
    elif fmt == "csv" and path.is_file():
        first = _first_line(path)
        if not first:
            raise UsageError(f"input {plan.text!r} is empty")
        cells = [cell.strip().strip('"') for cell in first.split(plan.separator)]
        header = plan.header if plan.header is not None else not any(looks_like_source(c) for c in cells)
        plan.header = header
        if header:
            plan.columns = cells
            if len(cells) == 1:
                plan.default_col = cells[0]
        else:
            plan.columns = [f"_c{i}" for i in range(len(cells))]
            sources = [i for i, cell in enumerate(cells) if looks_like_source(cell)]
            plan.default_col = f"_c{sources[0] if sources else 0}"
            plan.notes.append(f"{plan.text}: no header row (columns {', '.join(plan.columns)})")
    elif fmt == "txt" and path.is_file():
        if not any(line.strip() and not line.lstrip().startswith("#")
                   for line in path.read_text(encoding="utf-8", errors="replace").splitlines()):
            raise UsageError(f"input {plan.text!r} holds no URLs (one per line; blank and # lines are skipped)")
    elif fmt == "images" and path.is_dir() and not any(
            str(f).lower().endswith(IMAGE_SUFFIXES) for f in _files_in(path)):
        raise UsageError(f"input folder {plan.text!r} holds no image files ({', '.join(IMAGE_SUFFIXES)})")


def resolve_input(text: str, declared: str = "auto", header: bool | None = None,
                  stdin: IO[str] | None = None) -> InputPlan:
    """Check the input and decide how to read it; raises :class:`UsageError` for any problem found."""
    if text == "-":
        lines = (stdin or sys.stdin).read().splitlines()
        urls = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        if not urls:
            raise UsageError("the URL list on stdin is empty (one URL per line; blank and # lines are skipped)")
        return InputPlan(text, "txt", urls=urls, columns=[URL_COL], default_col=URL_COL)
    plan = InputPlan(text, declared, location=text, header=header)  # type: ignore[arg-type]
    if text.lower().endswith(".tsv"):
        plan.separator = "\t"
    if not _is_local(text):  # a cluster file system: Spark finds out
        if plan.format == "auto":
            plan.format = _by_suffix(re.sub(r"[/*]+$", "", text)) or "parquet"
        if plan.header is None:
            plan.header = True
        _defaults(plan)
        return plan
    path = _local(text)
    if _GLOB.search(text):
        matches = [Path(m) for m in glob.glob(str(path), recursive=True)]
        if not matches:
            raise UsageError(f"nothing matches {text!r}")
        kinds = {_by_suffix(str(m)) if m.is_file() else None for m in matches}
        if plan.format == "auto":
            if kinds == {"images"}:
                plan.format = "images"
            elif len(kinds) == 1 and None not in kinds:
                plan.format = kinds.pop()  # type: ignore[assignment]
            else:
                raise UsageError(f"{text!r} matches files of several kinds; pass --input-format, or a pattern "
                                 "that ends in one extension, e.g. 'photos/**/*.jpg'")
        if plan.format != "images":
            _check_file_format(plan, next(m for m in matches if m.is_file()))
        _defaults(plan)
        return plan
    if not path.exists():
        raise UsageError(f"input {text!r} does not exist")
    if plan.format == "auto":
        plan.format = _folder_format(path) if path.is_dir() else (_by_suffix(text) or _sniff(path, text))
    _check_file_format(plan, path)
    _defaults(plan)
    return plan


def _sniff(path: Path, text: str) -> str:
    with path.open("rb") as handle:
        if handle.read(4) == b"PAR1":
            return "parquet"
    raise UsageError(f"cannot tell the format of {text!r} from its name; pass --input-format "
                     f"({', '.join(INPUT_FORMATS[1:])})")


def _defaults(plan: InputPlan) -> None:
    if plan.format == "txt":
        plan.columns, plan.default_col = [URL_COL], URL_COL
    elif plan.format == "images":
        plan.default_col = PATH_COL
        plan.columns = [PATH_COL, "modificationTime", "size"]


def choose_input_col(plan: InputPlan, given: str | None) -> str:
    """``--input-col``, or the input's obvious image column; checked against the known columns."""
    name = given or plan.default_col
    if name is None:
        known = f" (columns: {', '.join(plan.columns[:20])})" if plan.columns else ""
        raise UsageError(f"--input-col is required for a {plan.format} input: the column with the image "
                         f"URLs, paths or bytes{known}")
    if plan.columns is not None and name not in plan.columns:
        raise UsageError(f"--input-col {name!r} is not a column of {plan.text!r}; columns: "
                         f"{', '.join(plan.columns[:20])}")
    return name


def read_input(spark: SparkSession, plan: InputPlan) -> DataFrame:
    """The input as a Spark table (the plan comes from :func:`resolve_input`)."""
    from pyspark.sql import functions as F

    if plan.urls is not None:
        return spark.createDataFrame([(url,) for url in plan.urls], f"{URL_COL} string")
    if plan.format == "txt":
        line = F.trim(F.col("value"))
        return spark.read.text(plan.location).where((line != "") & ~line.startswith("#")).select(line.alias(URL_COL))
    if plan.format == "images":
        return read_images(spark, plan.location)
    reader = spark.read
    if plan.format == "csv":
        reader = reader.option("header", str(plan.header).lower()).option("inferSchema", "true")
        reader = reader.option("sep", plan.separator)
    return reader.format(plan.format).load(plan.location)
