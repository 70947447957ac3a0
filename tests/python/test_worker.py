"""The worker process driven over its real channel: a socketpair, a memfd arena, frames."""

import json
import os
import platform
import socket
import tempfile
import time
import unittest

import numpy as np

from .harness import Replica

TEXT = [["content-type", "text/plain"]]
TEXT_UTF8 = [["content-type", "text/plain; charset=utf-8"]]
JSON = [["content-type", "application/json"]]


class WorkerCase(unittest.TestCase):
    def start(self, import_path: str, arena_size: int = 1 << 20, **fields) -> Replica:
        replica = Replica(arena_size)
        self.addCleanup(replica.close)
        ready = replica.init(import_path, **fields)
        self.assertEqual(ready["op"], "ready", replica.stderr())
        return replica

    def start_failing(self, import_path: str, **fields) -> tuple[dict, Replica]:
        replica = Replica()
        self.addCleanup(replica.close)
        answer = replica.init(import_path, **fields)
        self.assertEqual(replica.wait(), 1)
        return answer, replica


class InitTest(WorkerCase):
    def test_ready_describes_the_deployment(self):
        replica = Replica()
        self.addCleanup(replica.close)
        ready = replica.init("basic_app:Convert")
        self.assertEqual(ready, {
            "op": "ready",
            "pid": replica.proc.pid,
            "python": platform.python_version(),
            "methods": {"__call__": {"async": False, "generator": False, "batch": None}},
            "has_check_health": False,
            "has_reconfigure": False,
            "kserve": None,
        })

    def test_ready_reports_batching_and_async(self):
        replica = Replica()
        self.addCleanup(replica.close)
        ready = replica.init("batch_app.Batched")  # the dotted form of import_path
        self.assertEqual(ready["methods"], {"__call__": {
            "async": True, "generator": False,
            "batch": {"max_batch_size": 8, "batch_wait_timeout_s": 0.05},
        }})

    def test_ready_reports_infer_and_kserve_metadata(self):
        replica = Replica()
        self.addCleanup(replica.close)
        ready = replica.init("infer_app:Affine")
        self.assertEqual(ready["methods"],
                         {"infer": {"async": False, "generator": False, "batch": None}})
        self.assertEqual(ready["kserve"], {
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}],
        })

    def test_replica_context_inside_the_deployment(self):
        replica = self.start("basic_app:Convert")
        answer = replica.http(path="/context")
        self.assertEqual(json.loads(answer["body"]), {
            "app": "app1", "deployment": "Model", "replica": "replica-7", "is_self": True,
        })

    def test_missing_module_is_an_import_error(self):
        answer, _ = self.start_failing("no_such_module_xyz:App")
        self.assertEqual(answer, {
            "op": "init_error",
            "stage": "import",
            "type": "ModuleNotFoundError",
            "message": "No module named 'no_such_module_xyz'",
            "last_line": "ModuleNotFoundError: No module named 'no_such_module_xyz'",
        })

    def test_missing_attribute_is_an_import_error(self):
        answer, _ = self.start_failing("basic_app:Missing")
        self.assertEqual(answer["stage"], "import")
        self.assertEqual(answer["type"], "AttributeError")
        self.assertEqual(answer["last_line"],
                         "AttributeError: module 'basic_app' has no attribute 'Missing'")

    def test_init_raising_is_a_construct_error(self):
        answer, replica = self.start_failing("lifecycle_app:BrokenInit")
        self.assertEqual(answer, {
            "op": "init_error", "stage": "construct", "type": "RuntimeError",
            "message": "cannot load weights", "last_line": "RuntimeError: cannot load weights",
        })
        self.assertIn("Traceback", replica.stderr())
        self.assertIn("cannot load weights", replica.stderr())

    def test_user_config_without_reconfigure_is_a_reconfigure_error(self):
        answer, _ = self.start_failing("lifecycle_app:NoReconfigure", user_config={"a": 1})
        self.assertEqual(answer["stage"], "reconfigure")
        self.assertEqual(answer["type"], "RayServeException")
        self.assertEqual(answer["message"],
                         "user_config specified but deployment Model missing reconfigure method")

    def test_reconfigure_raising_at_start_is_a_reconfigure_error(self):
        answer, _ = self.start_failing("lifecycle_app:Configurable", user_config={"fail": True})
        self.assertEqual((answer["stage"], answer["type"], answer["message"]),
                         ("reconfigure", "ValueError", "refusing config"))

    def test_bound_application_arguments(self):
        replica = self.start("basic_app:bound_app")
        self.assertEqual(replica.http()["body"], b"bound")

    def test_init_args_override_bound_arguments(self):
        replica = self.start("basic_app:bound_app", init_args=["given"])
        self.assertEqual(replica.http()["body"], b"given")

    def test_async_init(self):
        replica = self.start("lifecycle_app:AsyncInit", init_args=["awaited"])
        self.assertEqual(replica.http()["body"], b"awaited")

    def test_plain_class_with_init_kwargs(self):
        replica = self.start("basic_app:Greeter", init_kwargs={"greeting": "kw"})
        self.assertEqual(replica.http()["body"], b"kw")

    def test_builder_function_gets_the_args(self):
        replica = self.start("basic_app:build_app", init_kwargs={"greeting": "built"})
        self.assertEqual(replica.http()["body"], b"built")


