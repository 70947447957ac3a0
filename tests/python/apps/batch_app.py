"""@serve.batch on __call__ for the worker tests."""

from haproxy_serve import serve


@serve.deployment
class Batched:
    def __init__(self):
        self.calls = 0

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.05)
    async def __call__(self, requests):
        self.calls += 1
        bodies = [(await r.body()).decode() for r in requests]
        return [f"{i}/{len(requests)}:{body}:call{self.calls}" for i, body in enumerate(bodies)]


@serve.deployment
class LosesOne:
    @serve.batch
    async def __call__(self, requests):
        return ["only"] * (len(requests) - 1)


@serve.deployment
class RaisesForBatch:
    @serve.batch
    async def __call__(self, requests):
        raise KeyError("whole batch")


@serve.deployment
class StreamsBatch:
    @serve.batch(max_batch_size=4)
    async def __call__(self, requests):
        for word in ("one", "two"):
            yield [f"{word};" for _ in requests]


@serve.deployment
class ViaHelper:
    """Ray's usual pattern: an unbatched __call__ awaiting a batched helper."""

    @serve.batch(max_batch_size=3, batch_wait_timeout_s=5)
    async def handle_batch(self, bodies):
        return [f"{body.decode()} in a batch of {len(bodies)}" for body in bodies]

    async def __call__(self, request):
        return await self.handle_batch(await request.body())
