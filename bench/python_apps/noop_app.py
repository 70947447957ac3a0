"""No-op Python deployments for bench/python_bench.sh: the cost of the replica-worker boundary."""

from haproxy_serve import serve


@serve.deployment
class Noop:
    async def __call__(self, request):
        return "ok"


@serve.deployment
class NoopBatched:
    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.001)
    async def __call__(self, requests):
        return ["ok"] * len(requests)


noop = Noop.bind()
noop_batched = NoopBatched.bind()