class HttpTest(WorkerCase):
    def test_sync_call_reads_query_and_headers(self):
        replica = self.start("basic_app:EchoSync")
        answer = replica.http(method="post", path="/echo/x", query="a=1&b=two&a=3&c=",
                              headers=[["X-Token", "t0k"]])
        self.assertEqual(answer["status"], 200)
        self.assertEqual(answer["headers"], JSON)
        self.assertEqual(json.loads(answer["body"]), {
            "method": "POST", "path": "/echo/x", "query": "a=1&b=two&a=3&c=",
            "a": ["1", "3"], "b": "two", "has_c": True, "token": "t0k", "token_lower": "t0k",
        })

    def test_async_call_awaits_the_json_body(self):
        replica = self.start("basic_app:EchoAsync")
        answer = replica.http(method="POST", query="k=v", body=b'{"x": [1, 2]}',
                              headers=[["User-Agent", "tests"]])
        self.assertEqual(answer["body"], b'{"got":{"x":[1,2]},"q":{"k":"v"},"agent":"tests"}')

    def test_body_sent_inline_by_the_replica(self):
        replica = self.start("basic_app:EchoAsync")
        frame_id = replica.send_http([{"body": b'{"inline": true}'}], use_arena=False)
        answer = replica.http_items(frame_id)[0]
        self.assertEqual(json.loads(answer["body"])["got"], {"inline": True})

    def test_return_value_conversions(self):
        replica = self.start("basic_app:Convert")
        cases = {
            "/none": (200, TEXT, b""),
            "/bytes": (200, TEXT, b"\x00\x01raw"),
            "/str": (200, TEXT_UTF8, "h\u00e9llo".encode()),
            "/dict": (200, JSON, b'{"a":[1,2],"arr":[0,1,2],"f":1.5}'),
            "/response": (201, [["x-custom", "yes"], ["content-type", "text/plain; charset=utf-8"]],
                          b"created"),
            "/json": (200, JSON, b'{"ok":true,"n":null}'),
            "/plain": (200, TEXT_UTF8, b"plain"),
        }
        for path, (status, headers, body) in cases.items():
            with self.subTest(path=path):
                answer = replica.http(path=path)
                self.assertEqual((answer["status"], answer["headers"], answer["body"]),
                                 (status, headers, body))

    def test_unserialisable_return_value_is_a_type_error(self):
        replica = self.start("basic_app:Convert")
        self.assertEqual(replica.http(path="/unserialisable"), {"error": {
            "type": "TypeError", "message": "Object of type object is not JSON serializable",
        }})

    def test_user_exception_fails_only_its_item(self):
        replica = self.start("basic_app:Convert")
        frame_id = replica.send_http([{"path": "/str"}, {"path": "/raise"}, {"path": "/plain"}])
        items = replica.http_items(frame_id)
        self.assertEqual(items[0]["body"], "h\u00e9llo".encode())
        self.assertEqual(items[1], {"error": {"type": "ValueError", "message": "bad input 7"}})
        self.assertEqual(items[2]["body"], b"plain")
        self.assertIn("ValueError: bad input 7", replica.stderr())

    def test_user_output_does_not_break_the_protocol(self):
        replica = self.start("basic_app:Convert")
        self.assertEqual(replica.http(path="/print")["body"], b"printed")
        self.assertEqual(replica.http(path="/str")["body"], "h\u00e9llo".encode())
        self.assertIn("user line on stdout", replica.stdout())
        self.assertIn("user line on stderr", replica.stderr())

    def test_function_deployment_is_the_handler(self):
        replica = self.start("basic_app:hello")
        self.assertEqual(replica.http(query="name=ada")["body"], b"hello ada")

    def test_handler_without_parameters_is_called_without_the_request(self):
        replica = self.start("basic_app:no_args")
        self.assertEqual(replica.http()["body"], b"no args")

    def test_large_body_goes_inline_when_the_worker_half_is_full(self):
        # 8 KiB arena: the worker's half is [4096, 8192).
        replica = self.start("basic_app:Convert", arena_size=8192)
        first = replica.send_http([{"path": "/big", "query": "n=3000"}])
        header, inline = replica.recv_for(first)
        self.assertEqual(header["items"][0]["body"], {"at": "arena", "off": 4096, "len": 3000})
        replica.free_requests()
        # Not released yet, so the next 3000 bytes do not fit and travel in the frame.
        second = replica.send_http([{"path": "/big", "query": "n=3000"}])
        header2, inline2 = replica.recv_for(second)
        self.assertEqual(header2["items"][0]["body"], {"at": "inline", "off": 0, "len": 3000})
        self.assertEqual(inline2, b"x" * 3000)
        replica.free_requests()
        replica.release([header["items"][0]["body"]])
        third = replica.send_http([{"path": "/big", "query": "n=3000"}])
        self.assertEqual(replica.recv_for(third)[0]["items"][0]["body"],
                         {"at": "arena", "off": 4096, "len": 3000})


