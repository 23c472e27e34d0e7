# Tally: the two commands are `make demo` and `make test`; each installs what it needs.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python

.PHONY: install node compile assets lint test demo bench screenshots clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

install: $(BIN)/.installed

node: node_modules/.installed

compile: install node
	node scripts/compile.mjs

# the dashboard's committed static assets (receipt verifier bundle, htmx, uPlot), rebuilt
# byte-identically from the lockfile; tests/web/test_assets.py checks they match
assets: node
	node scripts/web/build.mjs

lint: install
	$(BIN)/ruff check service tests scripts
	$(BIN)/ruff format --check service tests scripts
	$(BIN)/mypy service

test: install node lint
	$(BIN)/pytest -q

demo: install node
	$(BIN)/tally demo

bench: install node
	$(BIN)/tally bench --json out/bench.json

# one PNG per dashboard page in out/screenshots/ (not committed), taken in Debian's
# headless chromium against a served demo deployment (tests/web/test_browser.py)
screenshots: install node
	rm -rf out/screenshots
	TALLY_SCREENSHOTS=out/screenshots $(BIN)/pytest -q -p no:cacheprovider \
		tests/web/test_browser.py -k test_screenshots
	ls out/screenshots/*.png

clean:
	rm -rf $(VENV) node_modules out .tally
