"""What every codec fuzz test shares: the invariant, the memory bound, and value strategies.

The invariant: a decoder either returns a valid request (tensors of their declared datatype, at
most ``MAX_RANK`` dimensions, within the limit) or raises one of the client errors it may raise
(``InvalidInput``, ``PayloadTooLarge``, and for TorchServe bodies ``UnsupportedMediaType``),
nothing else; it allocates at most ``memory_bound(body)`` on the way; and a valid request's
tensors can be written for every kind of backend, or refused the same way.
"""

from __future__ import annotations

import contextlib
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np
from hypothesis import event
from hypothesis import strategies as st

from gateway.codecs import oip_json, tfserving_json
from gateway.codecs.limits import MAX_RANK
from gateway.codecs.tfserving_grpc import predict_request_from_tensors
from gateway.errors import GatewayError, InvalidInput, PayloadTooLarge
from gateway.inference import DATATYPES, InferRequest, Tensor

LIMIT = 256 * 1024
"""``server.max_request_bytes`` of the fuzz: small, so that broadcasts reach it."""
CLIENT_ERRORS: tuple[type[GatewayError], ...] = (InvalidInput, PayloadTooLarge)

T = TypeVar("T")


def memory_bound(body: bytes) -> int:
    """What decoding ``body`` may allocate at most: tensors within the limit (and a copy while
    they are converted), plus parsed JSON, which Python holds in up to ~30 times its text."""
    return 4 * LIMIT + 64 * len(body) + 256 * 1024


@contextmanager
def traced() -> Iterator[None]:
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


def decoded_or_refused(
    decode: Callable[[], T], body: bytes, allowed: tuple[type[GatewayError], ...] = CLIENT_ERRORS
) -> T | None:
    """``decode()``'s result, or None if it raised an ``allowed`` error; anything else raises.
    Must run inside :func:`traced`: the example's peak allocation is held to the bound."""
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    result: T | None = None
    refusal: GatewayError | None = None
    try:
        result = decode()
    except allowed as error:
        refusal = error
    peak = tracemalloc.get_traced_memory()[1] - before
    assert peak <= memory_bound(body), f"decoding {len(body)} bytes allocated {peak}"
    assert refusal is None or refusal.message, "every refusal says what was wrong"
    event("decoded" if refusal is None else f"refused: {type(refusal).__name__}")
    return result


def check_tensors(tensors: list[Tensor]) -> None:
    """Tensors as the rest of the gateway expects them, and writable for every backend."""
    total = 0
    for tensor in tensors:
        assert isinstance(tensor.data, np.ndarray)
        assert tensor.data.ndim <= MAX_RANK
        assert tensor.data.dtype == DATATYPES[tensor.datatype], tensor.datatype
        assert tensor.data.flags.c_contiguous
        if tensor.datatype == "BYTES":
            assert all(isinstance(item, bytes) for item in tensor.data.flat)
        total += tensor.data.size * tensor.data.itemsize
    assert total <= LIMIT
    request = InferRequest("m")
    for encode in (
        lambda: oip_json.encode_request(request, tensors, LIMIT),
        lambda: oip_json.encode_binary_request(request, tensors, LIMIT),
        lambda: tfserving_json.encode_predict_request(tensors, "serving_default", LIMIT),
        lambda: predict_request_from_tensors(tensors, [], "m", 1, "serving_default", LIMIT),
    ):
        with contextlib.suppress(*CLIENT_ERRORS):
            encode()


# --- values ----------------------------------------------------------------------------------

SHAPE_DIMS = st.one_of(
    st.integers(0, 4), st.sampled_from([-1, -(2**40), 10**9, 2**31, 2**62, 2**63 - 1])
)
SHAPES = st.one_of(
    st.lists(st.integers(0, 4), max_size=4),
    st.lists(SHAPE_DIMS, max_size=4),
    st.lists(st.just(1), min_size=MAX_RANK - 1, max_size=MAX_RANK + 40),
)
NUMBERS = st.one_of(
    st.integers(-(2**64), 2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
)
JSON_SCALARS = st.one_of(st.none(), NUMBERS, st.text(max_size=6))
JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=12,
)
DATATYPE_NAMES = st.one_of(st.sampled_from(sorted(DATATYPES)), JSON_VALUES)


@st.composite
def nested_numbers(draw: st.DrawFn, shape: tuple[int, ...] | None = None) -> Any:
    """Numbers nested as ``shape`` (drawn when not given), sometimes of the wrong kind."""
    if shape is None:
        shape = tuple(draw(st.lists(st.integers(0, 3), max_size=3)))
    small_floats = st.floats(width=32, allow_nan=False, allow_infinity=False)
    leaves = draw(st.sampled_from([NUMBERS, st.integers(-300, 300), small_floats]))
    count = int(np.prod(shape)) if shape else 1
    flat = draw(st.lists(leaves, min_size=count, max_size=count))
    if not shape:
        return flat[0]
    return np.asarray(flat, dtype=object).reshape(shape).tolist()


@st.composite
def mutated(draw: st.DrawFn, body: bytes) -> bytes:
    """``body`` with a few bytes flipped, cut, inserted or repeated."""
    data = bytearray(body)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["flip", "cut", "insert", "repeat"]))
        if kind == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            del data[at : at + draw(st.integers(1, 8))]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            data[at:at] = data[at : at + draw(st.integers(1, 16))] * draw(st.integers(1, 8))
    return bytes(data)
