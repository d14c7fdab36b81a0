"""What a token lets its holder claim: the labeler recorded with a label, and how much a Query may score.

A real query service with auth on, a published tiny model, a real Redis; no trainer, so the label stream keeps
what SubmitLabels wrote and the test reads the labeler from it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import grpc
import pytest

from alloop.rpc.auth import Credentials
from alloop.rpc.security import SecuritySettings
from alloop.v1 import common_pb2, query_pb2, query_pb2_grpc
from query_service.server import create_server as create_query_server
from tests.conftest import dump_keys
from tests.integration import models
from tests.integration.generic_calls import bearer
from tests.integration.services import channel, wait_for

pytestmark = pytest.mark.integration

ENTRIES = (
    ("alice-token", "labeler", "alice"),
    ("anon-token", "labeler", ""),
    ("client-token", "client", ""),
    ("op-token", "operator", "ops"),
)
CANDIDATES = 12


@pytest.fixture
def stub(query_settings, redis_client, keys) -> Iterator[query_pb2_grpc.QueryServiceStub]:
    models.write_and_publish(redis_client, keys, query_settings.common.models_path, 1)
    settings = replace(
        query_settings,
        security=SecuritySettings(auth=Credentials(ENTRIES)),
        max_query_candidates=CANDIDATES,
    )
    running = create_query_server(settings, redis_client)
    wait_for(running.holder.current_or_none, timeout=30, what="version 1 served")
    ch = channel(running.port)
    stub = query_pb2_grpc.QueryServiceStub(ch)
    items = [query_pb2.PoolItem(id=f"i{n:02d}", text=f"a fine film number {n}") for n in range(30)]
    stub.SubmitPool(iter([query_pb2.SubmitPoolRequest(pool="p", items=items)]), metadata=bearer("client-token"))
    yield stub
    ch.close()
    running.stop(0)


def queue(stub: query_pb2_grpc.QueryServiceStub, k: int) -> list[str]:
    response = stub.Query(
        query_pb2.QueryRequest(pool="p", strategy=common_pb2.STRATEGY_RANDOM, k=k, seed=7),
        metadata=bearer("op-token"),
        timeout=30,
    )
    return [s.id for s in response.selected]


def label(
    stub: query_pb2_grpc.QueryServiceStub, token: str, item: str, labeler: str = ""
) -> query_pb2.SubmitLabelsResponse:
    return stub.SubmitLabels(
        query_pb2.SubmitLabelsRequest(labeler=labeler, labels=[query_pb2.Label(pool="p", id=item, label=1)]),
        metadata=bearer(token),
        timeout=10,
    )


def recorded_labelers(redis_client, keys) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {fields["id"]: fields["labeler"] for _, fields in redis_client.xrange(keys.label_stream)}


def test_the_recorded_labeler_comes_from_the_token(stub, redis_client, keys):
    a, b, c, d = queue(stub, 4)
    assert label(stub, "alice-token", a).accepted == 1
    assert label(stub, "alice-token", b, labeler="alice").accepted == 1  # naming oneself is fine
    before = dump_keys(redis_client, keys.prefix)
    with pytest.raises(grpc.RpcError) as forged:
        label(stub, "alice-token", c, labeler="bob")
    assert forged.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "belongs to 'alice'" in forged.value.details() and "'bob'" in forged.value.details()
    assert dump_keys(redis_client, keys.prefix) == before  # a refused label changes nothing
    assert label(stub, "anon-token", c).accepted == 1
    assert label(stub, "op-token", d, labeler="carol").accepted == 1  # an operator labels for a labeling system
    labelers = recorded_labelers(redis_client, keys)
    assert labelers[a] == labelers[b] == "alice"
    assert labelers[c].startswith("labeler:") and "anon-token" not in labelers[c]
    assert labelers[d] == "carol"


def test_a_client_query_scores_at_most_the_bound_and_an_operator_is_not_bound(stub):
    # A sampling strategy: the uncertainty ones read the score index and score nothing for the Query itself.
    as_client = stub.Query(
        query_pb2.QueryRequest(pool="p", strategy=common_pb2.STRATEGY_RANDOM, k=2), metadata=bearer("client-token")
    )
    assert as_client.candidates == CANDIDATES  # 30 unlabeled items, scored a sample of 12
    with pytest.raises(grpc.RpcError) as over:
        stub.Query(
            query_pb2.QueryRequest(pool="p", strategy=common_pb2.STRATEGY_RANDOM, k=2, max_candidates=CANDIDATES + 1),
            metadata=bearer("client-token"),
        )
    assert (
        over.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        and "ALLOOP_MAX_QUERY_CANDIDATES" in over.value.details()
    )
    as_operator = stub.Query(
        query_pb2.QueryRequest(pool="p", strategy=common_pb2.STRATEGY_RANDOM, k=2), metadata=bearer("op-token")
    )
    assert as_operator.candidates == 30 - 2  # every unlabeled, unqueued item
