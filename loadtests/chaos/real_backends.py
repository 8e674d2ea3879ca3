"""A real TorchServe and the TF Serving stand-in (or TF Serving itself when installed) for the
scenarios about real backends: started early, waited on when first needed, the stand-in killed
with SIGKILL and restarted on the same ports."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploy.local.process import ManagedProcess, free_port
from deploy.local.tfserving import tfserving_process, write_model_config, write_monitoring_config
from deploy.local.torchserve import TorchServePorts, key_file, torchserve_process

REPO = Path(__file__).resolve().parents[2]
MODEL_STORE = REPO / "model_store"


@dataclass(frozen=True)
class TorchServeAt:
    """A TorchServe that is already running (the test session's)."""

    inference: str
    management: str
    key_file: Path | None


@dataclass
class RealBackends:
    run_dir: Path
    torchserve_at: TorchServeAt | None = None
    """Use this TorchServe instead of starting one."""
    own_torchserve: bool = True
    """Start a TorchServe if ``torchserve_at`` is not given by ``begin()`` (else it must be
    given before ``backends_config()``)."""
    tfserving: ManagedProcess | None = None
    _torchserve: ManagedProcess | None = None
    _ports: dict[str, int] = field(default_factory=dict)
    _started: bool = False

    def begin(self) -> None:
        """Start the processes (without waiting for them); again does nothing."""
        if self._started:
            return
        self._started = True
        tf_dir = self.run_dir / "tfserving"
        model_config = write_model_config(
            tf_dir / "models.config",
            MODEL_STORE / "tfserving" / "digits",
            versions=(1,),
            labels={},
        )
        self._ports.update(tf_grpc=free_port(), tf_rest=free_port())
        self.tfserving = tfserving_process(
            tf_dir,
            model_config,
            self._ports["tf_grpc"],
            self._ports["tf_rest"],
            write_monitoring_config(tf_dir / "monitoring.config"),
        )
        self.tfserving.start()
        if self.torchserve_at is None and self.own_torchserve:
            ports = TorchServePorts(*(free_port() for _ in range(5)))
            ts_dir = self.run_dir / "torchserve"
            self._torchserve = torchserve_process(
                ts_dir, MODEL_STORE / "torchserve", ports, models=("digits_v1.mar",)
            )
            self._torchserve.start()
            self.torchserve_at = TorchServeAt(
                f"http://127.0.0.1:{ports.inference}",
                f"http://127.0.0.1:{ports.management}",
                key_file(ts_dir),
            )

    def wait(self, timeout: float = 240) -> None:
        self.begin()
        assert self.tfserving is not None
        self.tfserving.wait_ready(timeout)
        if self._torchserve is not None:
            self._torchserve.wait_ready(timeout)

    def backends_config(self, **common: Any) -> dict[str, Any]:
        assert self.torchserve_at is not None
        torchserve: dict[str, Any] = {
            "kind": "torchserve",
            "inference": self.torchserve_at.inference,
            "management": self.torchserve_at.management,
            "metrics": None,
            "grpc": None,
            "protocol": "rest",
            **common,
        }
        if self.torchserve_at.key_file is not None:
            torchserve["key_file"] = str(self.torchserve_at.key_file)
        return {
            "tfserving": {
                "kind": "tfserving",
                "grpc": f"127.0.0.1:{self._ports['tf_grpc']}",
                "rest": f"http://127.0.0.1:{self._ports['tf_rest']}",
                "protocol": "grpc",
                **common,
            },
            "torchserve": torchserve,
        }

    def kill_tfserving(self) -> None:
        """SIGKILL to the whole process group: no goodbye on any connection."""
        assert self.tfserving is not None
        assert self.tfserving.popen is not None
        os.killpg(self.tfserving.popen.pid, signal.SIGKILL)
        self.tfserving.popen.wait()

    def restart_tfserving(self) -> None:
        assert self.tfserving is not None
        self.tfserving.start()

    def tfserving_ready(self) -> bool:
        assert self.tfserving is not None
        return self.tfserving.ready()

    def stop(self) -> None:
        for process in (self.tfserving, self._torchserve):
            if process is not None and process.popen is not None:
                process.stop()
