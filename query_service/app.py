"""The query service's domain logic, free of gRPC: validation, scoring, selection, queueing.

The servicer translates protobuf to these calls and back; every failure here is a domain error that
:mod:`alloop.rpc.status` maps to a status code. Every check runs before anything is written, so a refused request
changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from alloop.config import DEFAULT_POOL, QuerySettings
from alloop.errors import FailedPrecondition, InvalidRequest, PermissionDenied, ResourceExhausted
from alloop.identity import ANONYMOUS, Caller
from alloop.models.text_model import Features
from alloop.store.embeddings import EmbeddingStore
from alloop.store.keys import item_member
from alloop.store.labeling import LabelingStore, LabelSubmission, Lease, QueuedTask, SubmitResult
from alloop.store.pool import PoolStore
from alloop.store.scores import Progress, ScoreIndex
from alloop.strategies import (
    MEASURES,
    NEEDS_EMBEDDINGS,
    NEEDS_MC_SAMPLES,
    RANKED_CANDIDATES,
    SelectionContext,
    get_measure,
    get_strategy,
)
from alloop.telemetry import Metrics
from alloop.validation import check_batch_size, check_label, check_name, check_text, check_unique, quoted
from query_service.embedder import ShardEmbedder
from query_service.features import FeatureCache
from query_service.model_holder import ModelHolder, ServedModel
from query_service.scorer import ShardScorer

ANONYMOUS_LABELER = "anonymous"  # recorded for a label without a labeler name when tokens are off
DEFAULT_MEASURE = "least_confidence"
_MAX_WINDOW = 20_000  # ranking rows read in one ZRANGE: bounds how long one read holds Redis, whatever k is


class _NotRanked(FailedPrecondition):
    """The pool has no complete ranking yet (a FAILED_PRECONDITION to the caller that needs one)."""


@dataclass(frozen=True)
class Scored:
    item_id: str
    probabilities: np.ndarray
    score: float
    predicted: int


@dataclass(frozen=True)
class PoolSubmission:
    pool: str
    accepted: int
    duplicate: int
    rejections: list[tuple[int, str, str]]  # (index, id, reason)
    pool_size: int


@dataclass(frozen=True)
class QueryResult:
    selected: list[Scored]
    model_version: int  # the version that scored the selected items
    candidates: int
    ranking: Progress | None = None  # for a Query answered from the score index: how fresh it is


class QueryApp:
    def __init__(
        self,
        settings: QuerySettings,
        pools: PoolStore,
        labeling: LabelingStore,
        holder: ModelHolder,
        index: ScoreIndex,
        features: FeatureCache | None = None,
        metrics: Metrics | None = None,
        gate: Callable[[], None] = lambda: None,
        embedder: ShardEmbedder | None = None,
        embeddings: EmbeddingStore | None = None,
    ) -> None:
        """``gate`` runs before anything reads or writes the store (alloop.store.layout.LayoutGate.ensure);
        ``embedder``, where a sentence encoder is configured, embeds arriving pool items into ``embeddings`` (the
        score index waits for a shard's vectors)."""
        self.settings = settings
        self.gate = gate
        self.pools = pools
        self.labeling = labeling
        self.holder = holder
        self.index = index
        self.features = features or FeatureCache(settings.feature_cache_rows)
        self.metrics = metrics or Metrics()
        self.embedder = embedder
        self.scorer = ShardScorer(
            index,
            pools,
            holder,
            self.features,
            claim_idle_ms=int(settings.score_claim_seconds * 1000),
            on_scored=self._count_index_scoring,
            gate=gate,
            embeddings=embeddings,
        )

    def _count_index_scoring(self, items: int, seconds: float) -> None:
        self.metrics.scored_items.labels("index").inc(items)
        self.metrics.scoring_seconds.labels("index").inc(seconds)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.settings.common.classes

    # --- pools -------------------------------------------------------------------------------------------------
    def submit_pool(self, pool: str, items: Iterable[tuple[str, str]], *, skip_invalid: bool) -> PoolSubmission:
        self.gate()
        limits = self.settings
        pool = self._name("pool name", pool or DEFAULT_POOL)
        valid: list[tuple[str, str]] = []
        rejections: list[tuple[int, str, str]] = []
        seen: set[str] = set()
        chars = 0
        for index, (item_id, text) in enumerate(items):
            if index >= limits.max_upload_items:
                raise ResourceExhausted(
                    f"more than {limits.max_upload_items} items in one SubmitPool stream (ALLOOP_MAX_UPLOAD_ITEMS): "
                    "split the upload into several streams. Nothing was stored"
                )
            try:
                self._name(f"item #{index} id", item_id)
                check_text(text, limits.max_text_chars, f"item #{index} ({quoted(item_id)})")
                if item_id in seen:
                    raise InvalidRequest(f"item #{index}: id {quoted(item_id)} appears twice in this upload")
            except InvalidRequest as exc:
                if not skip_invalid:
                    raise InvalidRequest(
                        f"{exc}; nothing was stored (set skip_invalid to store the valid items)"
                    ) from exc
                rejections.append((index, item_id[: limits.max_name_chars], str(exc)))
                continue
            seen.add(item_id)
            valid.append((item_id, text))
            chars += len(text)  # what this stream holds in memory until it ends
            if chars > limits.max_upload_chars:
                raise ResourceExhausted(
                    f"more than {limits.max_upload_chars} characters of text in one SubmitPool stream "
                    "(ALLOOP_MAX_UPLOAD_CHARS): split the upload into several streams. Nothing was stored"
                )
        if valid:
            self._check_pool_room(pool, [item_id for item_id, _ in valid])
        added = self.pools.add(pool, valid)
        self._post_shards(pool)
        if self.embedder is not None:
            self.embedder.post(pool)
        return PoolSubmission(pool, added.accepted, added.duplicate, rejections, self.pools.size(pool))

    def _post_shards(self, pool: str) -> None:
        """The pool's shards not yet posted go to the published version's work if a replica has opened it (if none
        has yet, opening it posts every shard: the shard counter moved before the version was read). Not only this
        upload's new shards: a first try that stored its items and died before posting them created shards that the
        second try, storing nothing new, would otherwise never post."""
        version = self.holder.registry_current()
        if version and self.index.is_open(version):
            self.index.post_missing(version, pool, self.pools.shard_count(pool))

    def _check_pool_room(self, pool: str, ids: list[str]) -> None:
        """Refuse an upload that would pass ALLOOP_MAX_POOLS or ALLOOP_MAX_POOL_ITEMS (concurrent uploads to one
        pool are checked against the same size, so they may pass the bound by at most one upload each)."""
        limits = self.settings
        if not self.pools.exists(pool) and self.pools.count() >= limits.max_pools:
            raise ResourceExhausted(
                f"there are already {limits.max_pools} pools (ALLOOP_MAX_POOLS): add items to an existing pool. "
                "Nothing was stored"
            )
        size = self.pools.size(pool)
        if size + len(ids) > limits.max_pool_items:
            new = self.pools.new_ids(pool, ids)
            if size + new > limits.max_pool_items:
                raise ResourceExhausted(
                    f"pool {quoted(pool)} holds {size} items and this upload adds {new}: the limit is "
                    f"{limits.max_pool_items} per pool (ALLOOP_MAX_POOL_ITEMS). Nothing was stored"
                )

    def _name(self, kind: str, value: str) -> str:
        return check_name(kind, value, self.settings.max_name_chars)

    # --- scoring -----------------------------------------------------------------------------------------------
    def _check_texts(self, texts: Sequence[str], what: str) -> None:
        if not texts:
            raise InvalidRequest(f"no {what} in the request")
        check_batch_size(len(texts), self.settings.max_batch_items, what)
        for index, text in enumerate(texts):
            check_text(text, self.settings.max_text_chars, f"{what} #{index}")

    def score(self, items: Sequence[tuple[str, str]], strategy: str) -> tuple[list[Scored], int]:
        measure_name = strategy or DEFAULT_MEASURE
        try:
            measure = get_measure(measure_name)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from exc
        self._check_texts([text for _, text in items], "items")
        served = self.holder.current()
        with self._scoring("score", len(items)):
            probs = served.predictor.predict_proba([text for _, text in items])
        scores = measure(probs)
        return _scored([item_id for item_id, _ in items], probs, scores), served.version

    def predict(self, texts: Sequence[str]) -> tuple[np.ndarray, ServedModel]:
        self._check_texts(texts, "texts")
        served = self.holder.current()
        with self._scoring("predict", len(texts)):
            return served.predictor.predict_proba(list(texts)), served

    # --- selection -------------------------------------------------------------------------------------------
    def query(
        self,
        pool: str,
        strategy: str,
        k: int,
        seed: int = 0,
        max_candidates: int = 0,
        caller: Caller = ANONYMOUS,
    ) -> QueryResult:
        self.gate()
        limits = self.settings
        pool = self._name("pool name", pool)
        if k <= 0:
            raise InvalidRequest(f"k must be a positive number of items to select, got {k}")
        if k > limits.max_query_k:
            raise ResourceExhausted(f"k={k} is more than {limits.max_query_k} items per Query (ALLOOP_MAX_QUERY_K)")
        if seed < 0:
            raise InvalidRequest(f"seed must be 0 (fresh randomness) or a positive integer, got {seed}")
        if max_candidates < 0:
            raise InvalidRequest(f"max_candidates must be 0 (score every item) or positive, got {max_candidates}")
        if 0 < max_candidates < k:
            raise InvalidRequest(
                f"k={k} is more than max_candidates={max_candidates}: a sample cannot yield more than it holds"
            )
        if not caller.is_operator:
            if max_candidates > limits.max_query_candidates:
                raise ResourceExhausted(
                    f"max_candidates={max_candidates} is more than the {limits.max_query_candidates} items one Query "
                    "may score (ALLOOP_MAX_QUERY_CANDIDATES; operators are not bound)"
                )
            if k > (max_candidates or limits.max_query_candidates):
                raise ResourceExhausted(
                    f"k={k} is more than the {max_candidates or limits.max_query_candidates} items one Query may "
                    "score (ALLOOP_MAX_QUERY_CANDIDATES)"
                )
        try:
            select = get_strategy(strategy)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from exc
        self.pools.require(pool)
        served = self.holder.current()
        if strategy in MEASURES and not max_candidates:
            return self._query_ranked(pool, strategy, k, served)
        if strategy in RANKED_CANDIDATES and not max_candidates:
            want = RANKED_CANDIDATES[strategy][1](k)
            if not caller.is_operator:
                want = min(want, limits.max_query_candidates)  # at least k: checked above
            try:
                return self._query_from_ranking(pool, strategy, k, want, served, seed)
            except _NotRanked:
                pass  # a pool with no complete ranking yet: its candidates are sampled, as for the other strategies
        # 0 means "every open item": up to the bound for a caller who is not an operator (a larger pool is
        # sampled, reported in `candidates`), all of them for an operator.
        if not max_candidates:
            max_candidates = limits.max_pool_items if caller.is_operator else limits.max_query_candidates
        rng = np.random.default_rng(seed if seed else None)
        ids, texts = self.pools.sample_open(pool, rng, max_candidates)
        # Both depend on the pool's state, not on the request itself: FAILED_PRECONDITION.
        if not ids:
            raise FailedPrecondition(f"pool {quoted(pool)} has no unlabeled, unqueued items left: submit more items")
        if k > len(ids):
            raise FailedPrecondition(
                f"k={k} is more than the {len(ids)} unlabeled, unqueued items left in pool {quoted(pool)}: ask for fewer"
            )
        with self._scoring("query", len(ids)):
            features = self.features.features(served.predictor, pool, ids, texts)
            probs, mc_samples, embeddings = _model_outputs(served, features, strategy, self.settings.mc_passes)
        metrics = served.metadata.get("metrics", {})
        context = SelectionContext(
            false_per_class=tuple(metrics.get("false_per_class", ())),
            rng=rng,
            mc_samples=mc_samples,
            embeddings=embeddings,
        )
        selection = select(probs, k, context)
        chosen = [int(i) for i in selection.indices]
        scored = _scored([ids[i] for i in chosen], probs[chosen], selection.scores[chosen])
        queued = self.labeling.enqueue(
            pool, [(s.item_id, QueuedTask(s.score, served.version, strategy)) for s in scored]
        )
        # A concurrent Query may have queued some of the same items first: report only what this call queued.
        return QueryResult([s for s in scored if s.item_id in queued], served.version, len(ids))

    def _query_ranked(self, pool: str, measure: str, k: int, served: ServedModel) -> QueryResult:
        """The k most uncertain open items by the score index, read from the top of the ranking.

        The rule: the Query first helps score the pool's shards still pending for the version this replica serves,
        for at most ALLOOP_QUERY_SCORE_SECONDS; then it answers from the newest complete ranking (the served
        version's if it completed, else the previous one), which the response names with its progress. Items that
        turn out labeled or queued are skipped and taken out of the ranking, so the next Query does not read them.
        """
        ranked, chosen, candidates = self._top_open(pool, measure, k, k, served)
        ids = [item_id for item_id, _ in chosen]
        probs = self.index.probabilities(pool, ranked, ids)
        scored = [
            Scored(item_id, p, score, int(np.argmax(p)))
            for (item_id, score), p in zip(chosen, probs, strict=True)
            if p is not None
        ]
        queued = self.labeling.enqueue(pool, [(s.item_id, QueuedTask(s.score, ranked, measure)) for s in scored])
        self.index.forget(pool, ranked, ids)
        return QueryResult(
            [s for s in scored if s.item_id in queued], ranked, candidates, self.index.progress(pool, served.version)
        )

    def _query_from_ranking(
        self, pool: str, strategy: str, k: int, want: int, served: ServedModel, seed: int
    ) -> QueryResult:
        """A strategy that chooses k among the m most uncertain items by one measure (RANKED_CANDIDATES), given
        just those m (``want``): the top of that measure's ranking, under the rule of :meth:`_query_ranked`. The
        served version then scores them (with the embeddings the strategy spreads them by), so its cost follows k,
        not the pool; the response names the served version as the one that scored the selection, and the ranking's
        progress as where the candidates came from. ``_NotRanked`` while the pool has no complete ranking."""
        measure = RANKED_CANDIDATES[strategy][0]
        ranked, chosen, candidates = self._top_open(pool, measure, want, k, served)
        ids = [item_id for item_id, _ in chosen]
        texts = self.pools.texts(pool, ids)  # pool items are never removed: every id has its text
        with self._scoring("query", len(ids)):
            features = self.features.features(served.predictor, pool, ids, [str(t) for t in texts])
            probs, mc_samples, embeddings = _model_outputs(served, features, strategy, self.settings.mc_passes)
        rng = np.random.default_rng(seed if seed else None)
        context = SelectionContext(rng=rng, mc_samples=mc_samples, embeddings=embeddings)
        selection = get_strategy(strategy)(probs, k, context)
        picked = [int(i) for i in selection.indices]
        scored = _scored([ids[i] for i in picked], probs[picked], selection.scores[picked])
        queued = self.labeling.enqueue(
            pool, [(s.item_id, QueuedTask(s.score, served.version, strategy)) for s in scored]
        )
        self.index.forget(pool, ranked, [s.item_id for s in scored if s.item_id in queued])
        return QueryResult(
            [s for s in scored if s.item_id in queued],
            served.version,
            candidates,
            self.index.progress(pool, served.version),
        )

    def _top_open(
        self, pool: str, measure: str, want: int, k: int, served: ServedModel
    ) -> tuple[int, list[tuple[str, float]], int]:
        """(the ranking's version, up to ``want`` open items from the top of its ``measure`` ranking with their
        scores, the ranking's size), after helping score what is pending for ``served`` (see :meth:`_query_ranked`).
        Items found labeled or queued are taken out of the ranking. Fewer than ``k`` open items left is
        FAILED_PRECONDITION, as is a pool with no complete ranking yet."""
        self.scorer.help(served, pool, time.monotonic() + self.settings.query_score_seconds)
        progress = self.index.progress(pool, served.version)
        ranked = progress.ranked_version
        if not ranked:
            raise _NotRanked(
                f"pool {quoted(pool)} is still being scored ({progress.shards_done} of {progress.shards_posted} "
                f"shards by version {served.version}): retry in a moment"
            )
        chosen: list[tuple[str, float]] = []
        stale: list[str] = []
        window = min(max(4 * want, 256), _MAX_WINDOW)
        start = 0
        candidates = self.index.size(pool, ranked)
        while len(chosen) < want:
            rows = self.index.window(pool, ranked, measure, start, window)
            if not rows:
                break
            start += len(rows)
            for (item_id, score), is_open in zip(
                rows, self.pools.is_open(pool, [item_id for item_id, _ in rows]), strict=True
            ):
                if not is_open:
                    stale.append(item_id)
                elif len(chosen) < want:
                    chosen.append((item_id, score))
        self.index.forget(pool, ranked, stale)
        if not chosen:
            raise FailedPrecondition(f"pool {quoted(pool)} has no unlabeled, unqueued items left: submit more items")
        if len(chosen) < k:
            raise FailedPrecondition(
                f"k={k} is more than the {len(chosen)} unlabeled, unqueued items left in pool {quoted(pool)}: "
                "ask for fewer"
            )
        return ranked, chosen, candidates

    # --- labeling --------------------------------------------------------------------------------------------
    def lease(self, max_items: int, lease_seconds: float, pool: str = "") -> list[Lease]:
        """Lease from ``pool``, or from every pool when it is empty."""
        self.gate()
        if max_items <= 0:
            raise InvalidRequest(f"max_items must be positive, got {max_items}")
        if lease_seconds < 0:
            raise InvalidRequest(f"lease_duration must not be negative, got {lease_seconds:g} s")
        if lease_seconds > self.settings.max_lease_seconds:
            raise InvalidRequest(
                f"lease_duration={lease_seconds:g} s is longer than the {self.settings.max_lease_seconds:g} s a lease may "
                "last (ALLOOP_MAX_LEASE_SECONDS)"
            )
        if pool:
            self.pools.require(self._name("pool", pool))
        max_items = min(max_items, self.settings.max_lease_items)
        return self.labeling.lease(max_items, lease_seconds or self.settings.lease_seconds, pool or None)

    def submit_labels(
        self,
        labels: Sequence[LabelSubmission],
        labeler: str,
        caller: Caller = ANONYMOUS,
    ) -> SubmitResult:
        self.gate()
        if not labels:
            raise InvalidRequest("no labels in the request")
        check_batch_size(len(labels), self.settings.max_batch_items, "labels")
        labeler = self._labeler(labeler, caller)
        for index, sub in enumerate(labels):
            where = f"label #{index} ({quoted(sub.pool)}, {quoted(sub.item_id)})"
            self._name(f"{where}: pool", sub.pool)
            self._name(f"{where}: id", sub.item_id)
            check_label(sub.label, self.classes, where)
        # Keyed by the store's (pool, id) member: "pool/id" made ("a/b", "c") and ("a", "b/c") look like one item.
        check_unique([item_member(s.pool, s.item_id) for s in labels], "item")
        for pool in {s.pool for s in labels}:
            self.pools.require(pool)
        result = self.labeling.submit(labels, labeler)
        self.metrics.labels.inc(result.accepted)
        return result

    @contextmanager
    def _scoring(self, kind: str, items: int) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.metrics.scored_items.labels(kind).inc(items)
        self.metrics.scoring_seconds.labels(kind).inc(time.perf_counter() - started)

    def _labeler(self, named: str, caller: Caller) -> str:
        """The labeler recorded with a label: the token's holder where tokens are on (an operator may name
        another, acting for a labeling system); the request's name, bounded, where they are off."""
        if len(named) > self.settings.max_name_chars:
            raise InvalidRequest(
                f"labeler is {len(named)} characters long; the limit is {self.settings.max_name_chars}"
            )
        if caller.identity is None:
            return named or ANONYMOUS_LABELER
        if caller.is_operator and named:
            return named
        if named and named != caller.identity:
            raise PermissionDenied(
                f"this token belongs to {caller.identity!r}; it may not label as {quoted(named)} "
                "(leave labeler empty, or use an operator token to label for others)"
            )
        return caller.identity


def _model_outputs(
    served: ServedModel, features: Features, strategy: str, mc_passes: int
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(probabilities, MC samples or None, embeddings or None) from the pool's features: only what ``strategy``
    needs is computed.

    For the MC-dropout strategies the probabilities are the mean over the passes, so the probabilities a Query
    reports are the ones the strategy ranked by (and one model call fewer than also running predict_proba).
    """
    mc_samples = embeddings = None
    predictor = served.predictor
    if strategy in NEEDS_MC_SAMPLES:
        mc_samples = predictor.predict_mc_features(features, mc_passes)
        probs = mc_samples.mean(axis=0)
        if strategy in NEEDS_EMBEDDINGS:  # no strategy needs both today; keep the pair coherent if one does
            embeddings = predictor.predict_and_embed_features(features)[1]
    elif strategy in NEEDS_EMBEDDINGS:
        probs, embeddings = predictor.predict_and_embed_features(features)
    else:
        probs = predictor.predict_proba_features(features)
    return probs, mc_samples, embeddings


def _scored(ids: Sequence[str], probs: np.ndarray, scores: np.ndarray) -> list[Scored]:
    predicted = probs.argmax(axis=1)
    return [Scored(ids[i], probs[i], float(scores[i]), int(predicted[i])) for i in range(len(ids))]
