# The README's two commands (`make demo`, `make test`) create the virtual environment themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv demo test test-deep bench clean

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/pumpsim run examples/morphine_day.toml

test: $(STAMP)
	HYPOTHESIS_PROFILE=ci $(BIN)/python -m pytest

# Many more random examples for the property tests. Turn each failure it finds into an
# explicit @example(...) regression on the test it broke.
test-deep: $(STAMP)
	HYPOTHESIS_PROFILE=deep $(BIN)/python -m pytest tests/firmware tests/host_tools/test_units.py

bench: $(STAMP)
	$(BIN)/python -m sim.bench

clean:
	rm -rf $(VENV) build .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
