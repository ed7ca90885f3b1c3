# whisperlab: one target for each thing a person does. Each installs what it needs, idempotently.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian packages the tests use: speech synthesis, shell lint, a second POSIX shell.
APT_PACKAGES := espeak-ng shellcheck dash
APT_COMMANDS := espeak-ng shellcheck dash

.PHONY: help setup system-deps lint test test-server bench clean

help:
	@echo "make setup   install the system packages and the Python venv ($(VENV))"
	@echo "make test    lint, then every test"
	@echo "make lint    ruff, shellcheck"
	@echo "make bench   benchmarks; figures go to bench-results/ (copy them into README.md)"
	@echo "make clean   remove the venv and caches"

setup: system-deps $(STAMP)

system-deps:
	@missing=""; for c in $(APT_COMMANDS); do command -v $$c >/dev/null || missing="$$missing $$c"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages ($$missing missing)"; \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo"; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	fi

$(STAMP): server/pyproject.toml server/requirements.lock server/requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r server/requirements.lock -r server/requirements-dev.txt
	$(BIN)/python -m pip install -q --no-deps -e server
	touch $@

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	git ls-files -z '*.sh' .ci/run | xargs -0 -r shellcheck

test-server: setup
	cd server && ../$(BIN)/python -m pytest -q -ra tests

test: lint test-server

bench: setup
	$(BIN)/python server/bench/bench.py --out bench-results

clean:
	rm -rf $(VENV) .cache .pytest_cache .ruff_cache server/.pytest_cache bench-results
