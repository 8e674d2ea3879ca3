"""Launch TensorFlow Serving for the local stack: the real binary when installed, else the stand-in.

``tensorflow_model_server`` cannot be installed everywhere (there is no wheel for it), so when it is
not on PATH the launcher runs ``deploy.local.tfserving_standin`` instead: a Python server that runs
the same SavedModels with TensorFlow and speaks the same gRPC and REST APIs. Both read the same
text-format ``ModelServerConfig``.

This module must not import TensorFlow: the stack starts it in processes that never need TF.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from deploy.local.process import ManagedProcess

STANDIN_NAME = "TF Serving stand-in"
REAL_BINARY = "tensorflow_model_server"
PROMETHEUS_PATH = "/monitoring/prometheus/metrics"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_LABELS: Mapping[str, int] = MappingProxyType({"stable": 1, "canary": 2})


@dataclass
class TextMessage:
    """A parsed protobuf text-format message: every field name maps to the values it was given."""

    fields: dict[str, list[str | int | float | bool | TextMessage]] = field(default_factory=dict)

    def values(self, name: str) -> list[str | int | float | bool | TextMessage]:
        return self.fields.get(name, [])

    def messages(self, name: str) -> list[TextMessage]:
        return [value for value in self.values(name) if isinstance(value, TextMessage)]

    def message(self, name: str) -> TextMessage | None:
        found = self.messages(name)
        return found[-1] if found else None

    def scalar(self, name: str) -> str | int | float | bool | None:
        found = [value for value in self.values(name) if not isinstance(value, TextMessage)]
        return found[-1] if found else None


class TextFormatError(ValueError):
    """The text is not protobuf text format (of the subset model and monitoring configs use)."""


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<comment>\#[^\n]*)
      | (?P<punct>[{}<>:\[\],;])
      | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
      | (?P<word>[A-Za-z0-9_.+\-]+)
    )""",
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "'": "'", "\\": "\\"}
_CLOSING = {"{": "}", "<": ">"}


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            if text[position:].strip():
                raise TextFormatError(
                    f"unexpected text at offset {position}: {text[position:][:20]!r}"
                )
            break
        position = match.end()
        if match.lastgroup != "comment":
            tokens.append(match.group(match.lastgroup or ""))
    return tokens


def _unquote(token: str) -> str:
    body = token[1:-1]
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


def _scalar(token: str) -> str | int | float | bool:
    if token[0] in "\"'":
        return _unquote(token)
    if token in ("true", "True"):
        return True
    if token in ("false", "False"):
        return False
    try:
        return int(token, 0)
    except ValueError:
        pass
    try:
        return float(token)
    except ValueError:
        return token  # an enum value name


class _Parser:
    def __init__(self, tokens: list[str]) -> None:
        self._tokens = tokens
        self._index = 0

    def _peek(self) -> str | None:
        return self._tokens[self._index] if self._index < len(self._tokens) else None

    def _next(self) -> str:
        token = self._peek()
        if token is None:
            raise TextFormatError("unexpected end of text")
        self._index += 1
        return token

    def message(self, closing: str | None) -> TextMessage:
        result = TextMessage()
        while (token := self._peek()) != closing:
            if token is None:
                raise TextFormatError(f"missing {closing!r}")
            name = self._next()
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise TextFormatError(f"expected a field name, got {name!r}")
            result.fields.setdefault(name, []).extend(self._field_values())
            if self._peek() in (",", ";"):
                self._next()
        if closing is not None:
            self._next()
        return result

    def _field_values(self) -> list[str | int | float | bool | TextMessage]:
        has_colon = self._peek() == ":"
        if has_colon:
            self._next()
        token = self._next()
        if token in _CLOSING:
            return [self.message(_CLOSING[token])]
        if token == "[":
            return self._list()
        if not has_colon:
            raise TextFormatError(f"expected ':' before {token!r}")
        return [_scalar(token)]

    def _list(self) -> list[str | int | float | bool | TextMessage]:
        values: list[str | int | float | bool | TextMessage] = []
        while (token := self._next()) != "]":
            if token == ",":
                continue
            values.append(self.message(_CLOSING[token]) if token in _CLOSING else _scalar(token))
        return values


def parse_text_format(text: str) -> TextMessage:
    """Parse protobuf text format without the message's schema (field names are not checked)."""
    return _Parser(_tokens(text)).message(None)


@dataclass(frozen=True)
class ModelEntry:
    """One ``config`` block of a ``model_config_list``; no versions means every version on disk."""

    name: str
    base_path: Path
    versions: Sequence[int] = ()
    labels: Mapping[str, int] = field(default_factory=dict)


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def render_model_config(entries: Sequence[ModelEntry]) -> str:
    """Text-format ``ModelServerConfig`` for these models, with absolute base paths."""
    lines = ["model_config_list {"]
    for entry in entries:
        lines += [
            "  config {",
            f"    name: {_quote(entry.name)}",
            f"    base_path: {_quote(str(entry.base_path.resolve()))}",
            '    model_platform: "tensorflow"',
            "    model_version_policy {",
        ]
        if entry.versions:
            lines += ["      specific {"]
            lines += [f"        versions: {version}" for version in entry.versions]
            lines += ["      }"]
        else:
            lines += ["      all {}"]
        lines += ["    }"]
        for label, version in entry.labels.items():
            lines += [
                "    version_labels {",
                f"      key: {_quote(label)}",
                f"      value: {version}",
                "    }",
            ]
        lines += ["  }"]
    lines += ["}"]
    return "\n".join(lines) + "\n"


