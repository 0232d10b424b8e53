# The README's two commands are `make book` and `make test`; both install what they need first.
# Install: a virtual environment in .venv from requirements.txt: torch (requirements-torch.txt),
# every package at the lock's version (requirements-lock.txt) and this package in editable mode.
# `make lock` refreshes the lock from the ranges in pyproject.toml (needs uv), and with it
# requirements.txt, environment.yml and Colab's constraints (requirements-colab.txt).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Data: the folders in ../shared/data when they exist (a clone from GitHub has none); unset,
# the book downloads the pinned releases, verified (KOKORO_ARCHIVE_CACHE keeps the archives).
SHARED_DATA ?= $(abspath ../shared/data)
KOKOROCHAT_DIR ?= $(wildcard $(SHARED_DATA)/kokorochat)
PSY_INSIGHT_DIR ?= $(wildcard $(SHARED_DATA)/psy-insight)
KOKOROCHAT_EN_DIR ?= $(wildcard $(SHARED_DATA)/multilingual-kokorochat)
# the real-data book tests build into _build, so `make book` after `make test` reuses their work
KOKORO_TEST_BUILD_DIR ?= $(CURDIR)/_build
export KOKOROCHAT_DIR PSY_INSIGHT_DIR KOKOROCHAT_EN_DIR KOKORO_TEST_BUILD_DIR
PYTEST_ARGS ?=

.PHONY: install lock lock-vllm colab-sim pdf book preview test bench colab teaching shots release-check clean

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

# Packages that only torch's CUDA build needs stay out of the lock: torch is installed apart.
LOCK_OMIT := torch triton cuda-bindings cuda-pathfinder cuda-toolkit nvidia-cublas nvidia-cuda-cupti \
	nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand \
	nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-nccl-cu13 nvidia-nvjitlink \
	nvidia-nvshmem-cu13 nvidia-nvtx

UV_VERSION ?= 0.13.9
lock: install                     ## refresh the lock (Python 3.11-3.13), requirements.txt, environment.yml, requirements-colab.txt
	$(PY) -m pip install --quiet uv==$(UV_VERSION)
	$(VENV)/bin/uv pip compile pyproject.toml --extra train --extra book --extra test --extra teaching --universal \
		--python-version 3.11 --fork-strategy fewest -c requirements-torch.txt \
		$(foreach p,$(LOCK_OMIT),--no-emit-package $(p)) --custom-compile-command "make lock" \
		-o requirements-lock.txt
	$(PY) scripts/lock_to_environment.py
	$(PY) -m kokoro_book.colab_runtime --uv $(VENV)/bin/uv

# vLLM pins its own torch and caps transformers, so it gets an environment of its own (Linux, CUDA GPU)
lock: lock-vllm
lock-vllm: install                ## refresh requirements-vllm.txt: the train extra plus vLLM (Python 3.12+)
	$(PY) -m pip install --quiet uv==$(UV_VERSION)
	$(VENV)/bin/uv pip compile pyproject.toml --extra train --extra vllm --universal --python-version 3.12 \
		-c requirements-torch.txt --custom-compile-command "make lock-vllm" -o requirements-vllm.txt

install: $(VENV)/.installed

BOOK_ARGS ?=
# A data option only for a location that exists: without --data, --translation and --psy-insight
# the build downloads them (verified); a Psy-Insight download that fails (no network) leaves it
# out and the chapters that read it say so.
DATA_ARGS = $(if $(wildcard $(KOKOROCHAT_DIR)),--data $(KOKOROCHAT_DIR)) \
	$(if $(wildcard $(PSY_INSIGHT_DIR)),--psy-insight $(PSY_INSIGHT_DIR)) \
	$(if $(wildcard $(KOKOROCHAT_EN_DIR)),--translation $(KOKOROCHAT_EN_DIR))

book: install                     ## run changed notebooks on the full data, build _build/html (warnings are errors)
	$(VENV)/bin/kokoro-nb book build $(DATA_ARGS) $(BOOK_ARGS)

preview: install                  ## the same on a 300-dialogue sample, into _build/preview
	$(VENV)/bin/kokoro-nb book build $(DATA_ARGS) \
		--sample 300 --build-dir _build/preview $(BOOK_ARGS)

pdf: install                      ## the whole book as one PDF, _build/kokorochat-companion.pdf (Debian TeX: see .ci/system-packages)
	$(VENV)/bin/kokoro-nb book pdf $(DATA_ARGS) $(BOOK_ARGS)

COLAB_BUILD ?= _build
colab: install                    ## regenerate notebooks/colab/*.ipynb from the sources and the full-data build in $(COLAB_BUILD) (make book first; commit them)
	$(VENV)/bin/kokoro-nb book sync-colab --build-dir $(COLAB_BUILD)

teaching: install                 ## notebooks/student and notebooks/instructor from the Colab copies (nbgrader; make colab first; commit them)
	$(VENV)/bin/kokoro-nb book teaching

# the pinnable past runtime whose Python differs (3.12) runs the descriptive chapters too; empty: skip
COLAB_SIM_PAST ?= 2026.07
colab-sim: install                ## run every Colab copy on a simulation of Colab's published runtime (root; see scripts/colab_sim.py)
	$(PY) scripts/colab_sim.py $(COLAB_SIM_ARGS)
	$(if $(COLAB_SIM_PAST),$(PY) scripts/colab_sim.py --runtime $(COLAB_SIM_PAST) '0*')

shots:                            ## screenshots of the built chapters for a look (needs Debian chromium)
	$(PY) scripts/screenshot_book.py --out _build/shots $(patsubst _build/html/%,%,$(wildcard _build/html/notebooks/*.html))

test: install                     ## the layer contracts (lint-imports), unit tests, notebook tests and real-data tests
	$(VENV)/bin/lint-imports
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install                    ## load-time benchmark (targets: cold <= 2 s, warm <= 0.5 s)
	$(PY) scripts/bench_load.py $(if $(KOKOROCHAT_DIR),--data $(KOKOROCHAT_DIR))

TAG ?=
release-check: install            ## before tagging: pyproject, CHANGELOG.md, CITATION.cff, .zenodo.json (and TAG=vX.Y.Z) agree
	$(PY) -m kokoro_book.release $(if $(TAG),--tag $(TAG))

clean:
	rm -rf _build .pytest_cache
