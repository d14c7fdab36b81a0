"""Batch pool client: upload a CSV/JSONL pool (with a progress bar) and query items for labeling.

alloop-pool submit reviews.jsonl --pool reviews
alloop-pool query --pool reviews --strategy entropy -k 100
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc
from tqdm import tqdm

from alloop.data import Record, read_records
from alloop.rpc.messages import strategy_names, strategy_value
from alloop.v1 import query_pb2, query_pb2_grpc
from clients.common import add_address_flags, add_count_flag, add_pool_flag, describe, environment, query_stub

DEFAULT_BATCH = 256


def submit_records(
    stub: query_pb2_grpc.QueryServiceStub,
    pool: str,
    records: Sequence[Record],
    *,
    batch: int = DEFAULT_BATCH,
    skip_invalid: bool = False,
    progress: bool = True,
) -> query_pb2.SubmitPoolResponse:
    """Stream records in batches of ``batch`` items per message; labels are not sent (the pool is unlabeled)."""
    bar = tqdm(total=len(records), unit="item", desc=f"pool {pool}", disable=not progress)

    def messages() -> Iterator[query_pb2.SubmitPoolRequest]:
        for start in range(0, len(records), batch):
            chunk = records[start : start + batch]
            yield query_pb2.SubmitPoolRequest(
                pool=pool,
                skip_invalid=skip_invalid,
                items=[query_pb2.PoolItem(id=r.id, text=r.text) for r in chunk],
            )
            bar.update(len(chunk))

    try:
        return stub.SubmitPool(messages())
    finally:
        bar.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="alloop-pool", description="Submit a pool to alloop, or query items for labeling."
    )
    add_address_flags(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    p_submit = sub.add_parser("submit", help="upload a CSV/JSONL file of (id, text[, label]) as an unlabeled pool")
    p_submit.add_argument("path", type=Path)
    add_pool_flag(p_submit)
    p_submit.add_argument("--batch", type=int, default=DEFAULT_BATCH, help="items per stream message")
    p_submit.add_argument("--skip-invalid", action="store_true", help="store the valid items, report the others")
    p_submit.add_argument(
        "--classes",
        default=environment("ALLOOP_CLASSES").classes,
        help="class names, for files whose (ignored) label column holds names (env ALLOOP_CLASSES)",
    )
    p_query = sub.add_parser("query", help="select k items with a strategy and queue them for labelers")
    add_pool_flag(p_query)
    p_query.add_argument("--strategy", default="least_confidence", choices=strategy_names())
    add_count_flag(p_query, default=None, what="items to select and queue")
    args = parser.parse_args(argv)

    stub = query_stub(args.query)
    try:
        if args.command == "submit":
            records = read_records(args.path, classes=args.classes.split(","))
            result = submit_records(stub, args.pool, records, batch=args.batch, skip_invalid=args.skip_invalid)
            print(
                f"pool {result.pool}: {result.accepted} accepted, {result.duplicate} duplicate, "
                f"{result.rejected} rejected; {result.pool_size} items in the pool"
            )
            for rejection in result.rejections[:20]:
                print(f"  rejected #{rejection.index} {rejection.id!r}: {rejection.reason}")
        else:
            result = stub.Query(
                query_pb2.QueryRequest(pool=args.pool, strategy=strategy_value(args.strategy), k=args.count)
            )
            print(
                f"queued {len(result.selected)} of {result.candidates} candidates (model version {result.model_version})"
            )
            for item in result.selected:
                probs = " ".join(f"{p:.3f}" for p in item.probabilities)
                print(f"  {item.id}\tscore {item.uncertainty:.4f}\tprobabilities {probs}")
    except grpc.RpcError as error:
        print(describe(error), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
