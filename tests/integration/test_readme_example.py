"""The README's Python example, run as written against real services (only the address differs)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from alloop.store.labeling import LabelingStore
from query_service.server import create_server as create_query_server
from tests.integration.services import wait_for
from trainer_service.server import create_server as create_trainer_server

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"
DEFAULT_ADDRESS = '"127.0.0.1:50051"'


def readme_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    assert len(blocks) == 1, "the README should hold one Python example"
    assert DEFAULT_ADDRESS in blocks[0]
    return blocks[0]


def test_the_readme_example_runs_against_the_services(trainer_settings, query_settings, redis_client, keys, capsys):
    trainer = create_trainer_server(trainer_settings, redis_client)
    query = create_query_server(query_settings, redis_client)
    try:
        wait_for(query.holder.current_or_none, timeout=120, what="version 1 served")
        namespace: dict[str, object] = {}
        exec(readme_example().replace(DEFAULT_ADDRESS, f'"127.0.0.1:{query.port}"'), namespace)
        leased = namespace["leased"]
        assert len(leased.tasks) == 2 and list(leased.classes) == ["negative", "positive"]  # type: ignore[attr-defined]
        assert capsys.readouterr().out.split()[-1] in ("negative", "positive")
        store = LabelingStore(redis_client, keys)
        assert [store.label_of("reviews", task.id) for task in leased.tasks] == [1, 1]  # type: ignore[attr-defined]
    finally:
        query.stop(0)
        trainer.stop(0)
