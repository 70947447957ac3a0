"""A drop-in replacement for Ray Serve's Python API, served by haproxy-serve.

`from haproxy_serve import serve` gives `serve.deployment`, `serve.batch` and the rest;
`haproxy_serve.worker` is the process `serve-replica` runs the user's code in.
"""

from . import serve

__all__ = ["serve"]
