# `make repro` builds everything from the default specs; `make test` runs the test suite.
# Both create .venv first when it is missing (scripts/bootstrap.sh).
SHELL := /bin/bash
VENV ?= .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1
export DVC_SITE_CACHE_DIR := $(CURDIR)/.dvc/site-cache
export HF_HOME := $(CURDIR)/.cache/huggingface
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: env repro test test-fast lint schemas validate

env:
	@bash scripts/bootstrap.sh

repro: env
	dvc repro

test: env
	python -m pytest -q

test-fast: env
	python -m pytest -q -m "not slow"

lint: env
	python -m ruff check .

schemas: env
	fteforge schema --out schemas

validate: env
	fteforge validate
