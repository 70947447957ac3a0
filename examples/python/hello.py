"""The smallest Python deployment (README): answers JSON from a query parameter."""

from haproxy_serve import serve  # with Ray: from ray import serve


@serve.deployment
class Hello:
    async def __call__(self, request):
        return {"hello": request.query_params.get("name", "world")}


app = Hello.bind()
