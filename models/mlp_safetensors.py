"""Write, read and run the MLP safetensors files the replica loads (kind: mlp).

File layout (safetensors, F32 only here):
  8 bytes   little-endian uint64 N, the header length
  N bytes   JSON header, padded with trailing spaces so that N is a multiple of 8:
              {"__metadata__": {<string>: <string>, ...},
               "layers.0.weight": {"dtype": "F32", "shape": [out, in], "data_offsets": [b, e]},
               "layers.0.bias":   {"dtype": "F32", "shape": [out],     "data_offsets": [b, e]},
               "layers.1.weight": ...}
  rest      the raw little-endian float32 bytes; data_offsets are relative to the start of this
            section, tensors packed without gaps in layer order (weight, then bias, per layer).

Forward pass: h = relu(h @ W.T + b) for every layer but the last; the last is followed by
softmax when __metadata__["output_activation"] == "softmax" (the default), nothing for "none".

Plain json + struct + numpy, no dependency on the `safetensors` package.
"""
import json
import struct

import numpy as np


def _layer_names(i):
    return f"layers.{i}.weight", f"layers.{i}.bias"


def write_mlp(path, layers, metadata, chunk_writer=None):
    """Write `layers`, a list of (weight [out, in], bias [out]) pairs, to `path`.

    Arrays are converted to little-endian float32. `metadata` values must be strings.
    Returns the header dict that was written (without padding).
    """
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"metadata {key!r}: keys and values must be strings")
    header = {"__metadata__": dict(metadata)}
    offset = 0
    prev_out = None
    arrays = []
    for i, (weight, bias) in enumerate(layers):
        weight = np.ascontiguousarray(weight, dtype="<f4")
        bias = np.ascontiguousarray(bias, dtype="<f4")
        if weight.ndim != 2 or bias.ndim != 1 or bias.shape[0] != weight.shape[0]:
            raise ValueError(f"layer {i}: weight {weight.shape} / bias {bias.shape} do not match")
        if prev_out is not None and weight.shape[1] != prev_out:
            raise ValueError(f"layer {i}: {weight.shape[1]} inputs but layer {i - 1} has {prev_out} outputs")
        if not (np.isfinite(weight).all() and np.isfinite(bias).all()):
            raise ValueError(f"layer {i}: non-finite values")
        prev_out = weight.shape[0]
        for name, arr in zip(_layer_names(i), (weight, bias)):
            header[name] = {
                "dtype": "F32",
                "shape": [int(d) for d in arr.shape],
                "data_offsets": [offset, offset + arr.nbytes],
            }
            offset += arr.nbytes
            arrays.append(arr)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for arr in arrays:
            f.write(arr.tobytes(order="C"))
    return header


def read_mlp(path):
    """Read a file written by write_mlp: returns (metadata dict, [(weight, bias), ...]) as float32."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack_from("<Q", blob, 0)
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = memoryview(blob)[8 + n:]
    metadata = header.pop("__metadata__", {})
    layers = []
    i = 0
    while _layer_names(i)[0] in header:
        pair = []
        for name in _layer_names(i):
            entry = header.pop(name)
            assert entry["dtype"] == "F32", (name, entry["dtype"])
            b, e = entry["data_offsets"]
            arr = np.frombuffer(data[b:e], dtype="<f4").reshape(entry["shape"])
            pair.append(arr)
        layers.append(tuple(pair))
        i += 1
    if header:
        raise ValueError(f"{path}: tensors outside the layers.<i> sequence: {sorted(header)}")
    return metadata, layers


def forward(layers, x, softmax=True, dtype=np.float64):
    """Reference forward pass in `dtype`: relu between layers, optional softmax at the end."""
    h = np.asarray(x, dtype=dtype)
    for i, (weight, bias) in enumerate(layers):
        h = h @ np.asarray(weight, dtype=dtype).T + np.asarray(bias, dtype=dtype)
        if i + 1 < len(layers):
            h = np.maximum(h, 0)
    if softmax:
        h = h - h.max(axis=-1, keepdims=True)
        h = np.exp(h)
        h = h / h.sum(axis=-1, keepdims=True)
    return h
