"""The digits classifier as a Ray Serve deployment, in plain numpy.

Written as a Ray Serve user would write it; the only line that differs from Ray is the import
of `serve`. Text in, text out over HTTP:

    curl -s localhost:8000/classify -d '{"pixels": [0, 0, 7, 16, ...64 values]}'
    {"digit": 2, "probability": 0.9992}

and KServe v2 tensors through `infer` (POST /v2/models/digits_py/infer, or Triton's clients).
"""

import json
import os
import struct

import numpy as np

from haproxy_serve import serve  # with Ray: from ray import serve


def load_mlp(path):
    """The layers of an MLP safetensors file (models/mlp_safetensors.py): [(W [out, in], b)]."""
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        if header_len > os.path.getsize(path) - 8:
            raise ValueError(f"{path}: header length {header_len} is past the end of the file")
        header = json.loads(f.read(header_len))
        data = f.read()
    layers = []
    i = 0
    while f"layers.{i}.weight" in header:
        tensors = []
        for name in (f"layers.{i}.weight", f"layers.{i}.bias"):
            begin, end = header[name]["data_offsets"]
            tensors.append(np.frombuffer(data[begin:end], dtype="<f4").reshape(header[name]["shape"]))
        layers.append(tuple(tensors))
        i += 1
    if not layers:
        raise ValueError(f"{path}: no layers.0.weight tensor")
    return layers


def forward(layers, x):
    """ReLU after every layer but the last, softmax after the last."""
    for k, (weight, bias) in enumerate(layers):
        x = x @ weight.T + bias
        if k < len(layers) - 1:
            x = np.maximum(x, 0)
    x = np.exp(x - x.max(axis=1, keepdims=True))
    return x / x.sum(axis=1, keepdims=True)


@serve.deployment
class DigitsClassifier:
    # KServe metadata for `infer` (GET /v2/models/<name>).
    kserve_metadata = {
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}],
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}],
    }

    def __init__(self, weights="../../models/digits.safetensors"):
        self.layers = load_mlp(weights)
        self.min_probability = 0.0

    def reconfigure(self, user_config):
        # user_config: {min_probability: 0.5} answers "unsure" below it.
        self.min_probability = float(user_config.get("min_probability", 0.0))

    def check_health(self):
        if not self.layers:
            raise RuntimeError("no weights loaded")

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.002)
    async def __call__(self, requests):
        rows = []
        for request in requests:
            body = await request.json()
            pixels = body["pixels"]
            if len(pixels) != 64:
                raise ValueError(f"expected 64 pixels, got {len(pixels)}")
            rows.append(pixels)
        probabilities = forward(self.layers, np.asarray(rows, dtype=np.float32))
        answers = []
        for p in probabilities:
            digit = int(p.argmax())
            if p[digit] < self.min_probability:
                answers.append({"digit": None, "probability": round(float(p[digit]), 4)})
            else:
                answers.append({"digit": digit, "probability": round(float(p[digit]), 4)})
        return answers

    def infer(self, inputs):
        return {"probabilities": forward(self.layers, inputs["input"]).astype(np.float32)}


app = DigitsClassifier.bind()
