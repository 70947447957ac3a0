"""ONNX Runtime called in process on the digits model: the floor bench/onnx_bench.sh compares
the replica with. The session is opened the way `kind: onnx` opens it (haproxy_serve.onnx), on
the CPU, and run in a loop on rows of models/digits.json's held-out samples.

    PYTHONPATH=python python3 bench/onnx_inprocess.py SECONDS
prints `b1_us X` and `b32_us Y`: microseconds per run at batch 1 and at batch 32.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np

from haproxy_serve import onnx as serve_onnx

ROOT = Path(__file__).resolve().parents[1]


def per_run_us(session, x, seconds):
    feed = {"input": x}
    for _ in range(100):  # warm-up
        session.run(None, feed)
    runs, start = 0, time.perf_counter()
    while True:
        for _ in range(100):
            session.run(None, feed)
        runs += 100
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return elapsed / runs * 1e6


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    session = serve_onnx.open_session(str(ROOT / "models" / "digits.onnx"), use_gpu=False)
    samples = json.loads((ROOT / "models" / "digits.json").read_text())["heldout"]
    rows = np.array([s["inputs"] for s in samples], dtype=np.float32)
    batch32 = np.resize(rows, (32, 64))
    print(f"b1_us {per_run_us(session, rows[:1].copy(), seconds):.2f}")
    print(f"b32_us {per_run_us(session, batch32, seconds):.2f}")


if __name__ == "__main__":
    main()
