"""HTTP on the worker side: requests from protocol items, and what user code returns turned into
a response, following Ray Serve's rules (ray/serve/_private/http_util.py)."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import inspect
import json
import pathlib
import uuid
from dataclasses import dataclass
from typing import Any

from ._protocol import ProtocolError
from .requests import Request
from .responses import Response, StreamingResponse

try:  # Responses from starlette (or FastAPI) are accepted when it is installed.
    from starlette import responses as _starlette
except ImportError:
    _starlette = None

Headers = list[list[str]]

# Bare generators stream as text, the usual case (token streams); StreamingResponse names its own.
_GENERATOR_CONTENT_TYPE = "text/plain; charset=utf-8"


@dataclass
class WholeResponse:
    status: int
    headers: Headers
    body: bytes


@dataclass
class StreamedResponse:
    status: int
    headers: Headers
    chunks: Any  # a sync or async iterable of bytes or str


def build_request(item: Any, body: bytes, root_path: str) -> Request:
    """The Request for one `http` item; ProtocolError when the item is malformed."""
    try:
        headers = [(str(name), str(value)) for name, value in item.get("headers") or ()]
        return Request(
            str(item.get("method", "GET")),
            str(item.get("path", "/")),
            str(item.get("query", "")),
            headers,
            body,
            root_path,
        )
    except (AttributeError, TypeError, ValueError) as exc:
        raise ProtocolError(f"malformed http item: {exc}") from None


def to_response(value: Any) -> WholeResponse | StreamedResponse:
    """Ray's conversion of a handler's return value (TypeError if it cannot be serialised)."""
    if isinstance(value, StreamingResponse):
        headers = _wire_headers(value.raw_headers)
        return StreamedResponse(value.status_code, headers, value.body_iterator)
    if isinstance(value, Response):
        return WholeResponse(value.status_code, _wire_headers(value.raw_headers), value.body)
    if _starlette is not None and isinstance(value, _starlette.Response):
        headers = _wire_headers(value.raw_headers)
        if isinstance(value, _starlette.StreamingResponse):
            return StreamedResponse(value.status_code, headers, value.body_iterator)
        return WholeResponse(value.status_code, headers, bytes(value.body))
    if inspect.isgenerator(value) or inspect.isasyncgen(value):
        return StreamedResponse(200, [["content-type", _GENERATOR_CONTENT_TYPE]], value)
    if value is None:
        return WholeResponse(200, [["content-type", "text/plain"]], b"")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return WholeResponse(200, [["content-type", "text/plain"]], bytes(value))
    if isinstance(value, str):
        return WholeResponse(200, [["content-type", "text/plain; charset=utf-8"]], value.encode())
    body = json.dumps(_jsonable(value), separators=(",", ":")).encode()
    return WholeResponse(200, [["content-type", "application/json"]], body)


def chunk_bytes(chunk: Any) -> bytes:
    """One streamed chunk as bytes: bytes as they are, str UTF-8 encoded."""
    if isinstance(chunk, (bytes, bytearray, memoryview)):
        return bytes(chunk)
    if isinstance(chunk, str):
        return chunk.encode("utf-8")
    raise TypeError(f"a streamed chunk must be bytes or str, got {type(chunk).__name__}")


def _wire_headers(raw: list[tuple[bytes, bytes]]) -> Headers:
    # The replica frames the body, so a content-length from the user's object is dropped.
    return [
        [name.decode("latin-1"), value.decode("latin-1")]
        for name, value in raw
        if name.lower() != b"content-length"
    ]


def _jsonable(obj: Any) -> Any:
    """What FastAPI's jsonable_encoder plus Serve's encoders make of a value, for common types."""
    if obj is None or isinstance(obj, (str, bool, int, float)):
        return obj
    if isinstance(obj, dict):
        return {_jsonable(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in obj]
    if type(obj).__module__ == "numpy" and hasattr(obj, "tolist"):  # arrays and scalars
        return obj.tolist()
    if type(obj).__name__ == "DataFrame" and hasattr(obj, "to_dict"):  # pandas
        return _jsonable(obj.to_dict(orient="records"))
    if hasattr(obj, "model_dump"):  # pydantic 2
        return _jsonable(obj.model_dump())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(dataclasses.asdict(obj))
    if isinstance(obj, enum.Enum):
        return _jsonable(obj.value)
    if isinstance(obj, (bytes, bytearray)):
        return obj.decode()
    if isinstance(obj, (datetime.date, datetime.time)):
        return obj.isoformat()
    if isinstance(obj, decimal.Decimal):
        return int(obj) if obj.as_tuple().exponent >= 0 else float(obj)
    if isinstance(obj, (uuid.UUID, pathlib.PurePath, Exception)):
        return str(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")
