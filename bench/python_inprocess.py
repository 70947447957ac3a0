"""The in-process baseline of bench/python_bench.sh: the same no-op methods called in a loop in
one Python process, with the package's own Request objects, so that only the boundary differs.

Prints two lines: "call_us <microseconds per __call__>" and "item_us <microseconds per item of a
batch of 32>".
"""

import asyncio
import sys
import time

from haproxy_serve.requests import Request

import noop_app


def request():
    return Request(method="POST", path="/noop", query="", headers=[("content-type", "text/plain")],
                   body=b"x", root_path="/noop")


async def main(seconds):
    plain = noop_app.Noop.func_or_class()
    batched = noop_app.NoopBatched.func_or_class()
    fn = type(batched).__call__._serve_batch_fn

    calls = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(1000):
            await plain(request())
        calls += 1000
    call_us = (time.perf_counter() - start) / calls * 1e6

    items = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(100):
            await fn(batched, [request() for _ in range(32)])
        items += 3200
    item_us = (time.perf_counter() - start) / items * 1e6
    print(f"call_us {call_us:.2f}")
    print(f"item_us {item_us:.2f}")


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 3.0))
