# rnn-serve: the commands a person runs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DATA_DIR ?= ../shared/data
export DATA_DIR
AUTH ?= on
HOST ?= 127.0.0.1
PORT ?= 8080
MANAGEMENT_PORT ?= 8081
METRICS_PORT ?= 8082
MODEL_STORE ?= model_store
ARTIFACTS ?= artifacts
RUN_DIR ?= runs/server
PROFILE ?= default
MINUTES ?= 3
PYTEST_ARGS ?=
USERS ?= 32
SPAWN_RATE ?= 8
DURATION ?= 60s
SCENARIO ?= mixed
WEIGHTS ?=
# lm-evaluation-harness, pinned; installed with --no-deps beside the `eval` group (pyproject.toml).
LM_EVAL := lm-eval==0.4.13
# The served models, from their one declaration (stdlib Python: works before `make setup`).
MODELS := $(shell $(PYTHON) -m handlers.registry names)

.PHONY: help setup models lm-sweep serve stop status loadtest bench eval test test-unit lint format clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements-torch.txt pyproject.toml scripts/ensure-java.sh
	bash scripts/ensure-java.sh
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-torch.txt
	$(PY) -m pip install -q -e ".[serve,train,loadtest,dev,eval]"
	$(PY) -m pip install -q --no-deps $(LM_EVAL)
	touch $@

setup: $(VENV)/.installed ## create .venv with pinned dependencies and a Java 17 runtime

# Trained artifacts are kept: retraining takes minutes.
.PRECIOUS: $(ARTIFACTS)/%/weights.pt
$(ARTIFACTS)/%/weights.pt: | $(VENV)/.installed
	$(PY) -m $$($(PY) -m handlers.registry trainer $*) --profile $(PROFILE) --out $(ARTIFACTS)/$*

# An archive packs the serving code too: rebuild it when that code changes.
$(MODEL_STORE)/%.mar: $(ARTIFACTS)/%/weights.pt handlers/%/model-config.yaml $(wildcard handlers/*.py handlers/*/*.py models/*.py)
	$(PY) -m training.archive $* --artifact $(ARTIFACTS)/$* --export $(MODEL_STORE)

models: $(foreach m,$(MODELS),$(MODEL_STORE)/$(m).mar) ## train and archive the default models where missing
	@$(PY) -m training.summary $(ARTIFACTS)

lm-sweep: $(VENV)/.installed ## compare LM tokenizers at equal CPU minutes (MINUTES each); runs/lm-sweep/
	$(PY) -m training.lm_sweep --minutes $(MINUTES) --out runs/lm-sweep

serve: models ## set up, train if needed, start TorchServe on $(HOST) and wait until every model is READY
	$(PY) -m serving.server start --run-dir $(RUN_DIR) --auth $(AUTH) --host $(HOST) --model-store $(MODEL_STORE) \
		--inference-port $(PORT) --management-port $(MANAGEMENT_PORT) --metrics-port $(METRICS_PORT)

stop: ## stop the server started from this checkout
	@if [ -x $(PY) ]; then $(PY) -m serving.server stop --run-dir $(RUN_DIR); else echo "nothing to stop"; fi

status: ## is a server from this checkout running?
	@$(PY) -m serving.server status --run-dir $(RUN_DIR)

loadtest: $(VENV)/.installed ## load-test with Locust (USERS DURATION SPAWN_RATE SCENARIO); report in runs/loadtest/
	$(PY) -m loadtest.run --users $(USERS) --spawn-rate $(SPAWN_RATE) --duration $(DURATION) \
		--scenario $(SCENARIO) $(if $(WEIGHTS),--weights $(WEIGHTS)) --model-store $(MODEL_STORE) \
		--auth $(AUTH) --inference-port $(PORT) --management-port $(MANAGEMENT_PORT) --metrics-port $(METRICS_PORT)

lint: $(VENV)/.installed ## ruff lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.installed ## apply ruff's formatting and safe fixes
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: models ## every speed figure of the README, side by side in one run (bench.md says how long)
	$(PY) -m benchmarks.run

eval: models ## lm-evaluation-harness through the server (RUN_DIR's, or its own) vs training.evaluate_lm; runs/eval/
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) -m evaluation.harness --run-dir $(RUN_DIR) \
		--archive $(MODEL_STORE)/lm.mar --out runs/eval

test: $(VENV)/.installed lint ## run every test (unit and integration with a real TorchServe)
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) -m pytest $(PYTEST_ARGS)

test-unit: $(VENV)/.installed ## the unit tests alone: no TorchServe, under a minute
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) -m pytest tests/unit $(PYTEST_ARGS)

clean: stop ## remove trained artifacts, archives and run outputs (keeps .venv)
	rm -rf $(ARTIFACTS) runs $(MODEL_STORE)
