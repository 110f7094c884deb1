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
# User values reach recipes only through the environment ("$$RAW_CSV"), never pasted into shell text,
# so spaces, quotes, '$(...)' or backticks in a path are data, not commands.
RAW_CSV     ?= data/raw/spotify_dataset.csv
DUCKDB_PATH ?= data/warehouse.duckdb
MODELS_DIR  ?= models
REPORTS_DIR ?= reports
TARGET      ?= local
PRESET      ?= small
DBT_TARGET  ?= dev
# The team-wide seed has one home, ml/config.py (stdlib only, so this works before .venv exists).
ifeq ($(origin SEED),undefined)
SEED := $(shell $(PYTHON_BOOT) ml/config.py get seed 2>/dev/null || python3 ml/config.py get seed)
endif

# $(abspath) splits on spaces; prefix the working directory to a relative path instead.
absolute = $(if $(filter /%,$(firstword $(1))),$(1),$(CURDIR)/$(1))

# $(value ...): the text as given, so a '$(shell ...)' in a value is never run by make either.
# DuckDB (the gate, dbt) expands * ? [ ] in a path and would read every matching file.
ifneq ($(findstring *,$(value RAW_CSV))$(findstring ?,$(value RAW_CSV))$(findstring [,$(value RAW_CSV))$(findstring ],$(value RAW_CSV)),)
$(error RAW_CSV holds a glob character (* ? [ ]), which DuckDB would expand to every matching file: rename the file)
endif

override RAW_CSV     := $(call absolute,$(value RAW_CSV))
override DUCKDB_PATH := $(call absolute,$(value DUCKDB_PATH))
override MODELS_DIR  := $(call absolute,$(value MODELS_DIR))
override REPORTS_DIR := $(call absolute,$(value REPORTS_DIR))
override TARGET      := $(value TARGET)
override PRESET      := $(value PRESET)
override SEED        := $(value SEED)
override DBT_TARGET  := $(value DBT_TARGET)
export RAW_CSV DUCKDB_PATH MODELS_DIR REPORTS_DIR TARGET PRESET SEED DBT_TARGET
# the spark target's metastore, warehouse and scratch (profiles/profiles.yml)
export SPARK_DIR := $(CURDIR)/data/spark
export DBT_PROFILES_DIR := $(CURDIR)/profiles
export DBT_SEND_ANONYMOUS_USAGE_STATS := False
export TF_CPP_MIN_LOG_LEVEL := 2
export MAKE_BIN := $(CURDIR)/$(BIN)
# Only the default path is ever generated: a RAW_CSV pointing at a missing file is a mistake to
# report, not a place to write a synthetic stand-in.
export DEFAULT_RAW_CSV := $(CURDIR)/data/raw/spotify_dataset.csv

DBT := cd dbt_project && "$$MAKE_BIN/dbt"

# TARGET is one of its choices: checked before any prerequisite runs (deploy exports first), and
# again in the recipe.
TARGETS := local sagemaker
ifneq ($(filter train deploy undeploy,$(MAKECMDGOALS)),)
ifneq ($(words $(TARGET))$(filter $(TARGETS),$(TARGET)),1$(TARGET))
$(error TARGET=$(TARGET) is not one of: $(TARGETS))
endif
endif
CHECK_TARGET := case "$$TARGET" in local|sagemaker) ;; \
  *) echo "error: TARGET=$$TARGET is not one of: local sagemaker" >&2; exit 2;; esac

.PHONY: help
help: ## list the targets
	@echo "music-recsys - make targets (RAW_CSV=$$RAW_CSV)"
	@if [ -t 1 ] && [ -z "$${NO_COLOR:-}" ]; then on=$$'\033[36m'; off=$$'\033[0m'; else on=; off=; fi; \
	  grep -hE '^[a-zA-Z_-]+:.*?## ' $(foreach f,$(MAKEFILE_LIST),"$(f)") \
	  | awk -v on="$$on" -v off="$$off" 'BEGIN {FS = ":.*?## "}; {printf "  %s%-10s%s %s\n", on, $$1, off, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@test -x "$(BIN)/python" || "$(PYTHON_BOOT)" -m venv "$(VENV)"
	"$(BIN)/pip" install -q --upgrade pip setuptools wheel
	"$(BIN)/pip" install -q -c constraints.txt -e '.[dev,spark]'
	@touch "$@"

.PHONY: install
install: $(STAMP) ## create .venv and install the package with all extras (idempotent)

