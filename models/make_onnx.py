#!/usr/bin/env python3
"""Builds models/digits.onnx from models/digits.safetensors and checks it.

The graph is written with the `onnx` package's helper API (nothing is downloaded): one Gemm
per layer (weights in PyTorch's [out, in] layout, so transB=1), Relu between layers and
Softmax at the end, the same network `kind: mlp` runs. Input `input` FLOAT [-1, 64], output
`probabilities` FLOAT [-1, 10]; the batch dimension is symbolic ("batch").

The file is then checked with ONNX Runtime against the numpy reference forward pass of
mlp_safetensors.py on the 20 held-out samples of digits.json: the same predicted class for every
sample and probabilities within 1e-5. A failed check exits 1 and leaves no file behind.

    PYTHONPATH=.tools/onnx:.tools/onnxruntime /usr/bin/python3 models/make_onnx.py

(scripts/setup.sh installs `onnx` into .tools/onnx and `onnxruntime` into .tools/onnxruntime.)
"""

import argparse
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import mlp_safetensors

HERE = os.path.dirname(os.path.abspath(__file__))
OPSET = 17  # Softmax over one axis (13+); old enough for every ONNX Runtime of the last years
TOLERANCE = 1e-5


def build_graph(metadata, layers):
    """An onnx.ModelProto of the MLP: Gemm (+ Relu) per layer, Softmax last."""
    input_name = metadata.get("input_name", "input")
    output_name = metadata.get("output_name", "probabilities")
    if metadata.get("output_activation", "softmax") != "softmax":
        raise ValueError("only softmax outputs are supported (the digits model has one)")
    initializers, nodes = [], []
    h = input_name
    for i, (weight, bias) in enumerate(layers):
        w_name, b_name = f"layers.{i}.weight", f"layers.{i}.bias"
        initializers.append(numpy_helper.from_array(np.asarray(weight, np.float32), w_name))
        initializers.append(numpy_helper.from_array(np.asarray(bias, np.float32), b_name))
        gemm = f"gemm_{i}"
        nodes.append(helper.make_node("Gemm", [h, w_name, b_name], [gemm], name=gemm, transB=1))
        if i + 1 < len(layers):
            relu = f"relu_{i}"
            nodes.append(helper.make_node("Relu", [gemm], [relu], name=relu))
            h = relu
        else:
            h = gemm
    nodes.append(helper.make_node("Softmax", [h], [output_name], name="softmax", axis=-1))
    inputs = [helper.make_tensor_value_info(input_name, TensorProto.FLOAT,
                                            ["batch", layers[0][0].shape[1]])]
    outputs = [helper.make_tensor_value_info(output_name, TensorProto.FLOAT,
                                             ["batch", layers[-1][0].shape[0]])]
    graph = helper.make_graph(nodes, "digits", inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="haproxy-serve models/make_onnx.py")
    # IR version 8 (ONNX 1.10+): loadable by ONNX Runtime releases from 1.10 on, not only the
    # newest the installed `onnx` writes by default.
    model.ir_version = 8
    model.doc_string = metadata.get("description", "")
    onnx.checker.check_model(model, full_check=True)
    return model


def verify(path, layers, samples):
    """Runs `path` with ONNX Runtime on the samples; returns the largest probability difference.

    Raises AssertionError naming the sample when a class or a probability disagrees.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    x = np.array([s["inputs"] for s in samples], dtype=np.float32)
    (got,) = session.run(None, {session.get_inputs()[0].name: x})
    want = mlp_safetensors.forward(layers, x)
    worst = 0.0
    for i, s in enumerate(samples):
        got_class, want_class = int(np.argmax(got[i])), int(np.argmax(want[i]))
        if got_class != want_class:
            raise AssertionError(f"sample {s['index']}: ONNX Runtime predicts {got_class}, "
                                 f"the reference {want_class}")
        if int(np.argmax(got[i])) != s["predicted"]:
            raise AssertionError(f"sample {s['index']}: predicted {int(np.argmax(got[i]))}, "
                                 f"digits.json says {s['predicted']}")
        diff = float(np.max(np.abs(got[i] - want[i])))
        if diff > TOLERANCE:
            raise AssertionError(f"sample {s['index']}: probabilities differ by {diff:.3g} "
                                 f"(> {TOLERANCE})")
        worst = max(worst, diff)
    return worst


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=os.path.join(HERE, "digits.safetensors"))
    parser.add_argument("--samples", default=os.path.join(HERE, "digits.json"))
    parser.add_argument("--out", default=os.path.join(HERE, "digits.onnx"))
    args = parser.parse_args()

    metadata, layers = mlp_safetensors.read_mlp(args.weights)
    model = build_graph(metadata, layers)
    with open(args.samples) as f:
        samples = json.load(f)["heldout"]
    tmp = args.out + ".tmp"
    onnx.save(model, tmp)
    try:
        worst = verify(tmp, layers, samples)
    except BaseException:
        os.unlink(tmp)
        raise
    os.replace(tmp, args.out)
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes): {len(samples)} held-out samples "
          f"agree with the reference forward pass (largest probability difference {worst:.2e})")


if __name__ == "__main__":
    sys.exit(main())
