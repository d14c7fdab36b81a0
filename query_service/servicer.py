"""gRPC <-> domain for the query service: translation only; errors map to status codes in alloop.rpc.status."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import grpc

from alloop import logs
from alloop.config import DEFAULT_POOL
from alloop.errors import InvalidRequest
from alloop.identity import Caller
from alloop.rpc.auth import Credentials
from alloop.rpc.messages import model_version_message, seconds, strategy_name, strategy_value, timestamp
from alloop.rpc.status import grpc_errors
from alloop.store.labeling import LabelSubmission
from alloop.store.scores import Progress
from alloop.v1 import common_pb2, query_pb2, query_pb2_grpc
from alloop.validation import quoted
from query_service.app import DEFAULT_MEASURE, QueryApp, Scored


def _item_score(scored: Scored, version: int, pool: str = "") -> common_pb2.ItemScore:
    return common_pb2.ItemScore(
        id=scored.item_id,
        probabilities=[float(p) for p in scored.probabilities],
        uncertainty=scored.score,
        predicted_label=scored.predicted,
        model_version=version,
        pool=pool,
    )


class QueryServicer(query_pb2_grpc.QueryServiceServicer):
    def __init__(self, app: QueryApp, stopping: threading.Event, credentials: Credentials | None = None) -> None:
        self._app = app
        self._stopping = stopping
        self._credentials = credentials or Credentials()

    def _caller(self, context: grpc.ServicerContext) -> Caller:
        return self._credentials.caller(context.invocation_metadata())

    @grpc_errors
    def SubmitPool(
        self, request_iterator: Iterator[query_pb2.SubmitPoolRequest], context: grpc.ServicerContext
    ) -> query_pb2.SubmitPoolResponse:
        header: dict[str, Any] = {}

        def items() -> Iterator[tuple[str, str]]:
            for message in request_iterator:
                if not header:
                    header.update(pool=message.pool, skip_invalid=message.skip_invalid)
                elif message.pool and message.pool != (header["pool"] or DEFAULT_POOL):
                    # Later messages may repeat the pool or leave it empty; naming another one used to store its
                    # items silently in the first message's pool. Refused before anything is stored.
                    raise InvalidRequest(
                        f"this SubmitPool stream is for pool {header['pool'] or DEFAULT_POOL!r} (named by its first "
                        f"message) but a later message names pool {quoted(message.pool)}; use one stream per pool. "
                        "Nothing was stored"
                    )
                for item in message.items:
                    yield item.id, item.text

        # The pool name and skip_invalid come from the first message, so read it before validating items.
        stream = items()
        first = next(stream, None)
        chained = stream if first is None else _prepend(first, stream)
        result = self._app.submit_pool(header.get("pool", ""), chained, skip_invalid=header.get("skip_invalid", False))
        return query_pb2.SubmitPoolResponse(
            pool=result.pool,
            accepted=result.accepted,
            duplicate=result.duplicate,
            rejected=len(result.rejections),
            rejections=[query_pb2.Rejection(index=i, id=item_id, reason=r) for i, item_id, r in result.rejections],
            pool_size=result.pool_size,
        )

    @grpc_errors
    def ScorePool(
        self, request_iterator: Iterator[query_pb2.ScorePoolRequest], context: grpc.ServicerContext
    ) -> Iterator[query_pb2.ScorePoolResponse]:
        for request in request_iterator:
            measure = strategy_name(request.strategy, "ScorePoolRequest.strategy", default=DEFAULT_MEASURE)
            scored, version = self._app.score([(i.id, i.text) for i in request.items], measure)
            yield query_pb2.ScorePoolResponse(scores=[_item_score(s, version) for s in scored], model_version=version)

    @grpc_errors
    def Query(self, request: query_pb2.QueryRequest, context: grpc.ServicerContext) -> query_pb2.QueryResponse:
        strategy = strategy_name(request.strategy, "QueryRequest.strategy")
        with logs.context(pool=request.pool[:200]):
            result = self._app.query(
                request.pool,
                strategy,
                request.k,
                request.seed,
                request.max_candidates,
                self._caller(context),
            )
        return query_pb2.QueryResponse(
            selected=[_item_score(s, result.model_version, request.pool) for s in result.selected],
            model_version=result.model_version,
            strategy=request.strategy,
            candidates=result.candidates,
            ranking=_ranking(result.ranking),
        )

    @grpc_errors
    def LeaseTasks(
        self, request: query_pb2.LeaseTasksRequest, context: grpc.ServicerContext
    ) -> query_pb2.LeaseTasksResponse:
        leases = self._app.lease(request.max_items, seconds(request.lease_duration), request.pool)
        return query_pb2.LeaseTasksResponse(
            tasks=[
                query_pb2.Task(
                    pool=lease.pool,
                    id=lease.item_id,
                    text=lease.text,
                    lease_id=lease.lease_id,
                    lease_expire_time=timestamp(unix_ms=lease.expires_unix_ms),
                    score=lease.task.score,
                    model_version=lease.task.model_version,
                    strategy=_queued_strategy(lease.task.strategy),
                )
                for lease in leases
            ],
            classes=list(self._app.classes),
        )

    @grpc_errors
    def SubmitLabels(
        self, request: query_pb2.SubmitLabelsRequest, context: grpc.ServicerContext
    ) -> query_pb2.SubmitLabelsResponse:
        labels = [LabelSubmission(lab.pool, lab.id, lab.label) for lab in request.labels]
        result = self._app.submit_labels(labels, request.labeler, self._caller(context))
        return query_pb2.SubmitLabelsResponse(accepted=result.accepted, duplicate=result.duplicate)

    @grpc_errors
    def Predict(self, request: query_pb2.PredictRequest, context: grpc.ServicerContext) -> query_pb2.PredictResponse:
        probs, served = self._app.predict(list(request.texts))
        classes = served.classes or list(self._app.classes)
        labels = probs.argmax(axis=1)
        return query_pb2.PredictResponse(
            predictions=[
                query_pb2.Prediction(
                    probabilities=[float(p) for p in row], label=int(lab), class_name=classes[int(lab)]
                )
                for row, lab in zip(probs, labels, strict=True)
            ],
            model_version=served.version,
        )

    @grpc_errors
    def GetModel(self, request: query_pb2.GetModelRequest, context: grpc.ServicerContext) -> query_pb2.GetModelResponse:
        return query_pb2.GetModelResponse(version=model_version_message(self._app.holder.current().metadata))

    @grpc_errors
    def WatchModels(
        self, request: query_pb2.WatchModelsRequest, context: grpc.ServicerContext
    ) -> Iterator[query_pb2.WatchModelsResponse]:
        active = lambda: context.is_active() and not self._stopping.is_set()
        for served in self._app.holder.watch(active):
            yield query_pb2.WatchModelsResponse(version=model_version_message(served.metadata))


def _queued_strategy(name: str) -> common_pb2.Strategy:
    """The Strategy of a queued task; UNSPECIFIED for a name the enum lacks (a task queued by an older replica)."""
    try:
        return strategy_value(name)
    except ValueError:
        return common_pb2.STRATEGY_UNSPECIFIED


def _prepend(first: tuple[str, str], rest: Iterator[tuple[str, str]]) -> Iterator[tuple[str, str]]:
    yield first
    yield from rest


def _ranking(progress: Progress | None) -> query_pb2.RankingStatus | None:
    if progress is None:
        return None
    return query_pb2.RankingStatus(
        ranked_version=progress.ranked_version,
        served_version=progress.version,
        shards_scored=progress.shards_done,
        shards_total=progress.shards_posted,
    )