.PHONY: data
data: | $(STAMP) ## generate the sample raw file (PRESET=small) unless RAW_CSV exists; never overwrites
	@if [ -e "$$RAW_CSV" ]; then exit 0; fi; \
	if [ "$$RAW_CSV" != "$$DEFAULT_RAW_CSV" ]; then \
	  echo "error: RAW_CSV=$$RAW_CSV does not exist (expected the Kaggle spotify_dataset.csv there)." >&2; \
	  echo "       Unset RAW_CSV to generate a sample at $$DEFAULT_RAW_CSV." >&2; exit 1; fi; \
	set -x; "$$MAKE_BIN/ml" data generate --preset "$$PRESET" --seed "$$SEED" --out "$$RAW_CSV"

.PHONY: validate
validate: data ## Great Expectations gate on the raw file (Data Docs under gx/)
	"$$MAKE_BIN/ml" validate raw

.PHONY: dbt
dbt: validate ## dbt build: staged, cleaned, sessionized marts in DUCKDB_PATH (DBT_TARGET=spark: on Spark), every test
	@case "$$DBT_TARGET" in dev|spark) ;; *) echo "error: DBT_TARGET=$$DBT_TARGET is not one of: dev spark" >&2; exit 2;; esac
	@mkdir -p "$$(dirname "$$DUCKDB_PATH")" "$$SPARK_DIR"
	$(DBT) build --target "$$DBT_TARGET"
	@if [ "$$DBT_TARGET" = dev ]; then "$$MAKE_BIN/ml" validate marts; fi

.PHONY: docs
docs: dbt ## generate the dbt docs site (dbt_project/target/index.html)
	$(DBT) docs generate
	@echo "dbt docs: $$PWD/dbt_project/target/index.html  (serve: cd dbt_project && dbt docs serve)"

.PHONY: report
report: dbt ## dataset profile: power law, distributions (reports/data_profile.html)
	"$$MAKE_BIN/ml" report data

.PHONY: train
train: dbt ## train, search and evaluate track2vec (TARGET=local|sagemaker); writes models/latest
	@$(CHECK_TARGET)
	"$$MAKE_BIN/ml" train --target "$$TARGET"

.PHONY: mlflow-ui
mlflow-ui: | $(STAMP) ## open the MLflow UI on the training runs (MODELS_DIR/mlruns, or MLFLOW_TRACKING_URI) at 127.0.0.1:5000
	"$$MAKE_BIN/mlflow" ui --host 127.0.0.1 --port 5000 \
	  --backend-store-uri "$${MLFLOW_TRACKING_URI:-sqlite:///$$MODELS_DIR/mlruns/mlflow.db}"

.PHONY: export
export: | $(STAMP) ## export models/latest as a Keras KNN SavedModel (model.tar.gz)
	"$$MAKE_BIN/ml" export

.PHONY: serve
serve: export ## serve the exported model in the foreground on 127.0.0.1
	"$$MAKE_BIN/ml" serve

.PHONY: deploy
deploy: export ## deploy the exported model (TARGET=local|sagemaker) and check it
	@$(CHECK_TARGET)
	"$$MAKE_BIN/ml" deploy --target "$$TARGET"

.PHONY: undeploy
undeploy: | $(STAMP) ## stop the local endpoint or delete the SageMaker endpoint (TARGET=...)
	@$(CHECK_TARGET)
	"$$MAKE_BIN/ml" undeploy --target "$$TARGET"

.PHONY: demo
demo: ## the whole pipeline on the small preset: data, gate, dbt, docs, report, train, export, deploy, check
	$(MAKE) docs report train deploy TARGET=local
	"$$MAKE_BIN/ml" demo-summary

.PHONY: test
test: $(STAMP) ## run the test suite (small generated data, real DuckDB, dbt, gensim, TF, moto)
	"$$MAKE_BIN/pytest"

.PHONY: lint
lint: $(STAMP) ## ruff and SQLFluff
	"$$MAKE_BIN/ruff" check ml tests bench
	"$$MAKE_BIN/ruff" format --check ml tests bench
	cd dbt_project && "$$MAKE_BIN/sqlfluff" lint models tests/generic macros

.PHONY: bench
bench: $(STAMP) ## benchmarks on the full preset; figures to bench/results/
	"$$MAKE_BIN/python" -m bench

.PHONY: clean
clean: ## remove generated data, warehouse, models, reports and dbt target (keeps .venv)
	rm -rf data models reports run dbt_project/target dbt_project/logs gx/uncommitted
