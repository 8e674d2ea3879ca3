import grpc
import pytest

from gateway import errors
from gateway.http.errors import TORCHSERVE_TYPES


def all_error_classes():
    found, stack = [], [errors.GatewayError]
    while stack:
        cls = stack.pop()
        found.append(cls)
        stack.extend(cls.__subclasses__())
    return found


@pytest.mark.parametrize("cls", all_error_classes(), ids=lambda c: c.__name__)
def test_every_error_maps_in_both_tables(cls):
    error = cls("boom")
    assert errors.http_status(error) in range(400, 600)
    assert isinstance(errors.grpc_status(error), grpc.StatusCode)


def test_tables_cover_every_code_and_agree_on_class():
    assert set(errors.HTTP_STATUS) == set(errors.ErrorCode) == set(errors.GRPC_STATUS)
    assert set(TORCHSERVE_TYPES) == set(errors.ErrorCode)  # TorchServe's API renders them all
    for code, status in errors.HTTP_STATUS.items():
        grpc_code = errors.GRPC_STATUS[code]
        if status >= 500:
            assert grpc_code in {
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.DEADLINE_EXCEEDED,
                grpc.StatusCode.INTERNAL,
            }
        else:
            assert grpc_code not in {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL}


def test_backend_faults_are_5xx():
    assert errors.http_status(errors.BackendError("x")) == 502
    assert errors.http_status(errors.BackendUnavailable("x")) == 503
    assert errors.http_status(errors.BackendTimeout("x")) == 504
    assert errors.grpc_status(errors.BackendTimeout("x")) == grpc.StatusCode.DEADLINE_EXCEEDED
