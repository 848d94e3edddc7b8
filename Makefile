# One-command set-up: `make demo` and `make test` create .venv, install, then run.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-fast test-compat bench bench-smoke lint dist docs docs-build notebooks java-check browser-check clean

# Spark runs "$JAVA_HOME/bin/java" when JAVA_HOME is set, else "java" from PATH: check the same one.
java-check:
	@java="$${JAVA_HOME:+$$JAVA_HOME/bin/}java"; \
	command -v "$$java" >/dev/null 2>&1 || { \
	  echo "ERROR: Java was not found ($$java). Spark needs Java 17 or newer."; \
	  echo "  Debian/Ubuntu: sudo apt-get install -y openjdk-17-jre-headless"; \
	  echo "  or set JAVA_HOME to an existing JDK 17+."; exit 1; }; \
	v=$$("$$java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1); \
	if [ -z "$$v" ] || [ "$$v" -lt 17 ]; then \
	  echo "ERROR: $$java is version $${v:-unknown}; Spark 4 needs Java 17 or newer."; \
	  echo "  Debian/Ubuntu: sudo apt-get install -y openjdk-17-jre-headless"; exit 1; fi

# The preview tests render HTML in a real headless browser (Debian's chromium package).
CHROMIUM ?= /usr/bin/chromium
browser-check:
	@if [ -x "$(CHROMIUM)" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Installing chromium for the browser tests of the image previews"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
	  echo "ERROR: $(CHROMIUM) is missing; the preview tests render HTML in headless chromium."; \
	  echo "  Debian/Ubuntu: sudo apt-get update && sudo apt-get install -y chromium"; exit 1; fi

# torch is pinned to the CPU build on the package index: an unpinned torch pulls a multi-GB CUDA build.
$(STAMP): setup.cfg setup.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e ".[test,cloud,demo,dev,docs,fast,heif,onnx,opencv,quantize,torch]" "torch==2.13.0"
	@touch $(STAMP)

demo: java-check $(STAMP)
	$(BIN)/python -m sparkimg_ml.demo

# The whole suite on the main environment, then the compatibility matrix (other Spark versions,
# Spark Connect, a standalone cluster; see .ci/compat_matrix.py). test-fast: the main suite only.
test: test-fast test-compat

test-fast: java-check browser-check $(STAMP)
	$(BIN)/python -m pytest

# Environments live in build/compat/ and are reused while their recipe and setup.cfg are unchanged.
test-compat: java-check $(STAMP)
	$(BIN)/python .ci/compat_matrix.py

bench: java-check $(STAMP)
	$(BIN)/python -m benchmarks.run

bench-smoke: java-check $(STAMP)
	$(BIN)/python -m benchmarks.run --smoke

# The documentation site (mkdocs.yml, docs/): `docs` serves it with live reload, `docs-build` builds it into
# site/ as strictly as tests/test_docs_site.py does. Neither fetches anything from the network.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs serve

docs-build: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict

# Re-execute notebooks/*.ipynb (each in a scratch directory) and store the fresh outputs in the files;
# the notebook tests fail when the stored outputs no longer match a fresh run.
notebooks: java-check $(STAMP)
	$(BIN)/python tests/support/notebook_runner.py notebooks/*.ipynb

lint: $(STAMP)
	$(BIN)/python -m ruff check sparkimg_ml tests benchmarks .ci  # rules: pyproject.toml
	$(BIN)/python -m mypy

# The release artifacts: wheel + sdist in dist/, checked as a package index would render them.
dist: $(STAMP)
	rm -rf dist
	$(BIN)/python -m build --outdir dist .
	$(BIN)/python -m twine check --strict dist/*

clean:
	rm -rf $(VENV) build dist site *.egg-info .pytest_cache .mypy_cache demo-output
