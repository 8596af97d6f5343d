# `make run` trains the default model; `make test` runs the test suite. Both create .venv when missing.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.gankit-installed

.PHONY: run test install clean-runs

install: $(STAMP)

# pip takes torch and torchvision from the local wheel store when it has them; no pins beyond pyproject's ranges.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,onnx,serve]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/gankit train --config digits

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean-runs:
	rm -rf runs
