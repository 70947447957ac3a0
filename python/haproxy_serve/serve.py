"""Ray Serve's user API: port a deployment by changing `from ray import serve` to
`from haproxy_serve import serve`.

Deployments are declared here and run by `serve-replica`, which starts one worker process per
replica (`haproxy_serve.worker`); nothing in this module starts anything.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .batching import batch
from .context import ReplicaContext, get_replica_context
from .exceptions import RayServeException
from .requests import Request
from .responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)

__all__ = [
    "Application",
    "Deployment",
    "HTMLResponse",
    "JSONResponse",
    "PlainTextResponse",
    "RayServeException",
    "ReplicaContext",
    "Request",
    "Response",
    "StreamingResponse",
    "batch",
    "deployment",
    "get_multiplexed_model_id",
    "get_replica_context",
]

# Effective defaults of every `@serve.deployment` keyword (Ray's DeploymentConfig defaults).
_DEFAULTS: dict[str, Any] = {
    "num_replicas": 1,
    "ray_actor_options": None,
    "placement_group_bundles": None,
    "placement_group_strategy": None,
    "placement_group_bundle_label_selector": None,
    "max_replicas_per_node": None,
    "user_config": None,
    "max_ongoing_requests": 5,
    "max_queued_requests": -1,
    "backpressure_config": None,
    "autoscaling_config": None,
    "graceful_shutdown_wait_loop_s": 2.0,
    "graceful_shutdown_timeout_s": 20.0,
    "health_check_period_s": 10.0,
    "health_check_timeout_s": 30.0,
    "logging_config": None,
    "request_router_config": None,
    "max_constructor_retry_count": 20,
    "gang_scheduling_config": None,
    "deployment_actors": None,
    "max_surge_percent": 0,
    "rolling_update_percentage": 0.2,
}
# Accepted by the decorator only, as in Ray.
_DECORATOR_ONLY = {"rolling_update_percentage"}
_RAY_ACTOR_OPTION_KEYS = {
    "accelerator_type", "memory", "num_cpus", "num_gpus", "resources", "runtime_env",
    "label_selector", "fallback_strategy",
}
_AUTO_SCALING = {"min_replicas": 1, "max_replicas": 100, "target_ongoing_requests": 2}


class Application:
    """A deployment with its constructor arguments bound; what `import_path` names."""

    def __init__(self, bound_deployment: Deployment) -> None:
        self._bound_deployment = bound_deployment


class Deployment:
    """A class or function decorated with `@serve.deployment`."""

    def __init__(
        self,
        func_or_class: Callable[..., Any],
        name: str,
        options: dict[str, Any],
        init_args: tuple[Any, ...] = (),
        init_kwargs: dict[str, Any] | None = None,
        _internal: bool = False,
    ) -> None:
        if not _internal:
            raise RuntimeError(
                "The Deployment constructor should not be called "
                "directly. Use `@serve.deployment` instead."
            )
        self._func_or_class = func_or_class
        self._name = name
        self._options = options  # only the keywords the user passed
        self._init_args = tuple(init_args)
        self._init_kwargs = dict(init_kwargs or {})

    def _get(self, key: str) -> Any:
        return self._options.get(key, _DEFAULTS[key])

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> None:
        return None

    @property
    def func_or_class(self) -> Callable[..., Any]:
        return self._func_or_class

    @property
    def num_replicas(self) -> int | None:
        return self._get("num_replicas")

    @property
    def user_config(self) -> Any:
        return self._get("user_config")

    @property
    def max_ongoing_requests(self) -> int:
        return self._get("max_ongoing_requests")

    @property
    def max_queued_requests(self) -> int:
        return self._get("max_queued_requests")

    @property
    def backpressure_config(self) -> Any:
        return self._get("backpressure_config")

    @property
    def autoscaling_config(self) -> Any:
        return self._get("autoscaling_config")

    @property
    def ray_actor_options(self) -> dict[str, Any]:
        return {"num_cpus": 1, **(self._get("ray_actor_options") or {})}

    @property
    def logging_config(self) -> Any:
        return self._get("logging_config")

    @property
    def init_args(self) -> tuple[Any, ...]:
        return self._init_args

    @property
    def init_kwargs(self) -> dict[str, Any]:
        return self._init_kwargs

    @property
    def _user_configured_option_names(self) -> set[str]:
        return set(self._options)

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError(
            "Deployments cannot be constructed directly. Use `deployment.deploy() instead.`"
        )

    def bind(self, *args: Any, **kwargs: Any) -> Application:
        """Binds constructor arguments; nothing runs until a replica starts."""
        bound = Deployment(
            self._func_or_class, self._name, self._options, args, kwargs, _internal=True
        )
        return Application(bound)

    def options(self, **options: Any) -> Deployment:
        """A copy with the given `@serve.deployment` keywords changed."""
        name = options.pop("name", self._name)
        changes = _validated(options, "options", allowed=set(_DEFAULTS) - _DECORATOR_ONLY)
        return Deployment(
            self._func_or_class,
            _validated_name(name),
            {**self._options, **changes},
            self._init_args,
            self._init_kwargs,
            _internal=True,
        )

    def __repr__(self) -> str:
        return f"Deployment(name={self._name})"


def deployment(_func_or_class: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """`@serve.deployment` or `@serve.deployment(name=..., user_config=..., ...)`.

    Takes Ray's keywords (see `_DEFAULTS` for them and their defaults) and returns a
    `Deployment`; `.bind(*args, **kwargs)` on it gives the `Application` to serve.
    """
    name = options.pop("name", None)
    checked = _validated(options, "deployment", allowed=set(_DEFAULTS))

    def decorate(func_or_class: Callable[..., Any]) -> Deployment:
        if not callable(func_or_class):
            raise TypeError("@serve.deployment must be called on a class or function.")
        deployment_name = _validated_name(name if name is not None else func_or_class.__name__)
        return Deployment(func_or_class, deployment_name, checked, _internal=True)

    return decorate(_func_or_class) if _func_or_class is not None else decorate


def _validated_name(name: Any) -> str:
    if not isinstance(name, str):
        raise TypeError("name must be a string.")
    if "#" in name:
        raise ValueError(f"Deployment names must not contain the '#' character, got '{name}'.")
    return name


def _validated(options: dict[str, Any], caller: str, allowed: set[str]) -> dict[str, Any]:
    """Ray's checks of deployment keywords; returns the options to record."""
    if "version" in options:
        raise ValueError("`version` in `@serve.deployment` has been removed.")
    if "route_prefix" in options:
        raise ValueError(
            "`route_prefix` can no longer be specified at the deployment level. "
            "Pass it to `serve.run` or in the application config instead."
        )
    for key in options:
        if key not in allowed:
            raise TypeError(f"{caller}() got an unexpected keyword argument '{key}'")
    options = dict(options)
    if "max_ongoing_requests" in options:
        limit = options["max_ongoing_requests"]
        if limit is None:
            raise ValueError("`max_ongoing_requests` must be non-null, got None.")
        if limit <= 0:
            raise ValueError(f"`max_ongoing_requests` must be > 0, got {limit}.")
    replicas = options.get("num_replicas")
    if replicas == "auto":
        options["num_replicas"] = None
        given = options.get("autoscaling_config") or {}
        options["autoscaling_config"] = {**_AUTO_SCALING, **given}
    elif replicas is not None and options.get("autoscaling_config") is not None:
        raise ValueError(
            "Manually setting num_replicas is not allowed when autoscaling_config is provided."
        )
    elif replicas == 0:
        raise ValueError("num_replicas is expected to larger than 0")
    if "user_config" in options and not isinstance(options["user_config"], bytes):
        try:
            json.dumps(options["user_config"])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"user_config is not JSON-serializable: {exc}") from None
    for key in options.get("ray_actor_options") or {}:
        if key not in _RAY_ACTOR_OPTION_KEYS:
            raise ValueError(
                f"Specifying '{key}' in ray_actor_options is not allowed. "
                f"Allowed options: {sorted(_RAY_ACTOR_OPTION_KEYS)}"
            )
    return options


def get_multiplexed_model_id() -> str:
    """The request's multiplexed model id; multiplexing is not supported, so always ""."""
    return ""
