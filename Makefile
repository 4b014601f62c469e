# The two commands of the README: `make run` (set up, rebuild everything, query) and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup run test

setup: $(VENV)/.installed

# Exact versions from constraints.txt (pyproject.toml holds ranges). torch first, so pip takes the
# CPU wheel on disk and never resolves a CUDA build.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c constraints.txt torch
	$(BIN)/pip install --quiet -c constraints.txt -e '.[pipelines,http,dev]'
	touch $@

run: setup
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/dvc repro
	$(BIN)/semrec query "a flowy summer dress for a beach wedding" --k 5 --catalog fashion
	$(BIN)/semrec query "a mind-bending science fiction thriller" --k 5 --catalog movies
	$(BIN)/semrec query --similar-to 2571 --k 5 --catalog movies  # The Matrix (MovieLens id)
	$(BIN)/semrec ask "something like Heat but funnier" --k 5 --catalog movies

# The tests run on small slices of the real data and the real base model: fetch them first.
test: setup
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/dvc repro fetch_data fetch_models
	$(BIN)/python -m pytest $(PYTEST_ARGS)
