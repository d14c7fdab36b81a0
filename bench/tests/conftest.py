"""The benchmarks' own tests (`make test-bench`) use the suite's fixtures: real Redis, settings, a small corpus."""

from tests.conftest import (  # noqa: F401  (fixtures are found by name)
    common,
    corpus,
    keys,
    query_settings,
    redis_client,
    redis_server,
    trainer_settings,
)
