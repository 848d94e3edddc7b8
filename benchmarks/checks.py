"""Correctness checks run with every benchmark, so that a fast but wrong change fails.

Two tolerances: *exact* (same decode path, only float rounding may differ) and
*close* (reduced-size JPEG decoding against a full decode: the mean absolute
difference per image stays far below what a real mistake such as swapped
channels, a flipped image or a wrong scale produces - measured on the corpus:
reduced decoding p99 0.013 at 32x32, swapped R/B or a vertical flip >= 0.047).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

EXACT_MAX_ABS = 1e-5
CLOSE_MEAN_ABS = 0.02


@dataclass(frozen=True)
class Check:
    """One named check and its outcome."""

    name: str
    passed: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def counts(observed: Mapping[str, int], expected_rows: int, nonnull_expected: bool = True) -> list[Check]:
    """Row count and non-null output count of one run (from a Spark ``Observation``).

    Examples
    --------
    >>> [c.passed for c in counts({"rows": 5, "nonnull": 4}, 5)]
    [True, False]
    """
    checks = [Check("row count", observed["rows"] == expected_rows,
                    f"{observed['rows']} rows, expected {expected_rows}")]
    if nonnull_expected:
        checks.append(Check("non-null outputs", observed["nonnull"] == expected_rows,
                            f"{observed['nonnull']} non-null, expected {expected_rows}"))
    if "errors" in observed:
        checks.append(Check("no error reasons", observed["errors"] == 0, f"{observed['errors']} rows with a reason"))
    return checks


def matrix_rows(matrix: np.ndarray, expected_rows: int, size: int) -> Check:
    """The no-Spark ceiling's output: one row of ``size`` values per image.

    Examples
    --------
    >>> matrix_rows(np.zeros((3, 4), np.float32), 3, 4).passed
    True
    """
    return Check("row count", matrix.shape == (expected_rows, size),
                 f"matrix {matrix.shape}, expected ({expected_rows}, {size})")


def value_range(vectors: Mapping[int, np.ndarray | None], size: int) -> Check:
    """Every sampled vector has ``size`` finite values in [0, 1].

    Examples
    --------
    >>> value_range({1: np.array([0.0, 1.0]), 2: np.array([0.5, 1.5])}, 2).passed
    False
    """
    bad = [key for key, v in vectors.items()
           if v is None or v.shape != (size,) or not np.all(np.isfinite(v)) or v.min() < 0 or v.max() > 1]
    return Check("values in [0, 1]", bool(vectors) and not bad,
                 f"{len(vectors)} vectors of {size}; out of range or wrong length: ids {bad[:5]}")


def range_stats(stats: Mapping[str, Any], expected_rows: int) -> list[Check]:
    """Aggregates over a stratified subset of rows: count, non-null count, min and max value.

    Examples
    --------
    >>> [c.passed for c in range_stats({"rows": 3, "nonnull": 3, "lo": 0.0, "hi": 1.2}, 3)]
    [True, False]
    """
    rows, nonnull, lo, hi = stats["rows"], stats["nonnull"], stats["lo"], stats["hi"]
    return [
        Check("subset rows all non-null", rows == expected_rows and nonnull == rows,
              f"{nonnull} non-null of {rows} rows, expected {expected_rows}"),
        Check("subset values in [0, 1]", lo is not None and hi is not None and 0.0 <= lo <= hi <= 1.0,
              f"min {lo}, max {hi} over {nonnull} vectors"),
    ]


def compare(name: str, got: Mapping[int, np.ndarray | None], want: Mapping[int, np.ndarray], exact: bool) -> Check:
    """Sampled vectors against reference vectors, exactly or closely (see module doc).

    Examples
    --------
    >>> compare("x", {1: np.array([0.5, 0.25])}, {1: np.array([0.5, 0.26])}, exact=True).passed
    False
    >>> compare("x", {1: np.array([0.5, 0.25])}, {1: np.array([0.5, 0.26])}, exact=False).passed
    True
    """
    worst_max, worst_mean, missing = 0.0, 0.0, []
    for key, reference in want.items():
        vector = got.get(key)
        if vector is None or np.shape(vector) != np.shape(reference):
            missing.append(key)
            continue
        diff = np.abs(np.asarray(vector, dtype=np.float64) - reference)
        worst_max, worst_mean = max(worst_max, float(diff.max())), max(worst_mean, float(diff.mean()))
    passed = bool(want) and not missing and (
        worst_max <= EXACT_MAX_ABS if exact else worst_mean <= CLOSE_MEAN_ABS)
    bound = f"max |diff| <= {EXACT_MAX_ABS:g}" if exact else f"mean |diff| <= {CLOSE_MEAN_ABS:g} per image"
    return Check(name, passed, f"{len(want)} images, worst max |diff| {worst_max:.2g}, worst mean "
                               f"|diff| {worst_mean:.2g} ({bound}); missing or wrong shape: {missing[:5]}")


def byte_lengths(stats: Mapping[str, Any], expected_rows: int, size: int) -> list[Check]:
    """uint8 tensors over a subset of rows: all present, each exactly ``size`` bytes.

    Examples
    --------
    >>> [c.passed for c in byte_lengths({"rows": 2, "nonnull": 2, "shortest": 12, "longest": 13}, 2, 12)]
    [True, False]
    """
    rows, nonnull, shortest, longest = stats["rows"], stats["nonnull"], stats["shortest"], stats["longest"]
    return [
        Check("subset rows all non-null", rows == expected_rows and nonnull == rows,
              f"{nonnull} non-null of {rows} rows, expected {expected_rows}"),
        Check(f"subset tensors of {size} bytes", shortest == longest == size,
              f"lengths {shortest}..{longest} bytes over {nonnull} tensors"),
    ]


def job_reply(reply: Mapping[str, Any], expected_rows: int) -> list[Check]:
    """A job outside Spark (Daft): it ran, and returned every row, none null.

    Examples
    --------
    >>> [c.passed for c in job_reply({"rows": 3, "nonnull": 3}, 3)]
    [True, True, True]
    >>> job_reply({"error": "OSError: gone"}, 3)[0].detail
    'OSError: gone'
    """
    return [Check("job ran", "error" not in reply, str(reply.get("error", "ok")))] + counts(
        {"rows": int(reply.get("rows", -1)), "nonnull": int(reply.get("nonnull", -1))}, expected_rows)


def columns_arrived(got: Sequence[str], wide: Sequence[str], output: str) -> Check:
    """Pass-through workload: every column of the wide table, and the output, reached the sink.

    Examples
    --------
    >>> columns_arrived(["id", "d000", "tensor"], ["id", "d000"], "tensor").passed
    True
    >>> columns_arrived(["id", "tensor"], ["id", "d000"], "tensor").detail
    "missing ['d000']; 2 columns"
    """
    missing = [name for name in [*wide, output] if name not in got]
    return Check("every wide column in the sink", not missing,
                 f"missing {missing}; {len(got)} columns" if missing else f"{len(got)} columns")


def wide_values(got: Mapping[str, Sequence[Any]], want: Mapping[str, Sequence[Any]]) -> Check:
    """Pass-through workload: the wide columns' values in the sink equal the input's (rows by id).

    Examples
    --------
    >>> wide_values({"id": [1, 0], "x": [2.5, 1.0]}, {"id": [0, 1], "x": [1.0, 2.5]}).passed
    True
    >>> wide_values({"id": [0], "x": [9.0]}, {"id": [0], "x": [1.0]}).detail
    "1 rows; differing columns ['x']"
    """
    got_order = np.argsort(np.asarray(got["id"]), kind="stable")
    want_order = np.argsort(np.asarray(want["id"]), kind="stable")
    rows_match = len(got_order) == len(want_order)
    differing = [name for name in want if name not in got or not rows_match or
                 [got[name][i] for i in got_order] != [want[name][i] for i in want_order]]
    return Check("wide column values = input", rows_match and not differing,
                 f"{len(got_order)} rows" + (f"; differing columns {differing}" if differing else "")
                 + ("" if rows_match else f", expected {len(want_order)}"))
