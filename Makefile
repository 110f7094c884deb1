# music-recsys: the raw CSV -> GX gate -> dbt on DuckDB -> track2vec -> Keras KNN -> endpoint.
# `make help` lists the targets. Every stage is also a plain command (`ml ...`, `dbt ...`).

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
MAKEFLAGS += --warn-undefined-variables --no-builtin-rules --no-print-directory

PYTHON_BOOT ?= python3.11
VENV        := .venv
BIN         := $(VENV)/bin
STAMP       := $(VENV)/.installed

# Contracts shared with dbt and `ml` (docs/contracts.md). Absolute so dbt resolves them from dbt_project/.
RAW_CSV     ?= data/raw/spotify_dataset.csv
DUCKDB_PATH ?= data/warehouse.duckdb
MODELS_DIR  ?= models
REPORTS_DIR ?= reports
TARGET      ?= local
PRESET      ?= small
# The team-wide seed has one home, ml/config.py (stdlib only, so this works before .venv exists).
ifeq ($(origin SEED),undefined)
SEED := $(shell $(PYTHON_BOOT) ml/config.py get seed 2>/dev/null || python3 ml/config.py get seed)
endif
export RAW_CSV     := $(abspath $(RAW_CSV))
export DUCKDB_PATH := $(abspath $(DUCKDB_PATH))
export MODELS_DIR  := $(abspath $(MODELS_DIR))
export REPORTS_DIR := $(abspath $(REPORTS_DIR))
export SEED
export DBT_PROFILES_DIR := $(abspath profiles)
export DBT_SEND_ANONYMOUS_USAGE_STATS := False
export TF_CPP_MIN_LOG_LEVEL := 2

DBT := cd dbt_project && $(abspath $(BIN))/dbt

.PHONY: help
help: ## list the targets
	@echo "music-recsys - make targets (RAW_CSV=$(RAW_CSV))"
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON_BOOT) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	@touch $@

.PHONY: install
install: $(STAMP) ## create .venv and install the package with all extras (idempotent)

# Only the default path is ever generated: a RAW_CSV pointing at a missing file is a mistake to
# report, not a place to write a synthetic stand-in.
DEFAULT_RAW_CSV := $(abspath data/raw/spotify_dataset.csv)
$(RAW_CSV): | $(STAMP)
	@if [ "$@" != "$(DEFAULT_RAW_CSV)" ]; then \
	  echo "error: RAW_CSV=$@ does not exist (expected the Kaggle spotify_dataset.csv there)." >&2; \
	  echo "       Unset RAW_CSV to generate a sample at $(DEFAULT_RAW_CSV)." >&2; exit 1; fi
	$(BIN)/ml data generate --preset $(PRESET) --seed $(SEED) --out $@

.PHONY: data
data: $(RAW_CSV) ## generate the sample raw file (PRESET=small) unless RAW_CSV exists; never overwrites

.PHONY: validate
validate: $(RAW_CSV) ## Great Expectations gate on the raw file (Data Docs under gx/)
	$(BIN)/ml validate raw

.PHONY: dbt
dbt: validate ## dbt build: staged, cleaned, sessionized marts in DUCKDB_PATH, with every test
	@mkdir -p $(dir $(DUCKDB_PATH))
	$(DBT) build
	$(BIN)/ml validate marts

.PHONY: docs
docs: dbt ## generate the dbt docs site (dbt_project/target/index.html)
	$(DBT) docs generate
	@echo "dbt docs: $(abspath dbt_project/target/index.html)  (serve: cd dbt_project && dbt docs serve)"

.PHONY: report
report: dbt ## dataset profile: power law, distributions (reports/data_profile.html)
	$(BIN)/ml report data

.PHONY: train
train: dbt ## train, search and evaluate track2vec; writes models/latest
	$(BIN)/ml train

.PHONY: mlflow-ui
mlflow-ui: | $(STAMP) ## open the MLflow UI on the training runs (MODELS_DIR/mlruns, or MLFLOW_TRACKING_URI) at 127.0.0.1:5000
	$(BIN)/mlflow ui --host 127.0.0.1 --port 5000 \
	  --backend-store-uri "$${MLFLOW_TRACKING_URI:-sqlite:///$(MODELS_DIR)/mlruns/mlflow.db}"

.PHONY: export
export: | $(STAMP) ## export models/latest as a Keras KNN SavedModel (model.tar.gz)
	$(BIN)/ml export

.PHONY: serve
serve: export ## serve the exported model in the foreground on 127.0.0.1
	$(BIN)/ml serve

.PHONY: deploy
deploy: export ## deploy the exported model (TARGET=local|sagemaker) and check it
	$(BIN)/ml deploy --target $(TARGET)

.PHONY: undeploy
undeploy: | $(STAMP) ## stop the local endpoint or delete the SageMaker endpoint (TARGET=...)
	$(BIN)/ml undeploy --target $(TARGET)

.PHONY: demo
demo: ## the whole pipeline on the small preset: data, gate, dbt, docs, report, train, export, deploy, check
	$(MAKE) docs report train deploy TARGET=local
	$(BIN)/ml demo-summary

.PHONY: test
test: $(STAMP) ## run the test suite (small generated data, real DuckDB, dbt, gensim, TF, moto)
	$(BIN)/pytest

.PHONY: lint
lint: $(STAMP) ## ruff and SQLFluff
	$(BIN)/ruff check ml tests bench
	$(BIN)/ruff format --check ml tests bench
	cd dbt_project && $(abspath $(BIN))/sqlfluff lint models tests/generic macros

.PHONY: bench
bench: $(STAMP) ## benchmarks on the full preset; figures to bench/results/
	$(BIN)/python -m bench

.PHONY: clean
clean: ## remove generated data, warehouse, models, reports and dbt target (keeps .venv)
	rm -rf data models reports run dbt_project/target dbt_project/logs gx/uncommitted
