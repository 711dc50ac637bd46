# The two commands a newcomer needs (see README):
#   make demo   install everything, then run the whole pipeline with synthetic traffic
#   make test   install everything (incl. Debian chromium for browser tests), run all tests
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo up test test-fast lint bench clean system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml streams/data/package-lock.json producers/js/package-lock.json | $(BIN)/python
	$(BIN)/pip install --disable-pip-version-check -q -e ".[dev]"
	cd streams/data && npm ci --no-audit --no-fund --loglevel=error
	cd producers/js && npm ci --no-audit --no-fund --loglevel=error  # `prepare` builds dist/
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/clickstream up --demo

up: install
	$(BIN)/clickstream up

system-deps:
	bash scripts/install-system-deps.sh

lint: install
	$(BIN)/ruff check .

test: install system-deps lint
	cd producers/js && npm test --silent
	$(BIN)/pytest -q -p no:cacheprovider --durations=15

test-fast: install
	$(BIN)/pytest -q -m "not integration"

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .clickstream streams/data/node_modules producers/js/node_modules producers/js/dist
