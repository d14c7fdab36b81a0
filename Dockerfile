# One image for both services; compose picks the command. Stubs are generated at build time, never committed.
# Dependencies come from requirements.lock (every package pinned with its hashes, for linux/amd64; `make lock`),
# the build tools included, so alloop itself is built without fetching anything (--no-build-isolation).
FROM python:3.11-slim
WORKDIR /app
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY proto ./proto
COPY alloop ./alloop
COPY query_service ./query_service
COPY trainer_service ./trainer_service
COPY clients ./clients
RUN python -m grpc_tools.protoc -Iproto --python_out=. --pyi_out=. --grpc_python_out=. proto/alloop/v1/*.proto \
    && pip install --no-cache-dir --no-deps --no-build-isolation .
ENV PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
EXPOSE 50051 50052
