"""Frames, buffer references and the worker-half allocator, without a process."""

import json
import struct
import unittest

from haproxy_serve._arena import Allocator
from haproxy_serve._protocol import (
    MAX_HEADER_BYTES,
    FrameReader,
    InlinePayload,
    ProtocolError,
    encode_frame,
    resolve,
)


def raw_frame(header: bytes, inline: bytes = b"") -> bytes:
    return struct.pack("<II", len(header), len(inline)) + header + inline


class FrameTest(unittest.TestCase):
    def test_encoding_is_the_documented_layout(self):
        frame = encode_frame({"op": "done", "id": 3}, b"xy")
        self.assertEqual(frame, struct.pack("<II", 20, 2) + b'{"op":"done","id":3}xy')

    def test_reader_reassembles_frames_split_anywhere(self):
        data = encode_frame({"op": "a"}) + encode_frame({"op": "b", "n": 1}, b"123")
        reader = FrameReader()
        frames = []
        for i in range(len(data)):
            frames += reader.feed(data[i : i + 1])
        self.assertEqual([(f.header, f.inline) for f in frames],
                         [({"op": "a"}, b""), ({"op": "b", "n": 1}, b"123")])

    def test_malformed_frames(self):
        cases = {
            "oversized": struct.pack("<II", MAX_HEADER_BYTES + 1, 0),
            "not json": raw_frame(b"{nope"),
            "not an object": raw_frame(b"[1]"),
            "no op": raw_frame(json.dumps({"id": 1}).encode()),
        }
        for name, data in cases.items():
            with self.subTest(name):
                with self.assertRaises(ProtocolError):
                    FrameReader().feed(data)


class FakeArena:
    def view(self, off, length):
        if off + length > 128:
            raise IndexError("outside")
        return memoryview(bytes(range(128)))[off : off + length]


class BufferTest(unittest.TestCase):
    def test_inline_and_arena_references(self):
        self.assertEqual(bytes(resolve({"at": "inline", "off": 1, "len": 2}, b"abcd", None)),
                         b"bc")
        self.assertEqual(bytes(resolve({"at": "arena", "off": 64, "len": 2}, b"", FakeArena())),
                         bytes([64, 65]))

    def test_references_outside_their_area(self):
        bad = [
            ({"at": "inline", "off": 3, "len": 2}, None),
            ({"at": "arena", "off": 120, "len": 16}, FakeArena()),
            ({"at": "arena", "off": -1, "len": 1}, FakeArena()),
            ({"at": "disk", "off": 0, "len": 1}, FakeArena()),
            ({"at": "inline", "off": 0, "len": True}, None),
        ]
        for ref, arena in bad:
            with self.subTest(ref=ref):
                with self.assertRaises(ProtocolError):
                    resolve(ref, b"abcd", arena)

    def test_inline_payload_offsets(self):
        inline = InlinePayload()
        refs = [inline.add(b"ab"), inline.add(b""), inline.add(b"cde")]
        self.assertEqual([(r["off"], r["len"]) for r in refs], [(0, 2), (2, 0), (2, 3)])
        self.assertEqual(inline.to_bytes(), b"abcde")


class AllocatorTest(unittest.TestCase):
    def test_first_fit_aligned_blocks(self):
        allocator = Allocator(1000, 1000 + 1024)
        self.assertEqual(allocator.alloc(1), 1024)  # the start is rounded up to 64
        self.assertEqual(allocator.alloc(65), 1088)
        self.assertEqual(allocator.alloc(0), 1216)
        self.assertEqual(allocator.bytes_in_use, 256)

    def test_full_half_returns_none(self):
        allocator = Allocator(0, 256)
        self.assertEqual(allocator.alloc(256), 0)
        self.assertIsNone(allocator.alloc(1))

    def test_free_coalesces_with_both_neighbours(self):
        allocator = Allocator(0, 256)
        blocks = [allocator.alloc(64) for _ in range(4)]
        self.assertEqual(blocks, [0, 64, 128, 192])
        self.assertTrue(allocator.free(0))
        self.assertTrue(allocator.free(128))
        self.assertIsNone(allocator.alloc(128))  # two holes of 64, not adjacent
        self.assertTrue(allocator.free(64))  # joins both holes into one of 192
        self.assertEqual(allocator.alloc(192), 0)
        self.assertEqual(allocator.bytes_in_use, 256)

    def test_first_fit_takes_the_lowest_hole(self):
        allocator = Allocator(0, 512)
        a, b, c = allocator.alloc(128), allocator.alloc(64), allocator.alloc(128)
        allocator.free(a)
        allocator.free(c)
        self.assertEqual((a, b, c), (0, 128, 192))
        self.assertEqual(allocator.alloc(64), a)

    def test_unknown_block(self):
        allocator = Allocator(0, 256)
        allocator.alloc(64)
        self.assertFalse(allocator.free(64))
        self.assertFalse(allocator.free(3))


if __name__ == "__main__":
    unittest.main()
