"""A terminal labeler for a person: lease items, read each review, press a key per class.

Labels are sent as soon as they are given, so quitting loses nothing; skipped items go back to the queue when the
lease expires.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Callable

import grpc

from alloop.v1 import query_pb2
from clients.common import add_address_flags, describe, query_stub


def label_session(
    stub,
    labeler: str,
    batch: int,
    ask: Callable[[str], str] = input,
    say: Callable[[str], None] = print,
    pool: str = "",
) -> int:
    """Label until the queue (of ``pool``; empty: of every pool) is empty or the person quits; returns how many
    labels were accepted."""
    done = 0
    while True:
        leased = stub.LeaseTasks(query_pb2.LeaseTasksRequest(labeler=labeler, max_items=batch, pool=pool))
        if not leased.tasks:
            say("the queue is empty")
            return done
        classes = list(leased.classes)
        keys = "  ".join(f"[{i}] {name}" for i, name in enumerate(classes))
        for task in leased.tasks:
            say("\n" + "-" * 78)
            say(f"{task.pool}/{task.id}  (score {task.score:.3f}, model v{task.model_version})")
            say(textwrap.fill(task.text.replace("<br />", " "), width=78))
            while True:
                answer = ask(f"{keys}  [s]kip  [q]uit > ").strip().lower()
                if answer == "q":
                    return done
                if answer == "s":
                    break
                if answer.isdigit() and int(answer) < len(classes):
                    try:
                        stub.SubmitLabels(
                            query_pb2.SubmitLabelsRequest(
                                labeler=labeler, labels=[query_pb2.Label(pool=task.pool, id=task.id, label=int(answer))]
                            )
                        )
                        done += 1
                    except grpc.RpcError as error:
                        say(f"not recorded: {describe(error)}")
                    break
                say(f"press one of 0..{len(classes) - 1}, s or q")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="alloop-label", description="Label queued items in the terminal.")
    add_address_flags(parser)
    parser.add_argument(
        "--labeler",
        default="",
        help="your name, recorded with each label when the service runs without tokens; with tokens the service "
        "records your token's holder, and a labeler token may not name anyone else",
    )
    parser.add_argument("--batch", type=int, default=10, help="items leased at a time")
    parser.add_argument("--pool", default="", help="label items of this pool only (default: of every pool)")
    args = parser.parse_args(argv)
    try:
        count = label_session(query_stub(args.query), args.labeler, args.batch, pool=args.pool)
    except (EOFError, KeyboardInterrupt):
        print()
        return 0
    except grpc.RpcError as error:
        print(describe(error), file=sys.stderr)
        return 1
    print(f"{count} labels recorded")
    return 0


if __name__ == "__main__":
    sys.exit(main())
