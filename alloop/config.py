"""Typed settings, every default named once, read from environment variables (flags override them in each main).

| variable | default | used by |
|---|---|---|
| REDIS_URL | unset: start/reuse an embedded Redis in ALLOOP_STATE_DIR/redis (random password) | both |
| ALLOOP_REDIS_PASSWORD_FILE | unset | both (a file holding the Redis password, for a REDIS_URL without one) |
| ALLOOP_REDIS_PREFIX | alloop | both |
| ALLOOP_STATE_DIR | .alloop | both (embedded Redis data, default model dir) |
| ALLOOP_MODEL_DIR | $ALLOOP_STATE_DIR/models | both |
| ALLOOP_CLASSES | negative,positive | both |
| ALLOOP_QUERY_ADDRESS | 127.0.0.1:50051 | query service, clients |
| ALLOOP_TRAINER_ADDRESS | 127.0.0.1:50052 | trainer service, clients |
| ALLOOP_LEASE_SECONDS | 300 | query service |
| ALLOOP_MAX_LEASE_ITEMS | 100 | query service |
| ALLOOP_SCORE_BATCH_SIZE | 512 | query service |
| ALLOOP_MAX_BATCH_ITEMS | 10000 | query service (items per request) |
| ALLOOP_MAX_TEXT_CHARS | 100000 | query service |
| ALLOOP_MODEL_POLL_SECONDS | 2.0 | query service (fallback when a pub/sub message is missed) |
| ALLOOP_MODEL_LOAD_ATTEMPTS | 10 | query service (polls that try an unreadable version before giving it up) |
| ALLOOP_MC_PASSES | 10 | query service (MC-dropout passes for bald / mean_entropy) |
| ALLOOP_MAX_MESSAGE_BYTES | 67108864 (64 MiB) | query service (largest gRPC message either way) |
| ALLOOP_FEATURE_CACHE_ROWS | 200000 | query service (pool items whose features a replica keeps between Queries; 0: off) |
| ALLOOP_QUERY_SCORE_SECONDS | 10 | query service (longest a least_confidence / margin / entropy Query helps score pending shards before it answers from the newest complete ranking) |
| ALLOOP_SCORE_CLAIM_SECONDS | 30 | query service (a shard another replica took and has not finished after this long is taken over) |
| ALLOOP_MAX_NAME_CHARS | 200 | query service (pool names, item ids, labeler names) |
| ALLOOP_MAX_UPLOAD_ITEMS / ALLOOP_MAX_UPLOAD_CHARS | 100000 / 200000000 | query service (items, text characters per SubmitPool stream) |
| ALLOOP_MAX_POOL_ITEMS / ALLOOP_MAX_POOLS | 1000000 / 1000 | query service (items per pool; pools) |
| ALLOOP_MAX_QUERY_K / ALLOOP_MAX_QUERY_CANDIDATES | 10000 / 500000 | query service (k per Query; items a sampling Query scores, 0 in the request meaning this bound; operators may ask for more) |
| ALLOOP_MAX_LEASE_SECONDS | 3600 | query service (longest lease a labeler may ask for) |
| ALLOOP_LOG_LEVEL / ALLOOP_LOG_FORMAT | INFO / plain | both (format json: one JSON object per line; alloop/logs.py) |
| ALLOOP_METRICS_ADDRESS | unset: no metrics endpoint | both (host:port serving Prometheus' /metrics) |
| ALLOOP_ALLOW_INSECURE | unset | both (1: serve a non-loopback address without tokens; refused otherwise) |
| ALLOOP_AUTH_TOKENS / ALLOOP_AUTH_TOKENS_FILE | unset: auth off | both (alloop/rpc/auth.py) |
| ALLOOP_TLS_CERT / ALLOOP_TLS_KEY / ALLOOP_TLS_CLIENT_CA | unset: plaintext | both (alloop/rpc/tls.py) |
| ALLOOP_GRPC_WORKERS / ALLOOP_MAX_STREAMS / ALLOOP_MAX_HEALTH_WATCHES / ALLOOP_MAX_CONCURRENT_RPCS | 32 / 16 / 64 / 512 | both (alloop/rpc/limits.py) |
| ALLOOP_STREAM_IDLE_SECONDS / ALLOOP_MAX_CONNECTION_AGE_SECONDS / ALLOOP_CONNECTION_AGE_GRACE_SECONDS / ALLOOP_MAX_CONNECTION_IDLE_SECONDS | 60 / 3600 / 900 / 600 | both (alloop/rpc/limits.py) |
| ALLOOP_RETRAIN_THRESHOLD | 1000 | trainer |
| ALLOOP_INITIAL_DATA / ALLOOP_VAL_DATA / ALLOOP_TEST_DATA | unset | trainer (CSV/JSONL id,text,label) |
| ALLOOP_EPOCHS / ALLOOP_BATCH_SIZE / ALLOOP_PATIENCE | 20 / 256 / 4 | trainer |
| ALLOOP_MODEL_FAMILY | linear | trainer (linear: TF-IDF 1-2-grams, logistic; bilstm: the seed's model) |
| ALLOOP_WARM_START | 1 for bilstm, 0 for linear | trainer |
| ALLOOP_LINEAR_MAX_TOKENS / ALLOOP_NGRAMS / ALLOOP_LINEAR_C / ALLOOP_LSA_COMPONENTS / ALLOOP_LSA_PIVOT / ALLOOP_NB_SCALE / ALLOOP_NB_UNLABELED / ALLOOP_PSEUDO_WEIGHT | 250000 / 2 / 32 / 300 / 1000 / 2 / 1 / 0.3 | trainer (linear) |
| ALLOOP_LINEAR_MIN_DF | 1 | trainer (linear: tokens and n-grams in fewer texts of the pools stay out of the vocabulary; 2 helps very short texts at a few hundred labels) |
| ALLOOP_LINEAR_SELECT | validation | trainer (linear: each round keeps the naive-Bayes and LSA blocks and the pseudo-labels that score best on the validation split; folds: k-fold cross-validation on the labels chooses C and the blocks; configured: as set) |
| ALLOOP_LINEAR_SELECT_FOLDS / ALLOOP_LINEAR_SELECT_ROWS | 4 / 2000 | trainer (linear, with ALLOOP_LINEAR_SELECT=folds: k, and at most that many labels) |
| ALLOOP_CLASS_PRIOR | validation | trainer (linear: the class shares the model's odds assume: the validation split's, or the labelled set's) |
| ALLOOP_MAX_TOKENS / ALLOOP_SEQUENCE_LENGTH / ALLOOP_EMBEDDING_DIM | 3000 / 150 / 128 | trainer |
| ALLOOP_LSTM_UNITS / ALLOOP_DENSE_UNITS / ALLOOP_DROPOUT | 32 / 20 / 0.5 | trainer |
| ALLOOP_EXPORT_SAVED_MODEL | 1 | trainer |
| ALLOOP_CORPUS_CACHE_DIR | $ALLOOP_STATE_DIR/corpus | trainer (linear: vocabularies and LSA statistics per pool text, the 2 newest) |
| ALLOOP_ROUND_LOCK_SECONDS | 60 | trainer (a dead replica's round lock frees itself after this long) |
| ALLOOP_TRAINER_NAME | <host>-<pid> | trainer (its consumer name; a stable, unique one lets a restarted trainer re-read its own pending labels and free its own round lock at once) |
| ALLOOP_STOP_SET_SIZE | 1000 | trainer (unlabeled items on which consecutive versions are compared) |
| ALLOOP_SEED | 0 | trainer |
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from alloop.cli import add_version_flag
from alloop.envvars import choice, integer, number
from alloop.models.config import CLASS_PRIORS, FAMILY_NAMES, LINEAR_SELECTIONS, ModelConfig, TrainingConfig
from alloop.rpc.limits import ServerLimits, limits_from_env
from alloop.rpc.security import TRUE, SecuritySettings, security_from_env
from alloop.store.keys import DEFAULT_PREFIX

DEFAULT_CLASSES = ("negative", "positive")
DEFAULT_POOL = "default"  # the pool a request or a client names when it names none
DEFAULT_STATE_DIR = Path(".alloop")
DEFAULT_QUERY_ADDRESS = "127.0.0.1:50051"
DEFAULT_TRAINER_ADDRESS = "127.0.0.1:50052"


def _truthy(value: str) -> bool:
    return value.strip().lower() in TRUE


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    return integer(env, name, default, minimum=1)


def _non_negative_int(env: Mapping[str, str], name: str, default: int) -> int:
    return integer(env, name, default, minimum=0)


@dataclass(frozen=True)
class CommonSettings:
    redis_url: str | None = field(default=None, repr=False)  # may hold a password: never in a repr or a log
    redis_password: str | None = field(default=None, repr=False)  # ALLOOP_REDIS_PASSWORD_FILE, for a URL without one
    redis_prefix: str = DEFAULT_PREFIX
    state_dir: Path = DEFAULT_STATE_DIR
    model_dir: Path | None = None
    classes: tuple[str, ...] = DEFAULT_CLASSES

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
    # None: $ALLOOP_STATE_DIR/corpus (alloop.models.linear.CorpusCache): the trainer's own files, kept off the model
    # volume that query replicas share.
    corpus_cache_dir: Path | None = None

    @property
    def corpus_cache_path(self) -> Path:
        return self.corpus_cache_dir or self.common.state_dir / "corpus"

    def __post_init__(self) -> None:
        if self.retrain_threshold < 1:
            raise ValueError(f"retrain_threshold must be at least 1 new label, got {self.retrain_threshold}")


def common_from_env(env: Mapping[str, str]) -> CommonSettings:
    state_dir = Path(env.get("ALLOOP_STATE_DIR", str(DEFAULT_STATE_DIR)))
    model_dir = env.get("ALLOOP_MODEL_DIR")
    classes = tuple(c.strip() for c in env.get("ALLOOP_CLASSES", ",".join(DEFAULT_CLASSES)).split(",") if c.strip())
    if len(classes) < 2:
        raise ValueError(f"ALLOOP_CLASSES needs at least two class names, got {classes!r}")
    password_file = env.get("ALLOOP_REDIS_PASSWORD_FILE", "").strip()
    password = None
    if password_file:
        try:
            password = Path(password_file).read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            raise ValueError(
                f"ALLOOP_REDIS_PASSWORD_FILE: cannot read {password_file}: {exc.strerror or exc}"
            ) from None
        if password is None:
            raise ValueError(f"ALLOOP_REDIS_PASSWORD_FILE: {password_file} is empty")
    return CommonSettings(
        redis_url=env.get("REDIS_URL") or None,
        redis_password=password,
        redis_prefix=env.get("ALLOOP_REDIS_PREFIX", DEFAULT_PREFIX),
        state_dir=state_dir,
        model_dir=Path(model_dir) if model_dir else None,
        classes=classes,
    )


def query_from_env(env: Mapping[str, str]) -> QuerySettings:
    d = QuerySettings()
    return QuerySettings(
        common=common_from_env(env),
        address=env.get("ALLOOP_QUERY_ADDRESS", d.address),
        lease_seconds=number(env, "ALLOOP_LEASE_SECONDS", d.lease_seconds),
        max_lease_items=integer(env, "ALLOOP_MAX_LEASE_ITEMS", d.max_lease_items),
        score_batch_size=integer(env, "ALLOOP_SCORE_BATCH_SIZE", d.score_batch_size),
        max_batch_items=integer(env, "ALLOOP_MAX_BATCH_ITEMS", d.max_batch_items),
        max_text_chars=integer(env, "ALLOOP_MAX_TEXT_CHARS", d.max_text_chars),
        model_poll_seconds=number(env, "ALLOOP_MODEL_POLL_SECONDS", d.model_poll_seconds),
        model_load_attempts=_positive_int(env, "ALLOOP_MODEL_LOAD_ATTEMPTS", d.model_load_attempts),
        mc_passes=_positive_int(env, "ALLOOP_MC_PASSES", d.mc_passes),
        max_message_bytes=_positive_int(env, "ALLOOP_MAX_MESSAGE_BYTES", d.max_message_bytes),
        feature_cache_rows=_non_negative_int(env, "ALLOOP_FEATURE_CACHE_ROWS", d.feature_cache_rows),
        query_score_seconds=number(env, "ALLOOP_QUERY_SCORE_SECONDS", d.query_score_seconds),
        score_claim_seconds=number(env, "ALLOOP_SCORE_CLAIM_SECONDS", d.score_claim_seconds),
        security=security_from_env(env),
        limits=limits_from_env(env),
        metrics_address=env.get("ALLOOP_METRICS_ADDRESS", "").strip() or None,
        max_name_chars=_positive_int(env, "ALLOOP_MAX_NAME_CHARS", d.max_name_chars),
        max_upload_items=_positive_int(env, "ALLOOP_MAX_UPLOAD_ITEMS", d.max_upload_items),
        max_upload_chars=_positive_int(env, "ALLOOP_MAX_UPLOAD_CHARS", d.max_upload_chars),
        max_pool_items=_positive_int(env, "ALLOOP_MAX_POOL_ITEMS", d.max_pool_items),
        max_pools=_positive_int(env, "ALLOOP_MAX_POOLS", d.max_pools),
        max_query_k=_positive_int(env, "ALLOOP_MAX_QUERY_K", d.max_query_k),
        max_query_candidates=_positive_int(env, "ALLOOP_MAX_QUERY_CANDIDATES", d.max_query_candidates),
        max_lease_seconds=number(env, "ALLOOP_MAX_LEASE_SECONDS", d.max_lease_seconds),
    )


def trainer_from_env(env: Mapping[str, str]) -> TrainerSettings:
    d = TrainerSettings()
    m, t = d.model, d.training
    common = common_from_env(env)
    family = choice(env, "ALLOOP_MODEL_FAMILY", m.family, FAMILY_NAMES)

    def path(name: str) -> Path | None:
        value = env.get(name)
        return Path(value) if value else None

    return TrainerSettings(
        common=common,
        address=env.get("ALLOOP_TRAINER_ADDRESS", d.address),
        retrain_threshold=integer(env, "ALLOOP_RETRAIN_THRESHOLD", d.retrain_threshold),
        initial_data=path("ALLOOP_INITIAL_DATA"),
        val_data=path("ALLOOP_VAL_DATA"),
        test_data=path("ALLOOP_TEST_DATA"),
        model=ModelConfig(
            max_tokens=integer(env, "ALLOOP_MAX_TOKENS", m.max_tokens),
            sequence_length=integer(env, "ALLOOP_SEQUENCE_LENGTH", m.sequence_length),
            embedding_dim=integer(env, "ALLOOP_EMBEDDING_DIM", m.embedding_dim),
            lstm_units=integer(env, "ALLOOP_LSTM_UNITS", m.lstm_units),
            dense_units=integer(env, "ALLOOP_DENSE_UNITS", m.dense_units),
            dropout=number(env, "ALLOOP_DROPOUT", m.dropout),
            n_classes=len(common.classes),
            family=family,
            linear_max_tokens=integer(env, "ALLOOP_LINEAR_MAX_TOKENS", m.linear_max_tokens),
            ngrams=integer(env, "ALLOOP_NGRAMS", m.ngrams),
            linear_min_df=integer(env, "ALLOOP_LINEAR_MIN_DF", m.linear_min_df, minimum=1),
            linear_c=number(env, "ALLOOP_LINEAR_C", m.linear_c),
            linear_lsa_components=integer(env, "ALLOOP_LSA_COMPONENTS", m.linear_lsa_components),
            linear_lsa_pivot=integer(env, "ALLOOP_LSA_PIVOT", m.linear_lsa_pivot),
            linear_nb_scale=number(env, "ALLOOP_NB_SCALE", m.linear_nb_scale),
            linear_nb_unlabeled=number(env, "ALLOOP_NB_UNLABELED", m.linear_nb_unlabeled),
            linear_pseudo_weight=number(env, "ALLOOP_PSEUDO_WEIGHT", m.linear_pseudo_weight),
            linear_select=choice(env, "ALLOOP_LINEAR_SELECT", m.linear_select, LINEAR_SELECTIONS),
            linear_select_folds=integer(env, "ALLOOP_LINEAR_SELECT_FOLDS", m.linear_select_folds, minimum=2),
            linear_select_rows=integer(env, "ALLOOP_LINEAR_SELECT_ROWS", m.linear_select_rows, minimum=2),
            linear_class_prior=choice(env, "ALLOOP_CLASS_PRIOR", m.linear_class_prior, CLASS_PRIORS),
        ),
        training=TrainingConfig(
            epochs=integer(env, "ALLOOP_EPOCHS", t.epochs),
            batch_size=integer(env, "ALLOOP_BATCH_SIZE", t.batch_size),
            patience=integer(env, "ALLOOP_PATIENCE", t.patience),
            # The seed's BiLSTM continues from the last weights; the linear model is rebuilt on the current pool.
            warm_start=_truthy(env.get("ALLOOP_WARM_START", "1" if family == "bilstm" else "0")),
            seed=integer(env, "ALLOOP_SEED", t.seed),
        ),
        export_saved_model=_truthy(env.get("ALLOOP_EXPORT_SAVED_MODEL", "1")),
        security=security_from_env(env),
        limits=limits_from_env(env),
        metrics_address=env.get("ALLOOP_METRICS_ADDRESS", "").strip() or None,
        round_lock_seconds=number(env, "ALLOOP_ROUND_LOCK_SECONDS", d.round_lock_seconds),
        stop_set_size=integer(env, "ALLOOP_STOP_SET_SIZE", d.stop_set_size),
        consumer=env.get("ALLOOP_TRAINER_NAME", "").strip(),
        corpus_cache_dir=Path(env["ALLOOP_CORPUS_CACHE_DIR"]) if env.get("ALLOOP_CORPUS_CACHE_DIR") else None,
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
