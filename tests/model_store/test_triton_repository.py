"""The Triton model repository the build writes: its config, through Triton's own message, and
its ONNX graphs, through the ``onnx`` checker. (That they load in the ONNX Runtime the image ships
and answer as TorchScript does is test_image_frameworks.py.)"""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from model_store import triton
from model_store.digits import INPUT_NAME, NUM_CLASSES, NUM_FEATURES, OUTPUT_NAME

REPOSITORY = Path(__file__).resolve().parents[2] / "model_store" / "triton"
ON_DISK = ("1", "2", "3", "4")


def config() -> model_config_pb2.ModelConfig:
    text = (REPOSITORY / "digits" / "config.pbtxt").read_text()
    return text_format.Parse(text, model_config_pb2.ModelConfig())


def test_config_serves_versions_1_and_2_of_digits_on_onnx_runtime():
    model = config()
    assert model.name == "digits"
    assert model.backend == "onnxruntime"
    assert list(model.version_policy.specific.versions) == [1, 2]
    assert model.max_batch_size == 0  # so the batch dimension is in dims, and unbounded
    (tensor_in,) = model.input
    (tensor_out,) = model.output
    float32 = model_config_pb2.DataType.Value("TYPE_FP32")
    assert (tensor_in.name, tensor_in.data_type, list(tensor_in.dims)) == (
        INPUT_NAME,
        float32,
        [-1, NUM_FEATURES],
    )
    assert (tensor_out.name, tensor_out.data_type, list(tensor_out.dims)) == (
        OUTPUT_NAME,
        float32,
        [-1, NUM_CLASSES],
    )


def test_the_parser_refuses_a_misspelt_field():
    with pytest.raises(text_format.ParseError, match="versoin_policy"):
        text_format.Parse('name: "digits"\nversoin_policy: {}', model_config_pb2.ModelConfig())


def test_every_version_is_on_disk_and_only_the_configured_ones_are_served():
    directories = sorted(p.name for p in (REPOSITORY / "digits").iterdir() if p.is_dir())
    assert directories == list(ON_DISK)
    served = {str(v) for v in config().version_policy.specific.versions}
    assert served < set(directories)
    assert served == set(triton.SERVED_VERSIONS)


@pytest.mark.parametrize("version", ON_DISK)
def test_graphs_check_and_pin_an_old_enough_opset(version):
    model = onnx.load(str(REPOSITORY / "digits" / version / "model.onnx"))
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version == triton.IR_VERSION
    assert [(o.domain, o.version) for o in model.opset_import] == [("", triton.OPSET)]
    assert model.model_version == int(version)
    (graph_in,) = model.graph.input
    (graph_out,) = model.graph.output
    assert graph_in.name == INPUT_NAME
    assert graph_out.name == OUTPUT_NAME
    dims = [d.dim_value or d.dim_param for d in graph_in.type.tensor_type.shape.dim]
    assert dims == ["batch", NUM_FEATURES]
    assert [node.op_type for node in model.graph.node][-1] == "Softmax"
