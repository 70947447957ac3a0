"""`kind: onnx`: an ONNX model run by ONNX Runtime, served by the Python worker as a built-in class.

serve-replica turns `model: {kind: onnx, path: F}` into the import path
`haproxy_serve.onnx:build_app` with `init_kwargs` `{path, use_gpu, name}`. The builder opens the
session first, because the worker reports a class's KServe metadata (its `kserve_metadata`
attribute) before constructing it, and an ONNX model's inputs and outputs are known only from
the file. A missing or unreadable file therefore fails at start-up, naming the path.

ONNX Runtime comes from `import onnxruntime`; when that fails, from the `.tools/onnxruntime`
folder of the checkout this package sits in (where scripts/setup.sh installs it).
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from . import serve

# ONNX element types (as ONNX Runtime names them) that KServe v2 has a datatype for.
_KSERVE_TYPES = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
}
_NUMPY_TYPES = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
    "UINT64": np.uint64, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
    "INT64": np.int64, "FP32": np.float32, "FP64": np.float64,
}
_DATATYPE_OF = {numpy_type: name for name, numpy_type in _NUMPY_TYPES.items()}
_CUDA = "CUDAExecutionProvider"
_CPU = "CPUExecutionProvider"


def _log(message: str) -> None:
    # The worker's stderr goes to the replica's log, one line per line.
    print(f"onnx: {message}", file=sys.stderr, flush=True)


def import_onnxruntime() -> Any:
    """The onnxruntime module; ImportError that says where it was looked for."""
    try:
        import onnxruntime
        return onnxruntime
    except ImportError as first:
        checkout = Path(__file__).resolve().parents[2] / ".tools" / "onnxruntime"
        if not (checkout / "onnxruntime").is_dir():
            raise ImportError(
                f"kind onnx needs the onnxruntime package, which {sys.executable} cannot import "
                f"({first}); run scripts/setup.sh (it installs it into .tools/onnxruntime) or "
                "pip install onnxruntime (onnxruntime-gpu for the CUDA execution provider)"
            ) from None
        sys.path.append(str(checkout))
        import onnxruntime
        return onnxruntime


def _dims(shape: Any) -> list[int]:
    # A symbolic ("batch") or unknown (None) dimension is a dynamic one: -1 in KServe.
    return [d if isinstance(d, int) and d >= 0 else -1 for d in shape]


def describe(session: Any) -> dict[str, Any]:
    """KServe v2 metadata (`inputs`, `outputs`) of a session's graph.

    TypeError naming the tensor when one has a type KServe cannot carry (strings, float16,
    sequences, maps).
    """
    def specs(args: Any, what: str) -> list[dict[str, Any]]:
        out = []
        for arg in args:
            datatype = _KSERVE_TYPES.get(arg.type)
            if datatype is None:
                raise TypeError(
                    f"{what} '{arg.name}' has type {arg.type}, which has no KServe datatype "
                    f"(supported: {', '.join(sorted(_KSERVE_TYPES))})"
                )
            out.append({"name": arg.name, "datatype": datatype, "shape": _dims(arg.shape)})
        return out

    return {"inputs": specs(session.get_inputs(), "input"),
            "outputs": specs(session.get_outputs(), "output")}


# Protobuf's limit on one message: ONNX Runtime refuses a larger graph file only after reading
# it into memory, and models this large keep their weights in external data files instead.
MAX_MODEL_BYTES = 2**31 - 1


def check_model_file(path: str) -> None:
    """Refuses, naming the path, what ONNX Runtime should not be asked to read: a missing file
    (FileNotFoundError), a directory or other non-regular file (a FIFO would block the read), an
    unreadable one, an empty one and one over protobuf's 2 GiB limit (ValueError)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"ONNX model {path}: no such file") from None
    except OSError as exc:
        raise ValueError(f"ONNX model {path}: cannot be read: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ValueError(f"ONNX model {path}: is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"ONNX model {path}: is not a regular file")
    if st.st_size == 0:
        raise ValueError(f"ONNX model {path}: is empty (0 bytes)")
    if st.st_size > MAX_MODEL_BYTES:
        raise ValueError(f"ONNX model {path}: is {st.st_size} bytes; an ONNX graph file is at "
                         f"most {MAX_MODEL_BYTES} bytes (protobuf's limit; larger models keep "
                         "their weights in external data files)")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise ValueError(f"ONNX model {path}: cannot be read: {exc.strerror}") from None


