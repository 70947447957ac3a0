"""Frames and buffer references of the replica-worker protocol (docs/python.md).

A frame is two little-endian u32 lengths, a JSON object (the header, with an "op") and inline
payload bytes. Payloads are named by buffer references: {"at": "arena"|"inline", "off", "len"}.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any, Protocol

PROTOCOL_VERSION = 1
MAX_HEADER_BYTES = 16 << 20

_PREFIX = struct.Struct("<II")


class ProtocolError(Exception):
    """The peer broke the protocol; the channel must be closed."""


@dataclass
class Frame:
    header: dict[str, Any]
    inline: bytes

    @property
    def op(self) -> str:
        return self.header["op"]


def encode_frame(header: dict[str, Any], inline: bytes = b"") -> bytes:
    # ASCII JSON is valid UTF-8 whatever strings user code put in headers or error messages.
    body = json.dumps(header, separators=(",", ":"), allow_nan=False).encode("ascii")
    if len(body) > MAX_HEADER_BYTES:
        raise ValueError(f"frame header of {len(body)} bytes is over the 16 MiB limit")
    return _PREFIX.pack(len(body), len(inline)) + body + inline


class FrameReader:
    """Cuts a byte stream into frames; raises ProtocolError on a malformed one."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames = []
        while len(self._buf) >= _PREFIX.size:
            json_len, inline_len = _PREFIX.unpack_from(self._buf)
            if json_len > MAX_HEADER_BYTES:
                raise ProtocolError(f"frame header of {json_len} bytes is over the 16 MiB limit")
            end = _PREFIX.size + json_len + inline_len
            if len(self._buf) < end:
                break
            header = _parse_header(bytes(self._buf[_PREFIX.size : _PREFIX.size + json_len]))
            frames.append(Frame(header, bytes(self._buf[_PREFIX.size + json_len : end])))
            del self._buf[:end]
        return frames


def _parse_header(raw: bytes) -> dict[str, Any]:
    try:
        header = json.loads(raw)
    except ValueError as exc:
        raise ProtocolError(f"frame header is not JSON: {exc}") from None
    if not isinstance(header, dict) or not isinstance(header.get("op"), str):
        raise ProtocolError("frame header is not a JSON object with a string 'op'")
    return header


class InlinePayload:
    """The inline bytes of one outgoing frame, built up payload by payload."""

    def __init__(self) -> None:
        self._parts: list[bytes | memoryview] = []
        self._size = 0

    def add(self, data: bytes | memoryview) -> dict[str, Any]:
        ref = {"at": "inline", "off": self._size, "len": len(data)}
        if len(data):
            self._parts.append(data)
            self._size += len(data)
        return ref

    def to_bytes(self) -> bytes:
        return b"".join(self._parts)


def arena_ref(off: int, length: int) -> dict[str, Any]:
    return {"at": "arena", "off": off, "len": length}


class _ArenaView(Protocol):
    def view(self, off: int, length: int) -> memoryview: ...


def resolve(ref: Any, inline: bytes, arena: _ArenaView | None) -> memoryview:
    """The bytes a buffer reference names; ProtocolError when it points outside its area."""
    if not isinstance(ref, dict):
        raise ProtocolError(f"buffer reference is not an object: {ref!r}")
    off, length = ref.get("off"), ref.get("len")
    if not _is_count(off) or not _is_count(length):
        raise ProtocolError(f"buffer reference with bad off/len: {ref!r}")
    at = ref.get("at")
    if at == "inline":
        if off + length > len(inline):
            raise ProtocolError(f"inline buffer {ref!r} is outside the frame's {len(inline)} bytes")
        return memoryview(inline)[off : off + length]
    if at == "arena":
        if arena is None:
            if length == 0:
                return memoryview(b"")
            raise ProtocolError(f"arena buffer {ref!r} but the worker has no arena")
        try:
            return arena.view(off, length)
        except IndexError as exc:
            raise ProtocolError(str(exc)) from None
    raise ProtocolError(f"buffer reference with unknown 'at': {ref!r}")


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
