"""The worker process that runs one replica's user code for `serve-replica` (docs/python.md).

    python3 -m haproxy_serve.worker --control-fd 3 --arena-fd 4

Threads: one asyncio loop, on the main thread, owns the control socket (read through
add_reader, written only from the loop), the arena allocator and every frame. `async def` user
methods run on the loop as tasks; sync ones run one at a time on the "serve-user" thread, which
also runs a sync `__init__`; sync `reconfigure` and `check_health` run on the "serve-control"
thread, so a long request never holds up a health check.

Exit status: 0 after `shutdown` or when the replica closes the channel, 1 after `init_error`,
2 on a protocol error or an internal failure (the reason goes to stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import inspect
import os
import platform
import socket
import sys
import traceback
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from . import context
from ._arena import Arena
from ._channel import FrameWriter
from ._http import StreamedResponse, WholeResponse, build_request, chunk_bytes, to_response
from ._loader import Method, Servable, Target, load_target
from ._protocol import (
    PROTOCOL_VERSION,
    Frame,
    FrameReader,
    InlinePayload,
    ProtocolError,
    arena_ref,
    encode_frame,
    resolve,
)
from .batching import length_mismatch
from .exceptions import RayServeException

EXIT_OK = 0
EXIT_INIT_FAILED = 1
EXIT_PROTOCOL = 2

_END = object()  # what next() returns when a sync iterator is exhausted

# Parts of one stream sent but not yet taken by the replica's consumer: at the window the
# generator waits, so a slow client slows the generator down instead of filling memory.
STREAM_WINDOW = 16


class _StreamState:
    """Flow control and cancellation of one streaming response."""

    def __init__(self, task: asyncio.Task[Any] | None) -> None:
        self.task = task
        self.unacked = 0
        self.acked = asyncio.Event()
        self.cancelled = False


def _log(message: str) -> None:
    print(f"haproxy_serve.worker: {message}", file=sys.stderr, flush=True)


def _log_exception(exc: BaseException, what: str) -> None:
    # Tracebacks go to stderr only (the replica logs it); the client sees type and message.
    _log(f"{what} raised:")
    traceback.print_exception(exc, file=sys.stderr)


def _error(exc: BaseException) -> dict[str, str]:
    return {"type": type(exc).__name__, "message": str(exc)}


def _is_stream(value: Any) -> bool:
    return inspect.isgenerator(value) or inspect.isasyncgen(value)


def _close_quietly(chunks: Any) -> None:
    """Closes a generator that will not be iterated further (its `finally` blocks run)."""
    try:
        if inspect.isasyncgen(chunks):
            asyncio.get_running_loop().create_task(chunks.aclose())
        elif inspect.isgenerator(chunks):
            chunks.close()
    except (RuntimeError, ValueError):
        pass  # running on the user thread right now: it is closed when collected


class Worker:
    """Answers the replica's frames by calling the user's code."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
                 arena_fd: int | None) -> None:
        self._loop = loop
        self._sock = sock
        self._arena_fd = arena_fd
        self._arena: Arena | None = None
        self._reader = FrameReader()
        self._writer = FrameWriter(loop, sock, self._on_broken)
        self._user_thread = ThreadPoolExecutor(1, thread_name_prefix="serve-user")
        self._control_thread = ThreadPoolExecutor(1, thread_name_prefix="serve-control")
        self._tasks: set[asyncio.Task[None]] = set()  # the loop only holds weak references
        self._state = "new"  # -> "initializing" -> "ready"
        self._servable: Servable | None = None
        self._name = ""
        self._root_path = ""
        self._handlers: dict[str, Callable[[Frame], None]] = {
            "init": self._on_init,
            "http": self._on_http,
            "infer": self._on_infer,
            "reconfigure": self._on_reconfigure,
            "check_health": self._on_check_health,
            "release": self._on_release,
            "stream_ack": self._on_stream_ack,
            "cancel": self._on_cancel,
            "shutdown": self._on_shutdown,
        }
        self._streams: dict[Any, _StreamState] = {}

    def start(self) -> None:
        self._loop.add_reader(self._sock.fileno(), self._on_readable)

    # ---- the channel -------------------------------------------------------------------------

    def _on_readable(self) -> None:
        try:
            data = self._sock.recv(1 << 20)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._on_broken(exc)
            return
        if not data:
            self._exit(EXIT_OK)  # the replica closed the channel: it is gone or wants us gone
        try:
            for frame in self._reader.feed(data):
                self._dispatch(frame)
        except ProtocolError as exc:
            self._exit(EXIT_PROTOCOL, f"protocol error: {exc}")
        except Exception as exc:
            _log_exception(exc, "the worker")
            self._exit(EXIT_PROTOCOL, "internal error")

    def _dispatch(self, frame: Frame) -> None:
        handler = self._handlers.get(frame.op)
        if handler is None:
            raise ProtocolError(f"unknown op '{frame.op}'")
        if frame.op == "init" and self._state != "new":
            raise ProtocolError("a second 'init'")
        if frame.op not in ("init", "shutdown") and self._state != "ready":
            raise ProtocolError(f"'{frame.op}' before the worker answered 'ready'")
        handler(frame)

    def _send(self, header: dict[str, Any], inline: InlinePayload | None = None) -> None:
        self._writer.write(encode_frame(header, inline.to_bytes() if inline else b""))

    def _put(self, data: bytes | memoryview, inline: InlinePayload) -> dict[str, Any]:
        """A reference to `data` in the worker's half of the arena, or inline when it is full."""
        if len(data) and self._arena is not None:
            off = self._arena.put(data)
            if off is not None:
                return arena_ref(off, len(data))
        return inline.add(data)

    def _spawn(self, coro: Any) -> None:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        # Handlers turn user errors into replies, so what arrives here is the worker's own bug.
        _log_exception(task.exception(), "the worker")
        self._exit(EXIT_PROTOCOL, "internal error")

    def _on_broken(self, exc: OSError) -> None:
        self._exit(EXIT_OK, f"the control channel broke: {exc}")

    def _exit(self, code: int, reason: str | None = None) -> None:
        if reason:
            _log(reason)
        self._writer.flush_blocking()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        # No interpreter teardown: it would wait for user threads and run __del__ a second time.
        os._exit(code)

    # ---- calling user code -------------------------------------------------------------------

    async def _run_sync_or_async(self, fn: Callable[..., Any], args: tuple[Any, ...],
                                 thread: ThreadPoolExecutor) -> Any:
        if inspect.iscoroutinefunction(fn):
            return await fn(*args)
        result = await self._loop.run_in_executor(thread, functools.partial(fn, *args))
        if inspect.isawaitable(result):
            result = await result
        return result

    async def _invoke(self, method: Method, *args: Any) -> Any:
        if method.is_generator:
            return method.fn(*args)  # only creates the generator; its body runs as it streams
        if method.is_async:
            return await method.fn(*args)
        return await self._run_sync_or_async(method.fn, args, self._user_thread)

    async def _call_each(self, method: Method | None, entry: str, args: list[Any],
                         labels: list[str]) -> list[Any]:
        """The method's result for every item, or the exception it got; tracebacks logged."""
        if method is None:
            exc = AttributeError(f"deployment '{self._name}' has no {entry} method")
            return [exc] * len(args)
        if method.batch is None:
            calls = [self._invoke(method, a) if method.takes_argument else self._invoke(method)
                     for a in args]
            results = await asyncio.gather(*calls, return_exceptions=True)
            for result, label in zip(results, labels):
                if isinstance(result, BaseException):
                    _log_exception(result, f"{entry} for {label}")
            return results
        try:
            results = await self._invoke(method, list(args))
            if method.is_generator:
                if len(args) != 1:
                    raise TypeError(f"a streaming batched {entry} takes one item per frame")
                return [self._single_stream(results)]
            if len(results) != len(args):
                raise ValueError(length_mismatch(len(args), len(results)))
            return list(results)
        except Exception as exc:
            _log_exception(exc, f"batched {entry} for {', '.join(labels)}")
            return [exc] * len(args)

    async def _single_stream(self, batches: Any) -> AsyncIterator[Any]:
        """The one caller's elements of a streaming batch function's yielded lists."""
        async for outputs in self._iterate(batches):
            if len(outputs) != 1:
                raise ValueError(length_mismatch(1, len(outputs)))
            if outputs[0] is StopIteration or outputs[0] is StopAsyncIteration:
                return
            yield outputs[0]

    async def _iterate(self, iterable: Any) -> AsyncIterator[Any]:
        """Async iteration over a sync or async iterable; a sync one advances on the user thread."""
        if hasattr(iterable, "__aiter__"):
            async for item in iterable:
                yield item
            return
        iterator = iter(iterable)
        while True:
            item = await self._loop.run_in_executor(self._user_thread, next, iterator, _END)
            if item is _END:
                return
            yield item

    # ---- init --------------------------------------------------------------------------------

    def _on_init(self, frame: Frame) -> None:
        header = frame.header
        if header.get("protocol") != PROTOCOL_VERSION:
            raise ProtocolError(
                f"the worker speaks protocol {PROTOCOL_VERSION}, init asked for "
                f"{header.get('protocol')!r}"
            )
        if not isinstance(header.get("import_path"), str):
            raise ProtocolError("init needs an 'import_path' string")
        if not isinstance(header.get("init_args") or [], list):
            raise ProtocolError("init's 'init_args' must be a list")
        if not isinstance(header.get("init_kwargs") or {}, dict):
            raise ProtocolError("init's 'init_kwargs' must be an object")
        size = header.get("arena_size") or 0
        if size:
            if self._arena_fd is None:
                raise ProtocolError("init names an arena but the worker got no --arena-fd")
            try:
                self._arena = Arena(self._arena_fd, size)
            except (OSError, ValueError, TypeError) as exc:
                raise ProtocolError(f"cannot map the arena of {size!r} bytes: {exc}") from None
        prefix = header.get("route_prefix") or "/"
        self._root_path = "" if prefix == "/" else prefix
        self._state = "initializing"
        self._spawn(self._initialize(header))

    async def _initialize(self, header: dict[str, Any]) -> None:
        replica = context.ReplicaContext(
            str(header.get("application") or ""),
            str(header.get("deployment") or ""),
            str(header.get("replica_id") or ""),
        )
        context._set_replica_context(replica)
        # BaseException: whatever stops the start-up (even sys.exit in user code) is reported.
        try:
            target = load_target(
                header["import_path"],
                header.get("init_args") or [],
                header.get("init_kwargs") or {},
            )
        except BaseException as exc:
            return self._init_failed("import", exc)
        self._name = replica.deployment or target.name
        try:
            servable = await self._construct(target)
        except BaseException as exc:
            return self._init_failed("construct", exc)
        replica.servable_object = servable.instance
        # As in Ray, a user_config from the config file overrides the one in the code.
        user_config = header.get("user_config")
        if user_config is None:
            user_config = target.user_config
        if user_config is not None:
            try:
                await self._reconfigure(servable, user_config)
            except BaseException as exc:
                return self._init_failed("reconfigure", exc)
        self._servable = servable
        self._state = "ready"
        self._send({
            "op": "ready",
            "pid": os.getpid(),
            "python": platform.python_version(),
            "methods": servable.methods(),
            "has_check_health": servable.check_health is not None,
            "has_reconfigure": servable.reconfigure is not None,
            "kserve": target.kserve_metadata,
        })

    async def _construct(self, target: Target) -> Servable:
        definition = target.definition
        if not inspect.isclass(definition):
            if target.args or target.kwargs:
                raise ValueError("init_args not supported for function deployments.")
            return Servable.of_function(definition)
        if inspect.iscoroutinefunction(definition.__init__):
            instance = definition.__new__(definition)
            await instance.__init__(*target.args, **target.kwargs)
        else:
            build = functools.partial(definition, *target.args, **target.kwargs)
            instance = await self._loop.run_in_executor(self._user_thread, build)
        return Servable.of_instance(instance)

    def _init_failed(self, stage: str, exc: BaseException) -> None:
        _log_exception(exc, f"start-up ({stage})")
        last_line = traceback.format_exception_only(type(exc), exc)[-1].rstrip("\n")
        self._send({"op": "init_error", "stage": stage, **_error(exc), "last_line": last_line})
        self._exit(EXIT_INIT_FAILED)

    async def _reconfigure(self, servable: Servable, user_config: Any) -> None:
        if servable.reconfigure is None:
            if servable.instance is None:
                raise ValueError("deployment_def must be a class to use user_config")
            raise RayServeException(
                f"user_config specified but deployment {self._name} missing reconfigure method"
            )
        await self._run_sync_or_async(servable.reconfigure, (user_config,), self._control_thread)

    # ---- requests ----------------------------------------------------------------------------

    def _items(self, frame: Frame) -> list[dict[str, Any]]:
        items = frame.header.get("items")
        if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
            raise ProtocolError(f"'{frame.op}' needs a non-empty list of item objects")
        return items

    def _on_http(self, frame: Frame) -> None:
        requests, labels = [], []
        for item in self._items(frame):
            ref = item.get("body")
            # A copy: the body outlives the request buffer if user code keeps it.
            body = bytes(resolve(ref, frame.inline, self._arena)) if ref is not None else b""
            requests.append(build_request(item, body, self._root_path))
            labels.append(f"request {item.get('request_id', '?')}")
        self._spawn(self._serve_http(frame.header.get("id"), requests, labels))

    async def _serve_http(self, frame_id: Any, requests: list[Any], labels: list[str]) -> None:
        results = await self._call_each(self._servable.call, "__call__", requests, labels)
        responses = [self._to_response(r, len(results), label) for r, label in zip(results, labels)]
        if isinstance(responses[0], StreamedResponse):
            await self._stream(frame_id, responses[0])
            return
        inline = InlinePayload()
        items = []
        for response in responses:
            if isinstance(response, WholeResponse):
                body = self._put(response.body, inline)
                items.append({"status": response.status, "headers": response.headers, "body": body})
            else:
                items.append({"error": _error(response)})
        self._send({"op": "http_response", "id": frame_id, "items": items}, inline)

    def _to_response(self, result: Any, count: int, label: str) -> Any:
        """A WholeResponse, a StreamedResponse (only when the frame had one item) or an error."""
        if isinstance(result, BaseException):
            return result
        try:
            response = to_response(result)
            if isinstance(response, StreamedResponse) and count > 1:
                raise TypeError(
                    f"a streaming response needs a frame of its own; this one had {count} items"
                )
            return response
        except Exception as exc:
            _log_exception(exc, f"the response to {label}")
            return exc

    async def _stream(self, frame_id: Any, response: StreamedResponse) -> None:
        self._send({"op": "http_start", "id": frame_id, "status": response.status,
                    "headers": response.headers})

        def send_chunk(chunk: Any) -> bool:
            data = chunk_bytes(chunk)
            if not data:
                return False  # an empty chunk would read as the end of a chunked body
            inline = InlinePayload()
            self._send({"op": "http_chunk", "id": frame_id, "body": self._put(data, inline)},
                       inline)
            return True

        error = await self._pump(frame_id, response.chunks, send_chunk)
        self._send({"op": "http_end", "id": frame_id, **({"error": error} if error else {})})

    async def _pump(self, frame_id: Any, chunks: Any,
                    send_chunk: Callable[[Any], bool]) -> dict[str, str] | None:
        """Sends every part of `chunks` with send_chunk(), at most STREAM_WINDOW unacknowledged,
        until it ends, raises or the replica cancels it; returns the error to end with, if any."""
        state = _StreamState(asyncio.current_task())
        self._streams[frame_id] = state
        try:
            async for chunk in self._iterate(chunks):
                if not send_chunk(chunk):
                    continue
                state.unacked += 1
                await self._writer.drain()
                while state.unacked >= STREAM_WINDOW:
                    state.acked.clear()
                    await state.acked.wait()
            return None
        except asyncio.CancelledError:
            if not state.cancelled:
                raise
            _close_quietly(chunks)
            return {"type": "CancelledError",
                    "message": "the client went away; the stream was cancelled"}
        except Exception as exc:
            _log_exception(exc, f"the stream of frame {frame_id}")
            return _error(exc)
        finally:
            self._streams.pop(frame_id, None)

    def _on_stream_ack(self, frame: Frame) -> None:
        state = self._streams.get(frame.header.get("id"))
        if state is not None:  # a stream that ended in the meantime needs none
            state.unacked -= 1
            state.acked.set()

    def _on_cancel(self, frame: Frame) -> None:
        state = self._streams.get(frame.header.get("id"))
        if state is not None and state.task is not None and not state.cancelled:
            state.cancelled = True
            state.task.cancel()

    def _on_infer(self, frame: Frame) -> None:
        items = self._items(frame)
        frame_id = frame.header.get("id")
        try:
            from . import _kserve
        except ImportError as exc:  # numpy missing: every item fails, the worker stays up
            _log_exception(exc, "importing numpy for infer")
            self._send({"op": "infer_response", "id": frame_id,
                        "items": [{"error": _error(exc)}] * len(items)})
            return
        inputs = [
            _kserve.item_inputs(item, lambda ref: resolve(ref, frame.inline, self._arena))
            for item in items
        ]
        wanted = [[str(name) for name in item.get("outputs") or []] for item in items]
        self._spawn(self._serve_infer(_kserve, frame_id, inputs, wanted))

    async def _serve_infer(self, kserve: Any, frame_id: Any, inputs: list[Any],
                           wanted: list[list[str]]) -> None:
        ok = [i for i, x in enumerate(inputs) if not isinstance(x, Exception)]
        labels = [f"item {i} of frame {frame_id}" for i in ok]
        results = list(inputs)
        called = await self._call_each(self._servable.infer, "infer", [inputs[i] for i in ok],
                                       labels)
        for i, result in zip(ok, called):
            results[i] = result
        streams = [r for r in results if _is_stream(r)]
        if streams and len(results) == 1:
            await self._stream_infer(kserve, frame_id, results[0], wanted[0])
            return
        for index, result in enumerate(results):
            if _is_stream(result):
                _close_quietly(result)
                results[index] = TypeError(
                    f"a streaming infer needs a frame of its own; this one had {len(results)} items")
        inline = InlinePayload()
        items = []
        for index, (result, names) in enumerate(zip(results, wanted)):
            if isinstance(result, BaseException):
                items.append({"error": _error(result)})
                continue
            try:
                tensors = kserve.item_outputs(result, names)
            except Exception as exc:
                _log_exception(exc, f"the outputs of item {index} of frame {frame_id}")
                items.append({"error": _error(exc)})
                continue
            outputs = [
                {"name": name, "datatype": dtype, "shape": shape, "data": self._put(data, inline)}
                for name, dtype, shape, data in tensors
            ]
            items.append({"outputs": outputs})
        self._send({"op": "infer_response", "id": frame_id, "items": items}, inline)

    async def _stream_infer(self, kserve: Any, frame_id: Any, parts: Any,
                            names: list[str]) -> None:
        self._send({"op": "infer_start", "id": frame_id})

        def send_part(result: Any) -> bool:
            inline = InlinePayload()
            outputs = [
                {"name": name, "datatype": dtype, "shape": shape, "data": self._put(data, inline)}
                for name, dtype, shape, data in kserve.item_outputs(result, names)
            ]
            self._send({"op": "infer_chunk", "id": frame_id, "outputs": outputs}, inline)
            return True

        error = await self._pump(frame_id, parts, send_part)
        self._send({"op": "infer_end", "id": frame_id, **({"error": error} if error else {})})

    # ---- control -----------------------------------------------------------------------------

    def _on_reconfigure(self, frame: Frame) -> None:
        user_config = frame.header.get("user_config")
        self._spawn(self._answer(frame.header.get("id"), "reconfigure",
                                 self._reconfigure(self._servable, user_config)))

    def _on_check_health(self, frame: Frame) -> None:
        check = self._servable.check_health
        if check is None:
            self._send({"op": "done", "id": frame.header.get("id")})
            return
        self._spawn(self._answer(frame.header.get("id"), "check_health",
                                 self._run_sync_or_async(check, (), self._control_thread)))

    async def _answer(self, frame_id: Any, what: str, work: Any) -> None:
        try:
            await work
        except Exception as exc:
            _log_exception(exc, what)
            self._send({"op": "error", "id": frame_id, "error": _error(exc)})
            return
        self._send({"op": "done", "id": frame_id})

    def _on_release(self, frame: Frame) -> None:
        bufs = frame.header.get("bufs")
        if not isinstance(bufs, list):
            raise ProtocolError("'release' needs a list of [off, len] pairs")
        for buf in bufs:
            if not isinstance(buf, list) or len(buf) != 2 or not isinstance(buf[0], int):
                raise ProtocolError(f"'release' with a malformed buffer {buf!r}")
            if self._arena is None or not self._arena.allocator.free(buf[0]):
                _log(f"release of [{buf[0]}, {buf[1]}], which is not a block the worker gave out")

    def _on_shutdown(self, frame: Frame) -> None:
        self._spawn(self._shutdown())

    async def _shutdown(self) -> None:
        instance = self._servable.instance if self._servable else None
        destructor = getattr(instance, "__del__", None)
        if destructor is not None:
            try:
                result = destructor()
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                _log_exception(exc, "__del__")
        self._exit(EXIT_OK)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python3 -m haproxy_serve.worker",
        description="Run one replica's Python deployment for serve-replica.",
    )
    parser.add_argument("--control-fd", type=int, required=True, help="the control socket")
    parser.add_argument("--arena-fd", type=int, default=None, help="the shared-memory arena")
    args = parser.parse_args(argv)
    # Processes user code starts must not hold the channel open after the worker is gone.
    os.set_inheritable(args.control_fd, False)
    if args.arena_fd is not None:
        os.set_inheritable(args.arena_fd, False)
    sock = socket.socket(fileno=args.control_fd)
    sock.setblocking(False)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    Worker(loop, sock, args.arena_fd).start()
    loop.run_forever()  # the worker ends the process itself (Worker._exit)


if __name__ == "__main__":
    main()
