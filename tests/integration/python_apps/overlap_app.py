"""Slow methods, to show which calls overlap: async ones do, sync ones run one at a time."""

import asyncio
import time

from haproxy_serve import serve


@serve.deployment
class AsyncSleeper:
    async def __call__(self, request):
        await asyncio.sleep(0.5)
        return "async done"


@serve.deployment
class SyncSleeper:
    def __call__(self, request):
        time.sleep(0.25)
        return "sync done"


async_app = AsyncSleeper.bind()
sync_app = SyncSleeper.bind()
