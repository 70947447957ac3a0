"""Responses user code may return, shaped like `starlette.responses`.

The replica frames the body itself, so no content-length header is set here.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, Iterable, Mapping
from typing import Any, Union

from .datastructures import MutableHeaders


class Response:
    """A whole response: status, headers and a body rendered from `content`."""

    media_type: str | None = None
    charset = "utf-8"

    def __init__(
        self,
        content: Any = None,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
    ) -> None:
        self.status_code = status_code
        if media_type is not None:
            self.media_type = media_type
        self.body = self.render(content)
        self.headers = MutableHeaders(headers)
        self._add_content_type()

    def render(self, content: Any) -> bytes:
        if content is None:
            return b""
        if isinstance(content, (bytes, bytearray, memoryview)):
            return bytes(content)
        return str(content).encode(self.charset)

    @property
    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        return self.headers.raw

    def _add_content_type(self) -> None:
        # Starlette's rule: a text/* type gets the charset unless it already names one.
        content_type = self.media_type
        if content_type is None or "content-type" in self.headers:
            return
        if content_type.startswith("text/") and "charset=" not in content_type.lower():
            content_type += f"; charset={self.charset}"
        self.headers["content-type"] = content_type


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(
            content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
        ).encode("utf-8")


class PlainTextResponse(Response):
    media_type = "text/plain"


class HTMLResponse(Response):
    media_type = "text/html"


ContentStream = Union[Iterable[Any], AsyncIterable[Any]]


class StreamingResponse(Response):
    """A response whose body is sent chunk by chunk as `content` produces it.

    `content` is a sync or async iterable of `bytes` or `str` chunks (str is UTF-8 encoded).
    """

    def __init__(
        self,
        content: ContentStream,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
    ) -> None:
        self.body_iterator = content
        super().__init__(None, status_code, headers, media_type)
