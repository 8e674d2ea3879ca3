"""The gateway never imports TensorFlow or PyTorch: a worker would pay seconds and 100s of MB.
Nor matplotlib (the ``report`` extra): only ``gateway report``'s plotting modules load it."""

import subprocess
import sys

MODULES = [
    "gateway.cli", "gateway.server", "gateway.app", "gateway.grpc.server", "gateway.http.app",
    "gateway.backends.tfserving_grpc", "gateway.backends.tfserving_rest",
    "gateway.backends.torchserve_rest", "gateway.backends.torchserve_grpc",
    "gateway.backends.oip_rest", "gateway.wire.reflection",
    "gateway.rollout.controller", "gateway.rollout.server", "gateway.rollout.daemon",
    "gateway.report.cli", "gateway.report.collect", "gateway.report.text",
]  # fmt: skip
HEAVY = ["tensorflow", "tensorflow_serving", "torch", "tritonclient", "keras", "matplotlib"]


def test_gateway_modules_import_no_model_runtime():
    code = (
        f"import importlib, sys\nfor m in {MODULES!r}: importlib.import_module(m)\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
