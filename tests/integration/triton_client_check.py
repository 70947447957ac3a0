#!/usr/bin/env python3
"""Triton's own Python clients (tritonclient[grpc,http], from PyPI) against a node, unmodified.

Nobody in this project wrote those clients, so they check the KServe v2 wire contracts from the
outside, and the digits classifier must answer with the classes recorded in models/digits.json.
Uses only tritonclient and numpy.

  --protocol grpc: HAProxy's gRPC front end; the `application` request metadata picks the
      application, tensors travel as raw bytes (raw_input_contents, the client's default).
  --protocol http: HAProxy's HTTP front end; the model name in /v2/models/<model>/... picks the
      application, tensors travel as binary tensor data both ways (Inference-Header-Content-
      Length; binary_data=True is tritonclient.http's default), not as JSON numbers.

  * server and model: is_server_live, is_server_ready, get_server_metadata, is_model_ready,
    get_model_metadata;
  * every held-out sample in ONE ModelInfer (a [n, 64] batch), then the first few one at a time;
  * grpc: one ModelInfer without the `application` metadata: its status code and message are
    printed (NOT_FOUND from HAProxy when the node serves several applications);
    http: one infer for a model no application serves: its status and message are printed.

Usage: triton_client_check.py [--protocol grpc] --url 127.0.0.1:9000 --application digits
                              --model digits --expected models/digits.json
       triton_client_check.py --protocol http --url 127.0.0.1:8000 --model digits
                              --expected models/digits.json
Last line: "triton-check: <correct> of <total> correct"; exits 1 on any failure or mismatch.
"""

import argparse
import importlib
import json
import sys

try:
    import numpy as np
    from tritonclient.utils import InferenceServerException
except ImportError as e:
    print(f"triton-check: cannot import tritonclient ({e}); run `bash scripts/setup.sh` "
          "and put .tools/tritonclient on PYTHONPATH")
    sys.exit(2)

# Set by main() from --protocol: "grpc" or "http", and tritonclient.grpc or tritonclient.http.
PROTOCOL = "grpc"
client_module = None

SINGLE_SAMPLES = 5
TIMEOUT_S = 30.0  # per call, so a stuck node fails the check instead of hanging it


def status_name(error):
    # tritonclient.grpc reports grpc.StatusCode as its str(), e.g. "StatusCode.NOT_FOUND";
    # tritonclient.http the HTTP status.
    return str(error.status()).removeprefix("StatusCode.")


def classes(result, output_name):
    return [int(c) for c in np.argmax(result.as_numpy(output_name), axis=1)]


def infer(client, model, input_meta, output_name, pixels, headers):
    tensor = client_module.InferInput(input_meta["name"], list(pixels.shape),
                                      input_meta["datatype"])
    if PROTOCOL == "http":
        tensor.set_data_from_numpy(pixels, binary_data=True)
        output = client_module.InferRequestedOutput(output_name, binary_data=True)
        return client.infer(model, [tensor], outputs=[output], headers=headers)
    tensor.set_data_from_numpy(pixels)  # sent as raw_input_contents
    return client.infer(model, [tensor], headers=headers, client_timeout=TIMEOUT_S)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--protocol", choices=["grpc", "http"], default="grpc")
    parser.add_argument("--url", required=True, help="HOST:PORT of HAProxy's front end")
    parser.add_argument("--application", help="the `application` metadata value (grpc)")
    parser.add_argument("--model", required=True, help="model name (ModelInfer model_name)")
    parser.add_argument("--expected", required=True, help="models/digits.json (heldout samples)")
    args = parser.parse_args()
    global PROTOCOL, client_module
    PROTOCOL = args.protocol
    try:
        client_module = importlib.import_module(f"tritonclient.{PROTOCOL}")
    except ImportError as e:
        print(f"triton-check: cannot import tritonclient.{PROTOCOL} ({e}); run "
              "`bash scripts/setup.sh` and put .tools/tritonclient on PYTHONPATH")
        return 2

    with open(args.expected) as f:
        heldout = json.load(f)["heldout"]
    pixels = np.array([s["inputs"] for s in heldout], dtype=np.float32)
    expected = [int(s["predicted"]) for s in heldout]

    failures = []
    if PROTOCOL == "http":
        headers = None
        client = client_module.InferenceServerClient(args.url, connection_timeout=TIMEOUT_S,
                                                     network_timeout=TIMEOUT_S)
        timeout = {}
    else:
        if not args.application:
            parser.error("--application is required with --protocol grpc")
        headers = {"application": args.application}
        client = client_module.InferenceServerClient(args.url)
        timeout = {"client_timeout": TIMEOUT_S}

    live = client.is_server_live(headers=headers, **timeout)
    ready = client.is_server_ready(headers=headers, **timeout)
    model_ready = client.is_model_ready(args.model, headers=headers, **timeout)
    print(f"server: live={live} ready={ready}; model {args.model}: ready={model_ready}")
    if not (live and ready and model_ready):
        failures.append("server or model not ready")
    if PROTOCOL == "http":
        server = client.get_server_metadata(headers=headers)
    else:
        server = client.get_server_metadata(headers=headers, as_json=True, **timeout)
    # as_json leaves out a repeated field that is empty.
    print(f"server-metadata: name={server['name']} extensions={server.get('extensions', [])}")

    if PROTOCOL == "http":
        metadata = client.get_model_metadata(args.model, headers=headers)
    else:
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
    batch = infer(client, args.model, input_meta, output_name, pixels, headers)
    if PROTOCOL == "http":
        # The answer's JSON must describe the output as binary data, not carry numbers.
        described = batch.get_response()["outputs"][0]
        print(f"batch: output parameters {described.get('parameters')}, "
              f"data in JSON: {'data' in described}")
        if "data" in described or "binary_data_size" not in described.get("parameters", {}):
            failures.append(f"output not sent as binary data: {described}")
    got = classes(batch, output_name)
    batch_correct = sum(g == e for g, e in zip(got, expected))
    print(f"batch: {len(heldout)} samples in one ModelInfer, {batch_correct} correct")
    if got != expected:
        failures.append(f"batch classes {got}, expected {expected}")
    correct += batch_correct
    total += len(heldout)

    for i in range(SINGLE_SAMPLES):
        got = classes(infer(client, args.model, input_meta, output_name, pixels[i:i + 1], headers),
                      output_name)
        print(f"single: sample {heldout[i]['index']}: class {got[0]}, expected {expected[i]}")
        if got == [expected[i]]:
            correct += 1
        else:
            failures.append(f"sample {heldout[i]['index']}: class {got[0]}, expected {expected[i]}")
        total += 1

    if PROTOCOL == "http":
        # A model no application serves: HAProxy answers for the node.
        try:
            infer(client, "no_such_model", input_meta, output_name, pixels[:1], headers)
            print("unknown-model: OK")
        except InferenceServerException as e:
            print(f"unknown-model: {status_name(e)} {e.message()}")
    else:
        # No `application` metadata: HAProxy cannot pick an application when there are several.
        try:
            infer(client, args.model, input_meta, output_name, pixels[:1], headers=None)
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
