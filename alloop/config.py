"""The services' settings as frozen dataclasses, every default named once, built from the environment.

The variables themselves (names, types, bounds, meaning) are declared in :mod:`alloop.environment`, whose classes
also generate docs/configuration.md; the ``*_from_env`` functions here validate a mapping through them and build
these settings. Flags override them in each main.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from alloop.cli import add_version_flag
from alloop.environment import (
    DEFAULT_QUERY_ADDRESS,
    DEFAULT_TRAINER_ADDRESS,
    QueryEnvironment,
    ServerEnvironment,
    TrainerEnvironment,
)
from alloop.models.config import ModelConfig, TrainingConfig
from alloop.models.families import get_family
from alloop.rpc.limits import ServerLimits, limits_from
from alloop.rpc.security import SecuritySettings, security_from
from alloop.store.keys import DEFAULT_PREFIX

DEFAULT_CLASSES = ("negative", "positive")
DEFAULT_POOL = "default"  # the pool a request or a client names when it names none
DEFAULT_STATE_DIR = Path(".alloop")


@dataclass(frozen=True)
class CommonSettings:
    redis_url: str | None = field(default=None, repr=False)  # may hold a password: never in a repr or a log
    redis_password: str | None = field(default=None, repr=False)  # ALLOOP_REDIS_PASSWORD_FILE, for a URL without one
    redis_prefix: str = DEFAULT_PREFIX
    redis_cluster: bool = False  # REDIS_URL names one node of a Redis Cluster
    state_dir: Path = DEFAULT_STATE_DIR
    model_dir: Path | None = None
    classes: tuple[str, ...] = DEFAULT_CLASSES
    # The sentence encoder's files (alloop/models/encoder, docs/embeddings.md); None: no encoder.
    encoder_dir: Path | None = None

    @property
    def models_path(self) -> Path:
        return self.model_dir or self.state_dir / "models"

    @property
    def embedded_redis_dir(self) -> Path:
        return self.state_dir / "redis"


@dataclass(frozen=True)
class QuerySettings:
    common: CommonSettings = field(default_factory=CommonSettings)
    address: str = DEFAULT_QUERY_ADDRESS
    lease_seconds: float = 300.0
    max_lease_items: int = 100
    score_batch_size: int = 512
    max_batch_items: int = 10_000
    max_text_chars: int = 100_000
    model_poll_seconds: float = 2.0
    # Polls that try to read a published version before the replica gives it up (an integrity error: at once).
    model_load_attempts: int = 10
    # Stochastic passes for the MC-dropout strategies (bald, mean_entropy): each costs about one scoring of the pool.
    mc_passes: int = 10
    max_message_bytes: int = 64 * 1024 * 1024
    # Pool items whose vectorized features a replica keeps between Queries (query_service/features.py). A linear
    # version's row is ~500 non-zeros (~4 KB), so the default holds ~0.8 GB, briefly 2-3x that while a pool grows
    # (query_service/features.py); 0 turns the cache off.
    feature_cache_rows: int = 200_000
    # The score index (alloop/store/scores.py): how long an uncertainty Query helps score pending shards before
    # it answers from the newest complete ranking, and how long a shard may stay taken before another replica
    # takes it over (longer than scoring one shard of ADD_CHUNK items ever takes).
    query_score_seconds: float = 10.0
    score_claim_seconds: float = 30.0
    # How long a shard may stay taken to embed (alloop/store/embeddings.py; 1,000 long reviews take ~75 s on two
    # cores) before another replica takes it.
    embed_claim_seconds: float = 600.0
    security: SecuritySettings = field(default_factory=SecuritySettings)
    limits: ServerLimits = field(default_factory=ServerLimits)
    metrics_address: str | None = None  # host:port for Prometheus' /metrics; None: not served
    # Bounds on what a caller can make the service store or compute (answered INVALID_ARGUMENT or
    # RESOURCE_EXHAUSTED with the bound): names (pools, ids, labelers), items per SubmitPool stream (a stream is
    # held in memory until it ends), items per pool, pools, k per Query, the items a Query may score for a caller
    # that is not an operator (0 in the request means "all of them, up to this bound"), lease length.
    max_name_chars: int = 200
    max_upload_items: int = 100_000
    max_upload_chars: int = 200_000_000  # text characters per SubmitPool stream: what one open upload holds in memory
    max_pool_items: int = 1_000_000
    max_pools: int = 1_000
    max_query_k: int = 10_000
    max_query_candidates: int = 500_000
    max_lease_seconds: float = 3600.0

    def __post_init__(self) -> None:
        for name, value in (
            ("ALLOOP_MAX_NAME_CHARS", self.max_name_chars),
            ("ALLOOP_MAX_UPLOAD_ITEMS", self.max_upload_items),
            ("ALLOOP_MAX_UPLOAD_CHARS", self.max_upload_chars),
            ("ALLOOP_MAX_POOL_ITEMS", self.max_pool_items),
            ("ALLOOP_MAX_POOLS", self.max_pools),
            ("ALLOOP_MAX_QUERY_K", self.max_query_k),
            ("ALLOOP_MAX_QUERY_CANDIDATES", self.max_query_candidates),
        ):
            if value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        if self.query_score_seconds < 0 or self.score_claim_seconds <= 0:
            raise ValueError(
                "ALLOOP_QUERY_SCORE_SECONDS must not be negative and ALLOOP_SCORE_CLAIM_SECONDS must be positive, got "
                f"{self.query_score_seconds} and {self.score_claim_seconds}"
            )
        if not 0 < self.lease_seconds <= self.max_lease_seconds:
            raise ValueError(
                f"ALLOOP_LEASE_SECONDS ({self.lease_seconds}) must be positive and at most ALLOOP_MAX_LEASE_SECONDS "
                f"({self.max_lease_seconds})"
            )


@dataclass(frozen=True)
class TrainerSettings:
    common: CommonSettings = field(default_factory=CommonSettings)
    address: str = DEFAULT_TRAINER_ADDRESS
    retrain_threshold: int = 1000
    initial_data: Path | None = None
    val_data: Path | None = None
    test_data: Path | None = None
    initial_pool: str = "initial"
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    export_saved_model: bool = True
    consumer: str = ""
    security: SecuritySettings = field(default_factory=SecuritySettings)
    limits: ServerLimits = field(default_factory=ServerLimits)
    metrics_address: str | None = None  # host:port for Prometheus' /metrics; None: not served
    round_lock_seconds: float = 60.0
    stop_set_size: int = 1000
    pool_sample_items: int = 50_000
    # None: $ALLOOP_STATE_DIR/corpus (alloop.models.linear.CorpusCache): the trainer's own files, kept off the model
    # volume that query replicas share.
    corpus_cache_dir: Path | None = None

    @property
    def corpus_cache_path(self) -> Path:
        return self.corpus_cache_dir or self.common.state_dir / "corpus"

    def __post_init__(self) -> None:
        if self.retrain_threshold < 1:
            raise ValueError(f"retrain_threshold must be at least 1 new label, got {self.retrain_threshold}")


def _common(e: ServerEnvironment) -> CommonSettings:
    classes = tuple(c.strip() for c in e.classes.split(",") if c.strip())
    if len(classes) < 2:
        raise ValueError(f"ALLOOP_CLASSES needs at least two class names, got {classes!r}")
    password = None
    if e.redis_password_file is not None:
        try:
            password = e.redis_password_file.read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            raise ValueError(
                f"ALLOOP_REDIS_PASSWORD_FILE: cannot read {e.redis_password_file}: {exc.strerror or exc}"
            ) from None
        if password is None:
            raise ValueError(f"ALLOOP_REDIS_PASSWORD_FILE: {e.redis_password_file} is empty")
    if "{" in e.redis_prefix or "}" in e.redis_prefix:
        raise ValueError(
            f"ALLOOP_REDIS_PREFIX must hold no braces (they mark Redis Cluster hash tags), got {e.redis_prefix!r}"
        )
    if e.redis_cluster and not e.redis_url:
        raise ValueError(
            "ALLOOP_REDIS_CLUSTER needs REDIS_URL (a node of the cluster): the embedded Redis is one server"
        )
    return CommonSettings(
        redis_url=e.redis_url,
        redis_password=password,
        redis_prefix=e.redis_prefix,
        encoder_dir=e.encoder_dir,
        redis_cluster=e.redis_cluster,
        state_dir=e.state_dir,
        model_dir=e.model_dir,
        classes=classes,
    )


def common_from_env(env: Mapping[str, str]) -> CommonSettings:
    return _common(ServerEnvironment.read(env))


def query_from_env(env: Mapping[str, str]) -> QuerySettings:
    e = QueryEnvironment.read(env)
    return QuerySettings(
        common=_common(e),
        address=e.address,
        lease_seconds=e.lease_seconds,
        max_lease_items=e.max_lease_items,
        score_batch_size=e.score_batch_size,
        max_batch_items=e.max_batch_items,
        max_text_chars=e.max_text_chars,
        model_poll_seconds=e.model_poll_seconds,
        model_load_attempts=e.model_load_attempts,
        mc_passes=e.mc_passes,
        max_message_bytes=e.max_message_bytes,
        feature_cache_rows=e.feature_cache_rows,
        query_score_seconds=e.query_score_seconds,
        score_claim_seconds=e.score_claim_seconds,
        embed_claim_seconds=e.embed_claim_seconds,
        security=security_from(e),
        limits=limits_from(e),
        metrics_address=e.metrics_address,
        max_name_chars=e.max_name_chars,
        max_upload_items=e.max_upload_items,
        max_upload_chars=e.max_upload_chars,
        max_pool_items=e.max_pool_items,
        max_pools=e.max_pools,
        max_query_k=e.max_query_k,
        max_query_candidates=e.max_query_candidates,
        max_lease_seconds=e.max_lease_seconds,
    )


def trainer_from_env(env: Mapping[str, str]) -> TrainerSettings:
    e = TrainerEnvironment.read(env)
    common = _common(e)
    return TrainerSettings(
        common=common,
        address=e.address,
        retrain_threshold=e.retrain_threshold,
        initial_data=e.initial_data,
        val_data=e.val_data,
        test_data=e.test_data,
        model=ModelConfig(
            max_tokens=e.max_tokens,
            sequence_length=e.sequence_length,
            embedding_dim=e.embedding_dim,
            lstm_units=e.lstm_units,
            dense_units=e.dense_units,
            dropout=e.dropout,
            n_classes=len(common.classes),
            family=e.model_family,
            linear_max_tokens=e.linear_max_tokens,
            ngrams=e.ngrams,
            linear_min_df=e.linear_min_df,
            linear_c=e.linear_c,
            linear_lsa_components=e.lsa_components,
            linear_lsa_pivot=e.lsa_pivot,
            linear_nb_scale=e.nb_scale,
            linear_nb_unlabeled=e.nb_unlabeled,
            linear_pseudo_weight=e.pseudo_weight,
            linear_encoder_scale=e.encoder_scale,
            linear_select=e.linear_select,
            linear_select_folds=e.linear_select_folds,
            linear_select_rows=e.linear_select_rows,
            linear_class_prior=e.class_prior,
        ),
        training=TrainingConfig(
            epochs=e.epochs,
            batch_size=e.batch_size,
            patience=e.patience,
            # Families fitted by epochs (the seed's BiLSTM) continue from the last weights; exact ones are refitted.
            warm_start=e.warm_start if e.warm_start is not None else not get_family(e.model_family).exact,
            seed=e.seed,
        ),
        export_saved_model=e.export_saved_model,
        security=security_from(e),
        limits=limits_from(e),
        metrics_address=e.metrics_address,
        round_lock_seconds=e.round_lock_seconds,
        stop_set_size=e.stop_set_size,
        pool_sample_items=e.pool_sample_items,
        consumer=e.trainer_name,
        corpus_cache_dir=e.corpus_cache_dir,
    )


def add_common_flags(parser: argparse.ArgumentParser) -> None:
    add_version_flag(parser)
    parser.add_argument(
        "--redis-url",
        help="Redis URL without a password (env REDIS_URL; the password goes in REDIS_URL or ALLOOP_REDIS_PASSWORD_FILE, "
        "never on a command line); unset: embedded Redis",
    )
    parser.add_argument("--state-dir", type=Path, help="state directory (env ALLOOP_STATE_DIR, default .alloop)")
    parser.add_argument("--model-dir", type=Path, help="model store (env ALLOOP_MODEL_DIR)")
    parser.add_argument("--address", help="host:port to serve on (env ALLOOP_QUERY_ADDRESS / ALLOOP_TRAINER_ADDRESS)")


def apply_common_flags(common: CommonSettings, args: argparse.Namespace) -> CommonSettings:
    overrides: dict[str, Any] = {}
    if args.redis_url:
        if urlsplit(args.redis_url).password:
            raise ValueError(
                "--redis-url carries a password, which every user of this machine can read in the process list: "
                "put the URL in REDIS_URL, or the password in a file named by ALLOOP_REDIS_PASSWORD_FILE"
            )
        overrides["redis_url"] = args.redis_url
    if args.state_dir:
        overrides["state_dir"] = args.state_dir
    if args.model_dir:
        overrides["model_dir"] = args.model_dir
    return replace(common, **overrides)


__all__ = [
    "CommonSettings",
    "QuerySettings",
    "TrainerSettings",
    "add_common_flags",
    "apply_common_flags",
    "common_from_env",
    "query_from_env",
    "trainer_from_env",
]
