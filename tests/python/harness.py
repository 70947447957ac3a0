"""The replica's side of the worker protocol (docs/python.md), written independently of the
package's own framing code so that the tests check the worker against the document.

`Replica` starts the real worker (`python3 -m haproxy_serve.worker --control-fd 3
--arena-fd 4`) the way serve-replica does: a socketpair and a memfd arena, duplicated onto fds
3 and 4 of the child.
"""

from __future__ import annotations

import fcntl
import json
import mmap
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
APPS = Path(__file__).resolve().parent / "apps"
ALIGN = 64
REPLY_TIMEOUT_S = 20.0  # generous: the machine may be busy with a build


class Replica:
    def __init__(self, arena_size: int = 1 << 20) -> None:
        self.arena_size = arena_size
        self.half = arena_size // 2
        self.sock, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.arena_fd = os.memfd_create("test-arena", os.MFD_CLOEXEC)
        os.ftruncate(self.arena_fd, arena_size)
        self.arena = mmap.mmap(self.arena_fd, arena_size)
        self._next_off = 0  # bump allocation in the replica's half
        self._next_id = 0
        self._backlog: list[tuple[dict[str, Any], bytes]] = []
        self._logs = tempfile.TemporaryDirectory()
        self.stdout_path = Path(self._logs.name, "stdout")
        self.stderr_path = Path(self._logs.name, "stderr")
        # Above fd 10 first, so that the dup2s onto 3 and 4 cannot overwrite each other.
        control = fcntl.fcntl(child.fileno(), fcntl.F_DUPFD_CLOEXEC, 10)
        arena = fcntl.fcntl(self.arena_fd, fcntl.F_DUPFD_CLOEXEC, 10)

        def place_fds() -> None:
            os.dup2(control, 3)
            os.dup2(arena, 4)

        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "python"), str(APPS)]))
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "haproxy_serve.worker", "--control-fd", "3",
                 "--arena-fd", "4"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                close_fds=False, preexec_fn=place_fds,
            )
        os.close(control)
        os.close(arena)
        child.close()

    # ---- frames ------------------------------------------------------------------------------

    def send(self, header: dict[str, Any], inline: bytes = b"") -> None:
        body = json.dumps(header).encode()
        self.sock.sendall(struct.pack("<II", len(body), len(inline)) + body + inline)

    def recv(self, timeout: float = REPLY_TIMEOUT_S) -> tuple[dict[str, Any], bytes]:
        """The next frame, whatever its id."""
        if self._backlog:
            return self._backlog.pop(0)
        return self._read_frame(timeout)

    def recv_for(self, frame_id: int, timeout: float = REPLY_TIMEOUT_S) -> tuple[dict, bytes]:
        """The next frame for `frame_id`; frames for other ids wait in a backlog."""
        for i, (header, inline) in enumerate(self._backlog):
            if header.get("id") == frame_id:
                return self._backlog.pop(i)
        while True:
            header, inline = self._read_frame(timeout)
            if header.get("id") == frame_id:
                return header, inline
            self._backlog.append((header, inline))

    def _read_frame(self, timeout: float) -> tuple[dict[str, Any], bytes]:
        self.sock.settimeout(timeout)
        json_len, inline_len = struct.unpack("<II", self._read_exactly(8))
        header = json.loads(self._read_exactly(json_len))
        return header, self._read_exactly(inline_len)

    def _read_exactly(self, n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise EOFError(f"worker closed the channel; stderr:\n{self.stderr()}")
            data += chunk
        return bytes(data)

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    # ---- buffers -----------------------------------------------------------------------------

    def payload(self, data: bytes, inline: bytearray, use_arena: bool = True) -> dict[str, Any]:
        """A reference to `data`: in the replica's half when it fits, else appended inline."""
        size = (max(len(data), 1) + ALIGN - 1) // ALIGN * ALIGN
        if use_arena and self._next_off + size <= self.half:
            off = self._next_off
            self.arena[off : off + len(data)] = data
            self._next_off += size
            return {"at": "arena", "off": off, "len": len(data)}
        ref = {"at": "inline", "off": len(inline), "len": len(data)}
        inline += data
        return ref

    def free_requests(self) -> None:
        """Frees every request payload (call once the replies have arrived)."""
        self._next_off = 0

    def read(self, ref: dict[str, Any], inline: bytes) -> bytes:
        off, length = ref["off"], ref["len"]
        if ref["at"] == "arena":
            assert self.half <= off and off + length <= self.arena_size, ref
            assert off % ALIGN == 0, ref
            return bytes(self.arena[off : off + length])
        assert ref["at"] == "inline" and off + length <= len(inline), ref
        return inline[off : off + length]

    def release(self, refs: list[dict[str, Any]]) -> None:
        bufs = [[r["off"], r["len"]] for r in refs if r["at"] == "arena"]
        if bufs:
            self.send({"op": "release", "bufs": bufs})

    # ---- operations --------------------------------------------------------------------------

    def init(self, import_path: str, **fields: Any) -> dict[str, Any]:
        header = {
            "op": "init", "protocol": 1, "import_path": import_path, "init_args": [],
            "init_kwargs": {}, "user_config": None, "application": "app1",
            "deployment": "Model", "replica_id": "replica-7", "route_prefix": "/",
            "max_ongoing_requests": 5, "arena_size": self.arena_size,
        }
        header.update(fields)
        self.send(header)
        return self.recv()[0]

    def send_http(self, items: list[dict[str, Any]], use_arena: bool = True) -> int:
        """Sends one `http` frame; each item: method, path, query, headers, body (bytes)."""
        inline = bytearray()
        wire_items = []
        for n, item in enumerate(items):
            wire_items.append({
                "method": item.get("method", "GET"),
                "path": item.get("path", "/"),
                "query": item.get("query", ""),
                "headers": item.get("headers", []),
                "body": self.payload(item.get("body", b""), inline, use_arena),
                "request_id": item.get("request_id", f"req-{n}"),
            })
        frame_id = self.new_id()
        self.send({"op": "http", "id": frame_id, "items": wire_items}, bytes(inline))
        return frame_id

    def http_items(self, frame_id: int) -> list[dict[str, Any]]:
        """The http_response items for `frame_id`, bodies read and their buffers released."""
        header, inline = self.recv_for(frame_id)
        assert header["op"] == "http_response", header
        self.free_requests()
        refs = [item["body"] for item in header["items"] if "body" in item]
        items = [dict(item, body=self.read(item["body"], inline)) if "body" in item else item
                 for item in header["items"]]
        self.release(refs)
        return items

    def http(self, **item: Any) -> dict[str, Any]:
        """One request, one answer item."""
        return self.http_items(self.send_http([item]))[0]

    def stream(self, frame_id: int) -> list[tuple[float, dict[str, Any], bytes | None]]:
        """(arrival time, header, chunk bytes) of every frame up to http_end."""
        frames = []
        while True:
            header, inline = self.recv_for(frame_id)
            data = None
            if header["op"] == "http_chunk":
                data = self.read(header["body"], inline)
                self.release([header["body"]])
            frames.append((time.monotonic(), header, data))
            if header["op"] in ("http_end", "http_response"):
                self.free_requests()
                return frames

    def send_infer(self, items: list[dict[str, Any]], use_arena: bool = True) -> int:
        """Each item: {"inputs": {name: numpy array}, "outputs": [names]}."""
        inline = bytearray()
        wire_items = []
        for item in items:
            inputs = []
            for name, array in item["inputs"].items():
                inputs.append({
                    "name": name, "datatype": DATATYPES[array.dtype.str],
                    "shape": list(array.shape),
                    "data": self.payload(array.tobytes(), inline, use_arena),
                })
            wire_items.append({"inputs": inputs, "outputs": item.get("outputs", [])})
        frame_id = self.new_id()
        self.send({"op": "infer", "id": frame_id, "model": "m", "items": wire_items},
                  bytes(inline))
        return frame_id

    def infer_items(self, frame_id: int) -> list[dict[str, Any]]:
        """infer_response items; each output's data read as bytes and released."""
        header, inline = self.recv_for(frame_id)
        assert header["op"] == "infer_response", header
        self.free_requests()
        refs = []
        for item in header["items"]:
            for output in item.get("outputs", []):
                refs.append(output["data"])
                output["data"] = self.read(output["data"], inline)
        self.release(refs)
        return header["items"]

    def control(self, op: str, **fields: Any) -> dict[str, Any]:
        frame_id = self.new_id()
        self.send({"op": op, "id": frame_id, **fields})
        return self.recv_for(frame_id)[0]

    # ---- process -----------------------------------------------------------------------------

    def wait(self, timeout: float = REPLY_TIMEOUT_S) -> int:
        return self.proc.wait(timeout)

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send({"op": "shutdown"})
                self.proc.wait(REPLY_TIMEOUT_S)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.sock.close()
        self.arena.close()
        os.close(self.arena_fd)
        self._logs.cleanup()


# numpy dtype.str -> KServe datatype, for the inputs the tests send.
DATATYPES = {
    "|b1": "BOOL", "|u1": "UINT8", "<u2": "UINT16", "<u4": "UINT32", "<u8": "UINT64",
    "|i1": "INT8", "<i2": "INT16", "<i4": "INT32", "<i8": "INT64", "<f4": "FP32", "<f8": "FP64",
}
