"""A streaming deployment: each part goes to the client as soon as it is produced.

    curl -sN 'localhost:8000/count?to=5'          # chunked text, one line every 0.1 s
    curl -sN 'localhost:8000/count?to=3&sse=1'    # the same as server-sent events

Over gRPC, the generator `infer` streams one KServe response per number through Triton's
ModelStreamInfer (tritonclient.grpc's start_stream / async_stream_infer, metadata
application=count) with the input `to` (INT64, shape [1]).
"""

import asyncio

import numpy as np

from haproxy_serve import serve  # with Ray: from ray import serve
from haproxy_serve.responses import StreamingResponse


@serve.deployment
class Counter:
    kserve_metadata = {
        "inputs": [{"name": "to", "datatype": "INT64", "shape": [1]}],
        "outputs": [{"name": "count", "datatype": "INT64", "shape": [1]}],
    }

    async def count(self, to, delay, sse):
        for i in range(1, to + 1):
            await asyncio.sleep(delay)
            yield f"data: {i}\n\n" if sse else f"{i}\n"

    async def __call__(self, request):
        to = int(request.query_params.get("to", "5"))
        delay = float(request.query_params.get("delay", "0.1"))
        sse = request.query_params.get("sse") == "1"
        media_type = "text/event-stream" if sse else "text/plain"
        return StreamingResponse(self.count(to, delay, sse), media_type=media_type)

    async def infer(self, inputs):
        to = int(inputs["to"][0])
        if to < 0:
            raise ValueError(f"cannot count to {to}")
        for i in range(1, to + 1):
            await asyncio.sleep(0.01)
            yield {"count": np.array([i], dtype=np.int64)}


app = Counter.bind()
