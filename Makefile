# ktrdr.ops — the two commands a new machine needs are `make canary` and `make test`.
# Every target sets up what it needs (venv, Docker engine) on its own.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV        ?= .venv
PY          := $(VENV)/bin/python
INVENTORY   ?= inventories/local
KTRDR_SRC   ?=
# Ansible finds this checkout as the collection ktrdr.ops through this path (see ansible.cfg).
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

_src_var    := $(if $(KTRDR_SRC),-e ktrdr_source_dir=$(abspath $(KTRDR_SRC)),)

.PHONY: help venv venv-dev engine images canary teardown test test-faults test-remote test-gpu test-ktrdr bench clean

help:
	@echo "make canary   build the split images and deploy + prove the canary on local Docker (KTRDR_SRC=/path/to/ktrdr for a real checkout)"
	@echo "make test     lint, unit, live and Molecule tests (what CI runs)"
	@echo "make images   build the split images only"
	@echo "make teardown remove the deployed containers (volumes kept unless KTRDR_PURGE=true)"
	@echo "make test-faults  the fault drills on a real deployment (tests/faults, ~15 min, part of make test; KTRDR_FAULTS_DOCKERD=1 adds the engine restart)"
	@echo "make test-remote  the three-host Molecule scenario (own engines, no registry; ~15 min, not in CI)"
	@echo "make test-gpu     the GPU scenario (skips with one line where no NVIDIA GPU/toolkit)"
	@echo "make test-ktrdr KTRDR_SRC=<ktrdr>  canary, re-run, ktrdr's test-canary.sh, restart drills, strategy verdicts on real ktrdr (not in CI)"
	@echo "make bench    run the benchmarks and rewrite docs/benchmarks.md"

# One venv in two layers, each rebuilt only when its pinned requirements change: what running the
# collection needs (requirements/controller.txt, no torch) and, for the test targets, the test
# toolchain with the reference service's test requirements (requirements/dev.txt).
$(VENV)/.stamp-controller: requirements/controller.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -r requirements/controller.txt
	mkdir -p .ansible/collections/ansible_collections/ktrdr
	ln -sfn ../../../.. .ansible/collections/ansible_collections/ktrdr/ops
	touch $@

# The reference service runs in-process for its own tests: its locked dependencies with the ml
# extra, as uv exports them, less torch's CUDA satellites (the host's pip takes the CPU build of
# torch that lies on disk).
$(VENV)/.stamp-dev: $(VENV)/.stamp-controller requirements/dev.txt deploy/reference/uv.lock
	$(VENV)/bin/uv export --quiet --frozen --no-dev --no-hashes --no-emit-project --no-annotate --no-header \
	  --extra ml --project deploy/reference | grep -Ev '^(triton|nvidia-|cuda-)' > $(VENV)/reference-requirements.txt
	$(PY) -m pip install -q -r requirements/dev.txt -r $(VENV)/reference-requirements.txt
	touch $@

venv: $(VENV)/.stamp-controller

venv-dev: $(VENV)/.stamp-dev

engine:
	bash scripts/ensure-docker.sh

images: venv engine
	ansible-playbook -i $(INVENTORY) playbooks/build.yml $(_src_var)

canary: venv engine
	ansible-playbook -i $(INVENTORY) playbooks/site.yml $(_src_var)

teardown: venv engine
	ansible-playbook -i $(INVENTORY) playbooks/teardown.yml -e ktrdr_purge=$${KTRDR_PURGE:-false}

test: venv-dev engine
	bash tests/run.sh

test-faults: venv-dev engine
	KTRDR_TEST_ONLY=faults bash tests/run.sh

test-remote: venv-dev engine
	molecule test -s remote

test-gpu: venv-dev engine
	molecule test -s gpu

test-ktrdr: venv-dev engine
	@test -n "$(KTRDR_SRC)" || { echo "make test-ktrdr KTRDR_SRC=/path/to/ktrdr-checkout" >&2; exit 2; }
	KTRDR_SRC=$(abspath $(KTRDR_SRC)) bash tests/ktrdr/run.sh

bench: venv-dev engine
	bash bench/run.sh

clean:
	rm -rf $(VENV) .ansible build
