"""Where things are, for tests in any folder of tests/."""

from __future__ import annotations

from pathlib import Path

#: The repository's top folder.
REPO_ROOT = Path(__file__).resolve().parents[2]
TESTS = REPO_ROOT / "tests"
#: Files saved by earlier versions (persistence formats that must keep loading).
RESOURCES = TESTS / "resources"
#: Helper modules and scripts the tests run.
SUPPORT = TESTS / "support"
