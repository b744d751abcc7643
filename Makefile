# Two set-up commands: `make run` serves, `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# PostgreSQL leg of the store tests; skipped (and said so) when it does not answer.
export FLEXBRIDGE_TEST_DATABASE_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/test

# Test processes (pytest-xdist); each test module runs whole in one of them.
TEST_WORKERS ?= 2

.PHONY: run test lint typecheck bench soak clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Third-party protocol peers pin old libraries (pyoscp: Flask 2): they get their own venv.
PEERS  := .venv-peers

$(PEERS)/.installed: tests/peers/requirements-pyoscp.txt tests/peers/requirements-uftp.txt
	$(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/pip install --quiet -r tests/peers/requirements-pyoscp.txt \
		-r tests/peers/requirements-uftp.txt
	touch $@

# flexmeasures-client needs packaging>=23.1, which pyoscp forbids: a venv of its own.
USEF_PEER := .venv-usef

$(USEF_PEER)/.installed: tests/peers/requirements-usef.txt
	$(PYTHON) -m venv $(USEF_PEER)
	$(USEF_PEER)/bin/pip install --quiet -r tests/peers/requirements-usef.txt
	touch $@

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,dev]'
	touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(BIN)/flexbridge serve

test: $(VENV)/.installed-test $(PEERS)/.installed $(USEF_PEER)/.installed typecheck lint
	$(BIN)/python -m pytest -q --durations=15 -n $(TEST_WORKERS) --dist loadfile

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

# mypy checks the packages [tool.mypy] names in pyproject.toml (strict on hub, store and
# optimizer).
typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

bench: $(VENV)/.installed-test
	$(BIN)/python benchmarks/store_ingest.py
	$(BIN)/python benchmarks/cpapi_ingest.py
	$(BIN)/python benchmarks/ocmp_roundtrip.py
	$(BIN)/python benchmarks/optimizer.py

# Every protocol's simulator against one server for SOAK_MINUTES (not part of `test`): fails
# when the server's RSS grows 10% or more after the first minute, or on any error.
SOAK_MINUTES ?= 10
soak: $(VENV)/.installed-test
	$(BIN)/python benchmarks/soak.py --minutes $(SOAK_MINUTES)

clean:
	rm -rf $(VENV) $(PEERS) $(USEF_PEER) *.egg-info flexbridge.db flexbridge.db-*
