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
# Extra flags for the jobs, e.g. make train TRAIN_FLAGS='--epochs=20 --momentum'
PREPROCESS_FLAGS ?=
TRAIN_FLAGS ?=
EVAL_FLAGS ?=
export TF_CPP_MIN_LOG_LEVEL ?= 2

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

demo: $(INSTALLED) data preprocess train evaluate ## end to end on the demo corpus: data, preprocess, train, evaluate
	@echo "demo done: dataset $(DATASET), model $(JOB_DIR)/model, TensorBoard: tensorboard --logdir=$(JOB_DIR)/tensorboard"

clean: ## remove outputs (keeps .venv and data/)
	rm -rf $(OUT)

# --- preprocessing -------------------------------------------------------------
.PHONY: data preprocess bench-preprocess

data: $(CORPUS)/.done ## export the demo corpus (music21's Bach chorales) to MIDI

$(CORPUS)/.done: | $(INSTALLED)
	$(PY) -m preprocess.demo_corpus --output_dir=$(CORPUS)
	@touch $@

preprocess: $(DATASET)/dataset.json ## MIDI corpus -> TFRecord windows (DirectRunner, all cores)

# The dataset is rebuilt when the corpus, the pipeline's code or
# PREPROCESS_FLAGS change (the flags are kept in a stamp next to it).
$(DATASET)/dataset.json: $(CORPUS)/.done $(DATASET).flags preprocess/pipeline.py \
    preprocess/pianoroll.py preprocess/records.py | $(INSTALLED)
	$(PY) -m preprocess.main --input='$(CORPUS)/*.mid' --output_dir=$(DATASET) \
	  --direct_num_workers=0 --direct_running_mode=multi_processing --overwrite \
	  $(PREPROCESS_FLAGS)

$(DATASET).flags: preprocess-flags-changed
	@mkdir -p $(@D)
	@echo '$(PREPROCESS_FLAGS)' | cmp -s - $@ || echo '$(PREPROCESS_FLAGS)' > $@

.PHONY: preprocess-flags-changed
preprocess-flags-changed:

bench-preprocess: $(INSTALLED) data ## pipeline files/s vs bare pretty_midi parsing
	$(PY) -m preprocess.benchmark --input='$(CORPUS)/*.mid'

# --- training ------------------------------------------------------------------
.PHONY: train evaluate bench-train

train: $(INSTALLED) preprocess ## train on $(DATASET) into $(JOB_DIR) (seed's defaults; a rerun resumes)
	$(PY) -m trainer.task --data_dir=$(DATASET) --job_dir=$(JOB_DIR) $(TRAIN_FLAGS)

evaluate: $(INSTALLED) ## held-out log-likelihood (AIS) of $(JOB_DIR)/model vs an independent baseline
	$(PY) -m trainer.evaluate --model_dir=$(JOB_DIR)/model --data_dir=$(DATASET) \
	  $(EVAL_FLAGS) | tee $(JOB_DIR)/evaluation.json

bench-train: $(INSTALLED) preprocess ## CD-1 examples/s vs matmul FLOP/s, 2 replicas, and the seed's own loop
	$(PY) -m trainer.benchmark --data_dir=$(DATASET)

# --- generation ----------------------------------------------------------------

# --- cloud ---------------------------------------------------------------------
