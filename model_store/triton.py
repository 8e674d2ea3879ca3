"""The Triton model repository for ``digits``: ONNX graphs and the model configuration.

``python -m model_store.build`` calls ``write_repository`` with the same dense layers it exports to
TF Serving, and gets ``triton/digits/config.pbtxt`` and ``triton/digits/<N>/model.onnx`` for every
version. Triton's ONNX Runtime backend serves them: input ``input`` FP32 ``[-1, 64]``, output
``probabilities`` FP32 ``[-1, 10]``, versions 1 and 2 (``version_policy``), with 3 and 4 on disk
for a later deploy (add them to ``versions``).

Each graph is ``Gemm`` (with ``transB``, so the weights stay in PyTorch's ``[out, in]`` layout)
per layer, ``Relu`` between layers and ``Softmax`` over the classes. The opset and IR version are
fixed rather than the ``onnx`` package's newest, so that the files load in the ONNX Runtime that
the pinned Triton image ships (deploy/image_python.py, ``TRITON``): opset 17 and IR 8 are read by
every ONNX Runtime since 1.14.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from model_store.digits import INPUT_NAME, NUM_CLASSES, NUM_FEATURES, OUTPUT_NAME
from model_store.layers import Layer

MODEL_NAME = "digits"
SERVED_VERSIONS = ("1", "2")
OPSET = 17
IR_VERSION = 8
MODEL_FILE = "model.onnx"
CONFIG_FILE = "config.pbtxt"


def onnx_graph(layers: Sequence[Layer], version: str) -> bytes:
    """One version's network as a serialized, checked ONNX model (the same bytes every build)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, initializers = [], []
    x = INPUT_NAME
    for index, layer in enumerate(layers):
        weight, bias = f"layer{index}.weight", f"layer{index}.bias"
        initializers += [
            numpy_helper.from_array(layer.weight, weight),
            numpy_helper.from_array(layer.bias, bias),
        ]
        logits = f"layer{index}.output"
        nodes.append(helper.make_node("Gemm", [x, weight, bias], [logits], transB=1))
        x = logits
        if index < len(layers) - 1:
            x = f"layer{index}.relu"
            nodes.append(helper.make_node("Relu", [logits], [x]))
    nodes.append(helper.make_node("Softmax", [x], [OUTPUT_NAME], axis=1))
    graph = helper.make_graph(
        nodes,
        f"{MODEL_NAME}_v{version}",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", NUM_FEATURES])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", NUM_CLASSES])],
        initializer=initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="gateway model_store",
        model_version=int(version),
        doc_string=f"{MODEL_NAME} version {version}: softmax probabilities of the 10 digits",
    )
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString(deterministic=True)


def config_text(served: Sequence[str] = SERVED_VERSIONS) -> str:
    """``config.pbtxt`` (text-format ``inference.ModelConfig``) serving the ``served`` versions."""
    versions = ", ".join(served)
    return f"""\
# digits for Triton, written by `python -m model_store.build` (see model_store/triton.py).
name: "{MODEL_NAME}"
backend: "onnxruntime"
# 0: the batch dimension is part of the shapes below and any batch size is accepted, as the
# gateway forwards its clients' batches unchanged. (Dynamic batching would need a positive
# max_batch_size, which also caps what one request may carry.)
max_batch_size: 0
# The versions served side by side; the others on disk wait for a deploy that adds them here.
version_policy: {{ specific: {{ versions: [{versions}] }} }}
input [
  {{
    name: "{INPUT_NAME}"
    data_type: TYPE_FP32
    dims: [ -1, {NUM_FEATURES} ]
  }}
]
output [
  {{
    name: "{OUTPUT_NAME}"
    data_type: TYPE_FP32
    dims: [ -1, {NUM_CLASSES} ]
  }}
]
# No instance_group: one instance on each GPU the container sees, or on the CPU without one.
"""


def write_model(target: Path, layers: Sequence[Layer], version: str) -> Path:
    """``target/<version>/model.onnx``; returns the version directory."""
    directory = target / version
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MODEL_FILE).write_bytes(onnx_graph(layers, version))
    return directory


def write_config(target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    path = target / CONFIG_FILE
    path.write_text(config_text())
    return path
