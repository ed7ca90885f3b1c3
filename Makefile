# whisperlab: one target for each thing a person does. Each installs what it needs, idempotently.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The commands the tests and the lab need, each with the Debian package that provides it. A command
# already on PATH is left alone, whichever package gave it: this machine kind ships NodeSource's nodejs,
# whose npm conflicts with Debian's npm package, and any npm serves the lab's download of OpenClaw.
#   tests: speech synthesis, shell lint, a second POSIX shell
#   lab:   debootstrap, systemd-nspawn, iptables, ip, sysctl, ssh, and npm (OpenClaw and its Node come
#          from the npm registry)
SYSTEM_DEPS := espeak-ng:espeak-ng shellcheck:shellcheck dash:dash \
  debootstrap:debootstrap systemd-nspawn:systemd-container iptables:iptables ip:iproute2 \
  sysctl:procps pgrep:procps ssh:openssh-client ssh-keygen:openssh-client npm:npm
# Ansible and the lab tools run from the venv.
export PATH := $(abspath $(BIN)):$(PATH)
INVENTORY ?= inventory/lab/hosts.yml
REQUIREMENTS := -r server/requirements.lock -r server/requirements-dev.txt -r tests/requirements.txt \
  -r server/whisperlab/requirements.txt

.PHONY: help setup system-deps dist lint test test-fast test-server test-skill test-roles test-tool test-lab lab lab-down status bench soak clean

help:
	@echo "make lab       boot the simulated three-host lab, provision it, transcribe through it"
	@echo "make lab-down  destroy the lab (keeps the rootfs and wheel cache)"
	@echo "make status    each server's health, unit, GPU and last requests, over the client's SSH trust (INVENTORY=...)"
	@echo "make test      lint, server, skill and role tests, then the lab sequence (converge, idempotence, check, verify, faults)"
	@echo "make test-fast lint and the server's unit tests: the inner loop, about a minute, no lab"
	@echo "make setup     install the system packages and the Python venv ($(VENV)), with the whisperlab command"
	@echo "make lint      ruff, shellcheck, yamllint, ansible-lint, syntax check"
	@echo "make dist      the server's wheel, named for its source, in dist/ (the server play builds it too)"
	@echo "make bench   benchmarks; figures go to bench-results/ (copy them into README.md)"
	@echo "make soak    long uploads (1 h, 3 h) and a bounded mix of clients against the real server"
	@echo "make clean   remove the venv and caches"

setup: system-deps $(STAMP)

system-deps:
	@packages=""; for pair in $(SYSTEM_DEPS); do \
	  command -v "$${pair%%:*}" >/dev/null || case " $$packages " in *" $${pair#*:} "*) ;; *) packages="$$packages $${pair#*:}" ;; esac; \
	done; \
	if [ -n "$$packages" ]; then \
	  echo "installing Debian packages:$$packages"; \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo"; \
	  $$sudo apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$packages >/dev/null; \
	fi; \
	for pair in $(SYSTEM_DEPS); do \
	  command -v "$${pair%%:*}" >/dev/null || { echo "$${pair%%:*} is still missing after installing $${pair#*:}" >&2; exit 1; }; \
	done

# The install is tried twice: a registry hiccup should not fail a whole run.
$(STAMP): server/pyproject.toml tests/kit/pyproject.toml server/requirements.lock server/requirements-dev.txt \
  tests/requirements.txt server/whisperlab/pyproject.toml server/whisperlab/requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(REQUIREMENTS) || $(BIN)/python -m pip install -q $(REQUIREMENTS)
	$(BIN)/python -m pip install -q --no-deps -e server -e tests/kit -e server/whisperlab
	touch $@

# The wheel the server play installs on each box; built again only when the source changes.
dist: setup
	$(BIN)/python server/tools/dist.py --out dist

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	git ls-files -z '*.sh' .ci/run | xargs -0 -r shellcheck
	git ls-files -z 'skills/*.sh' | xargs -0 -r shellcheck -s sh
	$(BIN)/yamllint --strict .
	$(BIN)/ansible-lint --profile production site.yml playbooks roles
	$(BIN)/ansible-playbook -i inventory/example/hosts.yml --syntax-check site.yml

test-server: setup
	cd server && ../$(BIN)/python -m pytest -q -ra tests

# The whisperlab command (compare, batch): scripted endpoints, then real servers with real models.
test-tool: setup
	cd server/whisperlab && ../../$(BIN)/python -m pytest -q -ra -p no:cacheprovider tests

# Four workers: the skill's checks mostly wait on stand-in servers, retries and timeouts.
test-skill: setup
	$(BIN)/python -m pytest -q -ra -p no:cacheprovider -n 4 skills/tests

# The roles' controller-side logic (the Windows role's .wslconfig merge and rendering); no hosts needed.
test-roles: setup
	$(BIN)/python -m pytest -q -ra -p no:cacheprovider -n 2 tests/roles

test-lab: setup
	tests/lab/sequence.sh

# Lint first; then the lab sequence, with the server, skill and roles suites running beside its first
# steps (tests/run_all.sh): the lab waits on its hosts about half the time while it boots and converges.
test: lint
	tests/run_all.sh

# The inner loop: lint and the server's unit tests (a fake engine), no model, no lab.
test-fast: lint
	cd server && ../$(BIN)/python -m pytest -q -ra tests/unit

lab: setup
	tests/lab/lab.sh up
	$(BIN)/ansible-playbook -i $(INVENTORY) site.yml
	@if [ -x tests/lab/demo.sh ]; then tests/lab/demo.sh; fi

lab-down:
	tests/lab/lab.sh down

# Read-only: each client asks each server's monitor over its own pinned SSH key.
status: setup
	$(BIN)/ansible-playbook -i $(INVENTORY) playbooks/status.yml

bench: setup
	$(BIN)/python server/bench/bench.py --out bench-results

soak: setup
	$(BIN)/python server/bench/soak.py

clean:
	rm -rf $(VENV) .cache .pytest_cache .ruff_cache server/.pytest_cache bench-results
