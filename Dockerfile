# Two images from one file: `docker build --target query` and `docker build --target trainer` (docker-compose.yml
# builds each service's own). A builder stage generates the gRPC stubs (never committed) and builds alloop's wheel;
# each runtime image installs its own hash-pinned lock (`make lock`, for linux/amd64) and the wheel, and nothing
# else: no grpcio-tools, no compiler, no test tools. The query image leaves out the trainer extra (scikit-learn).
# Both run as uid 10001, never root. tests/unit/test_dockerfile.py lints this file with hadolint and checks its
# structure; tests/integration/test_compose_stack.py runs the services the way docker-compose.yml does.

FROM python:3.11-slim AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# grpcio-tools, setuptools and wheel, pinned with their hashes: the wheel is built without fetching anything else.
COPY requirements/build.lock ./requirements/
RUN pip install --no-cache-dir --require-hashes -r requirements/build.lock
COPY pyproject.toml README.md ./
COPY proto ./proto
COPY alloop ./alloop
COPY query_service ./query_service
COPY trainer_service ./trainer_service
COPY clients ./clients
RUN python -m grpc_tools.protoc -Iproto --python_out=. --pyi_out=. --grpc_python_out=. proto/alloop/v1/*.proto \
    && pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels .

# What both runtime images share: the unprivileged user and the directories its volumes mount on. A named volume
# starts out with the ownership of the directory it is mounted on, so /models and /state belong to the user here.
FROM python:3.11-slim AS runtime
ENV PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2 \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
RUN useradd --no-log-init --uid 10001 --user-group --create-home --home-dir /home/alloop --shell /usr/sbin/nologin alloop \
    && install -d -o 10001 -g 10001 -m 0750 /models /state
WORKDIR /home/alloop

# Operators scale it with `docker compose up --scale query=N`; every replica reads the trainer's model volume.
FROM runtime AS query
COPY requirements/query.lock /tmp/requirements.lock
RUN pip install --no-cache-dir --require-hashes -r /tmp/requirements.lock && rm /tmp/requirements.lock
COPY --from=builder /wheels /tmp/wheels
RUN pip install --no-cache-dir --no-deps /tmp/wheels/*.whl && rm -rf /tmp/wheels && pip check
USER 10001:10001
ENV ALLOOP_QUERY_ADDRESS=0.0.0.0:50051
EXPOSE 50051
# The gRPC health service answers without a token; NOT_SERVING while Redis is unreachable.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["alloop-healthcheck", "--address", "127.0.0.1:50051"]
CMD ["alloop-query-service"]

# Run one trainer: a second replica shares the label consumer group and a round lock in Redis (one round at a
# time), so it adds no throughput.
FROM runtime AS trainer
COPY requirements/trainer.lock /tmp/requirements.lock
RUN pip install --no-cache-dir --require-hashes -r /tmp/requirements.lock && rm /tmp/requirements.lock
COPY --from=builder /wheels /tmp/wheels
RUN pip install --no-cache-dir --no-deps /tmp/wheels/*.whl && rm -rf /tmp/wheels && pip check
USER 10001:10001
ENV ALLOOP_TRAINER_ADDRESS=0.0.0.0:50052
EXPOSE 50052
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
    CMD ["alloop-healthcheck", "--address", "127.0.0.1:50052"]
CMD ["alloop-trainer-service"]
