"""Answers with the path it was asked for. Under route prefix "/" the application owns every
path, /metrics included, so the ingress tests use it to see which paths reach user code."""

from haproxy_serve import serve


@serve.deployment
class Paths:
    async def __call__(self, request):
        marked = "x-serve-ingress" in request.headers
        return f"app saw {request.url.path}; ingress mark passed on: {marked}"


app = Paths.bind()
