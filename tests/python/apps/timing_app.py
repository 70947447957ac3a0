"""Concurrency checks for the worker tests."""

import asyncio
import time

from haproxy_serve import serve


@serve.deployment
class Sleepy:
    async def __call__(self, request):
        await asyncio.sleep(0.2)
        return "slept"


@serve.deployment
class SlowSync:
    def __call__(self, request):
        time.sleep(1.5)
        return "slow done"

    def check_health(self):
        pass