def write_model_config(
    path: Path,
    base_path: Path,
    model_name: str = "digits",
    versions: Sequence[int] = (1, 2),
    labels: Mapping[str, int] = DEFAULT_LABELS,
) -> Path:
    """Write a one-model config file; TF Serving wants an absolute ``base_path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = ModelEntry(model_name, base_path, tuple(versions), dict(labels))
    path.write_text(render_model_config([entry]))
    return path


def write_monitoring_config(path: Path) -> Path:
    """Write a ``MonitoringConfig`` that turns on Prometheus metrics at the usual path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'prometheus_config {{\n  enable: true\n  path: "{PROMETHEUS_PATH}"\n}}\n')
    return path


@dataclass(frozen=True)
class ConfiguredModel:
    """What a model config asks for, enough to tell when the server has loaded it."""

    name: str
    base_path: Path
    policy: str  # "latest", "all" or "specific"
    versions: tuple[int, ...]  # the listed ones for "specific", else empty
    num_latest: int = 1

    def expected_versions(self) -> set[int]:
        """Versions the server should report AVAILABLE, looking at the disk for all/latest."""
        if self.policy == "specific":
            return set(self.versions)
        on_disk = sorted(_numeric_subdirs(self.base_path))
        return set(on_disk if self.policy == "all" else on_disk[-self.num_latest :])


def _numeric_subdirs(base_path: Path) -> list[int]:
    if not base_path.is_dir():
        return []
    # Version directories only, named in ASCII digits, as the server itself reads them.
    return [
        int(child.name)
        for child in base_path.iterdir()
        if child.is_dir() and child.name.isascii() and child.name.isdigit()
    ]


def _policy(config: TextMessage) -> tuple[str, tuple[int, ...], int]:
    policy = config.message("model_version_policy")
    if policy is None:
        return "latest", (), 1
    specific = policy.message("specific")
    if specific is not None:
        return "specific", tuple(int(str(v)) for v in specific.values("versions")), 1
    if policy.message("all") is not None:
        return "all", (), 1
    latest = policy.message("latest")
    num = latest.scalar("num_versions") if latest is not None else None
    return "latest", (), max(int(num or 1), 1)


def configured_models(model_config_file: Path) -> list[ConfiguredModel]:
    """The models (and version policies) of a text-format ``ModelServerConfig`` file."""
    root = parse_text_format(model_config_file.read_text())
    config_list = root.message("model_config_list")
    models: list[ConfiguredModel] = []
    for config in config_list.messages("config") if config_list else []:
        policy, versions, num_latest = _policy(config)
        models.append(
            ConfiguredModel(
                name=str(config.scalar("name") or ""),
                base_path=Path(str(config.scalar("base_path") or "")),
                policy=policy,
                versions=versions,
                num_latest=num_latest,
            )
        )
    return models


def available_versions(rest_url: str, model_name: str, timeout: float = 1.0) -> set[int]:
    """Versions that ``GET /v1/models/<name>`` reports AVAILABLE; empty if it cannot be asked."""
    try:
        with urllib.request.urlopen(f"{rest_url}/v1/models/{model_name}", timeout=timeout) as r:
            status = json.loads(r.read())
    except (urllib.error.URLError, OSError, ValueError):
        return set()
    return {
        int(entry["version"])
        for entry in status.get("model_version_status", [])
        if entry.get("state") == "AVAILABLE"
    }


def models_ready(rest_url: str, models: Sequence[ConfiguredModel]) -> bool:
    for model in models:
        expected = model.expected_versions()
        available = available_versions(rest_url, model.name)
        if not available or not expected <= available:
            return False
    return True


def uses_real_tfserving() -> bool:
    return shutil.which(REAL_BINARY) is not None


def _server_flags(
    model_config_file: Path, grpc_port: int, rest_port: int, monitoring_config_file: Path | None
) -> list[str]:
    flags = [
        f"--port={grpc_port}",
        f"--rest_api_port={rest_port}",
        f"--model_config_file={model_config_file.resolve()}",
        # The real server refuses labels of versions still loading when it reads the config at
        # start-up, which is always the case there; the stand-in takes the flag too.
        "--allow_version_labels_for_unavailable_models=true",
    ]
    if monitoring_config_file is not None:
        flags.append(f"--monitoring_config_file={monitoring_config_file.resolve()}")
    return flags


def tfserving_process(
    run_dir: Path,
    model_config_file: Path,
    grpc_port: int = 8500,
    rest_port: int = 8501,
    monitoring_config_file: Path | None = None,
) -> ManagedProcess:
    """TF Serving (real or stand-in) on these ports, ready once every configured version is up."""
    if rest_port <= 0:
        raise ValueError("the readiness check needs the REST API: give a rest_port")
    flags = _server_flags(model_config_file, grpc_port, rest_port, monitoring_config_file)
    real = shutil.which(REAL_BINARY)
    if real is not None:
        argv = [real, *flags]
    else:
        argv = [sys.executable, "-m", "deploy.local.tfserving_standin", *flags]
    return ManagedProcess(
        name="tfserving",
        argv=argv,
        run_dir=run_dir,
        ready=_readiness(f"http://127.0.0.1:{rest_port}", configured_models(model_config_file)),
        cwd=REPO_ROOT,
    )


def _readiness(rest_url: str, models: Sequence[ConfiguredModel]) -> Callable[[], bool]:
    def ready() -> bool:
        return models_ready(rest_url, models)

    return ready
