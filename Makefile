# rnn-serve: the commands a person runs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
PIP_PIN := pip==26.3  # the installer itself is pinned too (the build backend: pyproject.toml)
VENV := .venv
PY := $(VENV)/bin/python
DATA_DIR ?= ../shared/data
export DATA_DIR
# A flag with its value, only where the variable is set: each default has its one home in the
# Python that reads the flag (`--help` says it), not a copy here. $(call flag,--users,$(USERS))
flag = $(if $(2),$(1) $(2))
# Where a server listens, and whether it asks for a key (serving.server_config: 127.0.0.1,
# 8080-8082, 7070-7071, workers from 9000, keys on).
AUTH ?=
HOST ?=
PORT ?=
MANAGEMENT_PORT ?=
METRICS_PORT ?=
GRPC_INFERENCE_PORT ?=
GRPC_MANAGEMENT_PORT ?=
WORKER_PORT ?=
# The API's ports, as serving.server, loadtest.run and loadtest.chaos spell them.
API_PORTS = $(call flag,--inference-port,$(PORT)) $(call flag,--management-port,$(MANAGEMENT_PORT)) \
	$(call flag,--metrics-port,$(METRICS_PORT)) $(call flag,--auth,$(AUTH))
# Every port a server takes (and its key setting).
PORTS = $(API_PORTS) $(call flag,--grpc-inference-port,$(GRPC_INFERENCE_PORT)) \
	$(call flag,--grpc-management-port,$(GRPC_MANAGEMENT_PORT)) $(call flag,--worker-port,$(WORKER_PORT))
MODEL_STORE ?= model_store
ARTIFACTS ?= artifacts
RUN_DIR ?= runs/server
PROFILE ?= default
PYTEST_ARGS ?=
# pytest-xdist workers for `make test` and `make test-unit` (0: one process); how the tests
# are shared between them: tests/conftest.py (`work_unit`).
TEST_WORKERS ?= 2
PYTEST := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) -m pytest -n $(TEST_WORKERS) --dist loadscope
# lm-sweep's minutes per tokenizer, and the load test's: unset, the commands' own defaults.
MINUTES ?=
USERS ?=
SPAWN_RATE ?=
DURATION ?=
SCENARIO ?=
WEIGHTS ?=
# What the load test and the chaos test share of the above.
LOAD = $(call flag,--users,$(USERS)) $(call flag,--spawn-rate,$(SPAWN_RATE)) \
	$(call flag,--duration,$(DURATION))
PLAYGROUND_PORT ?=
# lm-evaluation-harness, pinned; installed with --no-deps beside the `eval` group (pyproject.toml).
LM_EVAL := lm-eval==0.4.13
# The served models, from their one declaration (stdlib Python: works before `make setup`).
MODELS := $(shell $(PYTHON) -m handlers.registry names)

.PHONY: help setup models train-estimate lm-sweep serve playground stop status loadtest chaos bench docs eval test test-unit lint format clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements-torch.txt pyproject.toml scripts/ensure-java.sh scripts/ensure-chromium.sh
	bash scripts/ensure-java.sh
	bash scripts/ensure-chromium.sh
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(PIP_PIN)
	$(PY) -m pip install -q --no-index --no-deps -r requirements-torch.txt 2>/dev/null \
		|| $(PY) -m pip install -q -r requirements-torch.txt
	$(PY) -m pip install -q -e ".[serve,train,loadtest,playground,dev,eval]"
	$(PY) -m pip install -q --no-deps $(LM_EVAL)
	touch $@

setup: $(VENV)/.installed ## create .venv with pinned dependencies, a Java 17 runtime and chromium

# Trained artifacts are kept: retraining takes minutes.
.PRECIOUS: $(ARTIFACTS)/%/weights.pt
$(ARTIFACTS)/%/weights.pt: | $(VENV)/.installed
	$(PY) -m $$($(PY) -m handlers.registry trainer $*) --profile $(PROFILE) --out $(ARTIFACTS)/$*

