"""The shared-memory arena (docs/python.md, "Buffers") as the worker sees it.

The replica owns [0, size/2) and writes request payloads there; the worker owns [size/2, size),
writes response payloads there and frees them when the replica sends `release`.
"""

from __future__ import annotations

import bisect
import mmap

ALIGNMENT = 64


def _round_up(value: int, to: int) -> int:
    return (value + to - 1) // to * to


class Allocator:
    """First-fit allocation of 64-byte aligned blocks in [start, end), coalescing on free."""

    def __init__(self, start: int, end: int) -> None:
        start = _round_up(start, ALIGNMENT)
        # Free blocks as two sorted parallel lists (offsets, sizes): neighbours are found by
        # bisection, so freeing stays cheap however fragmented the half gets.
        self._free_offs: list[int] = [start] if end > start else []
        self._free_sizes: list[int] = [end - start] if end > start else []
        self._used: dict[int, int] = {}

    def alloc(self, length: int) -> int | None:
        """Offset of a new block of at least `length` bytes, or None when no free block fits."""
        need = _round_up(max(length, 1), ALIGNMENT)
        for i, size in enumerate(self._free_sizes):
            if size < need:
                continue
            off = self._free_offs[i]
            if size == need:
                del self._free_offs[i], self._free_sizes[i]
            else:
                self._free_offs[i] = off + need
                self._free_sizes[i] = size - need
            self._used[off] = need
            return off
        return None

    def free(self, off: int) -> bool:
        """Returns the block at `off` to the free list; False when no block starts there."""
        size = self._used.pop(off, None)
        if size is None:
            return False
        i = bisect.bisect_left(self._free_offs, off)
        if i < len(self._free_offs) and off + size == self._free_offs[i]:
            size += self._free_sizes[i]
            del self._free_offs[i], self._free_sizes[i]
        if i > 0 and self._free_offs[i - 1] + self._free_sizes[i - 1] == off:
            self._free_sizes[i - 1] += size
        else:
            self._free_offs.insert(i, off)
            self._free_sizes.insert(i, size)
        return True

    @property
    def bytes_in_use(self) -> int:
        return sum(self._used.values())


class Arena:
    """The memfd mapped read-write, plus the allocator of the worker's half."""

    def __init__(self, fd: int, size: int) -> None:
        self.size = size
        self._map = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self._view = memoryview(self._map)
        self.allocator = Allocator(size // 2, size)

    def view(self, off: int, length: int) -> memoryview:
        """A view of [off, off + length); IndexError when that is not inside the arena."""
        if off + length > self.size:
            raise IndexError(f"buffer [{off}, +{length}) is outside the arena of {self.size} bytes")
        return self._view[off : off + length]

    def put(self, data: bytes | memoryview) -> int | None:
        """Copies `data` into a new block of the worker's half; None when the half is full."""
        off = self.allocator.alloc(len(data))
        if off is not None:
            self._view[off : off + len(data)] = data
        return off
