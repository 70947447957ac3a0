"""reconfigure, check_health, __del__ and start-up failures for the worker tests."""

import asyncio

from haproxy_serve import serve


@serve.deployment(user_config={"greeting": "from decorator"})
class Configurable:
    def __init__(self, marker_path=None):
        self.greeting = None
        self.healthy = True
        self.marker_path = marker_path

    def reconfigure(self, config):
        if config.get("fail"):
            raise ValueError("refusing config")
        self.greeting = config.get("greeting")
        self.healthy = config.get("healthy", True)

    def check_health(self):
        if not self.healthy:
            raise RuntimeError("unhealthy: told so")

    def __call__(self, request):
        return self.greeting

    def __del__(self):
        if self.marker_path:
            with open(self.marker_path, "w") as f:
                f.write("deleted")


@serve.deployment
class NoReconfigure:
    def __call__(self, request):
        return "ok"


@serve.deployment
class BrokenInit:
    def __init__(self):
        raise RuntimeError("cannot load weights")


@serve.deployment
class AsyncInit:
    async def __init__(self, value):
        await asyncio.sleep(0)
        self.value = value

    def __call__(self, request):
        return self.value
