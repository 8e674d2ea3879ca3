"""Our TF Serving messages against the official tensorflow-serving-api package, byte for byte."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2 as official_metadata
from tensorflow_serving.apis import get_model_status_pb2 as official_status
from tensorflow_serving.apis import predict_pb2 as official_predict

from gateway.codecs.limits import Budget
from gateway.codecs.tfserving_metadata import metadata_from_signature_map
from gateway.codecs.tfserving_tensor import from_tensor_proto, to_tensor_proto
from gateway.inference import Tensor
from gateway.wire import tensorflow_pb2 as ours_tf
from gateway.wire import tensorflow_serving_pb2 as ours

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.mark.parametrize(
    ("datatype", "values"),
    [
        ("FP32", np.linspace(0, 1, 12, dtype=np.float32)),
        ("FP64", np.linspace(0, 1, 12)),
        ("INT64", np.arange(12, dtype=np.int64)),
        ("INT32", np.arange(12, dtype=np.int32)),
        ("UINT8", np.arange(12, dtype=np.uint8)),
        ("BOOL", np.arange(12) % 2 == 0),
        ("FP16", np.linspace(0, 1, 12, dtype=np.float16)),
    ],
)
def test_predict_request_is_read_by_the_official_package(datatype, values):
    mine = ours.PredictRequest()
    mine.model_spec.name = "digits"
    mine.model_spec.version.value = 2
    mine.model_spec.signature_name = "serving_default"
    to_tensor_proto(Tensor("input", datatype, values.reshape(3, 4)), mine.inputs["input"])
    theirs = official_predict.PredictRequest.FromString(mine.SerializeToString())
    assert theirs.model_spec.name == "digits"
    assert theirs.model_spec.version.value == 2
    np.testing.assert_array_equal(tf.make_ndarray(theirs.inputs["input"]), values.reshape(3, 4))


def test_string_tensor_is_read_by_the_official_package():
    data = np.empty(2, dtype=object)
    data[:] = [b"a", b"bc"]
    mine = ours.PredictRequest()
    to_tensor_proto(Tensor("s", "BYTES", data), mine.inputs["s"])
    theirs = official_predict.PredictRequest.FromString(mine.SerializeToString())
    assert tf.make_ndarray(theirs.inputs["s"]).tolist() == [b"a", b"bc"]


@pytest.mark.parametrize("use_content", [True, False])
def test_official_predict_response_is_read_by_ours(use_content):
    expected = np.random.default_rng(0).random((2, 10)).astype(np.float32)
    theirs = official_predict.PredictResponse()
    theirs.model_spec.name = "digits"
    theirs.model_spec.version.value = 1
    if use_content:
        theirs.outputs["probabilities"].CopyFrom(tf.make_tensor_proto(expected))
    else:
        proto = theirs.outputs["probabilities"]
        proto.dtype = tf.float32.as_datatype_enum
        for size in expected.shape:
            proto.tensor_shape.dim.add().size = size
        proto.float_val.extend(expected.ravel().tolist())
    mine = ours.PredictResponse.FromString(theirs.SerializeToString())
    assert mine.model_spec.version.value == 1
    tensor = from_tensor_proto("probabilities", mine.outputs["probabilities"], Budget(1 << 20))
    assert tensor.datatype == "FP32"
    np.testing.assert_array_equal(tensor.data, expected)


def test_official_metadata_response_is_read_by_ours():
    theirs = official_metadata.GetModelMetadataResponse()
    signature_map = official_metadata.SignatureDefMap()
    signature = signature_map.signature_def["serving_default"]
    signature.method_name = "tensorflow/serving/predict"
    tensor_in = signature.inputs["input"]
    tensor_in.name = "serving_default_input:0"
    tensor_in.dtype = tf.float32.as_datatype_enum
    tensor_in.tensor_shape.dim.add().size = -1
    tensor_in.tensor_shape.dim.add().size = 64
    tensor_out = signature.outputs["probabilities"]
    tensor_out.dtype = tf.float32.as_datatype_enum
    tensor_out.tensor_shape.dim.add().size = -1
    tensor_out.tensor_shape.dim.add().size = 10
    theirs.metadata["signature_def"].Pack(signature_map)
    mine = ours.GetModelMetadataResponse.FromString(theirs.SerializeToString())
    packed = mine.metadata["signature_def"]
    assert packed.type_url == "type.googleapis.com/tensorflow.serving.SignatureDefMap"
    metadata = metadata_from_signature_map(
        ours.SignatureDefMap.FromString(packed.value), "serving_default", "tfs"
    )
    assert [(s.name, s.datatype, s.shape) for s in metadata.inputs] == [("input", "FP32", (-1, 64))]
    assert [(s.name, s.datatype, s.shape) for s in metadata.outputs] == [
        ("probabilities", "FP32", (-1, 10))
    ]


def test_official_status_response_is_read_by_ours():
    theirs = official_status.GetModelStatusResponse()
    status = theirs.model_version_status.add()
    status.version = 2
    status.state = official_status.ModelVersionStatus.AVAILABLE
    mine = ours.GetModelStatusResponse.FromString(theirs.SerializeToString())
    assert mine.model_version_status[0].state == ours.ModelVersionStatus.State.AVAILABLE


def test_descriptors_do_not_clash_with_tensorflow():
    assert ours_tf.TensorProto.DESCRIPTOR.full_name == "gateway.wire.tensorflow.TensorProto"
    assert tf.make_tensor_proto(np.zeros(1)).DESCRIPTOR.full_name == "tensorflow.TensorProto"
