# Two commands: `make run` and `make test`. Both build .venv from the pinned requirements when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
WORKSPACE ?= workspace
PORT ?= 8501

.PHONY: run test bench demo nrnmech clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

# Stamp files: reinstall whenever a requirements file changes.
$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install -r requirements.txt
	touch $@

$(VENV)/.testing: requirements-test.txt $(VENV)/.runtime
	$(BIN)/pip install -r requirements-test.txt
	touch $@

# NEURON mechanisms of core/tms/mod, compiled by nrnivmodl into .build/ (a no-op when current).
nrnmech: $(VENV)/.runtime
	$(BIN)/python -m core.tms.mechanisms

demo: $(VENV)/.runtime
	$(BIN)/python -m core demo --workspace $(WORKSPACE)

run: demo
	NEUROPREDICT_WORKSPACE=$(WORKSPACE) $(BIN)/streamlit run app.py --server.port $(PORT) --server.headless true --server.fileWatcherType none --client.toolbarMode minimal --browser.gatherUsageStats false

test: $(VENV)/.testing nrnmech
	$(BIN)/python -m pytest

bench: $(VENV)/.testing nrnmech
	$(BIN)/python -m tests.bench
	$(BIN)/python -m tests.bench_tms
	$(BIN)/python -m tests.bench_tms_dataset
	$(BIN)/python -m tests.bench_tms_maps
	$(BIN)/python -m tests.bench_io
	$(BIN)/python -m tests.bench_ablation
	$(BIN)/python -m tests.bench_fusion
	$(BIN)/python -m tests.bench_anyoutcome
	$(BIN)/python -m tests.bench_transfer
	$(BIN)/python -m tests.bench_store
	$(BIN)/python -m tests.bench_jobs
	$(BIN)/python -m tests.bench_dask
	$(BIN)/python -m tests.bench_fuzz
	$(BIN)/python -m tests.bench_browser
	$(BIN)/python -m tests.bench_load

clean-venv:
	rm -rf $(VENV)
