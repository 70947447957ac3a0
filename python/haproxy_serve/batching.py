"""`@serve.batch`: callers pass one item, the decorated function receives lists.

Two ways in. User code calls the decorated method with one item and an asyncio queue forms the
batches, as in Ray. The worker instead calls the undecorated function (`_serve_batch_fn`) with
a whole batch the replica formed; `_serve_batch_config` holds the settings it reports.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .exceptions import RayServeException

# A streaming batch function yields one of these in a caller's slot to end that caller's stream.
_STREAM_SENTINELS = (StopIteration, StopAsyncIteration)


@dataclass
class BatchConfig:
    max_batch_size: int
    batch_wait_timeout_s: float
    max_concurrent_batches: int
    batch_size_fn: Callable[[list[Any]], int] | None


def length_mismatch(expected: int, got: int) -> str:
    return (
        "Batched function doesn't preserve batch size. "
        f"The input list has length {expected} but the returned list has length {got}."
    )


def _check_length(results: Any, expected: int) -> None:
    if len(results) != expected:
        raise RayServeException(length_mismatch(expected, len(results)))


@dataclass(eq=False)
class _Call:
    """One caller's item: its arguments, and where its result goes."""

    head: tuple[Any, ...]  # (self,) for a method, () for a function
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    future: asyncio.Future[Any] | None = None  # a plain batch function's caller
    stream: asyncio.Queue[tuple[str, Any]] | None = None  # a streaming one's

    def fail(self, exc: BaseException) -> None:
        if self.stream is not None:
            self.stream.put_nowait(("error", exc))
        elif not self.future.done():
            self.future.set_exception(exc)


class _BatchQueue:
    """Collects calls on one event loop and runs the batch function over them."""

    def __init__(self, func: Callable[..., Any], config: BatchConfig) -> None:
        self.loop = asyncio.get_running_loop()
        self._func = func
        self._config = config
        self._waiting: deque[_Call] = deque()
        self._arrived = asyncio.Event()
        self._slots = asyncio.Semaphore(config.max_concurrent_batches)
        self._tasks: set[asyncio.Task[None]] = set()
        self._collector = self.loop.create_task(self._collect())

    def put(self, call: _Call) -> None:
        self._waiting.append(call)
        self._arrived.set()

    async def _collect(self) -> None:
        while True:
            try:
                batch = await self._next_batch()
            except Exception as exc:  # a failing batch_size_fn fails the calls it measured
                while self._waiting:
                    self._waiting.popleft().fail(exc)
                continue
            if not batch:
                continue
            await self._slots.acquire()
            task = self.loop.create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()

    async def _next_batch(self) -> list[_Call]:
        # Block for the first call, then wait up to the timeout, measured from then, for more;
        # settings are read per batch so that set_max_batch_size() applies to the next one.
        while not self._waiting:
            self._arrived.clear()
            await self._arrived.wait()
        max_size = self._config.max_batch_size
        deadline = self.loop.time() + self._config.batch_wait_timeout_s
        while self._size(self._waiting) < max_size:
            remaining = deadline - self.loop.time()
            if remaining <= 0:
                break
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                break
        return self._take(max_size)

    def _size(self, calls: Any) -> int:
        size_fn = self._config.batch_size_fn
        return len(calls) if size_fn is None else size_fn([c.args[0] for c in calls])

    def _take(self, max_size: int) -> list[_Call]:
        batch: list[_Call] = []
        while self._waiting:
            call = self._waiting[0]
            if call.future is not None and call.future.cancelled():
                self._waiting.popleft()
                continue
            if not batch and self._size([call]) > max_size:
                self._waiting.popleft()
                call.fail(
                    RuntimeError(
                        "Size of item is greater than max_batch_size. Please increase the "
                        "max_batch_size or check the implementation of the batch_size_fn."
                    )
                )
                continue
            if batch and self._size(batch + [call]) > max_size:
                break
            batch.append(self._waiting.popleft())
        return batch

    async def _run(self, batch: list[_Call]) -> None:
        try:
            args, kwargs = _stack(batch)
            result = self._func(*batch[0].head, *args, **kwargs)
            if inspect.isasyncgen(result):
                await _feed_streams(result, batch)
                return
            results = await result
            _check_length(results, len(batch))
        except Exception as exc:
            for call in batch:
                call.fail(exc)
            return
        for call, value in zip(batch, results):
            if not call.future.done():
                call.future.set_result(value)


def _stack(batch: list[_Call]) -> tuple[list[list[Any]], dict[str, list[Any]]]:
    """Per-call arguments turned into one list per positional argument and per keyword."""
    count = len(batch[0].args)
    if any(len(call.args) != count for call in batch):
        raise TypeError("all calls in a batch must pass the same number of arguments")
    args = [[call.args[i] for call in batch] for i in range(count)]
    kwargs = {key: [call.kwargs.get(key) for call in batch] for key in batch[0].kwargs}
    return args, kwargs


