# The front door. `make demo` and `make test` do all the set-up they need on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROTOS := $(wildcard proto/alloop/v1/*.proto)
GENERATED := alloop/v1/.generated
DEMO_DIR ?= .alloop/demo
# buf (proto lint and breaking-change check) comes from the npm registry, pinned, into .tools/ (ignored by git).
BUF_VERSION := 1.75.0
BUF := .tools/node_modules/.bin/buf

.PHONY: install proto tools lint lint-proto test test-cluster test-unit test-bench mutants demo bench compose-check lock secrets clean help

help:
	@echo "make demo   - fetch IMDB, start embedded Redis + both services, run the simulated oracle, print the table"
	@echo "make test   - the whole test suite (real Redis, real gRPC, real TensorFlow)"
	@echo "make proto  - regenerate the gRPC stubs from proto/"
	@echo "make lint   - ruff's lint and format checks and mypy (what .ci/run runs before the tests)"
	@echo "make test-cluster - the two longest kill -9 tests again, on a 3-master Redis Cluster"
	@echo "make test-bench - the benchmarks' own tests (bench/tests), apart from the product's"
	@echo "make mutants - plant each known bug of tests/mutants/catalog.py in a copy; fail if its test still passes"

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

$(BUF):
	npm install --silent --no-audit --no-fund --prefix .tools @bufbuild/buf@$(BUF_VERSION)

tools: $(BUF)

# `buf lint` (STANDARD rules) and `buf breaking` against the previous commit's API; tests/unit/test_api_lint.py runs
# the same checks inside `make test`.
lint-proto: $(BUF)
	$(BUF) lint
	$(BUF) breaking --against '.git#ref=HEAD~1'

# ruff's lint and format rules and mypy's settings are in pyproject.toml; .ci/run runs this before the tests. mypy
# reads the generated stubs' .pyi files, hence proto.
lint: proto
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: proto tools
	$(PY) -m pytest -q -m "not cluster_crash"

# The kill -9 tests of the trainer and of a query replica, again on a 3-master Redis Cluster (about 6 minutes).
test-cluster: proto
	$(PY) -m pytest -q -m cluster_crash

test-unit: proto
	$(PY) -m pytest -q tests/unit

test-bench: proto
	$(PY) -m pytest -q bench/tests

# Each guarantee of docs/guarantees.md against the bugs planted to break it (about 12 minutes on 2 cores).
mutants: proto
	$(PY) -m tests.mutants

demo: proto
	$(VENV)/bin/alloop-demo --workdir $(DEMO_DIR)

# The images' pinned dependencies (hashes included, for linux/amd64): requirements/trainer.lock (dependencies + the
# trainer extra), requirements/query.lock (dependencies only), requirements/build.lock (the builder stage: the proto
# extra and pyproject's build requirements). Each later file starts from the trainer's pins, so a package that two
# images share has one version in both (a model the trainer writes is read by the same Keras in the query image).
lock: LOCK_FLAGS = --quiet --allow-unsafe --generate-hashes --no-emit-find-links --no-emit-index-url --strip-extras
lock: $(STAMP)
	$(PY) -m pip install -q pip-tools
	mkdir -p requirements
	$(VENV)/bin/pip-compile $(LOCK_FLAGS) --extra=trainer --output-file=requirements/trainer.lock pyproject.toml
	cp requirements/trainer.lock requirements/query.lock
	$(VENV)/bin/pip-compile $(LOCK_FLAGS) --output-file=requirements/query.lock pyproject.toml
	cp requirements/trainer.lock requirements/build.lock
	$(PY) -c 'import tomllib; t = tomllib.load(open("pyproject.toml", "rb")); \
		print(*t["project"]["optional-dependencies"]["proto"], *t["build-system"]["requires"], sep="\n")' \
		| $(VENV)/bin/pip-compile $(LOCK_FLAGS) --output-file=requirements/build.lock -

# Random Redis password and bearer tokens (one per role, named for it) for docker-compose.yml; kept if present.
secrets:
	@mkdir -p secrets && chmod 700 secrets
	@test -s secrets/redis_password || (umask 077 && $(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(32))' > secrets/redis_password)
	@test -s secrets/alloop_tokens || (umask 077 && for role in operator client labeler; do \
		$(PYTHON) -c 'import secrets, sys; print(secrets.token_urlsafe(32), sys.argv[1], sys.argv[1])' $$role; \
	done > secrets/alloop_tokens)
	@echo "secrets/redis_password and secrets/alloop_tokens are ready (give each client its role's token)"

compose-check:
	docker-compose -f docker-compose.yml config -q

clean:
	rm -rf $(VENV) alloop/v1 .pytest_cache .tools
