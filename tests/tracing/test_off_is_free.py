"""With tracing off, no worker loads the SDK or the exporter."""

import os
import subprocess
import sys
import textwrap

CODE = textwrap.dedent(
    """
    import sys
    import gateway.grpc.server, gateway.http.app, gateway.server
    from gateway.app import Gateway
    from gateway.config import parse_config

    variant = {"name": "a1", "backend": "a", "version": 1, "weight": 1}
    config = parse_config({
        "server": {"http": {"port": 0}, "grpc": None},
        "backends": {"a": {"kind": "oip", "url": "http://127.0.0.1:9"}},
        "models": {"m": {"variants": [variant]}},
    })
    assert Gateway(config).observer.tracer is None
    loaded = ("opentelemetry.sdk", "opentelemetry.exporter")
    print(sorted(name for name in sys.modules if name.startswith(loaded)))
    """
)


def test_a_gateway_without_tracing_loads_no_sdk():
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    out = subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == "[]"