async def _feed_streams(generator: Any, batch: list[_Call]) -> None:
    """Hands element i of every list the batch generator yields to caller i's stream."""
    open_calls = list(batch)
    try:
        async for outputs in generator:
            _check_length(outputs, len(batch))
            for call, value in zip(batch, outputs):
                if call not in open_calls:
                    continue
                if any(value is sentinel for sentinel in _STREAM_SENTINELS):
                    open_calls.remove(call)
                    call.stream.put_nowait(("end", None))
                else:
                    call.stream.put_nowait(("value", value))
    except Exception as exc:
        for call in open_calls:
            call.fail(exc)
        return
    for call in open_calls:
        call.stream.put_nowait(("end", None))


async def _read_stream(stream: asyncio.Queue[tuple[str, Any]]) -> Any:
    while True:
        kind, value = await stream.get()
        if kind == "end":
            return
        if kind == "error":
            raise value
        yield value


def _validate(max_batch_size: Any, batch_wait_timeout_s: Any, max_concurrent_batches: Any,
              batch_size_fn: Any) -> None:
    # Ray's checks and messages (ray/serve/batching.py).
    if not isinstance(max_batch_size, int):
        if not (isinstance(max_batch_size, float) and max_batch_size.is_integer()):
            raise TypeError(f"max_batch_size must be integer >= 1, got {max_batch_size}")
    if max_batch_size < 1:
        raise ValueError(f"max_batch_size must be an integer >= 1, got {max_batch_size}")
    if not isinstance(batch_wait_timeout_s, (float, int)):
        raise TypeError(f"batch_wait_timeout_s must be a float >= 0, got {batch_wait_timeout_s}")
    if batch_wait_timeout_s < 0:
        raise ValueError(f"batch_wait_timeout_s must be a float >= 0, got {batch_wait_timeout_s}")
    if not isinstance(max_concurrent_batches, int) or max_concurrent_batches < 1:
        raise TypeError(
            f"max_concurrent_batches must be an integer >= 1, got {max_concurrent_batches}"
        )
    if batch_size_fn is not None and not callable(batch_size_fn):
        raise TypeError(f"batch_size_fn must be a callable or None, got {type(batch_size_fn)}")


def batch(
    _func: Callable[..., Any] | None = None,
    /,
    max_batch_size: int = 10,
    batch_wait_timeout_s: float = 0.01,
    max_concurrent_batches: int = 1,
    batch_size_fn: Callable[[list[Any]], int] | None = None,
) -> Any:
    """Turns a function over lists into one callers invoke with a single item.

    Bare (`@serve.batch`) the function must be `async def`; with arguments an async generator
    also works (each yield is a list with one element per caller).
    """
    if _func is not None:
        if not callable(_func):
            raise TypeError("@serve.batch can only be used to decorate functions or methods.")
        if not inspect.iscoroutinefunction(_func):
            raise TypeError("Functions decorated with @serve.batch must be 'async def'")
    _validate(max_batch_size, batch_wait_timeout_s, max_concurrent_batches, batch_size_fn)
    config = BatchConfig(
        int(max_batch_size), batch_wait_timeout_s, max_concurrent_batches, batch_size_fn
    )

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        return _make_wrapper(func, config)

    return decorate(_func) if _func is not None else decorate


def _make_wrapper(func: Callable[..., Any], config: BatchConfig) -> Callable[..., Any]:
    queue: _BatchQueue | None = None

    def enqueue(args: tuple[Any, ...], kwargs: dict[str, Any], streaming: bool) -> _Call:
        nonlocal queue
        loop = asyncio.get_running_loop()
        # One queue per event loop: it is created lazily on the loop of the first caller.
        if queue is None or queue.loop is not loop:
            queue = _BatchQueue(func, config)
        # A method call passes the instance first; it goes back in front of the lists.
        is_method = bool(args) and getattr(type(args[0]), func.__name__, None) is wrapper
        head, rest = (args[:1], args[1:]) if is_method else ((), args)
        call = _Call(head, rest, kwargs)
        if streaming:
            call.stream = asyncio.Queue()
        else:
            call.future = loop.create_future()
        queue.put(call)
        return call

    if inspect.isasyncgenfunction(func):

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return _read_stream(enqueue(args, kwargs, streaming=True).stream)

    else:

        @functools.wraps(func)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            return await enqueue(args, kwargs, streaming=False).future

    def set_max_batch_size(value: int) -> None:
        config.max_batch_size = value

    def set_batch_wait_timeout_s(value: float) -> None:
        config.batch_wait_timeout_s = value

    wrapper.set_max_batch_size = set_max_batch_size
    wrapper.set_batch_wait_timeout_s = set_batch_wait_timeout_s
    wrapper._get_max_batch_size = lambda: config.max_batch_size
    wrapper._get_batch_wait_timeout_s = lambda: config.batch_wait_timeout_s
    wrapper._serve_batch_fn = func
    wrapper._serve_batch_config = config
    return wrapper
