# `make run` and `make test` work on a fresh machine: they create .venv and install the
# requirements first, and build the viewer's JavaScript (npm ci + esbuild in frontend/). Each
# step is remembered in a stamp or output file that depends on its inputs, so later runs start
# at once until a requirement, the lockfile or a source file changes. `make test` also installs
# Debian's Chromium for the browser tests when /usr/bin/chromium is missing.

VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST  ?= 127.0.0.1
PORT  ?= 8000

.DEFAULT_GOAL := help
.PHONY: help venv frontend run worker test bench lint

NPM_STAMP := frontend/node_modules/.installed
# One esbuild run (frontend/build.mjs) writes every page's entry point; the viewer's stands for all.
BUNDLE    := frontend/static/frontend/dist/viewer.js
FRONTEND_SOURCES := frontend/build.mjs $(shell find frontend/src -type f 2>/dev/null)
CHROMIUM  := /usr/bin/chromium
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z]+:.*## / {printf "  make %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(PY):
	python3 -m venv $(VENV)

$(STAMP): requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install -r requirements-dev.txt
	touch $@

venv: $(STAMP) ## Create .venv and install the requirements (the other targets do it too)

$(NPM_STAMP): frontend/package.json frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund
	touch $@

$(BUNDLE): $(NPM_STAMP) $(FRONTEND_SOURCES)
	cd frontend && npm run build

frontend: $(BUNDLE) ## Build the viewer's and the pages' bundles (npm ci from the lockfile, then esbuild)

# Debian's Chromium for the browser tests and bench/viewer.py (Playwright never downloads one).
$(CHROMIUM):
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y chromium \
	  || { $(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y chromium; }

run: $(STAMP) $(BUNDLE) ## Migrate, create the demo project (once), serve on http://127.0.0.1:8000 (HOST=, PORT=)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py demo --url http://$(HOST):$(PORT)
	$(VENV)/bin/daphne -b $(HOST) -p $(PORT) ezquant_web.asgi:application

worker: $(STAMP) ## Run a segmentation job worker (start any number, on any machines, same DATABASE_URL)
	$(PY) manage.py jobs_worker

test: $(STAMP) $(BUNDLE) $(CHROMIUM) ## Run every test suite (pytest), the browser tests included
	$(VENV)/bin/pytest

bench: $(STAMP) $(BUNDLE) $(CHROMIUM) ## Run every bench/*.py in turn; each prints its measured figures
	@set -e; for script in bench/*.py; do [ -e "$$script" ] || continue; echo "== $$script"; $(PY) $$script; done

lint: $(STAMP) ## Check the code with ruff and the import contracts (pyproject.toml) with lint-imports
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache
