"""Exceptions with the names Ray Serve users catch (`ray.serve.exceptions`)."""


class RayServeException(Exception):
    """An error raised by the serving framework rather than by user code."""
