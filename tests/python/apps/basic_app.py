"""HTTP deployments for the worker tests: request access and return-value conversion."""

import asyncio
import sys

import numpy as np

from haproxy_serve import serve
from haproxy_serve.responses import JSONResponse, PlainTextResponse, Response


@serve.deployment
class EchoSync:
    def __call__(self, request):
        return {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "a": request.query_params.getlist("a"),
            "b": request.query_params["b"],
            "has_c": "c" in request.query_params,
            "token": request.headers["X-Token"],
            "token_lower": request.headers.get("x-token"),
        }


@serve.deployment
class EchoAsync:
    async def __call__(self, request):
        payload = await request.json()
        await asyncio.sleep(0)
        return {"got": payload, "q": dict(request.query_params.items()),
                "agent": request.headers.get("user-agent")}


@serve.deployment
class Convert:
    """Answers according to the path; one case per conversion rule."""

    def __call__(self, request):
        path = request.url.path
        if path == "/none":
            return None
        if path == "/bytes":
            return b"\x00\x01raw"
        if path == "/str":
            return "h\u00e9llo"
        if path == "/dict":
            return {"a": [1, 2], "arr": np.arange(3, dtype=np.int64), "f": np.float32(1.5)}
        if path == "/response":
            return Response("created", status_code=201, headers={"X-Custom": "yes"},
                            media_type="text/plain")
        if path == "/json":
            return JSONResponse({"ok": True, "n": None})
        if path == "/plain":
            return PlainTextResponse("plain")
        if path == "/unserialisable":
            return {"thing": object()}
        if path == "/raise":
            raise ValueError("bad input 7")
        if path == "/print":
            print("user line on stdout")
            print("user line on stderr", file=sys.stderr)
            sys.stdout.flush()
            return "printed"
        if path == "/big":
            return b"x" * int(request.query_params["n"])
        if path == "/context":
            ctx = serve.get_replica_context()
            return {"app": ctx.app_name, "deployment": ctx.deployment,
                    "replica": ctx.replica_tag, "is_self": ctx.servable_object is self}
        return "unknown"


class Greeter:
    """A plain class (no decorator) and the target of the bound applications below."""

    def __init__(self, greeting="hello"):
        self.greeting = greeting

    def __call__(self, request):
        return self.greeting


bound_app = serve.deployment(Greeter).bind("bound")


def build_app(args):
    """A builder function, as Ray's import_path allows."""
    return serve.deployment(Greeter).bind(args["greeting"])


@serve.deployment
def hello(request):
    return f"hello {request.query_params['name']}"


@serve.deployment
async def no_args():
    return "no args"
