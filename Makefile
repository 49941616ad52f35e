# avroflow: run `make help` for the targets.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
BROKER ?= tansu
STAMP   = $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install run test test-unit test-integration test-deps-window lint format typecheck check stack bench bench-worker bench-faults soak mutation clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install the project with its dev extra

run: $(STAMP) ## Run the worker on the local stack: broker, registry, sample data, worker, decoded output
	$(BIN)/python -m workers demo

test: $(STAMP) ## Run the whole test suite (unit and integration; starts its own broker and registry)
	$(BIN)/python -m pytest

test-unit: $(STAMP) ## Unit tests only (no network)
	$(BIN)/python -m pytest tests/unit

test-integration: $(STAMP) ## Integration tests only (real broker and registry on loopback)
	$(BIN)/python -m pytest tests/integration

test-deps-window: ## Unit tests and the Faust start check on the lowest and highest faust/mode/aiokafka the window allows (throw-away venvs)
	PYTHON=$(PYTHON) .ci/deps-window

lint: $(STAMP) ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## Apply ruff's formatting and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP) ## mypy strict over the packages
	$(BIN)/mypy

check: lint typecheck test ## Everything CI cares about plus lint and types

stack: $(STAMP) ## Start the local broker (BROKER=tansu|kafka) and registry until Ctrl-C
	$(BIN)/python -m devstack up --broker $(BROKER)

bench: $(STAMP) ## Codec benchmark: ratios to raw fastavro and confluent-kafka (about 10 s)
	$(BIN)/python bench/codec.py

bench-worker: $(STAMP) ## Worker throughput vs a bare Faust agent and aiokafka loops, scaling, peak RSS (minutes)
	$(BIN)/python bench/worker.py

bench-faults: $(STAMP) ## The fault suite's report: records in, out, dead-lettered, duplicated, lost per scenario
	$(BIN)/python bench/faults.py

soak: $(STAMP) ## One million records through the worker: memory, caches, throughput over time (minutes)
	$(BIN)/python bench/soak.py

mutation: $(STAMP) ## Mutation run (cosmic-ray) of the failure-path modules against their unit tests (long; M=settings for one)
	nice -n 19 $(BIN)/python tests/mutation/run.py --jobs $${JOBS:-2} $(M)

clean: ## Remove the virtual environment and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .mutation
