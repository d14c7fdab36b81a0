"""A simulated oracle: runs the seed experiment through the real services, answering with the dataset's labels.

Per round: Query k items → lease them → submit their true labels → the trainer retrains (at its threshold, or when
asked with Train) → wait until the query service serves the new version → record its test metrics. Prints a table
per round and writes ``learning_curve.json`` and ``learning_curve.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import grpc

from alloop.data import Record, read_records
from alloop.rpc.messages import strategy_names, strategy_value
from alloop.v1 import common_pb2, query_pb2, query_pb2_grpc, trainer_pb2, trainer_pb2_grpc
from clients.common import add_address_flags, add_count_flag, add_pool_flag, describe, query_stub, trainer_stub
from clients.pool import submit_records


@dataclass(frozen=True)
class RoundRow:
    round: int
    labels: int
    version: int
    accuracy: float
    false_positives: int
    false_negatives: int
    loss: float
    seconds: float
    kappa: float  # agreement with the previous version on the stop set; -1 for none
    stop: bool


class Oracle:
    def __init__(
        self,
        query: query_pb2_grpc.QueryServiceStub,
        trainer: trainer_pb2_grpc.TrainerServiceStub,
        pool: str,
        truth: dict[str, int],
        *,
        labeler: str = "oracle",
        max_candidates: int = 0,
        seed: int | None = None,
    ) -> None:
        self.query = query
        self.trainer = trainer
        self.pool = pool
        self.truth = truth
        self.labeler = labeler
        self.max_candidates = max_candidates
        self.seed = seed

    def wait_for_version(self, newer_than: int, timeout: float) -> common_pb2.ModelVersion:
        """Block on WatchModels until the query service serves a version newer than ``newer_than``."""
        stream = self.query.WatchModels(query_pb2.WatchModelsRequest(), timeout=timeout)
        try:
            for update in stream:
                if update.version.version > newer_than:
                    return update.version
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise TimeoutError(f"no model version newer than {newer_than} within {timeout:.0f}s") from error
            raise
        finally:
            stream.cancel()
        raise RuntimeError("WatchModels ended before a new version arrived")

    def label_round(self, strategy: str, k: int, round_no: int = 1) -> int:
        selected = self.query.Query(
            query_pb2.QueryRequest(
                pool=self.pool,
                strategy=strategy_value(strategy),
                k=k,
                max_candidates=self.max_candidates,
                seed=query_seed(self.seed, round_no),
            )
        )
        wanted = {item.id for item in selected.selected}
        labeled = 0
        while wanted:
            leased = self.query.LeaseTasks(
                query_pb2.LeaseTasksRequest(labeler=self.labeler, max_items=min(len(wanted), 100), pool=self.pool)
            )
            if not leased.tasks:
                break
            # Answer only items of our own pool: the truth is keyed by id, and another pool may reuse an id.
            labels = [
                query_pb2.Label(pool=t.pool, id=t.id, label=self.truth[t.id])
                for t in leased.tasks
                if t.pool == self.pool and t.id in self.truth
            ]
            if labels:
                result = self.query.SubmitLabels(query_pb2.SubmitLabelsRequest(labeler=self.labeler, labels=labels))
                labeled += result.accepted
            wanted -= {t.id for t in leased.tasks}
        return labeled

    def ensure_round(self, labels_seen: int, timeout: float) -> None:
        """Once the trainer holds ``labels_seen`` labels, ask for a round if its threshold will not start one."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.trainer.GetStatus(trainer_pb2.GetStatusRequest()).status
            if status.labels_seen >= labels_seen:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"the trainer holds {status.labels_seen} labels, expected {labels_seen}")
            time.sleep(0.2)
        if status.state != trainer_pb2.TrainerStatus.STATE_TRAINING and status.pending < status.retrain_threshold:
            self.trainer.Train(trainer_pb2.TrainRequest())


def query_seed(seed: int | None, round_no: int) -> int:
    """The Query seed of one round: 0 (fresh randomness) without a run seed; else positive, different per round and
    the same for the same run seed, so a strategy's random draws and candidate samples repeat with the run."""
    if seed is None:
        return 0
    if seed < 0:
        raise ValueError(f"a run seed is 0 or positive, got {seed}")
    return 1 + seed * 100_000 + round_no


def row_for(round_no: int, version: common_pb2.ModelVersion, seconds: float) -> RoundRow:
    m = version.metrics
    return RoundRow(
        round_no,
        version.train_size,
        version.version,
        m.accuracy,
        m.false_positives,
        m.false_negatives,
        m.loss,
        seconds,
        version.stability_kappa,
        version.stop_recommended,
    )


def print_header() -> None:
    print(
        f"{'round':>5} {'labels':>7} {'version':>7} {'test acc':>9} {'FP':>6} {'FN':>6} {'kappa':>6} {'seconds':>8}",
        flush=True,
    )


