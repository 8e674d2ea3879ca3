"""The gateway's configuration: one YAML file, validated with pydantic.

Environment variables override the file: ``GATEWAY_SERVER__WORKERS=2`` sets ``server.workers``.
Every refusal names the key path and the reason (``models.digits.variants[1].backend: ...``),
once per problem, and names the environment variable when an override set the refused value.
"""

from __future__ import annotations

import os
import re
import ssl
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import orjson
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from gateway.config_observability import AccessLogConfig, LoggingConfig, TracingConfig
from gateway.config_problems import (
    FROM_ENVIRONMENT,
    environment_section_problems,
    unique,
    validation_problems,
    where,
)
from gateway.config_resilience import OutlierDetection, RetryBudget, RetryPolicy

NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"
LABEL_PATTERN = r"^[A-Za-z0-9_]+$"
HOST_PORT = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")
BUFFERED_REQUESTS = 4
"""Largest requests a worker buffers at once by default (``max_buffered_request_bytes``)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Listen(_Strict):
    host: str = "127.0.0.1"
    """Interface to bind; ``0.0.0.0`` in containers."""
    port: int = Field(ge=0, le=65535)
    """TCP port; 0 picks a free one (tests)."""


def _readable_file(value: Path) -> Path:
    if not value.is_file():
        raise ValueError(f"{str(value)!r} is not a readable file")
    return value


PemFile = Annotated[Path, AfterValidator(_readable_file)]


class TlsConfig(_Strict):
    """TLS on the front ports: both listeners present one certificate (PEM files)."""

    cert_file: PemFile
    """The server certificate, followed by any intermediates."""
    key_file: PemFile
    """Its private key (unencrypted)."""


class WorkerRestart(_Strict):
    """How the supervisor of several workers replaces one that died (systemd's start limits)."""

    backoff_s: float = Field(default=1.0, gt=0)
    """Delay before a dead worker is replaced; it doubles with every quick exit in a row."""
    max_backoff_s: float = Field(default=30.0, gt=0)
    """The doubling stops here."""
    quick_exit_s: float = Field(default=10.0, gt=0)
    """A worker that dies within this long of being started counts as a quick exit."""
    max_quick_exits: int = Field(default=5, ge=1)
    """This many quick exits in a row of one worker and the gateway gives up: it stops the other
    workers and exits 1, for systemd, compose or Kubernetes to restart it (with their backoff)."""


class AdminConfig(_Strict):
    """The admin API's own listener (never on the data ports)."""

    host: str = "127.0.0.1"
    """Interface to bind; keep it on loopback or a private network."""
    port: int = Field(default=8002, ge=0, le=65535)
    """TCP port; 0 picks a free one (tests)."""
    token_file: str | None = None
    """File holding the bearer token (surrounding whitespace ignored); the environment
    variable ``GATEWAY_ADMIN_TOKEN`` wins over it. No token: every admin request is refused."""


class FrontEndLimits(_Strict):
    """What one worker's front ends take on at once, and how long a client may dawdle."""

    max_connections: int = Field(default=4096, ge=1)
    """Open HTTP connections per worker; one beyond it is closed as soon as it is accepted
    (Envoy's listener ``max_connections``)."""
    max_concurrent_requests: int = Field(default=2048, ge=1)
    """Inference requests per worker at once, each front end (HTTP's raw inference paths, like
    uvicorn's ``limit_concurrency``; gRPC calls, like ``maximum_concurrent_rpcs``); beyond it a
    request is answered 503 / UNAVAILABLE at once. Health, metadata and ``/metrics`` are not
    counted, so probes still answer under overload."""
    max_request_headers_kb: int = Field(default=60, ge=1, le=8192)
    """Request line and headers of one HTTP request, in KiB (Envoy's ``max_request_headers_kb``
    and its default); more is answered 431 and the connection closed, before the headers are
    held in memory."""
    request_headers_timeout_s: float = Field(default=10.0, gt=0)
    """From a connection's first byte (or a keep-alive request's) to the end of its headers;
    a client slower than that is disconnected (Envoy's ``request_headers_timeout``, slowloris)."""
    request_body_timeout_s: float = Field(default=60.0, gt=0)
    """From the end of the headers to the end of the body; a client slower than that is
    disconnected and its request dropped unsent."""
    idle_timeout_s: float = Field(default=75.0, gt=0)
    """An idle keep-alive connection is closed after this long (Envoy's ``idle_timeout``);
    above common client and load-balancer idle timeouts (60 s)."""
    drain_s: float = Field(default=0.0, ge=0)
    """After SIGTERM: how long readiness reports 503 (and every response says
    ``Connection: close``) while requests are still served, before the listeners close, for
    load balancers to stop sending (Kubernetes: a few seconds). Then in-flight requests get
    ``graceful_shutdown_s``."""


class ServerConfig(_Strict):
    http: Listen = Listen(port=8000)
    """Open Inference Protocol REST, health and ``/metrics``."""
    grpc: Listen | None = Listen(port=8001)
    """gRPC front end; ``null`` turns it off."""
    workers: int = Field(default=1, ge=1, le=64)
    """Worker processes; each owns one event loop and a SO_REUSEPORT socket per listener."""
    max_request_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    """Largest request body (HTTP) or message (gRPC) accepted."""
    max_buffered_request_bytes: int | None = Field(default=None, ge=1024)
    """Request bodies one worker holds at once over HTTP, all requests together (decompressed
    bodies count too); a request beyond it is answered 503 at once. Default (null): 4 x
    ``max_request_bytes``, 256 MiB."""
    sticky_header: str = "x-user-id"
    """Requests carrying this header always land on the same variant for the same value."""
    variant_header: str = "x-gateway-variant"
    """Request header that pins a variant by name; every inference response carries it too."""
    readiness_interval_s: float = Field(default=2.0, gt=0)
    """How often each worker probes every backend model for readiness."""
    graceful_shutdown_s: float = Field(default=10.0, ge=0)
    """How long in-flight requests may finish after SIGTERM."""
    tls: TlsConfig | None = None
    """Serve HTTPS and gRPC over TLS with these files; ``null`` (the default): plaintext."""
    grpc_reflection: bool = True
    """gRPC server reflection (grpcurl, Postman). On for local work; the compose and Kubernetes
    configs turn it off."""
    grpc_max_connection_age_s: float | None = Field(default=300.0, gt=0)
    """Close each gRPC connection (GOAWAY) after about this long, so that clients reconnect
    through their load balancer and reach gateway replicas added since; ``null``: never."""
    grpc_max_connection_age_grace_s: float = Field(default=30.0, ge=0)
    """How long calls in flight on a connection that got its GOAWAY may still finish."""
    worker_restart: WorkerRestart = WorkerRestart()
    """With several workers: backoff and give-up when one keeps dying."""
    admin: AdminConfig | None = AdminConfig()
    """The admin API (routes, weights, reload, deploy); ``null`` turns it off."""
    state_dir: str | None = None
    """Where changes made through the admin API are kept (``overlay.json``, on top of the
    config file, which is never rewritten) and the deploy journal; replicas sharing it converge
    on the same routes. ``null`` (the default): changes last until the gateway stops, and
    ``deploy`` is refused."""
    watch_interval_s: float | None = Field(default=0.5, gt=0)
    """How often the config file and the overlay are checked for changes (a change reloads);
    ``null``: only SIGHUP, ``POST /admin/reload`` and the admin API's own changes reload."""

    limits: FrontEndLimits = FrontEndLimits()
    """Load shedding and slow-client bounds of the front ends, per worker."""

    @property
    def body_buffer_bytes(self) -> int:
        """``max_buffered_request_bytes``, its default resolved."""
        if self.max_buffered_request_bytes is not None:
            return self.max_buffered_request_bytes
        return BUFFERED_REQUESTS * self.max_request_bytes

    @model_validator(mode="after")
    def _buffer_holds_a_request(self) -> ServerConfig:
        buffered = self.max_buffered_request_bytes
        if buffered is not None and buffered < self.max_request_bytes:
            raise ValueError(
                f"max_buffered_request_bytes ({buffered}) is below max_request_bytes "
                f"({self.max_request_bytes}): the largest request could never be served"
            )
        return self

    @field_validator("sticky_header", "variant_header")
    @classmethod
    def _lower(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9-]+", value):
            raise ValueError(f"{value!r} is not a valid HTTP header name")
        return value.lower()


RUNTIME_PATTERN = r"^[a-z0-9][a-z0-9_.-]*$"


class CircuitBreakers(_Strict):
    """Envoy's circuit breakers for one backend, per worker: past them a request is answered
    503 / UNAVAILABLE at once (``retry-after``) instead of queueing until its deadline."""

    max_requests: int = Field(default=1024, ge=1)
    """Calls to this backend in flight at once. A REST backend also has ``max_connections``:
    the smaller of the two applies. Set it to the backend's own concurrency."""
    max_pending_requests: int = Field(default=1024, ge=0)
    """Requests waiting for one of those slots (FIFO); a request that would wait past what its
    deadline leaves for the call is answered 504 without being sent."""
    adaptive_concurrency: bool = True
    """Let the limit on calls in flight follow the backend's latency (Envoy's adaptive
    concurrency, gradient controller), between 1 and ``max_requests``: on for a backend whose
    concurrency is not known; a backend of known concurrency ``C`` is better served by
    ``max_requests: C`` and this off."""


class _BackendBase(_Strict):
    timeout_s: float = Field(default=10.0, gt=0)
    """Deadline of one backend call; a client's shorter deadline wins."""
    max_connections: int = Field(default=64, ge=1)
    """Pooled keep-alive connections (REST) to this backend, per worker."""
    connect_timeout_s: float = Field(default=1.0, gt=0)
    """How long to wait for a new connection before answering 503."""
    circuit_breakers: CircuitBreakers = CircuitBreakers()
    """Limits on calls in flight and waiting (load shedding)."""
    tls_ca_file: str | None = None
    """PEM file of the CAs that sign this backend's certificates, for its ``https://`` URLs
    (default: the system's CAs). Its gRPC addresses are plaintext."""
    tls_verify: bool = True
    """Check the certificate of an ``https://`` URL (chain and host name); false for testing."""
    outlier_detection: OutlierDetection = OutlierDetection()
    """When its variants' failures eject them from routing (README: Resilience)."""
    retry_policy: RetryPolicy = RetryPolicy()
    """How a request that failed on it is retried on another variant."""
    retry_budget: RetryBudget = RetryBudget()
    """How many retries it may receive at once."""

    @field_validator("tls_ca_file")
    @classmethod
    def _readable_ca_file(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ssl.create_default_context(cafile=value)
            except (OSError, ssl.SSLError) as error:
                raise ValueError(f"cannot load CA file {value!r}: {error}") from None
        return value


def _host_port(value: str) -> str:
    if not HOST_PORT.match(value):
        raise ValueError(f"{value!r} is not host:port")
    return value


def _http_url(value: str) -> str:
    if not re.match(r"^https?://[^/\s]+$", value.rstrip("/")):
        raise ValueError(f"{value!r} is not an http(s)://host:port URL")
    return value.rstrip("/")


HostPort = Annotated[str, AfterValidator(_host_port)]
HttpBase = Annotated[str, AfterValidator(_http_url)]


GrpcLoadBalancing = Literal["pick_first", "round_robin"]
"""How a backend's gRPC channel uses the addresses its name resolves to: ``pick_first`` keeps
one connection (a ClusterIP Service, one process); ``round_robin`` connects to every address and
spreads calls over them (a headless Kubernetes Service in front of several replicas)."""


class TFServingBackendConfig(_BackendBase):
    kind: Literal["tfserving"]
    grpc: HostPort | None = "127.0.0.1:8500"
    """host:port of TF Serving's gRPC API (``--port``)."""
    rest: HttpBase | None = "http://127.0.0.1:8501"
    """Base URL of TF Serving's REST API (``--rest_api_port``)."""
    protocol: Literal["grpc", "rest"] = "grpc"
    """Which of the two the gateway uses for inference."""
    grpc_load_balancing: GrpcLoadBalancing = "pick_first"
    """``round_robin`` over every address of ``grpc`` (several replicas behind one name)."""
    model_config_file: str | None = None
    """The text-format ModelServerConfig TF Serving was started with (``--model_config_file``):
    where runtime orchestration (``gateway deploy``) starts from. After the first deploy the
    gateway holds the whole config (in its state directory) and is its only writer: TF Serving
    must not also poll that file (no ``--model_config_file_poll_wait_seconds``)."""
    runtime: str = Field(default="tfserving", pattern=RUNTIME_PATTERN)
    """What serves behind it, for metrics and the catalog (the ``runtime`` label)."""


class TorchServeBackendConfig(_BackendBase):
    kind: Literal["torchserve"]
    inference: HttpBase | None = "http://127.0.0.1:8080"
    """Base URL of TorchServe's inference API."""
    management: HttpBase | None = "http://127.0.0.1:8081"
    """Base URL of TorchServe's management API (model description, readiness)."""
    metrics: HttpBase | None = "http://127.0.0.1:8082"
    """Base URL of TorchServe's metrics API (scraped by Prometheus, not by the gateway)."""
    grpc: HostPort | None = "127.0.0.1:7070"
    """host:port of TorchServe's gRPC inference API."""
    protocol: Literal["rest", "grpc"] = "rest"
    """Which inference API the gateway uses."""
    grpc_load_balancing: GrpcLoadBalancing = "pick_first"
    """``round_robin`` over every address of ``grpc`` (several replicas behind one name)."""
    key_file: str | None = None
    """TorchServe's ``key_file.json`` (token authorization, on by default since TorchServe 0.11;
    it is written to TorchServe's working directory). The gateway sends the inference key with
    inference calls and the management key with metadata, readiness and deploy calls, re-reads
    the file when it changes, and renews a key through TorchServe's token API shortly before it
    expires. Unset: no key is sent (TorchServe started with token authorization off)."""
    runtime: str = Field(default="torchserve", pattern=RUNTIME_PATTERN)
    """What serves behind it, for metrics and the catalog (the ``runtime`` label)."""


class OipBackendConfig(_BackendBase):
    """Any Open Inference Protocol (KServe v2) server: Triton, MLServer, KServe, ..."""

    kind: Literal["oip"]
    url: HttpBase | None = None
    """Base URL of its REST API; the gateway calls ``{url}/v2/models/{m}[/versions/{v}]/infer``."""
    grpc: HostPort | None = None
    """host:port of its ``inference.GRPCInferenceService``."""
    grpc_load_balancing: GrpcLoadBalancing = "pick_first"
    """``round_robin`` over every address of ``grpc`` (several replicas behind one name)."""
    protocol: Literal["rest", "grpc"] = "rest"
    """Which of the two the gateway uses for inference, metadata and readiness."""
    runtime: str = Field(default="oip", pattern=RUNTIME_PATTERN)
    """What serves behind it (``triton``, ``mlserver``, ``kserve``...), for metrics and the
    catalog (the ``runtime`` label); ``mlserver`` also turns ``binary_tensors`` off."""
    versioned_urls: bool = True
    """Name the version in each call (the REST path, gRPC's ``model_version``); false for servers
    that route only ``/v2/models/{m}/infer``, which then pick the version themselves."""
    binary_tensors: bool | None = None
    """Whether its REST API reads Triton's binary tensor extension; unset: every runtime but
    ``mlserver`` does. Without it, tensors travel as JSON and binary bodies are re-encoded."""

    @property
    def rest_binary(self) -> bool:
        if self.binary_tensors is not None:
            return self.binary_tensors
        return self.runtime != "mlserver"


BackendConfig = Annotated[
    TFServingBackendConfig | TorchServeBackendConfig | OipBackendConfig,
    Field(discriminator="kind"),
]
AnyBackendConfig = TFServingBackendConfig | TorchServeBackendConfig | OipBackendConfig


class VariantConfig(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    """Unique within the model; what ``x-gateway-variant`` names."""
    backend: str
    """Key of an entry in ``backends``."""
    model: str | None = None
    """Model name at the backend; defaults to the public model name."""
    version: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    """Version at the backend, which is also the public version it serves."""
    weight: int = Field(ge=0)
    """Relative share of traffic (any non-negative integers; 0 drains the variant)."""
    labels: tuple[Annotated[str, Field(pattern=LABEL_PATTERN)], ...] = ()
    """Version labels this variant answers to (``stable``, ``canary``...)."""
    enabled: bool = True
    """False takes the variant out of all traffic, pins included (they answer "variant
    disabled", 404 / NOT_FOUND); weight 0 only drains it from the split."""

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class ShadowConfig(_Strict):
    """Copies of a model's requests sent to other variants, whose answers are compared with the
    primary's and never reach the client (see ``gateway/shadow/``)."""

    variants: tuple[str, ...] = ()
    """Variants of this model that get the copies (none: shadowing off). A request whose primary
    is one of them is not copied to itself."""
    percent: float = Field(default=100.0, ge=0, le=100)
    """Share of the model's requests that are copied (Envoy's ``runtime_fraction``, 100%)."""
    max_concurrent: int = Field(default=8, ge=1)
    """Shadowed requests under way at once, per worker (all of the model's shadows together)."""
    max_queued: int = Field(default=64, ge=0)
    """Shadowed requests waiting for a free slot, per worker; beyond it they are dropped (and
    counted: ``result="dropped"``)."""
    timeout_s: float = Field(default=5.0, gt=0)
    """Deadline of one shadow call, its own: a slow shadow never holds the client."""
    atol: float = Field(default=1e-5, ge=0)
    """Absolute tolerance of an output element (Polygraphy's default)."""
    rtol: float = Field(default=1e-5, ge=0)
    """Relative tolerance: an element agrees within ``atol + rtol * |primary|``."""
    top_k: int = Field(default=1, ge=0)
    """The k largest classes (last axis) of a floating output must be the same set; 1: argmax,
    0: not checked."""
    compare_values: Literal["same_version", "always"] = "same_version"
    """Which pairs must also agree element by element within ``atol``/``rtol``: a shadow of the
    primary's own version only (another runtime should give the same numbers; another version
    rightly gives other numbers, and is judged on its top-k classes), or every pair."""

    @field_validator("variants")
    @classmethod
    def _distinct(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        repeated = sorted({name for name in value if value.count(name) > 1})
        if repeated:
            raise ValueError(f"variants named more than once: {', '.join(repeated)}")
        return value


class ModelConfig(_Strict):
    variants: tuple[VariantConfig, ...] = Field(min_length=1)
    """Where the model's traffic goes, and in what proportion."""
    outlier_detection: OutlierDetection | None = None
    """Replaces the backends' ``outlier_detection`` for this model's variants."""
    retry_policy: RetryPolicy | None = None
    """Replaces the backends' ``retry_policy`` for this model's requests."""
    shadow: ShadowConfig | None = None
    """Shadow traffic with output comparison; ``null`` (the default): none."""


class GatewayConfig(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    server: ServerConfig = ServerConfig()
    backends: dict[str, BackendConfig]
    models: dict[str, ModelConfig]
    tracing: TracingConfig = TracingConfig()
    access_log: AccessLogConfig = AccessLogConfig()
    logging: LoggingConfig = LoggingConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment overrides the file (deployments set ports and workers that way).
        return env_settings, init_settings


class ConfigError(Exception):
    """The configuration was refused; ``problems`` are ``(where, reason)`` pairs, one per problem.

    ``where`` is a key path, or ``environment variable GATEWAY_... (key path)`` when an
    environment override set the refused value.
    """

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = unique(problems)
        from_env = sum(where.startswith(FROM_ENVIRONMENT) for where, _ in self.problems)
        if not from_env:
            subject = f"config {source}"
        elif from_env == len(self.problems):
            subject = f"environment overrides (GATEWAY_*) of {source}"
        else:
            subject = f"config {source} and its environment overrides (GATEWAY_*)"
        lines = "\n".join(f"  {where}: {reason}" for where, reason in self.problems)
        super().__init__(f"invalid gateway {subject}:\n{lines}")


def backend_kinds() -> list[str]:
    """Every ``kind`` a backend may have (the tags of the ``backends`` union)."""
    return [get_args(cls.model_fields["kind"].annotation)[0] for cls in get_args(AnyBackendConfig)]


def _cross_check(config: GatewayConfig) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for model_name, model in config.models.items():
        base = f"models.{model_name}"
        if not re.match(NAME_PATTERN, model_name):
            problems.append((base, "model names may hold only letters, digits, '_', '.', '-'"))
        seen: set[str] = set()
        for index, variant in enumerate(model.variants):
            path = f"{base}.variants[{index}]"
            if variant.name in seen:
                problems.append((f"{path}.name", f"duplicate variant name {variant.name!r}"))
            seen.add(variant.name)
            backend = config.backends.get(variant.backend)
            if backend is None:
                known = ", ".join(sorted(config.backends)) or "none"
                problems.append(
                    (f"{path}.backend", f"unknown backend {variant.backend!r} (known: {known})")
                )
                continue
            if backend.kind == "tfserving" and not variant.version.isdigit():
                problems.append(
                    (f"{path}.version", "TF Serving versions are integers, got " + variant.version)
                )
            key, endpoint = _endpoint(backend)
            if endpoint is None:
                # Blamed on the protocol if an environment variable chose it, else on the
                # missing address (the key that protocol reads); said once per backend.
                place = where(("backends", variant.backend, "protocol"), os.environ)
                if not place.startswith(FROM_ENVIRONMENT):
                    place = where(("backends", variant.backend, key), os.environ)
                reason = f"protocol is {backend.protocol!r} but no such address is set"
                problems.append((place, reason))
        if model.shadow is not None:
            for index, name in enumerate(model.shadow.variants):
                if name not in seen:
                    known = ", ".join(v.name for v in model.variants)
                    problems.append(
                        (
                            f"{base}.shadow.variants[{index}]",
                            f"unknown variant {name!r} (variants: {known})",
                        )
                    )
        if model.variants and not any(v.weight > 0 for v in model.variants):
            problems.append(
                (f"{base}.variants", "every variant has weight 0: at least one must take traffic")
            )
        elif model.variants and not any(v.weight > 0 and v.enabled for v in model.variants):
            problems.append(
                (
                    f"{base}.variants",
                    "every variant with a weight above 0 is disabled: at least one must take "
                    "traffic",
                )
            )
    return problems


def _endpoint(backend: AnyBackendConfig) -> tuple[str, str | None]:
    """The key and address inference uses, given the backend's protocol."""
    if backend.protocol == "grpc":
        return "grpc", backend.grpc
    if isinstance(backend, OipBackendConfig):
        return "url", backend.url
    if isinstance(backend, TFServingBackendConfig):
        return "rest", backend.rest
    return "inference", backend.inference


def parse_config(data: Any, source: str = "<config>") -> GatewayConfig:
    """Validate an already-parsed document (a dict), applying environment overrides."""
    if not isinstance(data, dict):
        raise ConfigError(source, [("<root>", "the file must hold a mapping")])
    try:
        config = GatewayConfig(**data)
    except ValidationError as error:
        problems = validation_problems(error, backend_kinds(), os.environ)
        raise ConfigError(source, problems) from None
    except SettingsError as error:  # an environment variable's JSON section did not decode
        field = re.search(r'field "([^"]+)"', str(error))
        problems = environment_section_problems(
            field.group(1) if field else "", error.__cause__, os.environ
        )
        raise ConfigError(source, problems) from None
    problems = _cross_check(config)
    if problems:
        raise ConfigError(source, problems)
    return config


# libyaml's parser when PyYAML was built with it: several times faster on large configs.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_config(path: str | Path) -> GatewayConfig:
    """Read and validate a YAML (or, for generated configs, JSON) file.

    Raises :class:`ConfigError` naming every problem. JSON is YAML too, but a ``.json`` file is
    read by a JSON parser: a config with 10,000 models loads in milliseconds instead of seconds.
    """
    return parse_config(read_config_data(path), str(path))


def read_config_data(path: str | Path) -> Any:
    """The parsed document of a config file, not validated yet (:class:`ConfigError` if it
    cannot be read or parsed)."""
    source = str(path)
    try:
        text = Path(path).read_bytes()
    except OSError as error:
        raise ConfigError(source, [("<file>", error.strerror or str(error))]) from None
    if str(path).endswith(".json"):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError as error:
            raise ConfigError(source, [("<file>", f"not valid JSON: {error}")]) from None
    try:
        data = yaml.load(text, Loader=_YAML_LOADER)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "<file>"
        reason = getattr(error, "problem", None) or str(error)
        raise ConfigError(source, [(where, f"not valid YAML: {reason}")]) from None
    return data
