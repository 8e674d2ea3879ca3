"""The load test's own Locust options, on the command line, in the web UI and as ``LOCUST_*``.

``add_options`` is an ``init_command_line_parser`` listener; ``Settings.of`` reads what a user
needs from the parsed options (defaults when Locust runs as a library without them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loadtests.profiles import SHAPES

if TYPE_CHECKING:  # importing Locust monkey-patches the process with gevent: not at run time
    from locust.env import Environment


@dataclass(frozen=True)
class Settings:
    grpc_target: str = "127.0.0.1:8001"
    batch_size: int = 1
    user_rate: float = 10.0
    anonymous_share: float = 0.25
    model_version: str = ""
    timeout_s: float = 10.0

    @classmethod
    def of(cls, environment: Environment) -> Settings:
        options = environment.parsed_options
        if options is None:
            return cls()
        settings = cls(
            grpc_target=options.grpc_target,
            batch_size=int(options.batch_size),
            user_rate=float(options.user_rate),
            anonymous_share=float(options.anonymous_share),
            model_version=str(options.model_version or ""),
            timeout_s=float(options.request_timeout),
        )
        if settings.batch_size < 1:
            raise ValueError(f"--batch-size must be at least 1, got {settings.batch_size}")
        if not 0.0 <= settings.anonymous_share <= 1.0:
            share = settings.anonymous_share
            raise ValueError(f"--anonymous-share must lie in [0, 1], got {share}")
        return settings


def add_options(parser: Any, **_: Any) -> None:
    group = parser.add_argument_group("digits load test (loadtests/)")
    defaults = Settings()
    group.add_argument(
        "--grpc-target",
        default=defaults.grpc_target,
        env_var="LOCUST_GRPC_TARGET",
        help="host:port of the gateway's gRPC front end (default %(default)s)",
    )
    group.add_argument(
        "--load-shape",
        choices=SHAPES,
        default="constant",
        env_var="LOCUST_LOAD_SHAPE",
        help="constant: --users for --run-time; ramp: 0 up to --users over 80%% of it, then hold; "
        "spike: a third of --users, all of them for the middle fifth, back to a third",
    )
    group.add_argument(
        "--batch-size",
        type=int,
        default=defaults.batch_size,
        env_var="LOCUST_BATCH_SIZE",
        help="digits per request (default %(default)s)",
    )
    group.add_argument(
        "--user-rate",
        type=float,
        default=defaults.user_rate,
        env_var="LOCUST_USER_RATE",
        help="requests per second per user, at most; 0: no pause (default %(default)s)",
    )
    group.add_argument(
        "--anonymous-share",
        type=float,
        default=defaults.anonymous_share,
        env_var="LOCUST_ANONYMOUS_SHARE",
        help="share of requests sent without x-user-id, routed by weight alone "
        "(default %(default)s); the rest stick to one variant per user",
    )
    group.add_argument(
        "--model-version",
        default=defaults.model_version,
        env_var="LOCUST_MODEL_VERSION",
        help="ask for this version of digits (empty: let the split decide)",
    )
    group.add_argument(
        "--request-timeout",
        type=float,
        default=defaults.timeout_s,
        env_var="LOCUST_REQUEST_TIMEOUT",
        help="seconds one request may take (default %(default)s)",
    )
