"""Look at what the pipeline sees: image grids and failure reports for notebooks and HTML files.

* :func:`show_images` (:mod:`.grid`) -- the first rows of an image or tensor column as a grid of thumbnails;
* :func:`failure_report` (:mod:`.failures`) -- failed rows counted by reason code, with examples;
* :func:`image_grid`, :func:`render_grid` (:mod:`.html`) -- grids of plain images, no Spark;
* :mod:`.thumbnails` -- the thumbnails themselves, made on the executors.

Examples
--------
>>> import numpy as np
>>> grid = image_grid([np.zeros((8, 8), np.uint8), np.full((4, 4, 3), 255, np.uint8)],
...                   captions=["black", "white"], size=32)
>>> len(grid), grid.failed
(2, 0)
>>> "<script" in grid.html, grid.html.count("<img ")
(False, 2)
"""

from __future__ import annotations

from .failures import FailureReport, ReasonCount, failure_report
from .grid import ImageGrid, image_grid, show_images
from .html import Tile, render_grid

__all__ = ["show_images", "failure_report", "image_grid", "render_grid", "ImageGrid", "Tile",
           "FailureReport", "ReasonCount"]