class BatchTest(WorkerCase):
    def test_batched_call_gets_the_whole_batch(self):
        replica = self.start("batch_app:Batched")
        frame_id = replica.send_http([{"body": b"a"}, {"body": b"b"}, {"body": b"c"}])
        self.assertEqual([item["body"] for item in replica.http_items(frame_id)],
                         [b"0/3:a:call1", b"1/3:b:call1", b"2/3:c:call1"])

    def test_length_mismatch_fails_every_item(self):
        replica = self.start("batch_app:LosesOne")
        frame_id = replica.send_http([{}, {}, {}])
        error = {"type": "ValueError", "message": (
            "Batched function doesn't preserve batch size. The input list has length 3 but "
            "the returned list has length 2.")}
        self.assertEqual(replica.http_items(frame_id), [{"error": error}] * 3)

    def test_exception_of_the_batch_fails_every_item(self):
        replica = self.start("batch_app:RaisesForBatch")
        frame_id = replica.send_http([{}, {}])
        self.assertEqual(replica.http_items(frame_id),
                         [{"error": {"type": "KeyError", "message": "'whole batch'"}}] * 2)

    def test_batched_helper_collects_concurrent_requests(self):
        replica = self.start("batch_app:ViaHelper")
        began = time.monotonic()
        frames = [replica.send_http([{"body": name}]) for name in (b"a", b"b", b"c")]
        bodies = [replica.http_items(frame_id)[0]["body"] for frame_id in frames]
        self.assertEqual(bodies, [b"a in a batch of 3", b"b in a batch of 3", b"c in a batch of 3"])
        self.assertLess(time.monotonic() - began, 2.5)  # a full batch does not wait the 5 s

    def test_streaming_batch_function_with_one_item(self):
        replica = self.start("batch_app:StreamsBatch")
        frames = replica.stream(replica.send_http([{}]))
        self.assertEqual([data for _, _, data in frames[1:-1]], [b"one;", b"two;"])
        self.assertEqual(frames[-1][1], {"op": "http_end", "id": frames[-1][1]["id"]})


