"""The failure report: failed rows counted by reason code, with example sources (credentials redacted)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import REASON_CODES, redact_source
from .columns import as_text, column, require_column
from .html import escape

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


@dataclass(frozen=True)
class ReasonCount:
    """Failed rows with one reason code, and a few examples as ``(source, detail)`` pairs."""

    reason: str
    count: int
    fraction: float
    examples: tuple[tuple[str | None, str], ...] = ()

    @property
    def meaning(self) -> str:
        """What the reason code means (from :data:`~sparkimg_ml.REASON_CODES`)."""
        if re.fullmatch(r"http_[45]\d\d", self.reason):
            return REASON_CODES[f"{self.reason[:6]}xx"]
        return REASON_CODES.get(self.reason, "")


@dataclass(frozen=True)
class FailureReport:
    """Failed rows by reason: as rows (``reasons``), text, an HTML table and a Spark DataFrame."""

    total_rows: int
    reasons: tuple[ReasonCount, ...]
    error_col: str
    source_col: str | None = None
    _spark: Any = field(default=None, repr=False, compare=False)

    @property
    def failed_rows(self) -> int:
        """Rows with a reason."""
        return sum(reason.count for reason in self.reasons)

    def counts(self) -> dict[str, int]:
        """``{reason code: rows}``, most frequent first."""
        return {reason.reason: reason.count for reason in self.reasons}

    @property
    def dataframe(self) -> DataFrame:
        """The report as a Spark DataFrame: ``reason, count, fraction, meaning, examples<source, detail>``."""
        from pyspark.sql import SparkSession

        spark = self._spark or SparkSession.getActiveSession()
        if spark is None:
            raise RuntimeError("no active SparkSession to build the report's DataFrame in")
        return spark.createDataFrame(
            [(r.reason, r.count, r.fraction, r.meaning, [{"source": s, "detail": d} for s, d in r.examples])
             for r in self.reasons],
            "reason string, count long, fraction double, meaning string, "
            "examples array<struct<source: string, detail: string>>",
        )

    def __str__(self) -> str:
        lines = [f"{self.failed_rows} of {self.total_rows} rows failed ({self.error_col})"]
        for reason in self.reasons:
            lines.append(f"  {reason.reason:<20} {reason.count:>8}  {reason.fraction:7.2%}")
            for source, detail in reason.examples:
                arrow = " -> " if source is not None and detail else ""
                lines.append(f"      e.g. {source or ''}{arrow}{detail}")
        return "\n".join(lines)

    def to_html(self) -> str:
        """The report as an HTML table (escaped, inline styles)."""
        cell = "padding:4px 8px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top"
        header = "".join(f'<th style="{cell}">{name}</th>' for name in ("reason", "rows", "share", "examples"))
        body = []
        for reason in self.reasons:
            examples = "<br>".join(
                (f"<code>{escape(source)}</code>" if source is not None else "")
                + (" &rarr; " if source is not None and detail else "") + escape(detail)
                for source, detail in reason.examples)
            body.append(
                f'<tr><td style="{cell}" title="{escape(reason.meaning)}"><code>{escape(reason.reason)}</code></td>'
                f'<td style="{cell};text-align:right">{reason.count}</td>'
                f'<td style="{cell};text-align:right">{reason.fraction:.2%}</td>'
                f'<td style="{cell};font-size:12px">{examples}</td></tr>')
        caption = (f"{self.failed_rows} of {self.total_rows} rows failed"
                   f" (<code>{escape(self.error_col)}</code>)")
        if not self.reasons:
            return f'<div data-sparkimg-failures="0">{caption}.</div>'
        return (f'<div data-sparkimg-failures="{self.failed_rows}" style="font-family:system-ui,sans-serif">'
                f'<div style="margin-bottom:4px">{caption}</div>'
                f'<table style="border-collapse:collapse;font-size:13px"><thead><tr>{header}</tr></thead>'
                f'<tbody>{"".join(body)}</tbody></table></div>')

    def _repr_html_(self) -> str:
        return self.to_html()


def _split_reason(text: str) -> tuple[str, str]:
    code, _, detail = text.partition(":")
    return code.strip(), detail.strip()


def failure_report(df: DataFrame, error_col: str, source_col: str | None = None,
                   examples: int = 3) -> FailureReport:
    """Count the rows of ``df`` by the reason code in ``error_col``, with example sources.

    ``error_col`` holds reasons such as ``"http_404: Not Found"`` (null for good
    rows), e.g. the featurizer's ``errorCol``. Up to ``examples`` rows per reason
    are kept as ``(source, detail)``, the source taken from ``source_col`` with
    credentials redacted (user-info and secret-looking query values). Two small
    Spark jobs run: one count per reason and one for the examples.

    Examples
    --------
    >>> from sparkimg_ml import failure_report
    >>> report = failure_report(featurized, "image_error", source_col="url")  # doctest: +SKIP
    >>> report.counts()  # doctest: +SKIP
    {'http_404': 2, 'decode': 2, 'missing': 2}
    >>> report  # in a notebook: an HTML table  # doctest: +SKIP
    >>> report.dataframe.show()  # doctest: +SKIP
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    require_column(df, error_col, "error_col", "failure_report")
    if source_col is not None:
        require_column(df, source_col, "source_col", "failure_report")
    if isinstance(examples, bool) or not isinstance(examples, int) or examples < 0:
        raise ValueError(f"examples must be an integer >= 0; got {examples!r}.")
    error = column(error_col).cast("string")
    code = F.trim(F.substring_index(error, ":", 1))
    by_code = df.groupBy(code.alias("reason")).count().collect()
    total = sum(row["count"] for row in by_code)
    failed = {row["reason"]: row["count"] for row in by_code if row["reason"] is not None}

    samples: dict[str, list[tuple[str | None, str]]] = {reason: [] for reason in failed}
    if failed and examples:
        source = as_text(df, source_col) if source_col is not None else F.lit(None).cast("string")
        rank = F.row_number().over(Window.partitionBy("reason").orderBy("source", "error"))
        picked = (df.where(error.isNotNull())
                  .select(code.alias("reason"), error.alias("error"), source.alias("source"))
                  .distinct()  # a source that failed twice is one example, not two
                  .withColumn("rank", rank).where(F.col("rank") <= examples).collect())
        for row in sorted(picked, key=lambda r: r["rank"]):
            shown = redact_source(row["source"]) if source_col is not None else None
            detail = _split_reason(row["error"])[1]
            samples[row["reason"]].append((shown, "" if detail == shown else detail))
    reasons = tuple(
        ReasonCount(reason, count, count / total if total else 0.0, tuple(samples[reason]))
        for reason, count in sorted(failed.items(), key=lambda item: (-item[1], item[0]))
    )
    return FailureReport(total, reasons, error_col, source_col, df.sparkSession)
