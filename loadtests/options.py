"""The load test's own Locust options, on the command line, in the web UI and as ``LOCUST_*``.

``add_options`` is an ``init_command_line_parser`` listener; ``Settings.of`` reads what a user
needs from the parsed options (defaults when Locust runs as a library without them). Each option
is added with the parser's own ``add_argument``: Locust marks only those for its web UI (an
argparse group's ``add_argument`` would bypass it, and the start form would not show them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loadtests.expected import DEFAULT_TOLERANCE
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
    tolerance: float = DEFAULT_TOLERANCE

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
            tolerance=float(options.reference_tolerance),
        )
        if settings.batch_size < 1:
            raise ValueError(f"--batch-size must be at least 1, got {settings.batch_size}")
        if not 0.0 <= settings.anonymous_share <= 1.0:
            share = settings.anonymous_share
            raise ValueError(f"--anonymous-share must lie in [0, 1], got {share}")
        if settings.tolerance < 0:
            raise ValueError(f"--reference-tolerance must be >= 0, got {settings.tolerance}")
        return settings


def add_options(parser: Any, **_: Any) -> None:
    """The options, each with a help text that reads the same in ``--help`` and the web UI
    (which shows it as it is: no ``%(default)s``, the form shows the value)."""
    defaults = Settings()

    def option(name: str, help_text: str, **kwargs: Any) -> None:
        variable = "LOCUST_" + name.removeprefix("--").replace("-", "_").upper()
        parser.add_argument(name, env_var=variable, help=help_text, **kwargs)

    option(
        "--grpc-target", "host:port of the gateway's gRPC front end", default=defaults.grpc_target
    )
    option(
        "--load-shape",
        "constant; ramp: up to --users over 4/5 of the run; spike: all for its middle fifth",
        choices=SHAPES,
        default="constant",
    )
    option("--batch-size", "digits per request", type=int, default=defaults.batch_size)
    option(
        "--user-rate",
        "requests per second per user, at most (0: no pause)",
        type=float,
        default=defaults.user_rate,
    )
    option(
        "--anonymous-share",
        "share of requests sent without x-user-id, split by weight "
        "alone; the others stick to one variant per user",
        type=float,
        default=defaults.anonymous_share,
    )
    option(
        "--model-version",
        "ask for this version of digits (empty: the split decides)",
        default=defaults.model_version,
    )
    option(
        "--request-timeout", "seconds one request may take", type=float, default=defaults.timeout_s
    )
    option(
        "--reference-tolerance",
        "most an answer may differ from the served version's own output (absolute)",
        type=float,
        default=defaults.tolerance,
    )
