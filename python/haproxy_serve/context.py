"""The replica context that `serve.get_replica_context()` returns inside a worker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .exceptions import RayServeException


@dataclass
class ReplicaContext:
    """Where the calling code runs: its application, deployment and replica."""

    app_name: str
    deployment: str
    replica_id: str
    servable_object: Any = None

    @property
    def replica_tag(self) -> str:
        return self.replica_id


_current: ReplicaContext | None = None


def get_replica_context() -> ReplicaContext:
    """The context of the replica this code runs in; RayServeException outside a replica."""
    if _current is None:
        raise RayServeException(
            "`serve.get_replica_context()` may only be called from within a "
            "Ray Serve deployment."
        )
    return _current


def _set_replica_context(context: ReplicaContext | None) -> None:
    """Set by the worker before it constructs the user's class (None clears it)."""
    global _current
    _current = context
