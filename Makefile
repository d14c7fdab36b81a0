# The front door. `make demo` and `make test` do all the set-up they need on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROTOS := $(wildcard proto/alloop/v1/*.proto)
GENERATED := alloop/v1/.generated
DEMO_DIR ?= .alloop/demo

.PHONY: install proto test test-unit demo bench compose-check clean help

help:
	@echo "make demo   - fetch IMDB, start embedded Redis + both services, run the simulated oracle, print the table"
	@echo "make test   - the whole test suite (real Redis, real gRPC, real TensorFlow)"
	@echo "make proto  - regenerate the gRPC stubs from proto/"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,bench]'
	touch $@

install: $(STAMP)

# Stubs are generated, never committed; grpcio-tools is pinned to grpcio's version (the stubs check it at import).
$(GENERATED): $(STAMP) $(PROTOS)
	$(PY) -m grpc_tools.protoc -Iproto --python_out=. --pyi_out=. --grpc_python_out=. $(PROTOS)
	touch $@

proto: $(GENERATED)

test: proto
	$(PY) -m pytest -q

test-unit: proto
	$(PY) -m pytest -q tests/unit

demo: proto
	$(VENV)/bin/alloop-demo --workdir $(DEMO_DIR)

compose-check:
	docker-compose -f docker-compose.yml config -q

clean:
	rm -rf $(VENV) alloop/v1 .pytest_cache
