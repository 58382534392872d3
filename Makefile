# rbm-music. `make` alone lists the targets. Every target maps to one entry point;
# cloud variants differ from local ones only in flags.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

# Local layout (all git-ignored). CORPUS=DIR: any folder of MIDI files (read
# below DIR, never written to); without it, music21's Bach chorales.
DEMO_CORPUS := data/chorales
CORPUS ?= $(DEMO_CORPUS)
OUT ?= out
# Each MODEL has folders of its own, so two models never mix: out/job-rnn_nade,
# out/samples-rnn_nade... (the window RBM keeps the names it had first:
# out/job, out/samples); the temporal models' dataset holds whole pieces.
SEQUENCE_MODELS := rnn_rbm rnn_nade
DATASET_SUFFIX = $(if $(filter $(SEQUENCE_MODELS),$(MODEL)),-pieces)
DATASET ?= $(OUT)/dataset$(DATASET_SUFFIX)
JOB_DIR ?= $(OUT)/job$(MODEL_SUFFIX)
SAMPLES ?= $(OUT)/samples$(MODEL_SUFFIX)
# Extra flags for the jobs, e.g. make train TRAIN_FLAGS='--epochs=20'
PREPROCESS_FLAGS ?=
TRAIN_FLAGS ?=
EVAL_FLAGS ?=
GENERATE_FLAGS ?=
# e.g. make compare COMPARE_FLAGS='--max_files=300 --soundfont=my.sf2'
COMPARE_FLAGS ?=
NUM_SAMPLES ?= 1000
# The default, the RNN-NADE, and MODEL=rnn_rbm: the temporal models, on whole
# pieces with a valid split that picks their best state (the RNN-NADE was
# chosen on six styles: benchmarks/RESULTS.md, "The default model");
# MODEL=rbm: the window RBM of the original post; MODEL=bernoulli: the
# baseline. Each model's dataset flags go before PREPROCESS_FLAGS (a flag
# given there wins).
MODEL ?= rnn_nade
MODELS := rbm rnn_rbm rnn_nade bernoulli
ifeq ($(filter $(MODEL),$(MODELS)),)
$(error MODEL=$(MODEL) is not a model: use one of $(MODELS))
endif
MODEL_SUFFIX := $(if $(filter rbm,$(MODEL)),,-$(MODEL))
MODEL_PREPROCESS_FLAGS_rnn_rbm := --num_timesteps=0 --valid_fraction=0.1
MODEL_PREPROCESS_FLAGS_rnn_nade := $(MODEL_PREPROCESS_FLAGS_rnn_rbm)
# The RNN-RBM's AIS costs time per frame: make evaluate scores a fixed subset
# of 5,000 frames or more and reports its sampling error (piece_stderr);
# EVAL_FLAGS=--max_frames=0 scores every piece.
MODEL_EVAL_FLAGS_rnn_rbm := --max_frames=5000
DATASET_FLAGS := $(strip $(MODEL_PREPROCESS_FLAGS_$(MODEL)) $(PREPROCESS_FLAGS))
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: help install test lint demo clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  %-18s %s\n", $$1, $$2}'

$(INSTALLED): setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[trainer,test,data,audio,bench]'
	@touch $@

install: $(INSTALLED) ## create .venv and install the package with trainer, test, demo and audio extras

# Two pytest workers: much of the suite waits on subprocesses and
# TensorFlow's start-up, which the other worker fills (TEST_WORKERS=0: one
# process).
TEST_WORKERS ?= 2
test: $(INSTALLED) ## run the test suite (offline; GCS emulator, DirectRunner, 2 logical CPUs)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --durations=25 tests

lint: $(INSTALLED) ## ruff with ruff.toml over the whole tree (CI runs it before the tests)
	$(PY) -m ruff check .

demo: $(INSTALLED) data preprocess train evaluate calibrate generate ## end to end on CORPUS=DIR (default: the Bach chorales) into OUT=DIR (default out/): preprocess, train, evaluate, calibrate, generate, compare
	@echo "demo done: dataset $(DATASET), model $(JOB_DIR)/model, $(NUM_SAMPLES) samples in $(SAMPLES)"
	@echo "  listen and look: $(abspath $(SAMPLES))/previews/index.html"
	@echo "  samples vs $(CORPUS): $(SAMPLES)/comparison.json, $(SAMPLES)/comparison.png"
	@echo "  TensorBoard: $(PY) -m tensorboard.main --logdir=$(JOB_DIR)/tensorboard"

clean: ## remove outputs (keeps .venv and data/)
	rm -rf $(OUT)

# --- preprocessing -------------------------------------------------------------
.PHONY: data preprocess bench-preprocess

