"""Render a page in headless chromium and read the screenshot back, for tests of the HTML previews."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def screenshot(page: Path, target: Path, width: int = 1000, height: int = 800, timeout: float = 90.0) -> np.ndarray:
    """Screenshot ``page`` (a local HTML file) at ``width x height`` CSS pixels; returns RGB pixels.

    Chromium runs offline-only (no background networking, no updates, a throw-away
    profile) in its own process group, which is killed by its id if it hangs.
    """
    assert os.access(CHROMIUM, os.X_OK), (
        f"{CHROMIUM} is missing: `make browser-check` installs it (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        command = [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-extensions", "--hide-scrollbars", "--force-device-scale-factor=1",
            f"--user-data-dir={profile}", f"--screenshot={target}", f"--window-size={width},{height}",
            page.resolve().as_uri(),
        ]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        try:
            _, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise
    assert target.exists(), f"chromium wrote no screenshot (exit {process.returncode}): {stderr.decode()[-2000:]}"
    return np.asarray(Image.open(target).convert("RGB"))


def regions(pixels: np.ndarray, color: tuple[int, int, int], tolerance: int = 10,
            min_area: int = 200) -> list[tuple[int, int, int, int, int]]:
    """Connected areas of ``color`` (within ``tolerance`` per channel): ``(top, left, height, width, area)``."""
    from scipy import ndimage

    mask = np.all(np.abs(pixels.astype(int) - np.asarray(color)) <= tolerance, axis=2)
    labels, count = ndimage.label(mask)
    found = []
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        area = int((labels[box] == index).sum())
        if area >= min_area:
            found.append((box[0].start, box[1].start, box[0].stop - box[0].start, box[1].stop - box[1].start, area))
    return sorted(found)
