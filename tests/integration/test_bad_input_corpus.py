"""A corpus of bad requests, each refused with the right status code and a message that says what to fix, and
each leaving the project's Redis keys byte-for-byte as they were.

Raw-byte cases go through a generic channel call, so the server sees exactly what a broken or hostile client would
send: truncated protobuf, wrong wire types, invalid UTF-8 in string fields, messages over the size limit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import grpc
import pytest

from alloop.rpc.messages import duration
from alloop.v1 import common_pb2, query_pb2, query_pb2_grpc, trainer_pb2, trainer_pb2_grpc
from query_service.server import create_server as create_query_server
from tests.conftest import BACKENDS, dump_keys
from tests.integration import models
from tests.integration.services import channel, wait_for
from trainer_service.server import create_server as create_trainer_server

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("backend", BACKENDS, indirect=True)]

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
MAX_MESSAGE = 4 * 1024 * 1024
MAX_ITEMS = 100
# Bounds set low so the corpus can pass each of them (the world's pool "p" holds 30 items).
BOUNDS = dict(
    max_upload_items=150,
    max_upload_chars=5_000,
    max_pool_items=40,
    max_pools=1,
    max_query_k=50,
    max_query_candidates=45,
    max_lease_seconds=600.0,
)
Q = "/alloop.v1.QueryService/"


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (strings, bytes, sub-messages)."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


BAD_UTF8 = b"caf\xc3 \xff\xfe review"


@dataclass(frozen=True)
class Case:
    name: str
    call: Callable[[World], Any]
    code: grpc.StatusCode
    says: str  # a fragment of the message that tells the caller what to fix


@dataclass
class World:
    q: query_pb2_grpc.QueryServiceStub
    t: trainer_pb2_grpc.TrainerServiceStub
    qch: grpc.Channel
    tch: grpc.Channel
    queued: list[str]
    labeled: str
    unqueued: str

    def raw(self, method: str, payload: bytes, *, stream: bool = False) -> Any:
        if stream:
            return self.qch.stream_unary(Q + method)(iter([payload]), timeout=10)
        return self.qch.unary_unary(Q + method)(payload, timeout=10)

    def pool(self, *items: tuple[str, str], pool: str = "p", **kw: Any) -> Any:
        return self.q.SubmitPool(
            iter(
                [
                    query_pb2.SubmitPoolRequest(
                        pool=pool, items=[query_pb2.PoolItem(id=i, text=t) for i, t in items], **kw
                    )
                ]
            ),
            timeout=10,
        )

    def pools(self, *messages: query_pb2.SubmitPoolRequest) -> Any:
        return self.q.SubmitPool(iter(messages), timeout=10)

    def score(self, *items: tuple[str, str], strategy: int = 0) -> Any:
        return list(
            self.q.ScorePool(
                iter(
                    [
                        query_pb2.ScorePoolRequest(
                            items=[query_pb2.PoolItem(id=i, text=t) for i, t in items], strategy=strategy
                        )
                    ]
                ),
                timeout=10,
            )
        )

    def query(self, **kw: Any) -> Any:
        return self.q.Query(
            query_pb2.QueryRequest(**{"pool": "p", "strategy": common_pb2.STRATEGY_ENTROPY, "k": 1, **kw}), timeout=10
        )

    def lease(self, **kw: Any) -> Any:
        return self.q.LeaseTasks(query_pb2.LeaseTasksRequest(**{"max_items": 1, **kw}), timeout=10)

    def label(self, *labels: tuple[str, str, int], labeler: str = "corpus") -> Any:
        return self.q.SubmitLabels(
            query_pb2.SubmitLabelsRequest(
                labeler=labeler, labels=[query_pb2.Label(pool=p, id=i, label=lab) for p, i, lab in labels]
            ),
            timeout=10,
        )

    def predict(self, *texts: str) -> Any:
        return self.q.Predict(query_pb2.PredictRequest(texts=list(texts)), timeout=10)


GOOD = "a fine film with superb acting"
HUGE = "x" * (3 * 1024 * 1024)  # multi-megabyte, under the message limit but over the text limit
OVER = "y" * (MAX_MESSAGE + 1024)  # over the message limit itself

CASES = [
    # --- SubmitPool ---------------------------------------------------------------------------------------------
    Case("pool: empty text", lambda w: w.pool(("a", "")), INVALID, "text is empty"),
    Case("pool: whitespace-only text", lambda w: w.pool(("a", "   ")), INVALID, "only white space"),
    Case("pool: newline/tab text", lambda w: w.pool(("a", "\n\t\r")), INVALID, "only white space"),
    Case("pool: multi-megabyte text", lambda w: w.pool(("a", HUGE)), INVALID, "the limit is"),
    Case("pool: empty id", lambda w: w.pool(("", GOOD)), INVALID, "id must not be empty"),
    Case("pool: id with spaces around", lambda w: w.pool((" a ", GOOD)), INVALID, "white space"),
    Case("pool: id too long", lambda w: w.pool(("i" * 201, GOOD)), INVALID, "the limit is 200"),
    Case("pool: duplicate ids in one message", lambda w: w.pool(("a", GOOD), ("a", GOOD)), INVALID, "appears twice"),
    Case(
        "pool: duplicate ids across messages",
        lambda w: w.pools(
            query_pb2.SubmitPoolRequest(pool="p", items=[query_pb2.PoolItem(id="a", text=GOOD)]),
            query_pb2.SubmitPoolRequest(items=[query_pb2.PoolItem(id="a", text=GOOD)]),
        ),
        INVALID,
        "appears twice",
    ),
    Case(
        "pool: second message names another pool",
        lambda w: w.pools(
            query_pb2.SubmitPoolRequest(pool="p", items=[query_pb2.PoolItem(id="new1", text=GOOD)]),
            query_pb2.SubmitPoolRequest(pool="other", items=[query_pb2.PoolItem(id="new2", text=GOOD)]),
        ),
        INVALID,
        "one stream per pool",
    ),
    Case("pool: pool name with spaces around", lambda w: w.pool(("a", GOOD), pool=" p"), INVALID, "white space"),
    Case("pool: pool name too long", lambda w: w.pool(("a", GOOD), pool="p" * 300), INVALID, "the limit is 200"),
    Case("pool: good then bad item", lambda w: w.pool(("new3", GOOD), ("new4", "")), INVALID, "nothing was stored"),
    Case(
        "pool: invalid UTF-8 text",
        lambda w: w.raw("SubmitPool", field(1, b"p") + field(3, field(1, b"z") + field(2, BAD_UTF8)), stream=True),
        INVALID,
        "not a valid protobuf",
    ),
    Case(
        "pool: invalid UTF-8 id",
        lambda w: w.raw("SubmitPool", field(1, b"p") + field(3, field(1, b"\xff") + field(2, b"ok")), stream=True),
        INVALID,
        "UTF-8",
    ),
    Case(
        "pool: truncated protobuf",
        lambda w: w.raw("SubmitPool", field(3, field(1, b"z") + field(2, b"text"))[:-3], stream=True),
        INVALID,
        "not a valid protobuf",
    ),
    Case("pool: message over the size limit", lambda w: w.pool(("a", OVER)), EXHAUSTED, "larger than max"),
    Case(
        "pool: more items in one stream than ALLOOP_MAX_UPLOAD_ITEMS",
        lambda w: w.pools(
            *[
                query_pb2.SubmitPoolRequest(
                    pool="p", items=[query_pb2.PoolItem(id=f"u{m}-{i}", text=GOOD) for i in range(MAX_ITEMS)]
                )
                for m in range(2)
            ]
        ),
        EXHAUSTED,
        "ALLOOP_MAX_UPLOAD_ITEMS",
    ),
    Case(
        "pool: more text in one stream than ALLOOP_MAX_UPLOAD_CHARS",
        lambda w: w.pools(
            *[
                query_pb2.SubmitPoolRequest(pool="p", items=[query_pb2.PoolItem(id=f"c{m}", text="t" * 3_000)])
                for m in range(2)
            ]
        ),
        EXHAUSTED,
        "ALLOOP_MAX_UPLOAD_CHARS",
    ),
    Case(
        "pool: more items than the pool may hold",
        lambda w: w.pool(*[(f"n{i}", GOOD) for i in range(11)]),
        EXHAUSTED,
        "ALLOOP_MAX_POOL_ITEMS",
    ),
    Case(
        "pool: one pool more than ALLOOP_MAX_POOLS",
        lambda w: w.pool(("a", GOOD), pool="second"),
        EXHAUSTED,
        "ALLOOP_MAX_POOLS",
    ),
    Case(
        "pool: 1 MB id in a later message",
        lambda w: w.pools(
            query_pb2.SubmitPoolRequest(pool="p", items=[query_pb2.PoolItem(id="ok1", text=GOOD)]),
            query_pb2.SubmitPoolRequest(items=[query_pb2.PoolItem(id="i" * 1_000_000, text=GOOD)]),
        ),
        INVALID,
        "the limit is 200",
    ),
    Case(
        "pool: 1 MB pool name in a later message",
        lambda w: w.pools(
            query_pb2.SubmitPoolRequest(pool="p", items=[query_pb2.PoolItem(id="ok2", text=GOOD)]),
            query_pb2.SubmitPoolRequest(pool="q" * 1_000_000, items=[]),
        ),
        INVALID,
        "(1000000 characters)",
    ),
    # --- ScorePool ----------------------------------------------------------------------------------------------
    Case("score: no items", lambda w: w.score(), INVALID, "no items"),
    Case("score: empty text", lambda w: w.score(("a", "")), INVALID, "text is empty"),
    Case(
        "score: unknown strategy number",
        lambda w: w.score(("a", GOOD), strategy=1000),
        INVALID,
        "unknown Strategy number 1000",
    ),
    Case(
        "score: too many items",
        lambda w: w.score(*[(str(i), GOOD) for i in range(MAX_ITEMS + 1)]),
        EXHAUSTED,
        "split the request",
    ),
    Case("score: text over the limit", lambda w: w.score(("a", HUGE)), INVALID, "the limit is"),
    # --- Query --------------------------------------------------------------------------------------------------
    Case("query: unknown pool", lambda w: w.query(pool="nope"), NOT_FOUND, "SubmitPool first"),
    Case("query: empty pool name", lambda w: w.query(pool=""), INVALID, "must not be empty"),
    Case("query: k = 0", lambda w: w.query(k=0), INVALID, "k must be a positive"),
    Case("query: k < 0", lambda w: w.query(k=-1), INVALID, "k must be a positive"),
    Case("query: k very negative", lambda w: w.query(k=-(2**31)), INVALID, "k must be a positive"),
    Case("query: k larger than the pool", lambda w: w.query(k=40), PRECONDITION, "ask for fewer"),
    Case("query: k over ALLOOP_MAX_QUERY_K", lambda w: w.query(k=51), EXHAUSTED, "ALLOOP_MAX_QUERY_K"),
    Case("query: k = 2^31 - 1", lambda w: w.query(k=2**31 - 1), EXHAUSTED, "50 items per Query"),
    Case("query: negative seed", lambda w: w.query(seed=-1), INVALID, "seed must be 0"),
    Case("query: very negative seed", lambda w: w.query(seed=-(2**63)), INVALID, "seed must be 0"),
    Case(
        "query: max_candidates over the bound",
        lambda w: w.query(max_candidates=46),
        EXHAUSTED,
        "ALLOOP_MAX_QUERY_CANDIDATES",
    ),
    Case("query: k over what one Query may score", lambda w: w.query(k=46), EXHAUSTED, "45 items one Query may score"),
    Case("query: unknown strategy number", lambda w: w.query(strategy=77), INVALID, "unknown Strategy number 77"),
    Case("query: negative strategy number", lambda w: w.query(strategy=-1), INVALID, "unknown Strategy number -1"),
    Case("query: unset strategy", lambda w: w.query(strategy=0), INVALID, "STRATEGY_UNSPECIFIED"),
    Case(
        "query: strategy sent as a string",
        lambda w: w.raw("Query", field(1, b"p") + field(2, b"entropy") + varint(3 << 3) + varint(1)),
        INVALID,
        "STRATEGY_UNSPECIFIED",
    ),
    Case("query: truncated protobuf", lambda w: w.raw("Query", field(1, b"p")[:-1]), INVALID, "not a valid protobuf"),
    Case(
        "query: wrong wire type",
        lambda w: w.raw("Query", varint(3 << 3 | 2) + b"\x05abc"),
        INVALID,
        "not a valid protobuf",
    ),
    Case("query: invalid UTF-8 pool", lambda w: w.raw("Query", field(1, b"\xfe\xff")), INVALID, "UTF-8"),
    # --- LeaseTasks ---------------------------------------------------------------------------------------------
    Case("lease: max_items = 0", lambda w: w.lease(max_items=0), INVALID, "max_items must be positive"),
    Case("lease: max_items < 0", lambda w: w.lease(max_items=-5), INVALID, "max_items must be positive"),
    Case("lease: negative lease", lambda w: w.lease(lease_duration=duration(-1)), INVALID, "must not be negative"),
    Case(
        "lease: longer than ALLOOP_MAX_LEASE_SECONDS",
        lambda w: w.lease(lease_duration=duration(601)),
        INVALID,
        "ALLOOP_MAX_LEASE_SECONDS",
    ),
    Case(
        "lease: 2^31 - 1 seconds",
        lambda w: w.lease(lease_duration=duration(2**31 - 1)),
        INVALID,
        "600 s a lease may last",
    ),
    Case(
        "lease: 10,000 years",
        lambda w: w.lease(lease_duration=duration(315_576_000_000)),
        INVALID,
        "600 s a lease may last",
    ),
    Case("lease: garbage bytes", lambda w: w.raw("LeaseTasks", b"\xff\xff\xff\xff"), INVALID, "not a valid protobuf"),
    # --- SubmitLabels -------------------------------------------------------------------------------------------
    Case("labels: none", lambda w: w.label(), INVALID, "no labels"),
    Case(
        "labels: label 2 in a binary task", lambda w: w.label(("p", w.queued[0], 2)), INVALID, "0=negative, 1=positive"
    ),
    Case("labels: label -1", lambda w: w.label(("p", w.queued[0], -1)), INVALID, "not a class index"),
    Case("labels: label 1000", lambda w: w.label(("p", w.queued[0], 1000)), INVALID, "not a class index"),
    Case("labels: unknown pool", lambda w: w.label(("nope", "x", 0)), NOT_FOUND, "does not exist"),
    Case("labels: item never queued", lambda w: w.label(("p", w.unqueued, 0)), PRECONDITION, "never queued"),
    Case("labels: item not in the pool", lambda w: w.label(("p", "ghost", 0)), PRECONDITION, "never queued"),
    Case(
        "labels: other label for a labeled item",
        lambda w: w.label(("p", w.labeled, 0)),
        PRECONDITION,
        "first label stands",
    ),
    Case(
        "labels: same item twice in a batch",
        lambda w: w.label(("p", w.queued[0], 0), ("p", w.queued[0], 1)),
        INVALID,
        "appears twice",
    ),
    Case(
        "labels: good and bad in one batch",
        lambda w: w.label(("p", w.queued[0], 0), ("p", w.queued[1], 7)),
        INVALID,
        "label #1",
    ),
    Case(
        "labels: good and never-queued in one batch",
        lambda w: w.label(("p", w.queued[0], 0), ("p", w.unqueued, 1)),
        PRECONDITION,
        "nothing in this batch was recorded",
    ),
    Case("labels: empty pool name", lambda w: w.label(("", w.queued[0], 0)), INVALID, "must not be empty"),
    Case("labels: empty id", lambda w: w.label(("p", "", 0)), INVALID, "must not be empty"),
    Case(
        "labels: labeler name over the limit",
        lambda w: w.label(("p", w.queued[0], 0), labeler="l" * 201),
        INVALID,
        "labeler is 201 characters long; the limit is 200",
    ),
    Case(
        "labels: 1 MB labeler name",
        lambda w: w.label(("p", w.queued[0], 0), labeler="l" * 1_000_000),
        INVALID,
        "the limit is 200",
    ),
    Case(
        "labels: too many",
        lambda w: w.label(*[("p", f"i{i}", 0) for i in range(MAX_ITEMS + 1)]),
        EXHAUSTED,
        "split the request",
    ),
    Case(
        "labels: invalid UTF-8 id",
        lambda w: w.raw("SubmitLabels", field(2, field(1, b"p") + field(2, b"\xff\xfe") + b"\x18\x01")),
        INVALID,
        "UTF-8",
    ),
    # --- Predict ------------------------------------------------------------------------------------------------
    Case("predict: no texts", lambda w: w.predict(), INVALID, "no texts"),
    Case("predict: empty text", lambda w: w.predict(""), INVALID, "text is empty"),
    Case("predict: whitespace text", lambda w: w.predict(GOOD, "  "), INVALID, "texts #1"),
    Case("predict: multi-megabyte text", lambda w: w.predict(HUGE), INVALID, "the limit is"),
    Case("predict: too many texts", lambda w: w.predict(*[GOOD] * (MAX_ITEMS + 1)), EXHAUSTED, "split the request"),
    Case("predict: invalid UTF-8 text", lambda w: w.raw("Predict", field(1, BAD_UTF8)), INVALID, "UTF-8"),
    Case(
        "predict: truncated protobuf",
        lambda w: w.raw("Predict", field(1, b"a good film")[:-4]),
        INVALID,
        "not a valid protobuf",
    ),
    Case("predict: message over the size limit", lambda w: w.predict(OVER), EXHAUSTED, "larger than max"),
    # --- TrainerService -----------------------------------------------------------------------------------------
    Case(
        "trainer: Train with no validation set",
        lambda w: w.t.Train(trainer_pb2.TrainRequest(), timeout=10),
        PRECONDITION,
        "ALLOOP_VAL_DATA",
    ),
    Case(
        "trainer: garbage GetStatus",
        lambda w: w.tch.unary_unary("/alloop.v1.TrainerService/GetStatus")(b"\x0a", timeout=10),
        INVALID,
        "not a valid protobuf",
    ),
]


@pytest.fixture
def world(query_settings, trainer_settings, redis_client, keys) -> Iterator[World]:
    settings = replace(query_settings, max_batch_items=MAX_ITEMS, max_message_bytes=MAX_MESSAGE, **BOUNDS)
    models.write_and_publish(redis_client, keys, settings.common.models_path, 1)
    query = create_query_server(settings, redis_client)
    trainer = create_trainer_server(replace(trainer_settings, initial_data=None, val_data=None), redis_client)
    try:
        wait_for(query.holder.current_or_none, timeout=30, what="version 1 served")
        qch, tch = channel(query.port), channel(trainer.port)
        q = query_pb2_grpc.QueryServiceStub(qch)
        w = World(q, trainer_pb2_grpc.TrainerServiceStub(tch), qch, tch, [], "", "")
        w.pool(*[(f"i{i}", f"{GOOD} number {i}") for i in range(30)])
        selected = [s.id for s in w.query(k=4).selected]
        w.label(("p", selected[0], 1))
        w.labeled, w.queued = selected[0], selected[1:]
        w.unqueued = next(f"i{i}" for i in range(30) if f"i{i}" not in selected)
        # Let the trainer take in that label first, so the only writer left is the request under test.
        wait_for(
            lambda: (
                redis_client.hlen(keys.training_set) == 1
                and redis_client.xpending(keys.label_stream, "trainer")["pending"] == 0
            ),
            what="label consumed",
        )
        yield w
    finally:
        query.stop(0)
        trainer.stop(0)


def test_every_bad_request_is_refused_clearly_and_changes_nothing(world, redis_client, keys):
    assert len(CASES) >= 50
    failures = []
    for case in CASES:
        before = dump_keys(redis_client, keys.prefix)
        try:
            case.call(world)
            failures.append(f"{case.name}: accepted")
            continue
        except grpc.RpcError as err:
            code, details = err.code(), err.details() or ""
        if code != case.code:
            failures.append(f"{case.name}: {code.name} instead of {case.code.name} ({details[:200]})")
        elif case.says not in details:
            failures.append(f"{case.name}: message {details[:200]!r} lacks {case.says!r}")
        if dump_keys(redis_client, keys.prefix) != before:
            failures.append(f"{case.name}: Redis changed")
    assert not failures, "\n".join(failures)
    # The service is still healthy and answers good requests after the whole corpus.
    assert world.predict(GOOD).model_version == 1
    assert world.label(("p", world.queued[0], 0)).accepted == 1
