"""The worker's end of the control socket: frames out, in order, never blocking the loop."""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from collections.abc import Callable


class FrameWriter:
    """Writes frames in order without blocking the loop; the rest waits for writability."""

    HIGH_WATER = 4 << 20  # streaming producers pause above this many unsent bytes

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
                 on_broken: Callable[[OSError], None]) -> None:
        self._loop = loop
        self._sock = sock
        self._on_broken = on_broken
        self._pending: deque[memoryview] = deque()
        self._pending_bytes = 0
        self._drained = asyncio.Event()
        self._drained.set()

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        if not self._pending:
            view = view[self._send(view):]
            if not view:
                return
            self._loop.add_writer(self._sock.fileno(), self._flush)
        self._pending.append(view)
        self._pending_bytes += len(view)
        if self._pending_bytes > self.HIGH_WATER:
            self._drained.clear()

    async def drain(self) -> None:
        await self._drained.wait()

    def flush_blocking(self) -> None:
        """Sends what is queued, blocking: only on the way out of the process."""
        self._sock.settimeout(5.0)  # a replica that stopped reading must not keep us alive
        try:
            for view in self._pending:
                self._sock.sendall(view)
        except OSError:
            pass
        self._pending.clear()

    def _send(self, view: memoryview) -> int:
        try:
            return self._sock.send(view)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as exc:
            self._on_broken(exc)
            return 0

    def _flush(self) -> None:
        while self._pending:
            head = self._pending[0]
            sent = self._send(head)
            self._pending_bytes -= sent
            if sent < len(head):
                self._pending[0] = head[sent:]
                return
            self._pending.popleft()
        self._loop.remove_writer(self._sock.fileno())
        self._drained.set()
