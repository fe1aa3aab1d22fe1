# `make run` and `make test` work on a fresh machine: they create .venv and install the
# requirements first. The install is remembered in a stamp file that depends on the
# requirements files, so later runs start at once until a requirement changes.

VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST  ?= 127.0.0.1
PORT  ?= 8000

.DEFAULT_GOAL := help
.PHONY: help venv run worker test bench lint

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z]+:.*## / {printf "  make %-7s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(PY):
	python3 -m venv $(VENV)

$(STAMP): requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install -r requirements-dev.txt
	touch $@

venv: $(STAMP) ## Create .venv and install the requirements (the other targets do it too)

run: $(STAMP) ## Migrate the database and serve on http://127.0.0.1:8000 (HOST=, PORT= to change)
	$(PY) manage.py migrate --noinput
	$(VENV)/bin/daphne -b $(HOST) -p $(PORT) ezquant_web.asgi:application

worker: $(STAMP) ## Run a segmentation job worker (start any number, on any machines, same DATABASE_URL)
	$(PY) manage.py jobs_worker

test: $(STAMP) ## Run every test suite (pytest)
	$(VENV)/bin/pytest

bench: $(STAMP) ## Run every bench/*.py in turn; each prints its measured figures
	@set -e; for script in bench/*.py; do [ -e "$$script" ] || continue; echo "== $$script"; $(PY) $$script; done

lint: $(STAMP) ## Check the code with ruff
	$(VENV)/bin/ruff check .
