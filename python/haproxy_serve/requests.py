"""The HTTP request a deployment's `__call__` receives, shaped like `starlette.requests.Request`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from typing import Any

from .datastructures import URL, Headers, QueryParams


class Request:
    """One HTTP request, with its whole body already received.

    Built by the worker from what the replica parsed; user code only reads it.
    """

    def __init__(
        self,
        method: str,
        path: str,
        query: str = "",
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        root_path: str = "",
    ) -> None:
        self.method = method.upper()
        self.headers = Headers(headers)
        self.url = URL(path, query, netloc=self.headers.get("host", ""))
        self.query_params = QueryParams(query)
        self.path_params: dict[str, Any] = {}
        self.client = None
        self._body = body
        self.scope: dict[str, Any] = {
            "type": "http",
            "method": self.method,
            "path": path,
            "root_path": root_path,
            "query_string": query.encode("latin-1", "replace"),
            "headers": self.headers.raw,
        }

    async def body(self) -> bytes:
        return self._body

    async def json(self) -> Any:
        return json.loads(self._body)

    async def stream(self) -> AsyncIterator[bytes]:
        if self._body:
            yield self._body
        yield b""

    def __repr__(self) -> str:
        return f"Request({self.method} {self.url.path})"