class StreamTest(WorkerCase):
    def test_generator_chunks_arrive_as_they_are_produced(self):
        replica = self.start("stream_app:Words")
        frames = replica.stream(replica.send_http([{}]))
        ops = [header["op"] for _, header, _ in frames]
        self.assertEqual(ops, ["http_start", "http_chunk", "http_chunk", "http_chunk", "http_end"])
        start = frames[0][1]
        self.assertEqual((start["status"], start["headers"]), (200, TEXT_UTF8))
        self.assertEqual([data for _, _, data in frames[1:4]], [b"first ", b"second ", b"third"])
        # The generator sleeps 0.5 s after its first chunk, which must not wait for it.
        self.assertGreater(frames[2][0] - frames[1][0], 0.4)
        self.assertNotIn("error", frames[-1][1])

    def test_streaming_response_keeps_event_stream_type(self):
        replica = self.start("stream_app:Events")
        frames = replica.stream(replica.send_http([{"path": "/events"}]))
        start = frames[0][1]
        self.assertEqual(start["status"], 200)
        self.assertEqual(start["headers"], [["cache-control", "no-cache"],
                                            ["content-type", "text/event-stream; charset=utf-8"]])
        self.assertEqual([data for _, _, data in frames[1:-1]],
                         [b"data: 0\n\n", b"data: 1\n\n", b"data: 2\n\n"])

    def test_stream_error_after_start_ends_with_the_error(self):
        replica = self.start("stream_app:Events")
        frames = replica.stream(replica.send_http([{"path": "/fail"}]))
        self.assertEqual([h["op"] for _, h, _ in frames], ["http_start", "http_chunk", "http_end"])
        self.assertEqual(frames[1][2], b"partial")
        self.assertEqual(frames[2][1]["error"], {"type": "RuntimeError", "message": "stream broke"})


