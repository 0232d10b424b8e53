# The README's two commands are `make book` and `make test`; both install what they need first.
# Install: a virtual environment in .venv with requirements.txt (torch pinned to the CPU build
# on the project's machines) and this package in editable mode.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
KOKOROCHAT_DIR ?= $(abspath ../shared/data/kokorochat)
PSY_INSIGHT_DIR ?= $(abspath ../shared/data/psy-insight)
export KOKOROCHAT_DIR PSY_INSIGHT_DIR
PYTEST_ARGS ?=

.PHONY: install book preview test bench clean

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

install: $(VENV)/.installed

book: install                     ## run every notebook on the full data and build the HTML book
	$(VENV)/bin/kokoro-nb book build --data $(KOKOROCHAT_DIR)

preview: install                  ## quick preview on a 300-dialogue sample
	$(VENV)/bin/kokoro-nb book build --data $(KOKOROCHAT_DIR) --sample 300

test: install                     ## unit tests, notebook tests and real-data tests
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install                    ## load-time benchmark (targets: cold <= 2 s, warm <= 0.5 s)
	$(PY) scripts/bench_load.py --data $(KOKOROCHAT_DIR)

clean:
	rm -rf _build .pytest_cache
