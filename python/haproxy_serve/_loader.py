"""Finding the user's deployment from an `import_path`, and describing what it offers."""

from __future__ import annotations

import functools
import importlib
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .batching import BatchConfig
from .serve import Application, Deployment


@dataclass
class Target:
    """What to construct (a class) or serve as it is (a function), with its arguments."""

    definition: Callable[..., Any]
    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    user_config: Any  # from @serve.deployment(user_config=...); the init frame's one wins
    kserve_metadata: dict[str, Any] | None


def load_target(import_path: str, init_args: list[Any], init_kwargs: dict[str, Any]) -> Target:
    """Imports `pkg.module:attr` (or `pkg.module.attr`) and works out what it names.

    The attribute may be an Application (its bound arguments are used unless init_args or
    init_kwargs are given), a Deployment, a plain class, or, as in Ray, a builder function that
    takes the application's args (init_kwargs here) and returns an Application.
    """
    attr = _import_attr(import_path)
    if inspect.isfunction(attr):
        app = attr(dict(init_kwargs))
        if not isinstance(app, Application):
            raise TypeError(
                f"'{import_path}' is a builder function and must return an Application "
                f"(from Deployment.bind()), but returned {type(app).__name__}"
            )
        attr, init_args, init_kwargs = app, [], {}
    if isinstance(attr, Application):
        bound = attr._bound_deployment
        if not init_args and not init_kwargs:
            init_args, init_kwargs = list(bound.init_args), bound.init_kwargs
        attr = bound
    if isinstance(attr, Deployment):
        definition, name, user_config = attr.func_or_class, attr.name, attr.user_config
    elif inspect.isclass(attr):
        definition, name, user_config = attr, attr.__name__, None
    else:
        raise TypeError(
            f"'{import_path}' is a {type(attr).__name__}; expected an Application "
            "(Deployment.bind()), a Deployment, a class or a builder function"
        )
    metadata = _kserve_metadata(definition)
    return Target(definition, name, tuple(init_args), dict(init_kwargs), user_config, metadata)


def _import_attr(import_path: str) -> Any:
    if ":" in import_path:
        module_name, _, attr_path = import_path.partition(":")
    else:
        module_name, _, attr_path = import_path.rpartition(".")
    if not module_name or not attr_path:
        raise ValueError(
            f"import_path must be 'module:attribute' or 'module.attribute', got '{import_path}'"
        )
    obj = importlib.import_module(module_name)
    for part in attr_path.split("."):
        obj = getattr(obj, part)
    return obj


def _kserve_metadata(definition: Any) -> dict[str, Any] | None:
    metadata = getattr(definition, "kserve_metadata", None)
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise TypeError(f"kserve_metadata must be a dict, got {type(metadata).__name__}")
    json.dumps(metadata, allow_nan=False)  # it travels in the ready frame
    return metadata


@dataclass
class Method:
    """How to call `__call__` or `infer`: with one item, or (batch set) with the list of items."""

    fn: Callable[..., Any]
    batch: BatchConfig | None
    is_async: bool
    is_generator: bool
    takes_argument: bool

    def describe(self) -> dict[str, Any]:
        batch = None
        if self.batch is not None:
            batch = {
                "max_batch_size": self.batch.max_batch_size,
                "batch_wait_timeout_s": self.batch.batch_wait_timeout_s,
            }
        return {"async": self.is_async, "generator": self.is_generator, "batch": batch}


@dataclass
class Servable:
    """The constructed user object (None for a function deployment) and its entry points."""

    instance: Any
    call: Method | None
    infer: Method | None
    reconfigure: Callable[..., Any] | None
    check_health: Callable[[], Any] | None

    @classmethod
    def of_instance(cls, instance: Any) -> Servable:
        return cls(
            instance,
            _method(instance, "__call__"),
            _method(instance, "infer"),
            _bound(instance, "reconfigure"),
            _bound(instance, "check_health"),
        )

    @classmethod
    def of_function(cls, fn: Callable[..., Any]) -> Servable:
        return cls(None, _describe(fn, None), None, None, None)

    def methods(self) -> dict[str, Any]:
        found = {"__call__": self.call, "infer": self.infer}
        return {name: m.describe() for name, m in found.items() if m is not None}


def _bound(instance: Any, name: str) -> Callable[..., Any] | None:
    method = getattr(instance, name, None) if _defined(instance, name) else None
    return method if callable(method) else None


def _defined(instance: Any, name: str) -> bool:
    # Looked up in the class's own MRO: getattr on a class would find type.__call__.
    return any(name in vars(klass) for klass in type(instance).__mro__ if klass is not object)


def _method(instance: Any, name: str) -> Method | None:
    if not _defined(instance, name):
        return None
    raw = inspect.getattr_static(instance, name)
    if inspect.isfunction(raw):  # a plain method, maybe decorated with @serve.batch
        return _describe(raw, instance)
    return _describe(getattr(instance, name), None)  # a staticmethod, classmethod or callable


def _describe(fn: Callable[..., Any], instance: Any) -> Method:
    """A Method for `fn`: a callable as it is (instance None) or a class's function, bound."""
    batch_fn = getattr(fn, "_serve_batch_fn", None)
    target = batch_fn if batch_fn is not None else fn
    call = target if instance is None else functools.partial(target, instance)
    return Method(
        fn=call,
        batch=getattr(fn, "_serve_batch_config", None),
        is_async=inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target),
        is_generator=inspect.isgeneratorfunction(target) or inspect.isasyncgenfunction(target),
        takes_argument=batch_fn is not None or _takes_argument(call),
    )


def _takes_argument(fn: Callable[..., Any]) -> bool:
    """False for a handler declared without parameters: Ray then calls it with none."""
    try:
        return bool(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return True
