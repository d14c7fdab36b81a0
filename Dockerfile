# One image for both services; compose picks the command. Stubs are generated at build time, never committed.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY proto ./proto
COPY alloop ./alloop
COPY query_service ./query_service
COPY trainer_service ./trainer_service
COPY clients ./clients
RUN pip install --no-cache-dir '.[dev]' \
    && python -m grpc_tools.protoc -Iproto --python_out=. --pyi_out=. --grpc_python_out=. proto/alloop/v1/*.proto \
    && pip install --no-cache-dir --no-deps --force-reinstall .
ENV PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
EXPOSE 50051 50052
