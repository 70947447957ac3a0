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


@serve.deployment
class Many:
    """Forty chunks as fast as they can go: flow control must hold all but a window back."""

    def __call__(self, request):
        for n in range(40):
            yield f"{n};"


@serve.deployment
class Endless:
    """Streams until cancelled; says on stdout that its generator was closed."""

    async def __call__(self, request):
        try:
            n = 0
            while True:
                yield f"tick {n};"
                n += 1
                await asyncio.sleep(0.05)
        finally:
            print("endless stream closed", flush=True)


@serve.deployment
class Tokens:
    """A generator `infer`: one response per token, as gRPC ModelStreamInfer sends them."""

    def infer(self, inputs):
        import numpy as np

        for n in range(int(inputs["count"][0])):
            yield {"token": np.array([n], dtype=np.int64)}
