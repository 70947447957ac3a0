"""The no-op class of bench/peers_bench.sh, served the Ray Serve way.

noop_app.py imports `serve` from haproxy_serve (this project's node), ray_noop_app.py from ray
(Ray Serve in HAProxy mode); the two files differ in that line only, which the script checks.
Each request's JSON body is parsed and its "instances" sent back as "predictions": the work
KServe's v1 :predict does around kserve_noop.py's predict().
"""

from ray import serve


@serve.deployment(max_ongoing_requests=64)
class Noop:
    async def __call__(self, request):
        body = await request.json()
        return {"predictions": body["instances"]}


app = Noop.bind()