# An archive packs the serving code too: rebuild it when that code changes.
$(MODEL_STORE)/%.mar: $(ARTIFACTS)/%/weights.pt handlers/%/model-config.yaml $(wildcard handlers/*.py handlers/*/*.py models/*.py)
	$(PY) -m training.archive $* --artifact $(ARTIFACTS)/$* --export $(MODEL_STORE)

models: train-estimate $(foreach m,$(MODELS),$(MODEL_STORE)/$(m).mar) ## train and archive the default models where missing
	@$(PY) -m training.summary $(ARTIFACTS)

# First, the minutes of training to come for the models not yet trained (figures: training/budget.py).
train-estimate:
	@$(PYTHON) -m training.budget estimate --profile $(PROFILE) \
		$(foreach m,$(MODELS),$(if $(wildcard $(ARTIFACTS)/$(m)/weights.pt),,$(m)))

lm-sweep: $(VENV)/.installed ## compare LM tokenizers at equal CPU minutes (MINUTES each); runs/lm-sweep/
	$(PY) -m training.lm_sweep $(call flag,--minutes,$(MINUTES)) --out runs/lm-sweep

serve: models ## set up, train if needed, start TorchServe (HOST, PORT...: where) and wait until every model is READY
	$(PY) -m serving.server start --run-dir $(RUN_DIR) $(call flag,--host,$(HOST)) --model-store $(MODEL_STORE) \
		$(PORTS)
	@$(PY) -m playground url --run-dir $(RUN_DIR) $(if $(PLAYGROUND_PORT),--port $(PLAYGROUND_PORT))

playground: $(VENV)/.installed ## the browser page to try the models (serves first if needed); prints its URL
	@$(PY) -m serving.server status --run-dir $(RUN_DIR) >/dev/null || $(MAKE) --no-print-directory serve
	@$(PY) -m playground start --run-dir $(RUN_DIR) $(if $(PLAYGROUND_PORT),--port $(PLAYGROUND_PORT))

stop: ## stop the server (and the playground) started from this checkout
	@if [ -x $(PY) ]; then $(PY) -m playground stop --run-dir $(RUN_DIR); \
		$(PY) -m serving.server stop --run-dir $(RUN_DIR); else echo "nothing to stop"; fi

status: ## is a server from this checkout running?
	@$(PY) -m serving.server status --run-dir $(RUN_DIR)

loadtest: $(VENV)/.installed ## load-test with Locust (USERS DURATION SPAWN_RATE SCENARIO); report in runs/loadtest/
	$(PY) -m loadtest.run $(LOAD) --run-dir $(RUN_DIR) $(call flag,--scenario,$(SCENARIO)) \
		$(call flag,--weights,$(WEIGHTS)) \
		--model-store $(MODEL_STORE) $(PORTS)

chaos: $(VENV)/.installed ## mixed load while the LM helper, a sentiment worker and the LM worker are killed; report in runs/chaos/
	$(PY) -m loadtest.chaos $(LOAD) --run-dir $(RUN_DIR) --model-store $(MODEL_STORE) $(API_PORTS)

lint: $(VENV)/.installed ## ruff lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.installed ## apply ruff's formatting and safe fixes
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: models ## every speed figure of docs/benchmarks.md, side by side in one run (bench.md says how long)
	$(PY) -m benchmarks.run

docs: $(VENV)/.installed ## rewrite the docs' generated sections whose sources are here
	$(PY) -m docsgen

eval: models ## lm-evaluation-harness through the server (RUN_DIR's, or its own) vs training.evaluate_lm; runs/eval/
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) -m evaluation.harness --run-dir $(RUN_DIR) \
		--archive $(MODEL_STORE)/lm.mar --out runs/eval

test: $(VENV)/.installed lint ## run every test (unit and integration with a real TorchServe)
	$(PY) -m docsgen --check
	$(PYTEST) $(PYTEST_ARGS)

test-unit: $(VENV)/.installed ## the unit tests alone: no TorchServe, under a minute
	$(PYTEST) tests/unit $(PYTEST_ARGS)

clean: stop ## remove trained artifacts, archives and run outputs (keeps .venv)
	rm -rf $(ARTIFACTS) runs $(MODEL_STORE)