class StreamControlTest(WorkerCase):
    def _chunks(self, replica, frame_id, count, timeout):
        """Up to `count` http_chunk frames of `frame_id` arriving within `timeout` s (not acked)."""
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < count and time.monotonic() < deadline:
            try:
                header, inline = replica.recv_for(frame_id, timeout=deadline - time.monotonic())
            except (socket.timeout, TimeoutError):
                break
            if header["op"] == "http_chunk":
                got.append(replica.read(header["body"], inline))
                replica.release([header["body"]])
            elif header["op"] == "http_end":
                got.append(None)
                break
        return got

    def test_a_stream_waits_for_acknowledgements_beyond_its_window(self):
        replica = self.start("stream_app:Many")
        frame_id = replica.send_http([{}])
        start, _ = replica.recv_for(frame_id)
        self.assertEqual(start["op"], "http_start")
        # Nothing acknowledged: exactly the window arrives, then the generator waits.
        first = self._chunks(replica, frame_id, 40, timeout=1.0)
        self.assertEqual(first, [f"{n};".encode() for n in range(16)])
        for _ in range(4):
            replica.send({"op": "stream_ack", "id": frame_id})
        self.assertEqual(self._chunks(replica, frame_id, 40, timeout=1.0),
                         [f"{n};".encode() for n in range(16, 20)])
        for _ in range(40):
            replica.send({"op": "stream_ack", "id": frame_id})
        rest = self._chunks(replica, frame_id, 40, timeout=5.0)
        self.assertEqual(rest, [f"{n};".encode() for n in range(20, 40)] + [None])

    def test_cancel_stops_the_generator_and_ends_the_stream_with_an_error(self):
        replica = self.start("stream_app:Endless")
        frame_id = replica.send_http([{}])
        self.assertEqual(replica.recv_for(frame_id)[0]["op"], "http_start")
        self.assertEqual(self._chunks(replica, frame_id, 2, timeout=5.0), [b"tick 0;", b"tick 1;"])
        replica.send({"op": "cancel", "id": frame_id})
        while True:
            header, inline = replica.recv_for(frame_id)
            if header["op"] == "http_chunk":
                replica.release([header["body"]])
                continue
            break
        self.assertEqual(header, {"op": "http_end", "id": frame_id, "error": {
            "type": "CancelledError", "message": "the client went away; the stream was cancelled"}})
        deadline = time.monotonic() + 5
        while "endless stream closed" not in replica.stdout() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertIn("endless stream closed", replica.stdout())
        # Acknowledgements and cancels for a stream that ended are ignored; the worker goes on.
        replica.send({"op": "stream_ack", "id": frame_id})
        replica.send({"op": "cancel", "id": frame_id})
        next_id = replica.send_http([{}])
        self.assertEqual(replica.recv_for(next_id)[0]["op"], "http_start")
        replica.send({"op": "cancel", "id": next_id})

    def test_a_generator_infer_streams_one_set_of_outputs_per_yield(self):
        replica = self.start("stream_app:Tokens")
        frame_id = replica.send_infer([{"inputs": {"count": np.array([3], dtype=np.int64)}}])
        ops, tokens = [], []
        while True:
            header, inline = replica.recv_for(frame_id)
            ops.append(header["op"])
            if header["op"] == "infer_chunk":
                (output,) = header["outputs"]
                self.assertEqual((output["name"], output["datatype"], output["shape"]),
                                 ("token", "INT64", [1]))
                tokens.append(np.frombuffer(replica.read(output["data"], inline), np.int64)[0])
                replica.release([output["data"]])
            if header["op"] == "infer_end":
                self.assertNotIn("error", header)
                break
        replica.free_requests()
        self.assertEqual(ops, ["infer_start", "infer_chunk", "infer_chunk", "infer_chunk",
                               "infer_end"])
        self.assertEqual(tokens, [0, 1, 2])

    def test_a_generator_infer_in_a_batch_of_two_is_an_error_for_both(self):
        replica = self.start("stream_app:Tokens")
        count = np.array([1], dtype=np.int64)
        items = replica.infer_items(replica.send_infer([{"inputs": {"count": count}},
                                                        {"inputs": {"count": count}}]))
        error = {"type": "TypeError",
                 "message": "a streaming infer needs a frame of its own; this one had 2 items"}
        self.assertEqual(items, [{"error": error}, {"error": error}])