def open_session(path: str, use_gpu: bool) -> Any:
    """An InferenceSession of `path`, on CUDA when asked for and available, else on the CPU.

    FileNotFoundError, ValueError or MemoryError naming the path when it cannot be loaded.
    """
    ort = import_onnxruntime()
    check_model_file(path)
    providers = [_CPU]
    if use_gpu:
        available = ort.get_available_providers()
        if _CUDA in available:
            providers = [_CUDA, _CPU]
        else:
            _log(f"the deployment asks for a GPU (num_gpus > 0) but onnxruntime "
                 f"{ort.__version__} has no {_CUDA} (it has {', '.join(available)}; "
                 "install onnxruntime-gpu for it); running on the CPU")
    options = ort.SessionOptions()
    # As many compute threads as the replica has CPUs (the manager sets OMP_NUM_THREADS from
    # num_cpus), and none spinning while idle: spinning threads take the cores the replica's
    # own threads and its neighbours need between requests.
    try:
        threads = max(1, int(os.environ.get("OMP_NUM_THREADS", "1")))
    except ValueError:
        threads = 1
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(path, sess_options=options, providers=providers)
    except MemoryError:
        raise MemoryError(f"ONNX model {path}: not enough memory to load the model "
                          f"({os.stat(path).st_size} bytes)") from None
    except Exception as exc:  # ONNX Runtime's own types (InvalidProtobuf, Fail, ...)
        raise ValueError(f"ONNX model {path} cannot be loaded: {exc}") from None
    if use_gpu and _CUDA in providers and _CUDA not in session.get_providers():
        # ONNX Runtime falls back by itself when CUDA or cuDNN libraries are missing.
        _log(f"onnxruntime could not start {_CUDA} (see its messages above); "
             "running on the CPU")
    _log(f"{path}: running on {', '.join(session.get_providers())}")
    return session


class OnnxModel:
    """Runs one ONNX model. KServe `infer` takes and returns named arrays; HTTP at the route
    prefix takes and returns KServe v2 JSON, as `kind: mlp` does there."""

    kserve_metadata: ClassVar[dict[str, Any] | None] = None  # set per model by build_app

    def __init__(self, path: str, use_gpu: bool = False, name: str = "",
                 session: Any = None) -> None:
        self.session = session if session is not None else open_session(path, use_gpu)
        self.name = name
        self.metadata = describe(self.session)
        self.output_names = [o["name"] for o in self.metadata["outputs"]]
        # Requests can share one run when every input and output has a dynamic first dimension:
        # their rows are stacked and the outputs split back.
        self.stackable = all(
            spec["shape"] and spec["shape"][0] == -1
            for spec in self.metadata["inputs"] + self.metadata["outputs"]
        )

    def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self.session.run(self.output_names, dict(inputs))
        return dict(zip(self.output_names, outputs))

    # The replica's batcher forms batches when the deployment configures `batching:`; without it
    # every call gets one item.
    @serve.batch(max_batch_size=1, batch_wait_timeout_s=0)
    def infer(self, items: list[dict[str, np.ndarray]]) -> list[Any]:
        if len(items) == 1 or not self.stackable:
            return [self._run_one(item) for item in items]
        names = sorted(items[0])
        if any(sorted(item) != names for item in items):
            return [self._run_one(item) for item in items]
        rows = [len(item[names[0]]) for item in items]
        try:
            stacked = {n: np.concatenate([item[n] for item in items]) for n in names}
            outputs = self._run(stacked)
        except Exception:  # a bad item: run them one by one, so that only it fails
            return [self._run_one(item) for item in items]
        bounds = np.cumsum(rows)[:-1]
        split = {n: np.split(a, bounds) for n, a in outputs.items()}
        return [{n: parts[i] for n, parts in split.items()} for i in range(len(items))]

    def _run_one(self, item: dict[str, np.ndarray]) -> Any:
        # An exception in the list fails that item only.
        try:
            return self._run(item)
        except Exception as exc:
            return ValueError(str(exc))

    async def __call__(self, request: Any) -> dict[str, Any]:
        body = await request.json()
        tensors = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(tensors, list):
            raise ValueError('expected a KServe v2 request: {"inputs": [{"name", "shape", '
                             '"datatype", "data"}]}')
        inputs = {}
        for t in tensors:
            dtype = _NUMPY_TYPES.get(t.get("datatype"))
            if dtype is None:
                raise ValueError(f"input {t.get('name')!r}: unsupported datatype "
                                 f"{t.get('datatype')!r}")
            inputs[t["name"]] = np.asarray(t.get("data"), dtype=dtype).reshape(t.get("shape"))
        result = self._run(inputs)
        outputs = []
        for name in self.output_names:
            array = result[name]
            datatype = _DATATYPE_OF.get(array.dtype.type)
            flat = array.reshape(-1)
            # str() of a float32 is its shortest round-trip form, as the C++ codec writes it.
            data = ([float(str(v)) for v in flat] if array.dtype == np.float32
                    else flat.tolist())
            outputs.append({"name": name, "datatype": datatype, "shape": list(array.shape),
                            "data": data})
        return {"model_name": self.name, "outputs": outputs}


def build_app(args: dict[str, Any]) -> serve.Application:
    """The builder `kind: onnx` names: opens the model and binds a class whose
    `kserve_metadata` describes it. `args` are the init_kwargs serve-replica sends."""
    unknown = sorted(set(args) - {"path", "use_gpu", "name"})
    if unknown:
        raise TypeError(f"unexpected arguments for the ONNX model: {', '.join(unknown)}")
    if not isinstance(args.get("path"), str) or not args["path"]:
        raise TypeError("the ONNX model needs a 'path' string")
    path, use_gpu = args["path"], bool(args.get("use_gpu", False))
    session = open_session(path, use_gpu)
    metadata = describe(session)
    json.dumps(metadata)  # it travels in the ready frame
    model_class = type("OnnxModel", (OnnxModel,), {"kserve_metadata": metadata})
    return serve.deployment(model_class).bind(path, use_gpu, str(args.get("name", "")),
                                              session=session)
