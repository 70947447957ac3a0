"""kind: onnx's built-in class in-process: metadata from the graph, batched runs, bad files.

Needs onnxruntime (scripts/setup.sh puts it in .tools/onnxruntime); skipped, saying so, without.
"""

import json
import os
import tempfile
import unittest
from pathlib import Path

import numpy as np

from haproxy_serve import onnx as serve_onnx
from haproxy_serve.serve import Application

from .harness import REPO

DIGITS = REPO / "models" / "digits.onnx"

try:
    serve_onnx.import_onnxruntime()
    MISSING = None
except ImportError as exc:
    MISSING = str(exc)


@unittest.skipIf(MISSING, f"onnxruntime is not importable: {MISSING}")
class OnnxModelTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.heldout = json.loads((REPO / "models" / "digits.json").read_text())["heldout"]
        app = serve_onnx.build_app({"path": str(DIGITS), "use_gpu": False, "name": "digits"})
        cls.app = app
        deployment = app._bound_deployment
        cls.model = deployment.func_or_class(*deployment.init_args, **deployment.init_kwargs)

    def test_metadata_comes_from_the_graph(self):
        self.assertIsInstance(self.app, Application)
        want = {
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}],
            "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}],
        }
        self.assertEqual(self.app._bound_deployment.func_or_class.kserve_metadata, want)
        self.assertTrue(self.model.stackable)

    def test_a_batch_is_one_run_split_back_per_request(self):
        infer = type(self.model).infer._serve_batch_fn
        items = [{"input": np.array([s["inputs"]], dtype=np.float32)} for s in self.heldout[:5]]
        items[2] = {"input": np.array([s["inputs"] for s in self.heldout[5:8]], dtype=np.float32)}
        results = infer(self.model, items)
        self.assertEqual([r["probabilities"].shape for r in results],
                         [(1, 10), (1, 10), (3, 10), (1, 10), (1, 10)])
        got = np.concatenate([results[0]["probabilities"], results[1]["probabilities"],
                              results[2]["probabilities"], results[3]["probabilities"],
                              results[4]["probabilities"]])
        samples = self.heldout[:2] + self.heldout[5:8] + self.heldout[3:5]
        want = np.array([s["probabilities"] for s in samples])
        np.testing.assert_allclose(got, want, atol=1e-5)
        self.assertEqual(list(np.argmax(got, axis=1)), [s["predicted"] for s in samples])

    def test_a_bad_item_fails_alone(self):
        infer = type(self.model).infer._serve_batch_fn
        good = {"input": np.zeros((1, 64), dtype=np.float32)}
        bad = {"input": np.zeros((1, 63), dtype=np.float32)}
        results = infer(self.model, [good, bad, good])
        self.assertEqual(results[0]["probabilities"].shape, (1, 10))
        self.assertIsInstance(results[1], ValueError)
        self.assertIn("Got invalid dimensions for input: input", str(results[1]))
        self.assertEqual(results[2]["probabilities"].shape, (1, 10))

    def test_unknown_arguments_and_bad_files_name_what_is_wrong(self):
        with self.assertRaises(TypeError) as ctx:
            serve_onnx.build_app({"path": str(DIGITS), "threads": 2})
        self.assertEqual(str(ctx.exception), "unexpected arguments for the ONNX model: threads")
        with tempfile.TemporaryDirectory() as tmp:
            missing = str(Path(tmp) / "missing.onnx")
            with self.assertRaises(FileNotFoundError) as ctx:
                serve_onnx.build_app({"path": missing})
            self.assertEqual(str(ctx.exception), f"ONNX model {missing}: no such file")
            corrupt = Path(tmp) / "corrupt.onnx"
            corrupt.write_bytes(b"not a graph")
            with self.assertRaises(ValueError) as ctx:
                serve_onnx.build_app({"path": str(corrupt)})
            want = f"ONNX model {corrupt} cannot be loaded: [ONNXRuntimeError] : 7 : INVALID_PROTOBUF"
            self.assertEqual(str(ctx.exception)[:len(want)], want)

    def test_files_onnx_runtime_should_not_read_are_refused_first(self):
        with tempfile.TemporaryDirectory() as tmp:
            empty = Path(tmp) / "empty.onnx"
            empty.write_bytes(b"")
            fifo = Path(tmp) / "fifo.onnx"
            os.mkfifo(fifo)  # opening it to read would wait for a writer
            big = Path(tmp) / "big.onnx"
            with open(big, "wb") as f:
                f.truncate(2**31)  # sparse: no disk
            for path, want in [
                (tmp, f"ONNX model {tmp}: is a directory, not a file"),
                (empty, f"ONNX model {empty}: is empty (0 bytes)"),
                (fifo, f"ONNX model {fifo}: is not a regular file"),
                (big, f"ONNX model {big}: is 2147483648 bytes; an ONNX graph file is at most "
                      "2147483647 bytes (protobuf's limit; larger models keep their weights in "
                      "external data files)"),
            ]:
                with self.subTest(path=str(path)):
                    with self.assertRaises(ValueError) as ctx:
                        serve_onnx.build_app({"path": str(path)})
                    self.assertEqual(str(ctx.exception), want)


if __name__ == "__main__":
    unittest.main()
