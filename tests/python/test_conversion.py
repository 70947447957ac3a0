"""Return values turned into responses (Ray's rules), without a process."""

import dataclasses
import datetime
import enum
import importlib
import sys
import types
import unittest
import uuid

import numpy as np

# Used through the module: a test below reloads it.
from haproxy_serve import _http
from haproxy_serve.responses import StreamingResponse


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    y: float


class ConversionTest(unittest.TestCase):
    def test_json_encoding_of_common_types(self):
        value = {
            "array": np.array([[1.5, 2.0]], dtype=np.float32),
            "scalar": np.int64(7),
            "tuple": (1, "a"),
            "enum": Color.RED,
            "point": Point(1, 2.5),
            "date": datetime.date(2024, 5, 1),
            "uuid": uuid.UUID(int=1),
            "error": ValueError("boom"),
            3: None,
        }
        self.assertEqual(_http.to_response(value), _http.WholeResponse(
            200, [["content-type", "application/json"]],
            b'{"array":[[1.5,2.0]],"scalar":7,"tuple":[1,"a"],"enum":"red",'
            b'"point":{"x":1,"y":2.5},"date":"2024-05-01",'
            b'"uuid":"00000000-0000-0000-0000-000000000001","error":"boom","3":null}',
        ))

    def test_generators_stream(self):
        def gen():
            yield "a"

        async def agen():
            yield "a"

        for value in (gen(), agen()):
            response = _http.to_response(value)
            self.assertIsInstance(response, _http.StreamedResponse)
            self.assertEqual(response.headers, [["content-type", "text/plain; charset=utf-8"]])
            self.assertIs(response.chunks, value)

    def test_streaming_response_has_no_content_length(self):
        response = _http.to_response(StreamingResponse(iter([b"x"]), status_code=206,
                                                 headers={"Content-Length": "1"}))
        self.assertEqual((response.status, response.headers), (206, []))

    def test_chunks(self):
        self.assertEqual(_http.chunk_bytes("\u00e9"), b"\xc3\xa9")
        self.assertEqual(_http.chunk_bytes(memoryview(b"ab")), b"ab")
        with self.assertRaises(TypeError) as caught:
            _http.chunk_bytes(3)
        self.assertEqual(str(caught.exception), "a streamed chunk must be bytes or str, got int")


class StarletteTest(unittest.TestCase):
    """Starlette is not installed here: a stand-in with its attribute names takes its place."""

    def setUp(self):
        class Response:
            def __init__(self, body, status_code, raw_headers):
                self.body, self.status_code, self.raw_headers = body, status_code, raw_headers

        class StreamingResponse(Response):
            def __init__(self, iterator, raw_headers):
                super().__init__(None, 200, raw_headers)
                self.body_iterator = iterator

        package = types.ModuleType("starlette")
        package.responses = types.ModuleType("starlette.responses")
        package.responses.Response = Response
        package.responses.StreamingResponse = StreamingResponse
        self.fake = package.responses
        sys.modules.update({"starlette": package, "starlette.responses": package.responses})
        importlib.reload(_http)
        self.addCleanup(importlib.reload, _http)
        self.addCleanup(sys.modules.pop, "starlette.responses")
        self.addCleanup(sys.modules.pop, "starlette")

    def test_response_is_sent_as_it_is(self):
        value = self.fake.Response(b"teapot", 418, [(b"content-length", b"6"), (b"x-a", b"1")])
        self.assertEqual(_http.to_response(value),
                         _http.WholeResponse(418, [["x-a", "1"]], b"teapot"))

    def test_streaming_response_streams(self):
        chunks = iter([b"a"])
        value = self.fake.StreamingResponse(chunks, [(b"content-type", b"text/event-stream")])
        self.assertEqual(_http.to_response(value), _http.StreamedResponse(
            200, [["content-type", "text/event-stream"]], chunks))


if __name__ == "__main__":
    unittest.main()
