from gateway.wire import tensorflow_serving_pb2 as _tensorflow_serving_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PredictRequestView(_message.Message):
    __slots__ = ("model_spec", "inputs", "output_filter")
    MODEL_SPEC_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FILTER_FIELD_NUMBER: _ClassVar[int]
    model_spec: _tensorflow_serving_pb2.ModelSpec
    inputs: _containers.RepeatedScalarFieldContainer[bytes]
    output_filter: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, model_spec: _Optional[_Union[_tensorflow_serving_pb2.ModelSpec, _Mapping]] = ..., inputs: _Optional[_Iterable[bytes]] = ..., output_filter: _Optional[_Iterable[str]] = ...) -> None: ...

class PredictResponseView(_message.Message):
    __slots__ = ("outputs", "model_spec")
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_SPEC_FIELD_NUMBER: _ClassVar[int]
    outputs: _containers.RepeatedScalarFieldContainer[bytes]
    model_spec: _tensorflow_serving_pb2.ModelSpec
    def __init__(self, outputs: _Optional[_Iterable[bytes]] = ..., model_spec: _Optional[_Union[_tensorflow_serving_pb2.ModelSpec, _Mapping]] = ...) -> None: ...

class InputRequestView(_message.Message):
    __slots__ = ("model_spec", "input")
    MODEL_SPEC_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    model_spec: _tensorflow_serving_pb2.ModelSpec
    input: bytes
    def __init__(self, model_spec: _Optional[_Union[_tensorflow_serving_pb2.ModelSpec, _Mapping]] = ..., input: _Optional[bytes] = ...) -> None: ...

class ResultResponseView(_message.Message):
    __slots__ = ("result", "model_spec")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    MODEL_SPEC_FIELD_NUMBER: _ClassVar[int]
    result: bytes
    model_spec: _tensorflow_serving_pb2.ModelSpec
    def __init__(self, result: _Optional[bytes] = ..., model_spec: _Optional[_Union[_tensorflow_serving_pb2.ModelSpec, _Mapping]] = ...) -> None: ...

class ModelInferRequestView(_message.Message):
    __slots__ = ("model_name", "model_version", "id", "parameters", "inputs", "outputs", "raw_input_contents")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    RAW_INPUT_CONTENTS_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: str
    id: str
    parameters: _containers.RepeatedScalarFieldContainer[bytes]
    inputs: _containers.RepeatedScalarFieldContainer[bytes]
    outputs: _containers.RepeatedScalarFieldContainer[bytes]
    raw_input_contents: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., id: _Optional[str] = ..., parameters: _Optional[_Iterable[bytes]] = ..., inputs: _Optional[_Iterable[bytes]] = ..., outputs: _Optional[_Iterable[bytes]] = ..., raw_input_contents: _Optional[_Iterable[bytes]] = ...) -> None: ...

class ModelInferResponseView(_message.Message):
    __slots__ = ("model_name", "model_version", "id", "parameters", "outputs", "raw_output_contents")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    RAW_OUTPUT_CONTENTS_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: str
    id: str
    parameters: _containers.RepeatedScalarFieldContainer[bytes]
    outputs: _containers.RepeatedScalarFieldContainer[bytes]
    raw_output_contents: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., id: _Optional[str] = ..., parameters: _Optional[_Iterable[bytes]] = ..., outputs: _Optional[_Iterable[bytes]] = ..., raw_output_contents: _Optional[_Iterable[bytes]] = ...) -> None: ...
