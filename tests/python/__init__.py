"""Tests of the Python package (python/haproxy_serve); run from the repository root with
`python3 -m unittest discover -s tests/python -t .`."""

import sys
from pathlib import Path

# The package under test is used from the checkout, not from an installed copy.
_PYTHON_DIR = str(Path(__file__).resolve().parents[2] / "python")
if _PYTHON_DIR not in sys.path:
    sys.path.insert(0, _PYTHON_DIR)
