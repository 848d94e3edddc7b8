"""Grids as HTML, from plain values (no Spark): tiles with thumbnails or failure reasons, and captions.

Plain HTML with inline ``data:`` images and inline styles, no JavaScript, so a
grid shows in Jupyter, VS Code, Colab and Databricks notebooks and in any browser.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

from .thumbnails import TILE_BACKGROUND, Thumbnail

#: Default cap on the HTML of one grid, in bytes.
DEFAULT_MAX_BYTES = 2_000_000
#: Characters of a caption value shown on the tile (the full value is in its tooltip).
CAPTION_CHARS = 60
#: Narrowest tile, in CSS pixels, so captions stay readable under small thumbnails.
MIN_TILE_WIDTH = 96

FAILURE_BACKGROUND = "#fde2e2"
FAILURE_BORDER = "#c62828"
_TILE_BACKGROUND = "rgb({},{},{})".format(*TILE_BACKGROUND)


@dataclass(frozen=True)
class Tile:
    """One grid cell: a thumbnail or the reason there is none, an optional source beside it, captions."""

    image: Thumbnail | None = None
    failure: str | None = None
    captions: tuple[tuple[str, str], ...] = ()
    #: With ``side_by_side``: the source image (or why it could not be read) left of ``image``.
    source: Thumbnail | None = None
    source_failure: str | None = None
    side_by_side: bool = False

    @property
    def failed(self) -> bool:
        """Whether the main picture is missing."""
        return self.image is None


def escape(text: object) -> str:
    return html.escape(str(text), quote=True)


def _picture(thumbnail: Thumbnail | None, failure: str | None, size: int, label: str) -> str:
    box = (f"width:{size}px;height:{size}px;box-sizing:border-box;display:flex;align-items:center;"
           "justify-content:center;overflow:hidden;")
    if thumbnail is not None:
        return (f'<div style="{box}background:{_TILE_BACKGROUND}">'
                f'<img src="{thumbnail.data_uri}" width="{thumbnail.width}" height="{thumbnail.height}" '
                f'alt="{escape(label)}" style="display:block;max-width:{size}px;max-height:{size}px"></div>')
    reason = failure or "missing: no image"
    code, _, detail = reason.partition(":")
    # The code always shows; the detail gets the room left in the square (all of it is in the tooltip).
    room = int((size - 12) / 6.5) * max(0, int((size - 12) / 13) - 2)
    detail = detail.strip()
    if len(detail) > room:
        detail = detail[: room - 1] + "\u2026" if room > 1 else ""
    shown = f"&#9888;<br><b>{escape(code)}</b>" + (f"<br>{escape(detail)}" if detail else "")
    small = size < 96  # a reason code such as "http_404" still fits on one line of a 64-pixel square
    return (f'<div data-failure="1" title="{escape(reason)}" style="{box}background:{FAILURE_BACKGROUND};'
            f'color:#7f1010;padding:{3 if small else 6}px;text-align:center;overflow-wrap:anywhere;'
            f'font-size:{10 if small else 11}px;line-height:1.2"><span>{shown}</span></div>')


def _caption_html(captions: Sequence[tuple[str, str]]) -> str:
    lines = []
    for name, value in captions:
        shown = value if len(value) <= CAPTION_CHARS else value[: CAPTION_CHARS - 1] + "\u2026"
        label = f"<b>{escape(name)}</b>: " if name else ""
        lines.append(f'<div title="{escape(value)}">{label}{escape(shown)}</div>')
    return (f'<figcaption style="margin-top:4px;line-height:1.3;overflow-wrap:anywhere">{"".join(lines)}'
            "</figcaption>") if lines else ""


def _tile_html(tile: Tile, size: int) -> str:
    pictures = _picture(tile.image, tile.failure, size, "image")
    legend = ""
    if tile.side_by_side:
        pictures = (_picture(tile.source, tile.source_failure, size, "source")
                    + _picture(tile.image, tile.failure, size, "model input"))
        legend = ('<div style="display:flex;gap:4px;font-size:10px;color:#666;margin-top:2px">'
                  f'<span style="width:{size}px">source</span><span style="width:{size}px">model input</span></div>')
    border = f"2px solid {FAILURE_BORDER}" if tile.failed else "1px solid #c8c8c8"
    # Captions need some width even under small thumbnails.
    width = max(MIN_TILE_WIDTH, size * (2 if tile.side_by_side else 1) + (4 if tile.side_by_side else 0))
    state = "failed" if tile.failed else "ok"
    return (f'<figure data-tile="{state}" style="margin:0;padding:4px;background:#fff;border:{border};'
            f'width:{width}px;font-size:12px;color:#222">'
            f'<div style="display:flex;gap:4px">{pictures}</div>{legend}{_caption_html(tile.captions)}</figure>')


def render_grid(tiles: Sequence[Tile], size: int = 128, title: str = "",
                max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """The HTML of a grid of ``tiles``; tiles past ``max_bytes`` of HTML are left out and counted.

    Examples
    --------
    >>> html_text = render_grid([Tile(failure="http_404: Not Found", captions=(("url", "<b>"),))], size=64)
    >>> 'data-tile="failed"' in html_text, "http_404: Not Found" in html_text, "&lt;b&gt;" in html_text
    (True, True, True)
    """
    parts: list[str] = []
    used = 0
    for tile in tiles:
        piece = _tile_html(tile, size)
        if parts and used + len(piece) > max_bytes:
            break
        parts.append(piece)
        used += len(piece)
    shown = len(parts)
    failed = sum(1 for tile in tiles[:shown] if tile.failed)
    summary = f"{shown} image{'s' if shown != 1 else ''}" + (f", {failed} failed" if failed else "")
    if shown < len(tiles):
        summary += (f"; {len(tiles) - shown} more not shown: the preview reached its HTML size limit "
                    f"(max_bytes={max_bytes}); use a smaller size or n")
    heading = f"<b>{escape(title)}</b> \u00b7 " if title else ""
    return ('<div data-sparkimg-grid="1" style="font-family:system-ui,-apple-system,Segoe UI,sans-serif">'
            f'<div style="display:flex;flex-wrap:wrap;gap:8px;align-items:flex-start">{"".join(parts)}</div>'
            f'<div style="margin-top:6px;font-size:12px;color:#555">{heading}{escape(summary)}</div></div>')
