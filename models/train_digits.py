#!/usr/bin/env python3
"""Train the example digits classifier and export it for the replica (kind: mlp).

  python3 models/train_digits.py

Trains sklearn's MLPClassifier on sklearn.datasets.load_digits() (8x8 images, 64 pixel values
0-16, 10 classes; the data ships inside scikit-learn, nothing is downloaded) and writes, next to
this script:

  digits.safetensors      the weights (see mlp_safetensors.py for the format)
  digits.json             accuracy, settings and the first 20 held-out samples (raw inputs, label,
                          predicted class, probabilities) for the C++ integration test
  digits.accuracy.txt     one line: the held-out accuracy

The network is trained on x / 16; that scaling is folded into layers.0.weight on export (a
division by a power of two, exact in floating point), so the exported model takes the raw pixel
values 0-16 exactly as load_digits().data gives them.

Deterministic: a fixed split seed and a fixed MLPClassifier random_state; running it twice
writes byte-identical files.
"""
import json
import os
import sys
import warnings

import numpy as np
import sklearn
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in models/
sys.path.insert(0, HERE)
from mlp_safetensors import forward, read_mlp, write_mlp  # noqa: E402

SEED = 0
TEST_SIZE = 0.25
HIDDEN_LAYERS = (64, 32)
MAX_ITER = 2000
INPUT_SCALE = 16.0  # pixel values are 0..16; the network trains on x / 16
HELDOUT_EXAMPLES = 20

WEIGHTS = os.path.join(HERE, "digits.safetensors")
REPORT = os.path.join(HERE, "digits.json")
ACCURACY = os.path.join(HERE, "digits.accuracy.txt")


def rel(path):
    return os.path.relpath(path, os.path.dirname(HERE))


def main():
    digits = load_digits()
    x, y = digits.data, digits.target  # x: float64 (1797, 64), values 0..16; y: 0..9
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_SIZE, random_state=SEED, stratify=y)

    clf = MLPClassifier(hidden_layer_sizes=HIDDEN_LAYERS, activation="relu", solver="adam",
                        max_iter=MAX_ITER, random_state=SEED)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # not converging is a failure
        clf.fit(x_train / INPUT_SCALE, y_train)
    assert list(clf.classes_) == list(range(10)), clf.classes_
    assert clf.out_activation_ == "softmax", clf.out_activation_
    print(f"trained MLPClassifier{HIDDEN_LAYERS} in {clf.n_iter_} iterations, "
          f"final loss {clf.loss_:.6f}")

    # sklearn stores coefs_[i] as [in, out]; the file wants [out, in]. Fold x / 16 into layer 0.
    layers = []
    for i, (coef, intercept) in enumerate(zip(clf.coefs_, clf.intercepts_)):
        weight = coef.T.astype(np.float32)
        if i == 0:
            weight = weight / np.float32(INPUT_SCALE)  # exact: power of two
        layers.append((weight, intercept.astype(np.float32)))

    metadata = {
        "output_activation": "softmax",
        "input_name": "input",
        "output_name": "probabilities",
        "description": "8x8 handwritten digit classifier (sklearn load_digits); "
                       "input: 64 raw pixel values 0-16, row-major; "
                       "output: probabilities of the digits 0-9",
        "classes": ",".join(str(c) for c in clf.classes_),
        "input_scaling": "none: the x/16 used in training is folded into layers.0.weight",
        "source": "models/train_digits.py",
        "seed": str(SEED),
        "hidden_layers": ",".join(str(h) for h in HIDDEN_LAYERS),
        "sklearn_version": sklearn.__version__,
    }
    header = write_mlp(WEIGHTS, layers, metadata)

    # Verify the file as written: numpy float64 forward over the stored float32 weights on the
    # RAW test inputs must give MLPClassifier.predict's classes.
    read_meta, read_layers = read_mlp(WEIGHTS)
    assert read_meta == metadata
    probs = forward(read_layers, x_test, softmax=True, dtype=np.float64)
    predicted = probs.argmax(axis=1)
    sk_predicted = clf.predict(x_test / INPUT_SCALE)
    mismatches = int((predicted != sk_predicted).sum())
    print(f"exported-model vs MLPClassifier.predict class mismatches: {mismatches} / {len(x_test)}")
    assert mismatches == 0
    prob_diff = float(np.abs(probs - clf.predict_proba(x_test / INPUT_SCALE)).max())
    f32_diff = float(np.abs(forward(read_layers, x_test.astype(np.float32), dtype=np.float32)
                            - probs).max())
    print(f"max |p_file_f64 - predict_proba| = {prob_diff:.3g}; "
          f"max |p_file_f32 - p_file_f64| = {f32_diff:.3g}")
    assert prob_diff < 1e-5 and f32_diff < 1e-5

    correct = int((predicted == y_test).sum())
    accuracy = correct / len(y_test)
    print(f"held-out accuracy: {accuracy:.4f} ({correct}/{len(y_test)})")

    heldout = []
    for i in range(HELDOUT_EXAMPLES):
        heldout.append({
            "index": i,
            "label": int(y_test[i]),
            "predicted": int(predicted[i]),
            "probabilities": [float(p) for p in probs[i]],
            "inputs": [float(v) for v in x_test[i]],
        })
    report = {
        "accuracy": accuracy,
        "correct": correct,
        "test_samples": int(len(y_test)),
        "train_samples": int(len(y_train)),
        "seed": SEED,
        "test_size": TEST_SIZE,
        "hidden_layers": list(HIDDEN_LAYERS),
        "iterations": int(clf.n_iter_),
        "sklearn_version": sklearn.__version__,
        "numpy_version": np.__version__,
        "weights": rel(WEIGHTS),
        "metadata": metadata,
        "tensors": {name: entry["shape"] for name, entry in header.items() if name != "__metadata__"},
        "heldout_note": "the first 20 samples of the stratified test split; probabilities from a "
                        "float64 forward pass over the float32 weights in the file",
        "heldout": heldout,
    }
    with open(REPORT, "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    with open(ACCURACY, "w") as f:
        f.write(f"held-out accuracy: {accuracy:.4f} ({correct}/{len(y_test)}), "
                f"models/train_digits.py, seed {SEED}\n")

    size = os.path.getsize(WEIGHTS)
    print(f"wrote {rel(WEIGHTS)} ({size} bytes), {rel(REPORT)}, {rel(ACCURACY)}")
    for name, entry in header.items():
        if name != "__metadata__":
            print(f"  {name}: {entry['dtype']} {entry['shape']}")


if __name__ == "__main__":
    main()
