"""gRPC <-> domain for the trainer: translation only; errors map to status codes in alloop.rpc.status."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import grpc

from alloop.rpc.messages import model_version_message
from alloop.rpc.status import grpc_errors
from alloop.v1 import trainer_pb2, trainer_pb2_grpc
from trainer_service.trainer import Trainer

_KINDS = {
    "round_started": trainer_pb2.TrainingEvent.KIND_ROUND_STARTED,
    "epoch_end": trainer_pb2.TrainingEvent.KIND_EPOCH_END,
    "round_finished": trainer_pb2.TrainingEvent.KIND_ROUND_FINISHED,
    "round_failed": trainer_pb2.TrainingEvent.KIND_ROUND_FAILED,
}


class TrainerServicer(trainer_pb2_grpc.TrainerServiceServicer):
    def __init__(self, trainer: Trainer, stopping: threading.Event) -> None:
        self._trainer = trainer
        self._stopping = stopping

    @grpc_errors
    def GetStatus(
        self, request: trainer_pb2.GetStatusRequest, context: grpc.ServicerContext
    ) -> trainer_pb2.GetStatusResponse:
        status = self._trainer.status()
        state = trainer_pb2.TrainerStatus.STATE_TRAINING if status.training else trainer_pb2.TrainerStatus.STATE_IDLE
        return trainer_pb2.GetStatusResponse(
            status=trainer_pb2.TrainerStatus(
                labels_seen=status.labels_seen,
                pending=status.pending,
                state=state,
                current_round=status.current_round,
                current_version=status.current_version,
                retrain_threshold=self._trainer.settings.retrain_threshold,
                last_error=status.last_error,
            )
        )

    @grpc_errors
    def Train(self, request: trainer_pb2.TrainRequest, context: grpc.ServicerContext) -> trainer_pb2.TrainResponse:
        round_no, started, future = self._trainer.request_round()
        response = trainer_pb2.TrainResponse(round=round_no, started=started)
        if request.wait:
            response.version.CopyFrom(model_version_message(future.result()))
        return response

    @grpc_errors
    def ListModelVersions(
        self, request: trainer_pb2.ListModelVersionsRequest, context: grpc.ServicerContext
    ) -> trainer_pb2.ListModelVersionsResponse:
        registry = self._trainer.registry
        return trainer_pb2.ListModelVersionsResponse(
            versions=[model_version_message(meta) for meta in registry.all()],
            current_version=registry.current(),
        )

    @grpc_errors
    def WatchTraining(
        self, request: trainer_pb2.WatchTrainingRequest, context: grpc.ServicerContext
    ) -> Iterator[trainer_pb2.WatchTrainingResponse]:
        active = lambda: context.is_active() and not self._stopping.is_set()
        for event in self._trainer.events.subscribe(active):
            yield trainer_pb2.WatchTrainingResponse(
                event=trainer_pb2.TrainingEvent(
                    kind=_KINDS[event.kind],
                    round=event.round,
                    epoch=event.epoch,
                    loss=event.metrics.get("loss", 0.0),
                    val_loss=event.metrics.get("val_loss", 0.0),
                    accuracy=event.metrics.get("accuracy", 0.0),
                    val_accuracy=event.metrics.get("val_accuracy", 0.0),
                    version=event.version,
                    message=event.message,
                    train_size=event.train_size,
                )
            )
