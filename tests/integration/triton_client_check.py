#!/usr/bin/env python3
"""Triton's own Python gRPC client (tritonclient[grpc], from PyPI) against a node, unmodified.

Nobody in this project wrote that client, so it checks the KServe v2 gRPC wire contract from the
outside: the `application` request metadata picks the application, tensors travel as raw bytes
(raw_input_contents, the client's default), and the digits classifier answers with the classes
recorded in models/digits.json. Uses only tritonclient.grpc and numpy.

  * server and model: is_server_live, is_server_ready, is_model_ready, get_model_metadata;
  * every held-out sample in ONE ModelInfer (a [n, 64] batch), then the first few one at a time;
  * one ModelInfer without the `application` metadata: its status code and message are printed
    (NOT_FOUND from HAProxy when the node serves several applications; it passes with one).

Usage: triton_client_check.py --url 127.0.0.1:9000 --application digits --model digits
                              --expected models/digits.json
Last line: "triton-check: <correct> of <total> correct"; exits 1 on any failure or mismatch.
"""

import argparse
import json
import sys

try:
    import numpy as np
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException
except ImportError as e:
    print(f"triton-check: cannot import tritonclient.grpc ({e}); run `bash scripts/setup.sh` "
          "and put .tools/tritonclient on PYTHONPATH")
    sys.exit(2)

SINGLE_SAMPLES = 5
TIMEOUT_S = 30.0  # per call, so a stuck node fails the check instead of hanging it


def status_name(error):
    # tritonclient reports grpc.StatusCode as its str(), e.g. "StatusCode.NOT_FOUND".
    return str(error.status()).removeprefix("StatusCode.")


def classes(result, output_name):
    return [int(c) for c in np.argmax(result.as_numpy(output_name), axis=1)]


def infer(client, model, input_meta, pixels, headers):
    tensor = grpcclient.InferInput(input_meta["name"], list(pixels.shape), input_meta["datatype"])
    tensor.set_data_from_numpy(pixels)  # sent as raw_input_contents
    return client.infer(model, [tensor], headers=headers, client_timeout=TIMEOUT_S)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="HOST:PORT of HAProxy's gRPC front end")
    parser.add_argument("--application", required=True, help="the `application` metadata value")
    parser.add_argument("--model", required=True, help="model name (ModelInfer model_name)")
    parser.add_argument("--expected", required=True, help="models/digits.json (heldout samples)")
    args = parser.parse_args()

    with open(args.expected) as f:
        heldout = json.load(f)["heldout"]
    pixels = np.array([s["inputs"] for s in heldout], dtype=np.float32)
    expected = [int(s["predicted"]) for s in heldout]

    headers = {"application": args.application}
    client = grpcclient.InferenceServerClient(args.url)
    failures = []

    live = client.is_server_live(headers=headers, client_timeout=TIMEOUT_S)
    ready = client.is_server_ready(headers=headers, client_timeout=TIMEOUT_S)
    model_ready = client.is_model_ready(args.model, headers=headers, client_timeout=TIMEOUT_S)
    print(f"server: live={live} ready={ready}; model {args.model}: ready={model_ready}")
    if not (live and ready and model_ready):
        failures.append("server or model not ready")

    metadata = client.get_model_metadata(args.model, headers=headers, as_json=True,
                                         client_timeout=TIMEOUT_S)
    inputs = [(i["name"], i["datatype"], [int(d) for d in i["shape"]]) for i in metadata["inputs"]]
    outputs = [(o["name"], o["datatype"], [int(d) for d in o["shape"]])
               for o in metadata["outputs"]]
    print(f"metadata: name={metadata['name']} inputs={inputs} outputs={outputs}")
    if metadata["name"] != args.model or len(inputs) != 1 or len(outputs) != 1:
        print(f"FAILED: expected model {args.model} with one input and one output")
        print("triton-check: failed")
        return 1
    input_meta = metadata["inputs"][0]
    output_name = metadata["outputs"][0]["name"]

    correct = 0
    total = 0
    batch = infer(client, args.model, input_meta, pixels, headers)
    got = classes(batch, output_name)
    batch_correct = sum(g == e for g, e in zip(got, expected))
    print(f"batch: {len(heldout)} samples in one ModelInfer, {batch_correct} correct")
    if got != expected:
        failures.append(f"batch classes {got}, expected {expected}")
    correct += batch_correct
    total += len(heldout)

    for i in range(SINGLE_SAMPLES):
        got = classes(infer(client, args.model, input_meta, pixels[i:i + 1], headers), output_name)
        print(f"single: sample {heldout[i]['index']}: class {got[0]}, expected {expected[i]}")
        if got == [expected[i]]:
            correct += 1
        else:
            failures.append(f"sample {heldout[i]['index']}: class {got[0]}, expected {expected[i]}")
        total += 1

    # No `application` metadata: HAProxy cannot pick an application when there are several.
    try:
        infer(client, args.model, input_meta, pixels[:1], headers=None)
        print("no-application: OK")
    except InferenceServerException as e:
        print(f"no-application: {status_name(e)} {e.message()}")

    for failure in failures:
        print(f"FAILED: {failure}")
    print(f"triton-check: {correct} of {total} correct")
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except InferenceServerException as e:
        # A call that should have worked did not: say which status, then fail.
        print(f"FAILED: {status_name(e)} {e.message()}")
        print("triton-check: failed")
        sys.exit(1)
