"""The docs keep up with the code: every Param and reason code is documented, in the pages users read."""

from __future__ import annotations

import inspect
import re

from repo_paths import REPO_ROOT

from sparkimg_ml import REASON_CODES, ImageUrlFeaturizer

DOCS = REPO_ROOT / "docs"
PARAMS = (DOCS / "reference" / "params.md").read_text()
BAD_ROWS = (DOCS / "guides" / "inputs-and-bad-rows.md").read_text()


def _params_table(title: str) -> set:
    section = PARAMS.split(title, 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(\w+)` \|", section, flags=re.MULTILINE))


def test_every_featurizer_param_is_a_constructor_argument_and_a_documented_row():
    params = {p.name for p in ImageUrlFeaturizer().params}
    arguments = set(inspect.signature(ImageUrlFeaturizer.__init__).parameters) - {"self"}
    setters = set(inspect.signature(ImageUrlFeaturizer.setParams).parameters) - {"self"}
    assert params == arguments == setters
    assert params == _params_table("## Params of `ImageUrlFeaturizer`")


def test_every_reason_code_is_documented_in_the_bad_rows_section():
    documented = set(re.findall(r"`([a-z_0-9]+)`", BAD_ROWS.split("## Bad rows", 1)[1].split("\n## ", 1)[0]))
    codes = {code for code in REASON_CODES if code not in ("http_4xx", "http_5xx")}
    assert codes <= documented, codes - documented
    assert "http_404" in documented


def test_every_reshaper_param_is_a_constructor_argument_and_a_documented_row():
    from sparkimg_ml import TensorReshaper

    params = {p.name for p in TensorReshaper().params}
    assert params == set(inspect.signature(TensorReshaper.__init__).parameters) - {"self"}
    assert params == _params_table("## Params of `TensorReshaper`")


def test_every_embedder_param_is_a_constructor_argument_and_a_documented_row():
    from sparkimg_ml import ImageEmbedder

    params = {p.name for p in ImageEmbedder().params}
    arguments = set(inspect.signature(ImageEmbedder.__init__).parameters) - {"self"}
    setters = set(inspect.signature(ImageEmbedder.setParams).parameters) - {"self"}
    assert params == arguments == setters
    assert params == _params_table("## Params of `ImageEmbedder`")