class InferTest(WorkerCase):
    def test_float32_outputs(self):
        replica = self.start("infer_app:Affine")
        x = np.array([[1, 2], [3, 4]], dtype=np.float32)
        items = replica.infer_items(replica.send_infer([{"inputs": {"x": x}}]))
        self.assertEqual(items, [{"outputs": [
            {"name": "y", "datatype": "FP32", "shape": [2, 2],
             "data": np.array([[3, 5], [7, 9]], dtype=np.float32).tobytes()},
            # the input was a read-only view of the arena
            {"name": "writeable", "datatype": "BOOL", "shape": [1], "data": b"\x00"},
            {"name": "total", "datatype": "FP64", "shape": [], "data": np.float64(10).tobytes()},
        ]}])

    def test_only_the_requested_outputs(self):
        replica = self.start("infer_app:Affine")
        x = np.array([0.5], dtype=np.float32)
        items = replica.infer_items(replica.send_infer([{"inputs": {"x": x}, "outputs": ["y"]}]))
        self.assertEqual(items, [{"outputs": [
            {"name": "y", "datatype": "FP32", "shape": [1], "data": np.float32(2).tobytes()},
        ]}])

    def test_inline_inputs(self):
        replica = self.start("infer_app:Affine")
        x = np.array([1.0], dtype=np.float32)
        frame_id = replica.send_infer([{"inputs": {"x": x}, "outputs": ["y"]}], use_arena=False)
        self.assertEqual(replica.infer_items(frame_id)[0]["outputs"][0]["data"],
                         np.float32(3).tobytes())

    def test_item_errors_leave_other_items_alone(self):
        replica = self.start("infer_app:Affine")
        frame_id = replica.send_infer([
            {"inputs": {"x": np.array([-1], dtype=np.float32)}},
            {"inputs": {"x": np.array([-2], dtype=np.float32)}},
            {"inputs": {"x": np.array([1], dtype=np.float32)}, "outputs": ["y"]},
            {"inputs": {"x": np.array([1], dtype=np.float32)}, "outputs": ["nope"]},
        ])
        items = replica.infer_items(frame_id)
        self.assertEqual(items[0], {"error": {"type": "TypeError", "message": (
            "output 's' has dtype <U4, which has no KServe datatype (supported: BOOL, UINT8, "
            "UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP32, FP64)")}})
        self.assertEqual(items[1], {"error": {"type": "TypeError", "message": (
            "infer() must return a dict of output name to numpy array, got list")}})
        self.assertEqual(items[2]["outputs"][0]["data"], np.float32(3).tobytes())
        self.assertEqual(items[3], {"error": {"type": "ValueError", "message": (
            "infer() returned no output 'nope' (it returned ['total', 'writeable', 'y'])")}})

    def test_input_size_mismatch_is_an_item_error(self):
        replica = self.start("infer_app:Affine")
        frame_id = replica.new_id()
        good = np.array([1], dtype=np.float32).tobytes()
        inputs = [
            [{"name": "x", "datatype": "FP32", "shape": [2], "data":
              {"at": "inline", "off": 0, "len": 4}}],
            [{"name": "x", "datatype": "FP32", "shape": [1], "data":
              {"at": "inline", "off": 0, "len": 4}}],
        ]
        replica.send({"op": "infer", "id": frame_id, "model": "m",
                      "items": [{"inputs": i, "outputs": ["y"]} for i in inputs]}, good)
        items = replica.infer_items(frame_id)
        self.assertEqual(items[0], {"error": {"type": "ValueError", "message": (
            "input 'x' of shape [2] and datatype FP32 needs 8 bytes, got 4")}})
        self.assertEqual(items[1]["outputs"][0]["data"], np.float32(3).tobytes())

    def test_batched_infer_gets_a_list(self):
        replica = self.start("infer_app:BatchedAffine")
        frame_id = replica.send_infer([
            {"inputs": {"x": np.array([n], dtype=np.float32)}} for n in (1, 2, 3)
        ])
        items = replica.infer_items(frame_id)
        for n, item in zip((1, 2, 3), items):
            y = np.float32(n + 10).tobytes()
            self.assertEqual(item, {"outputs": [
                {"name": "y", "datatype": "FP32", "shape": [1], "data": y},
                {"name": "n", "datatype": "INT32", "shape": [1], "data": np.int32(3).tobytes()},
            ]})


