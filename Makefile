# audioclf: run `make help` for the list of targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install demo test test-slow lint tensorboard clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install audioclf with its dev tools

DEMO_DIR := logs/demo

demo: $(STAMP) ## Train on the embedded synthetic dataset, then evaluate the checkpoint: the test report, once
	rm -rf $(DEMO_DIR)
	$(BIN)/python train.py experiment=demo test=false hydra.run.dir=$(DEMO_DIR)
	$(BIN)/python eval.py ckpt_path=$(DEMO_DIR)/checkpoints/last.ckpt hydra.run.dir=$(DEMO_DIR)/eval
	@echo "TensorBoard: $(BIN)/tensorboard --logdir $(DEMO_DIR)/tensorboard   (or: make tensorboard)"

test: $(STAMP) ## Run the fast test suite (CPU, offline)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP) ## Run only the slow tests (resume, DDP, export, every backbone end to end)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP) ## Check style with ruff
	$(BIN)/ruff check audioclf hydra_plugins tools tests train.py eval.py

tensorboard: $(STAMP) ## Serve the TensorBoard logs under logs/
	$(BIN)/tensorboard --logdir logs

clean: ## Remove the venv, logs and caches
	rm -rf $(VENV) logs .cache .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
