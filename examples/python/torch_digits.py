"""The digits classifier in PyTorch, on a GPU when there is one: a Ray Serve deployment.

The weights are models/digits.safetensors (the file `kind: mlp` serves), read into torch
tensors; the network is an nn.Sequential of Linear and ReLU layers. The class runs on
`cuda` when torch sees a device (the manager gives the replica one through
CUDA_VISIBLE_DEVICES for `num_gpus: 1`) and on the CPU otherwise. PyTorch is not installed by
scripts/setup.sh: docs/python.md says how.

    curl -s localhost:8000/torch -d '{"pixels": [0, 0, 7, 16, ...64 values]}'
    {"digit": 2, "probability": 0.9992, "device": "cuda:0"}

KServe v2 tensors go through `infer` (POST /v2/models/digits_torch/infer, or gRPC).
"""

import json
import os
import struct

import torch

from haproxy_serve import serve  # with Ray: from ray import serve


def load_layers(path):
    """[(weight [out, in], bias [out])] of an MLP safetensors file, as float32 torch tensors."""
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
        data = bytearray(f.read())  # writable, so torch.frombuffer shares it without a warning
    layers = []
    while f"layers.{len(layers)}.weight" in header:
        pair = []
        for name in (f"layers.{len(layers)}.weight", f"layers.{len(layers)}.bias"):
            entry = header[name]
            if entry["dtype"] != "F32":
                raise ValueError(f"{path}: {name} is {entry['dtype']}, expected F32")
            begin, end = entry["data_offsets"]
            flat = torch.frombuffer(data, dtype=torch.float32, offset=begin,
                                    count=(end - begin) // 4)
            pair.append(flat.reshape(entry["shape"]).clone())
        layers.append(tuple(pair))
    if not layers:
        raise ValueError(f"{path}: no layers.0.weight tensor")
    return layers


def build_network(layers):
    modules = []
    for i, (weight, bias) in enumerate(layers):
        linear = torch.nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            linear.weight.copy_(weight)
            linear.bias.copy_(bias)
        modules.append(linear)
        modules.append(torch.nn.ReLU() if i + 1 < len(layers) else torch.nn.Softmax(dim=1))
    return torch.nn.Sequential(*modules).eval()


@serve.deployment(ray_actor_options={"num_gpus": 1})
class TorchDigits:
    kserve_metadata = {
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}],
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}],
    }

    def __init__(self, weights=os.path.join(os.path.dirname(__file__),
                                            "../../models/digits.safetensors")):
        self.device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
        self.network = build_network(load_layers(weights)).to(self.device)
        print(f"torch {torch.__version__}: running on {self.device}", flush=True)

    def check_health(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # raises when the device has failed

    def _probabilities(self, rows):
        with torch.inference_mode():
            x = torch.as_tensor(rows, dtype=torch.float32).to(self.device)
            return self.network(x).cpu().numpy()

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.002)
    async def __call__(self, requests):
        rows = []
        for request in requests:
            pixels = (await request.json())["pixels"]
            if len(pixels) != 64:
                raise ValueError(f"expected 64 pixels, got {len(pixels)}")
            rows.append(pixels)
        answers = []
        for p in self._probabilities(rows):
            digit = int(p.argmax())
            answers.append({"digit": digit, "probability": round(float(p[digit]), 4),
                            "device": str(self.device)})
        return answers

    def infer(self, inputs):
        return {"probabilities": self._probabilities(inputs["input"].copy())}


app = TorchDigits.bind()