class LifecycleTest(WorkerCase):
    def test_user_config_from_the_decorator_applies_without_one_in_init(self):
        replica = self.start("lifecycle_app:Configurable")
        self.assertEqual(replica.http()["body"], b"from decorator")

    def test_reconfigure_at_init_and_later(self):
        replica = self.start("lifecycle_app:Configurable", user_config={"greeting": "hi"})
        self.assertEqual(replica.http()["body"], b"hi")
        answer = replica.control("reconfigure", user_config={"greeting": "yo"})
        self.assertEqual(answer, {"op": "done", "id": answer["id"]})
        self.assertEqual(replica.http()["body"], b"yo")
        failed = replica.control("reconfigure", user_config={"fail": True})
        self.assertEqual(failed, {"op": "error", "id": failed["id"],
                                  "error": {"type": "ValueError", "message": "refusing config"}})

    def test_check_health(self):
        replica = self.start("lifecycle_app:Configurable", user_config={"greeting": "hi"})
        ok = replica.control("check_health")
        self.assertEqual(ok, {"op": "done", "id": ok["id"]})
        replica.control("reconfigure", user_config={"healthy": False})
        sick = replica.control("check_health")
        self.assertEqual(sick, {"op": "error", "id": sick["id"], "error": {
            "type": "RuntimeError", "message": "unhealthy: told so"}})

    def test_check_health_without_the_method_is_done(self):
        replica = self.start("basic_app:Convert")
        self.assertEqual(replica.control("check_health")["op"], "done")

    def test_reconfigure_without_the_method_is_an_error(self):
        replica = self.start("basic_app:Convert")
        answer = replica.control("reconfigure", user_config={"a": 1})
        self.assertEqual(answer["error"], {"type": "RayServeException", "message": (
            "user_config specified but deployment Model missing reconfigure method")})

    def test_shutdown_runs_del_and_exits_0(self):
        marker = os.path.join(tempfile.mkdtemp(), "marker")
        self.addCleanup(lambda: os.path.exists(marker) and os.unlink(marker))
        replica = self.start("lifecycle_app:Configurable", init_kwargs={"marker_path": marker})
        replica.send({"op": "shutdown"})
        self.assertEqual(replica.wait(), 0)
        with open(marker) as f:
            self.assertEqual(f.read(), "deleted")

    def test_closed_channel_ends_the_worker(self):
        replica = self.start("basic_app:Convert")
        replica.sock.close()
        self.assertEqual(replica.wait(), 0)

    def test_unknown_op_is_a_protocol_error(self):
        replica = self.start("basic_app:Convert")
        replica.send({"op": "frobnicate", "id": 1})
        self.assertEqual(replica.wait(), 2)
        self.assertIn("unknown op 'frobnicate'", replica.stderr())

    def test_buffer_outside_the_arena_is_a_protocol_error(self):
        replica = self.start("basic_app:Convert")
        replica.send({"op": "http", "id": 1, "items": [{
            "method": "GET", "path": "/", "query": "", "headers": [], "request_id": "r",
            "body": {"at": "arena", "off": replica.arena_size - 8, "len": 64}}]})
        self.assertEqual(replica.wait(), 2)
        self.assertIn("outside the arena", replica.stderr())


class ConcurrencyTest(WorkerCase):
    def test_async_requests_overlap(self):
        replica = self.start("timing_app:Sleepy")
        began = time.monotonic()
        first = replica.send_http([{}])
        second = replica.send_http([{}])
        self.assertEqual(replica.http_items(first)[0]["body"], b"slept")
        self.assertEqual(replica.http_items(second)[0]["body"], b"slept")
        self.assertLess(time.monotonic() - began, 0.35)

    def test_long_sync_request_does_not_delay_check_health(self):
        replica = self.start("timing_app:SlowSync")
        slow = replica.send_http([{}])
        time.sleep(0.1)  # the request is running on the user thread
        began = time.monotonic()
        health = replica.control("check_health")
        self.assertEqual(health["op"], "done")
        self.assertLess(time.monotonic() - began, 0.5)
        self.assertEqual(replica.http_items(slow)[0]["body"], b"slow done")


if __name__ == "__main__":
    unittest.main()