ifeq ($(CORPUS),$(DEMO_CORPUS))
CORPUS_STAMP := $(CORPUS)/.done
CORPUS_GLOB := $(CORPUS)/*.mid
else
# A user's folder: every .mid/.midi below it. The dataset is rebuilt when its
# list of files (names, sizes, times) changes; the list is kept under OUT.
CORPUS_STAMP := $(OUT)/corpus.files
CORPUS_GLOB := $(CORPUS)/**
endif

data: $(CORPUS_STAMP) ## the corpus: exports the demo corpus (music21's Bach chorales) to MIDI; checks CORPUS=DIR

$(DEMO_CORPUS)/.done: | $(INSTALLED)
	$(PY) -m preprocess.demo_corpus --output_dir=$(DEMO_CORPUS)
	@touch $@

$(OUT)/corpus.files: corpus-changed
	@test -d '$(CORPUS)' || { echo "make: CORPUS=$(CORPUS) is not a folder: give a folder of MIDI files, e.g. make demo CORPUS=~/midi" >&2; exit 2; }
	@mkdir -p $(@D)
	@find -L '$(CORPUS)' -type f \( -iname '*.mid' -o -iname '*.midi' \) -printf '%P %s %T@\n' \
	  | LC_ALL=C sort > $@.new
	@test -s $@.new || { rm -f $@.new; echo "make: CORPUS=$(CORPUS) holds no .mid or .midi file" >&2; exit 2; }
	@cmp -s $@.new $@ && rm -f $@.new || mv -f $@.new $@

.PHONY: corpus-changed
corpus-changed:

preprocess: $(DATASET)/dataset.json ## MIDI corpus -> TFRecord windows (DirectRunner, all cores)

# The dataset is rebuilt when the corpus, the pipeline's code or
# PREPROCESS_FLAGS change (the flags are kept in a stamp next to it). The grid
# and note range are fitted to the corpus (--fit_corpus); a layout flag given
# in PREPROCESS_FLAGS is kept, and --nofit_corpus gives the original post's.
$(DATASET)/dataset.json: $(CORPUS_STAMP) $(DATASET).flags $(wildcard preprocess/*.py) \
    | $(INSTALLED)
	$(PY) -m preprocess.main --input='$(CORPUS_GLOB)' --output_dir=$(DATASET) \
	  --direct_num_workers=0 --direct_running_mode=multi_processing --overwrite \
	  --fit_corpus $(DATASET_FLAGS)

$(DATASET).flags: preprocess-flags-changed
	@mkdir -p $(@D)
	@echo '$(DATASET_FLAGS)' | cmp -s - $@ || echo '$(DATASET_FLAGS)' > $@

.PHONY: preprocess-flags-changed
preprocess-flags-changed:

bench-preprocess: $(INSTALLED) data ## pipeline files/s vs bare pretty_midi parsing
	$(PY) -m benchmarks.bench_preprocess --input='$(CORPUS_GLOB)'

.PHONY: bench-load
bench-load: $(INSTALLED) data ## load run (not in CI, ~20 min): 20,000 partly hostile files, then 100,000 samples killed and resumed
	$(PY) -m benchmarks.bench_load --corpus=$(CORPUS)

# --- training ------------------------------------------------------------------
.PHONY: train evaluate bench-train

train: $(INSTALLED) preprocess ## train on $(DATASET) into $(JOB_DIR) (tuned defaults; TRAIN_FLAGS=--preset=original for the original post's; a rerun resumes)
	$(PY) -m trainer.task --model=$(MODEL) --data_dir=$(DATASET) --job_dir=$(JOB_DIR) $(TRAIN_FLAGS)

evaluate: $(INSTALLED) ## held-out log-likelihood (AIS) of $(JOB_DIR)/model vs an independent baseline
	$(PY) -m trainer.evaluate --model_dir=$(JOB_DIR)/model --data_dir=$(DATASET) \
	  $(MODEL_EVAL_FLAGS_$(MODEL)) $(EVAL_FLAGS) | tee $(JOB_DIR)/evaluation.json

# The chorales benchmark: frame RBM, window RBM and RNN-RBM on a
# quarter-note grid, 88 keys; a rerun reuses what is in $(BENCH_DIR).
BENCH_DIR ?= $(OUT)/chorales-benchmark
BENCH_FLAGS ?=
.PHONY: chorales-benchmark
chorales-benchmark: $(INSTALLED) data ## nats/frame of the frame RBM, window RBM, RNN-RBM and RNN-NADE on the chorales (+ Bernoulli), one table
	$(PY) -m benchmarks.chorales_benchmark --corpus=$(CORPUS) --workdir=$(BENCH_DIR) $(BENCH_FLAGS)

# Six corpora to measure the project on several styles (benchmarks/corpora.py),
# one folder each; a finished folder is left as it is.
CORPORA := nottingham piano_midi musedata chorales essen monteverdi
CORPORA_DIR ?= data/corpora
POLYPHONIC_DIR ?= /work/shared/data/polyphonic
.PHONY: corpora
corpora: $(INSTALLED) ## the six measurement corpora as MIDI folders under data/corpora/ (needs the bench extra)
	@for name in $(CORPORA); do \
	  $(PY) -m benchmarks.corpora --corpus=$$name --output_dir=$(CORPORA_DIR)/$$name \
	    --polyphonic_dir=$(POLYPHONIC_DIR) || exit; \
	done

# The RNN-NADE's (gated RNN) test NLL on Nottingham, Piano-midi.de and
# MuseData (public splits) next to the published models;
# POLYPHONIC_SETS=piano_midi runs one, POLYPHONIC_FLAGS=--model=rnn_rbm the
# RNN-RBM.
POLYPHONIC_BENCH_DIR ?= $(OUT)/polyphonic-benchmark
POLYPHONIC_SETS ?= nottingham,piano_midi,musedata
POLYPHONIC_FLAGS ?=
.PHONY: polyphonic-benchmark
polyphonic-benchmark: $(INSTALLED) ## RNN-NADE test NLL on the three polyphonic sets against the published table (make corpora first)
	$(PY) -m benchmarks.polyphonic_benchmark --corpora_dir=$(CORPORA_DIR) --workdir=$(POLYPHONIC_BENCH_DIR) --sets=$(POLYPHONIC_SETS) $(POLYPHONIC_FLAGS)

# The default recipe on each corpus of $(CORPORA_DIR): make demo CORPUS=... per
# folder, then one table (benchmarks/RESULTS.md, "The default recipe on six styles").
STYLES_DIR ?= $(OUT)/styles
.PHONY: styles-benchmark
styles-benchmark: $(INSTALLED) ## make demo on every corpus of $(CORPORA_DIR) (make corpora first), one table
	$(PY) -m benchmarks.styles_benchmark --corpora_dir=$(CORPORA_DIR) --workdir=$(STYLES_DIR)

# bench-train measures at the original post's shape (V = 2340): its own
# dataset in the original layout, not the demo's fitted one.
BENCH_TRAIN_DATASET ?= $(OUT)/dataset-original
bench-train: $(INSTALLED) data ## CD-1 examples/s vs matmul FLOP/s, 2 replicas, the seed's own loop, and the RNN-RBM step (frames/s, fraction of matmul FLOP/s)
	$(MAKE) --no-print-directory preprocess DATASET=$(BENCH_TRAIN_DATASET) MODEL=rbm PREPROCESS_FLAGS=--nofit_corpus
	$(PY) -m benchmarks.bench_train --data_dir=$(BENCH_TRAIN_DATASET)

# --- generation ----------------------------------------------------------------
.PHONY: generate compare bench-generate calibrate

calibrate: $(INSTALLED) $(JOB_DIR)/model/sampling.json ## the sampling temperature whose samples fit the held-out pieces best (redone when the model changes)

$(JOB_DIR)/model/sampling.json: $(JOB_DIR)/model/model.json | $(INSTALLED)
	$(PY) -m trainer.calibrate --model_dir=$(JOB_DIR)/model --data_dir=$(DATASET)

# Trains first only when there is no model yet (`make train` resumes or retrains).
$(JOB_DIR)/model/model.json: | $(INSTALLED)
	$(MAKE) train

generate: $(INSTALLED) $(JOB_DIR)/model/model.json ## $(NUM_SAMPLES) samples of $(JOB_DIR)/model to $(SAMPLES), with previews, then compare (a rerun resumes)
	$(PY) -m trainer.generate --model_dir=$(JOB_DIR)/model --output=$(SAMPLES) \
	  --num_samples=$(NUM_SAMPLES) --previews $(GENERATE_FLAGS)
	$(MAKE) --no-print-directory compare

compare: $(INSTALLED) ## $(SAMPLES) against the corpus: features, copies of training windows, figure, gallery
	$(PY) -m trainer.compare --samples=$(SAMPLES) --data='$(CORPUS_GLOB)' \
	  --dataset_dir=$(DATASET) $(COMPARE_FLAGS)

# The window RBM's sampler and write path (the RNN-RBM's is measured on a model
# of its own): trains MODEL=rbm's demo model first if there is none.
bench-generate: $(INSTALLED) ## samples/s to local disk and the GCS emulator vs bare pretty_midi writes
	$(MAKE) --no-print-directory MODEL=rbm $(OUT)/job/model/model.json
	$(PY) -m benchmarks.bench_generate --model_dir=$(OUT)/job/model

# --- cloud ---------------------------------------------------------------------
# The same jobs on Google Cloud; only flags differ (README, "Run on Google Cloud"):
#   make image preprocess-cloud train-cloud generate-cloud PROJECT=p BUCKET=b
# PREPROCESS_FLAGS, TRAIN_FLAGS and GENERATE_FLAGS reach the jobs as locally;
# VERTEX_FLAGS / DATAFLOW_FLAGS choose the machines, e.g.
#   make train-cloud ... VERTEX_FLAGS='--gpus=4 --workers=2 --spot' TRAIN_FLAGS=--batch_size=128
# and --dry_run in either prints what would be submitted.
.PHONY: image preprocess-cloud train-cloud generate-cloud

PROJECT ?=
REGION ?= us-central1
BUCKET ?=
# Artifact Registry Docker repository (created once, see README) and tag.
REPOSITORY ?= rbm-music
TAG ?= $(shell git describe --always --dirty 2>/dev/null || echo latest)
IMAGE ?= $(REGION)-docker.pkg.dev/$(PROJECT)/$(REPOSITORY)/trainer:$(TAG)
# cloudbuild (no local Docker needed) or docker (build and push from here).
IMAGE_BUILDER ?= cloudbuild
CLOUD_INPUT ?= gs://$(BUCKET)/corpus/*.mid
CLOUD_DATASET ?= gs://$(BUCKET)/dataset$(DATASET_SUFFIX)
CLOUD_JOB_DIR ?= gs://$(BUCKET)/job$(MODEL_SUFFIX)
VERTEX_FLAGS ?=
DATAFLOW_FLAGS ?=
# $(call need,VAR,example): stop with a clear message when VAR is empty.
need = @test -n "$($(1))" || { echo "error: $(1) is not set: make $@ $(1)=$(2) (see README, Run on Google Cloud)" >&2; exit 2; }

image: ## build the training container (deploy/Dockerfile.trainer) and push it to $(IMAGE)
	$(call need,PROJECT,my-project)
	$(call need,REGION,us-central1)
	@case "$(IMAGE_BUILDER)" in \
	  docker) docker build -f deploy/Dockerfile.trainer -t '$(IMAGE)' . && docker push '$(IMAGE)' ;; \
	  cloudbuild) mkdir -p $(OUT) && \
	    printf '{"steps": [{"name": "gcr.io/cloud-builders/docker", "args": ["build", "-f", "deploy/Dockerfile.trainer", "-t", "%s", "."]}], "images": ["%s"], "timeout": "3600s"}\n' '$(IMAGE)' '$(IMAGE)' > $(OUT)/cloudbuild.json && \
	    gcloud builds submit --project='$(PROJECT)' --config=$(OUT)/cloudbuild.json . ;; \
	  *) echo "error: IMAGE_BUILDER=$(IMAGE_BUILDER): use cloudbuild or docker" >&2; exit 2 ;; \
	esac
	@echo "image: $(IMAGE)"

preprocess-cloud: $(INSTALLED) ## preprocessing on Dataflow: $(CLOUD_INPUT) -> $(CLOUD_DATASET)
	$(call need,PROJECT,my-project)
	$(call need,REGION,us-central1)
	$(call need,BUCKET,my-bucket)
	$(PY) -m deploy.dataflow --project=$(PROJECT) --region=$(REGION) --bucket=$(BUCKET) \
	  --input='$(CLOUD_INPUT)' --output_dir=$(CLOUD_DATASET) $(DATAFLOW_FLAGS) --fit_corpus $(DATASET_FLAGS)

train-cloud: $(INSTALLED) ## training on Vertex AI GPUs: $(CLOUD_DATASET) -> $(CLOUD_JOB_DIR)
	$(call need,PROJECT,my-project)
	$(call need,REGION,us-central1)
	$(call need,BUCKET,my-bucket)
	$(PY) -m deploy.vertex train --project=$(PROJECT) --region=$(REGION) --image=$(IMAGE) \
	  --job_dir=$(CLOUD_JOB_DIR) $(VERTEX_FLAGS) -- --model=$(MODEL) --data_dir=$(CLOUD_DATASET) $(TRAIN_FLAGS)

generate-cloud: $(INSTALLED) ## samples on Vertex AI: $(CLOUD_JOB_DIR)/model -> $(CLOUD_JOB_DIR)/samples
	$(call need,PROJECT,my-project)
	$(call need,REGION,us-central1)
	$(call need,BUCKET,my-bucket)
	$(PY) -m deploy.vertex generate --project=$(PROJECT) --region=$(REGION) --image=$(IMAGE) \
	  --job_dir=$(CLOUD_JOB_DIR) $(VERTEX_FLAGS) -- $(GENERATE_FLAGS)
