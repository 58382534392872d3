# rbm-music. `make` alone lists the targets. Every target maps to one entry point;
# cloud variants differ from local ones only in flags.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

# Local layout (all git-ignored).
CORPUS ?= data/chorales
OUT ?= out
DATASET ?= $(OUT)/dataset
JOB_DIR ?= $(OUT)/job
SAMPLES ?= $(OUT)/samples

.PHONY: help install test demo clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  %-18s %s\n", $$1, $$2}'

$(INSTALLED): setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,data]'
	@touch $@

install: $(INSTALLED) ## create .venv and install the package with test and demo extras

test: $(INSTALLED) ## run the test suite (offline; GCS emulator, DirectRunner, 2 logical CPUs)
	$(PY) -m pytest -q tests

demo: $(INSTALLED) data preprocess ## end to end on the demo corpus
	@echo "demo done: dataset in $(DATASET)"

clean: ## remove outputs (keeps .venv and data/)
	rm -rf $(OUT)

# --- preprocessing -------------------------------------------------------------
.PHONY: data preprocess bench-preprocess

data: $(CORPUS)/.done ## export the demo corpus (music21's Bach chorales) to MIDI

$(CORPUS)/.done: | $(INSTALLED)
	$(PY) -m preprocess.demo_corpus --output_dir=$(CORPUS)
	@touch $@

preprocess: $(INSTALLED) data ## MIDI corpus -> TFRecord windows (DirectRunner, all cores)
	$(PY) -m preprocess.main --input='$(CORPUS)/*.mid' --output_dir=$(DATASET) \
	  --direct_num_workers=0 --direct_running_mode=multi_processing

bench-preprocess: $(INSTALLED) data ## pipeline files/s vs bare pretty_midi parsing
	$(PY) -m preprocess.benchmark --input='$(CORPUS)/*.mid'

# --- training ------------------------------------------------------------------

# --- generation ----------------------------------------------------------------

# --- cloud ---------------------------------------------------------------------
