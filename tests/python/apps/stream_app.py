"""Streaming responses for the worker tests."""

import asyncio
import time

from haproxy_serve import serve
from haproxy_serve.responses import StreamingResponse


@serve.deployment
class Words:
    """A generator-function __call__: each yield is one chunk."""

    def __call__(self, request):
        yield "first "
        time.sleep(0.5)
        yield b"second "
        yield "third"


@serve.deployment
class Events:
    async def __call__(self, request):
        if request.url.path == "/fail":
            return StreamingResponse(self._failing(), media_type="text/plain")
        return StreamingResponse(self._events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    async def _events(self):
        for n in range(3):
            await asyncio.sleep(0.01)
            yield f"data: {n}\n\n"

    async def _failing(self):
        yield "partial"
        raise RuntimeError("stream broke")
