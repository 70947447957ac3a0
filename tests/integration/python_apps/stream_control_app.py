"""A stream that runs until its client leaves, for the disconnect and admission tests."""

import asyncio
import os

from haproxy_serve import serve

MARKER = os.environ.get("STREAM_CLOSED_MARKER", "")


@serve.deployment
class Endless:
    async def __call__(self, request):
        if request.url.path.endswith("/ping"):
            return "pong"
        return self._ticks()

    async def _ticks(self):
        try:
            n = 0
            while True:
                yield f"tick {n}\n"
                n += 1
                await asyncio.sleep(0.05)
        finally:
            if MARKER:
                with open(MARKER, "a") as f:
                    f.write("closed\n")


app = Endless.bind()
