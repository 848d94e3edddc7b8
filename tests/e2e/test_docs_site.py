"""The documentation site builds strictly, offline, and the README stays a short front page into it."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import yaml
from repo_paths import REPO_ROOT

ROOT = REPO_ROOT
README = (ROOT / "README.md").read_text()


def _nav_pages(entries: list) -> list:
    pages = []
    for entry in entries:
        for value in (entry.values() if isinstance(entry, dict) else [entry]):
            pages.extend(_nav_pages(value) if isinstance(value, list) else [value])
    return pages


def test_mkdocs_build_strict_passes_without_the_network(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT),
           # Anything that tries to reach the network fails at once instead of passing on a connected machine.
           "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""}
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    api = (site / "reference" / "api" / "index.html").read_text()
    for name in ("sparkimg_ml.ImageUrlFeaturizer", "sparkimg_ml.TensorReshaper", "sparkimg_ml.ImageEmbedder",
                 "sparkimg_ml.preprocess", "sparkimg_ml.show_images", "sparkimg_ml.failure_report",
                 "sparkimg_ml.ship", "sparkimg_ml.SourceError", "sparkimg_ml.REASON_CODES",
                 "sparkimg_ml.training.write_tensors", "sparkimg_ml.training.TensorDataset",
                 "sparkimg_ml.tensors.TensorInfo.to_float32"):
        assert f'id="{name}"' in api, name
    pages = list(site.rglob("*.html"))
    remote = {m for page in pages for m in re.findall(r'(?:src|href)="(https?://[^"]+\.(?:css|js|woff2?))"',
                                                       page.read_text())}
    assert not remote, remote  # the built site loads no remote fonts, styles or scripts


def test_every_docs_page_is_in_the_navigation():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    assert config["theme"]["font"] is False
    in_nav = set(_nav_pages(config["nav"]))
    on_disk = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    # architecture.md is written elsewhere and added to the navigation with it.
    assert on_disk - {"architecture.md"} <= in_nav, on_disk - in_nav
    for guide in ("inputs-and-bad-rows", "image-semantics", "fetching", "tensors", "embeddings", "training",
                  "previews", "cli", "deployment", "performance"):
        assert f"guides/{guide}.md" in in_nav


def test_readme_is_a_short_front_page_with_the_developer_commands():
    assert len(README.splitlines()) <= 250
    for text in ("pip install 'sparkimg_ml[demo]'", "python -m sparkimg_ml.demo", "make demo", "make test",
                 "Python 3.10–3.13"):
        assert text in README, text
    for link in re.findall(r"\]\((docs/[^)#]+)", README):
        assert (ROOT / link).exists(), link


def test_no_pipeline_in_the_docs_drops_null_rows_inside_the_saved_model():
    pages = [README] + [p.read_text() for p in (ROOT / "docs").rglob("*.md")]
    code = [block for text in pages for block in re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)]
    assert len(code) > 15  # the check reads the code blocks
    for block in code:
        assert not re.search(r"SQLTransformer\([^)]*IS NOT NULL", block), block