def print_row(row: RoundRow) -> None:
    kappa = "-" if row.kappa < 0 else f"{row.kappa:.3f}"
    stop = "  (stop: predictions stable)" if row.stop else ""
    print(
        f"{row.round:>5} {row.labels:>7} {row.version:>7} {row.accuracy:>9.4f} {row.false_positives:>6} "
        f"{row.false_negatives:>6} {kappa:>6} {row.seconds:>8.1f}{stop}",
        flush=True,
    )


def write_outputs(rows: list[RoundRow], out: Path, meta: dict[str, object]) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "learning_curve.json"
    json_path.write_text(json.dumps({**meta, "rounds": [asdict(r) for r in rows]}, indent=2))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r.labels for r in rows], [r.accuracy * 100 for r in rows], marker="o")
    ax.set_xlabel("labels")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"alloop: {meta.get('strategy')} on {meta.get('pool')}")
    ax.grid(alpha=0.3)
    png_path = out / "learning_curve.png"
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)
    plt.close(fig)
    return json_path, png_path


def run(args: argparse.Namespace) -> list[RoundRow]:
    records: list[Record] = read_records(args.pool_file, classes=args.classes.split(","), require_label=True)
    truth = {r.id: r.known_label for r in records}
    query, trainer = query_stub(args.query), trainer_stub(args.trainer)
    oracle = Oracle(query, trainer, args.pool, truth, max_candidates=args.max_candidates, seed=args.seed)
    submitted = submit_records(query, args.pool, records, progress=not args.quiet)
    print(f"pool {args.pool}: {submitted.accepted} new, {submitted.duplicate} already there", flush=True)
    started = time.monotonic()
    version = oracle.wait_for_version(0, args.timeout)
    if submitted.accepted and version.adapts_to_pool:
        # The first version was fitted before this pool existed; a family that learns its features from pool text
        # would pick the first batch with a vocabulary of the initial labels only. Refresh it on the pool first.
        try:
            trainer.Train(trainer_pb2.TrainRequest(wait=True), timeout=args.timeout)
        except grpc.RpcError as error:
            raise RuntimeError(
                f"the refresh round on pool {args.pool!r} failed ({error.code().name}: {error.details()}); "
                "see the trainer's log, then run the oracle again (the pool is already stored)"
            ) from error
        version = oracle.wait_for_version(version.version, args.timeout)
    rows = [row_for(0, version, time.monotonic() - started)]
    print_header()
    print_row(rows[0])
    # Either R rounds of k labels, or rounds that reach each total in --budgets.
    targets = args.budgets or [version.train_size + args.count * r for r in range(1, args.rounds + 1)]
    for round_no, target in enumerate(targets, start=1):
        k = target - version.train_size
        if k <= 0:
            continue
        round_started = time.monotonic()
        labeled = oracle.label_round(args.strategy, k, round_no)
        seen = trainer.GetStatus(trainer_pb2.GetStatusRequest()).status.labels_seen
        oracle.ensure_round(max(seen, version.train_size + labeled), args.timeout)
        version = oracle.wait_for_version(version.version, args.timeout)
        rows.append(row_for(round_no, version, time.monotonic() - round_started))
        print_row(rows[-1])
    meta = {
        "strategy": args.strategy,
        "k": args.count,
        "budgets": args.budgets,
        "pool": args.pool,
        "pool_size": len(records),
    }
    json_path, png_path = write_outputs(rows, args.out, meta)
    print(f"learning curve: {json_path} and {png_path}", flush=True)
    return rows


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alloop-oracle", description="Simulated oracle: label queried items from the dataset's true labels."
    )
    add_address_flags(parser, trainer=True)
    parser.add_argument("--pool-file", type=Path, required=True, help="CSV/JSONL (id, text, label) with true labels")
    add_pool_flag(parser)
    parser.add_argument("--classes", default="negative,positive")
    parser.add_argument("--strategy", default="least_confidence", choices=strategy_names())
    add_count_flag(parser, default=500, what="labels per round (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--budgets",
        type=lambda s: [int(x) for x in s.split(",") if x],
        default=None,
        help="label totals to reach, one round each (e.g. 400,600,1000); overrides --count/--rounds",
    )
    parser.add_argument(
        "--max-candidates",
        type=int,
        default=0,
        help="score a random sample of this many unlabeled items per Query (0: all); for bald on large pools",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="repeat the run's random draws (random strategy, candidate samples): each round's Query gets a seed "
        "derived from this one; unset: fresh randomness",
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for each new version")
    parser.add_argument("--out", type=Path, default=Path("runs/oracle"))
    parser.add_argument("--quiet", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except grpc.RpcError as error:
        print(describe(error), file=sys.stderr)
        return 1
    except (RuntimeError, TimeoutError) as error:
        print(f"alloop-oracle: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
