"""A grid as one PNG picture, drawn with Pillow: for front-ends that strip HTML styles (code hosts, docs)."""

from __future__ import annotations

from collections.abc import Sequence

from .html import FAILURE_BACKGROUND, FAILURE_BORDER, Tile
from .thumbnails import TILE_BACKGROUND


def grid_png(tiles: Sequence[Tile], columns: int = 8) -> bytes:
    """``tiles`` drawn with Pillow: thumbnails centred in their squares, red squares with the reason code
    for failures, captions below; ``columns`` tiles per row (side-by-side tiles count twice)."""
    import base64
    import io

    from PIL import Image, ImageDraw

    side = max([max(t.width, t.height) for tile in tiles for t in (tile.image, tile.source) if t] + [64])
    lines = max([len(tile.captions) for tile in tiles] + [0])
    pair = any(tile.side_by_side for tile in tiles)
    cell_w, cell_h = (2 * side + 4 if pair else side) + 12, side + 12 + 12 * lines
    per_row = max(1, min(len(tiles), columns // (2 if pair else 1)))
    rows = max(1, -(-len(tiles) // per_row))
    sheet = Image.new("RGB", (per_row * cell_w, rows * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    for index, tile in enumerate(tiles):
        x, y = (index % per_row) * cell_w + 6, (index // per_row) * cell_h + 6
        pictures = [(tile.source, tile.source_failure), (tile.image, tile.failure)] if tile.side_by_side \
            else [(tile.image, tile.failure)]
        for offset, (thumbnail, failure) in enumerate(pictures):
            left = x + offset * (side + 4)
            if thumbnail is None:
                draw.rectangle([left, y, left + side - 1, y + side - 1], fill=FAILURE_BACKGROUND,
                               outline=FAILURE_BORDER)
                draw.text((left + 4, y + 4), (failure or "missing").partition(":")[0], fill="#7f1010")
                continue
            picture = Image.open(io.BytesIO(base64.b64decode(thumbnail.data_uri.split(",", 1)[1]))).convert("RGB")
            square = Image.new("RGB", (side, side), TILE_BACKGROUND)
            square.paste(picture, ((side - picture.width) // 2, (side - picture.height) // 2))
            sheet.paste(square, (left, y))
        for line, (name, value) in enumerate(tile.captions):
            text = f"{name}: {value}" if name else value
            room = max(4, (cell_w - 12) // 6)  # the default font is 6 pixels wide a character
            text = text if len(text) <= room else text[: room - 1] + "~"
            draw.text((x, y + side + 2 + 12 * line), text, fill="#222222")
    buffer = io.BytesIO()
    sheet.save(buffer, "PNG")
    return buffer.getvalue()
