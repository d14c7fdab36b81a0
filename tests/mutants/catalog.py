"""Known-bad changes, each breaking one promise of docs/guarantees.md, and the test that must catch it.

A mutant replaces one exact snippet of one file (``old`` must occur exactly once, so a refactor that moves the code
makes the mutant fail loudly instead of silently planting nothing). ``python -m tests.mutants`` plants each one in a
temporary copy of the tree and runs its test there; a mutant whose test still passes is a guarantee the suite only
claims. ``tests/unit/test_mutants.py`` checks, inside ``make test``, that every snippet is still where it says.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    name: str
    guarantee: str  # the row of docs/guarantees.md it breaks, as that row's first words
    bug: str  # what the planted change does, for the table
    path: str
    old: str
    new: str
    test: str  # a pytest node or file, relative to the repository root


NO_LABEL_LOST = "No label is lost"
NOT_TWICE = "No label is trained twice"
ALL_OR_NOTHING = "A label batch is all or nothing"
COMPLETE = "The published version is always complete and verified"
SWAP = "A swap drops no request"
INDEX = "Killed query replicas lose nothing, and the score index converges"
REDIS_DOWN = "Redis down"
REDIS_KILLED = "Redis killed"
LEASES = "A dead labeler's items come back once"
ROLES = "Only callers with the right role get in"
STREAMS = "Open streams cannot freeze a replica"
CLUSTER = "On Redis Cluster, every promise above holds"
UPGRADE = "An upgrade from untagged keys loses nothing"
EMBED = "Each pool item is embedded once"

CRASH_TRAINER = "tests/integration/test_crash_trainer.py"
HOT_SWAP = "tests/integration/test_hot_swap.py"

MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "ack-as-read",
        NO_LABEL_LOST,
        "the trainer acks each label as it reads it, before writing it to the training set",
        "alloop/store/training.py",
        "        rows = []\n        for sid, fields in entries:\n",
        "        for sid, _ in entries:\n            self._r.xack(stream, GROUP, sid)\n"
        "        rows = []\n        for sid, fields in entries:\n",
        CRASH_TRAINER,
    ),
    Mutant(
        "ack-before-ingest",
        NO_LABEL_LOST,
        "the trainer acks its entries just before the script that writes them (one Redis call apart)",
        "alloop/store/training.py",
        "        k = self._keys\n        return int(self._ingest(",
        "        k = self._keys\n        for sid, *_ in rows:\n            if sid:\n"
        "                self._r.xack(k.label_stream, GROUP, sid)\n        return int(self._ingest(",
        CRASH_TRAINER,
    ),
    Mutant(
        "redelivery-counted",
        NOT_TWICE,
        "the ingest script counts a redelivered label as a new one",
        "alloop/store/training.py",
        "  if old ~= rec then\n    redis.call('HSET', KEYS[1], m, rec)\n    if not old then\n"
        "      added = added + 1\n    end\n  end\n",
        "  redis.call('HSET', KEYS[1], m, rec)\n  added = added + 1\n",
        "tests/integration/test_store.py",
    ),
    Mutant(
        "label-script-writes-while-checking",
        ALL_OR_NOTHING,
        "the label script writes each label while it is still checking the rest of the batch",
        "alloop/store/labeling.py",
        "    table.insert(fresh, i)\n    in_batch[m] = label\n",
        "    table.insert(fresh, i)\n    in_batch[m] = label\n    redis.call('HSET', KEYS[2], m, label)\n",
        "tests/integration/test_bad_input_corpus.py",
    ),
    Mutant(
        "load-without-checksum",
        COMPLETE,
        "a replica loads the model file without checking its checksum",
        "alloop/artifacts.py",
        "    data = read_verified(model_dir, version, expected_sha256)\n",
        "    data = (version_dir(model_dir, version) / MODEL_FILE).read_bytes()\n",
        HOT_SWAP,
    ),
    Mutant(
        "leftovers-kept",
        COMPLETE,
        "the trainer no longer deletes `.tmp-*` leftovers at start",
        "alloop/artifacts.py",
        "            shutil.rmtree(path, ignore_errors=True)\n            removed.append(path)\n",
        "            removed.append(path)\n",
        CRASH_TRAINER,
    ),
    Mutant(
        "nothing-served-while-loading",
        SWAP,
        "a replica serves no model while the next version loads",
        "query_service/model_holder.py",
        "        try:\n            model = artifacts.load_version(",
        "        self._current = None\n        try:\n            model = artifacts.load_version(",
        HOT_SWAP,
    ),
    Mutant(
        "predict-reads-version-twice",
        SWAP,
        "`Predict` reads the served version twice (scores from one, version number from another)",
        "query_service/servicer.py",
        "            model_version=served.version,\n",
        "            model_version=self._app.holder.current().version,\n",
        HOT_SWAP,
    ),
    Mutant(
        "abandoned-shard-never-taken-over",
        INDEX,
        "a shard a killed replica took is never taken over by another",
        "alloop/store/work.py",
        '        claimed: Any = self._r.xautoclaim(self.stream, self._group, consumer, claim_idle_ms, start_id="0-0", count=1)\n',
        "        claimed: Any = [None, []]\n",
        "tests/integration/test_crash_scorer.py",
    ),
    Mutant(
        "embedded-shard-recorded-twice",
        EMBED,
        "a shard embedded again (a slow replica whose entry was taken over) is recorded again",
        "alloop/store/embeddings.py",
        "if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return -1 end\n",
        "redis.call('SADD', KEYS[1], ARGV[1])\n",
        "tests/integration/test_embeddings.py",
    ),
    Mutant(
        "query-embeds-pool-items",
        EMBED,
        "a replica scores pool items through the version's text graph, running the encoder, not from stored vectors",
        "query_service/features.py",
        "        if predictor.sentence_width and self._sentence_vectors is not None and texts:\n",
        "        if False:\n",
        "tests/integration/test_encoder_block.py",
    ),
    Mutant(
        "upload-posts-only-new-shards",
        INDEX,
        "an upload posts only the shards it created, so the second try of a killed upload posts nothing",
        "query_service/app.py",
        "        self._post_shards(pool)\n",
        "        if added.shards:\n            self._post_shards(pool)\n",
        "tests/integration/test_crash_query.py",
    ),
    Mutant(
        "redis-down-is-internal",
        REDIS_DOWN,
        "a Redis connection error is answered INTERNAL, not UNAVAILABLE (callers would not retry)",
        "alloop/rpc/status.py",
        "    (redis.exceptions.ConnectionError, grpc.StatusCode.UNAVAILABLE),\n",
        "    (redis.exceptions.ConnectionError, grpc.StatusCode.INTERNAL),\n",
        "tests/integration/test_redis_restart.py",
    ),
    Mutant(
        "compose-redis-without-aof",
        REDIS_KILLED,
        "docker-compose runs Redis without its append-only file",
        "docker-compose.yml",
        "--appendonly yes",
        "--appendonly no",
        "tests/integration/test_redis_kill.py",
    ),
    Mutant(
        "lease-reaper-unwired",
        LEASES,
        "the replica's once-a-second lease reaper is not started",
        "query_service/server.py",
        "        chores=[labeling.reclaim_expired, model_reporter(holder, bound.health)],\n",
        "        chores=[model_reporter(holder, bound.health)],\n",
        "tests/integration/test_query_api.py",
    ),
    Mutant(
        "labeler-may-submit-pools",
        ROLES,
        "a labeler's token may upload pools",
        "alloop/rpc/auth.py",
        '    _QUERY + "SubmitPool": _roles(CLIENT),\n',
        '    _QUERY + "SubmitPool": _roles(CLIENT, LABELER),\n',
        "tests/integration/test_auth.py",
    ),
    Mutant(
        "streams-uncapped",
        STREAMS,
        "streams that hold a worker are no longer capped below the worker count",
        "alloop/rpc/limits.py",
        "        self._streams = _Slots(limits.max_streams)\n",
        "        self._streams = _Slots(1_000_000)\n",
        "tests/integration/test_open_streams.py",
    ),
    Mutant(
        "pool-keys-untagged",
        CLUSTER,
        "a pool's keys lose their hash tag, so its scripts span slots",
        "alloop/store/keys.py",
        '        return ":".join((f"{self.prefix}:{{{self.prefix}:pool:{pool}}}", *parts))\n',
        '        return ":".join((self.prefix, "pool", pool, *parts))\n',
        "tests/integration/test_store.py",
    ),
    Mutant(
        "migration-leaves-labels",
        UPGRADE,
        "the upgrade moves every key but the record of accepted labels",
        "alloop/store/layout.py",
        '    "labels": "labels",\n',
        "",
        "tests/integration/test_layout.py",
    ),
    Mutant(
        "lease-before-the-move",
        UPGRADE,
        "a replica that started while Redis was down leases before moving the older layout's keys",
        "query_service/app.py",
        '        """Lease from ``pool``, or from every pool when it is empty."""\n        self.gate()\n',
        '        """Lease from ``pool``, or from every pool when it is empty."""\n',
        "tests/integration/test_layout.py",
    ),
)


def report(mutants: tuple[Mutant, ...] = MUTANTS) -> str:
    """The planted-bug table of docs/guarantees.md (a generated block: ``python -m bench.docs``)."""
    lines = ["| guarantee | planted bug (`make mutants`) | caught by |", "|---|---|---|"]
    for mutant in mutants:
        test = mutant.test.removeprefix("tests/integration/").removeprefix("tests/unit/")
        lines.append(f"| {mutant.guarantee} | {mutant.bug} (`{mutant.name}`) | `{test}` |")
    return "\n".join(lines) + "\n"
