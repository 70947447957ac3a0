"""KServe v2 tensors on the worker side: numpy views of input payloads, outputs to bytes.

Imported only when a deployment serves `infer`, so numpy is needed only then.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ._protocol import ProtocolError

_NUMPY_TYPES = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
_KSERVE_TYPES = {dtype: name for name, dtype in _NUMPY_TYPES.items()}


def item_inputs(item: dict[str, Any], payload: Callable[[Any], memoryview]) -> Any:
    """An `infer` item's inputs as {name: array}, or the TypeError/ValueError of a bad one.

    `payload` gives the bytes of a buffer reference (ProtocolError for a bad reference).
    """
    tensors = item.get("inputs")
    if not isinstance(tensors, list) or not all(isinstance(t, dict) for t in tensors):
        raise ProtocolError("an infer item needs a list of input objects")
    arrays = {}
    for tensor in tensors:
        data = payload(tensor.get("data"))
        name = str(tensor.get("name"))
        try:
            arrays[name] = input_array(name, tensor.get("datatype"), tensor.get("shape"), data)
        except (TypeError, ValueError) as exc:
            return exc
    return arrays


def item_outputs(result: Any, names: list[str]) -> list[tuple[str, str, list[int], memoryview]]:
    """(name, datatype, shape, bytes) of each output of `infer`'s result that was asked for
    (all of them when none was named); TypeError/ValueError when the result does not fit."""
    if not isinstance(result, dict):
        raise TypeError(
            f"infer() must return a dict of output name to numpy array, got {type(result).__name__}"
        )
    for name in names:
        if name not in result:
            raise ValueError(f"infer() returned no output '{name}' (it returned {sorted(result)})")
    selected = names or [str(name) for name in result]
    return [(name, *output_tensor(name, result[name])) for name in selected]


def input_array(name: str, datatype: Any, shape: Any, data: memoryview) -> np.ndarray:
    """A read-only array viewing `data` (no copy); TypeError/ValueError when they disagree."""
    dtype = _NUMPY_TYPES.get(datatype)
    if dtype is None:
        raise TypeError(
            f"input '{name}' has datatype {datatype!r}; supported: {', '.join(_NUMPY_TYPES)}"
        )
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise ValueError(f"input '{name}' has an invalid shape {shape!r}")
    expected = math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(
            f"input '{name}' of shape {shape} and datatype {datatype} needs {expected} bytes, "
            f"got {len(data)}"
        )
    array = np.frombuffer(data, dtype=dtype).reshape(shape)
    array.flags.writeable = False  # a view of the replica's half: user code must not write it
    return array


def output_tensor(name: str, value: Any) -> tuple[str, list[int], memoryview]:
    """(datatype, shape, little-endian row-major bytes) of one output; TypeError if unsupported."""
    array = np.asarray(value)
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    datatype = _KSERVE_TYPES.get(array.dtype)
    if datatype is None:
        raise TypeError(
            f"output '{name}' has dtype {array.dtype}, which has no KServe datatype "
            f"(supported: {', '.join(_NUMPY_TYPES)})"
        )
    flat = np.ascontiguousarray(array).reshape(-1)
    return datatype, list(array.shape), memoryview(flat.view(np.uint8))
