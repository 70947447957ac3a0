"""The user-facing API in-process: deployments, @serve.batch, requests and responses."""

import asyncio
import subprocess
import sys
import time
import unittest

from haproxy_serve import serve
from haproxy_serve.exceptions import RayServeException
from haproxy_serve.requests import Request
from haproxy_serve.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from .harness import REPO


class Model:
    def __init__(self, size=1):
        self.size = size

    def __call__(self, request):
        return "ok"


def handler(request):
    return "fn"


class DeploymentTest(unittest.TestCase):
    def test_bare_decorator_on_a_class_has_ray_defaults(self):
        d = serve.deployment(Model)
        self.assertIsInstance(d, serve.Deployment)
        self.assertEqual(d.name, "Model")
        self.assertIs(d.func_or_class, Model)
        self.assertEqual(
            (d.num_replicas, d.max_ongoing_requests, d.max_queued_requests, d.user_config),
            (1, 5, -1, None),
        )
        self.assertEqual(d.ray_actor_options, {"num_cpus": 1})
        self.assertEqual((d.init_args, d.init_kwargs), ((), {}))
        self.assertEqual(d._user_configured_option_names, set())

    def test_keywords_on_a_function(self):
        d = serve.deployment(name="greeter", user_config={"a": 1}, max_ongoing_requests=32)(handler)
        self.assertEqual(d.name, "greeter")
        self.assertIs(d.func_or_class, handler)
        self.assertEqual((d.user_config, d.max_ongoing_requests), ({"a": 1}, 32))
        self.assertEqual(d._user_configured_option_names, {"user_config", "max_ongoing_requests"})

    def test_bind_records_arguments_without_changing_the_deployment(self):
        d = serve.deployment(Model)
        app = d.bind(3, label="x")
        self.assertIsInstance(app, serve.Application)
        self.assertEqual((app._bound_deployment.init_args, app._bound_deployment.init_kwargs),
                         ((3,), {"label": "x"}))
        self.assertEqual(d.init_args, ())

    def test_options_returns_a_changed_copy(self):
        d = serve.deployment(Model, num_replicas=2)
        e = d.options(name="Other", max_ongoing_requests=9)
        self.assertEqual((e.name, e.num_replicas, e.max_ongoing_requests), ("Other", 2, 9))
        self.assertEqual((d.name, d.max_ongoing_requests), ("Model", 5))
        with self.assertRaisesRegex(TypeError, "unexpected keyword argument "
                                               "'rolling_update_percentage'"):
            d.options(rolling_update_percentage=0.5)

    def test_num_replicas_auto(self):
        d = serve.deployment(Model, num_replicas="auto", autoscaling_config={"max_replicas": 7})
        self.assertIsNone(d.num_replicas)
        self.assertEqual(d.autoscaling_config,
                         {"min_replicas": 1, "max_replicas": 7, "target_ongoing_requests": 2})

    def test_calling_or_constructing_a_deployment_raises(self):
        d = serve.deployment(Model)
        with self.assertRaises(RuntimeError) as called:
            d()
        self.assertEqual(str(called.exception),
                         "Deployments cannot be constructed directly. "
                         "Use `deployment.deploy() instead.`")
        with self.assertRaises(RuntimeError) as constructed:
            serve.Deployment(Model, "Model", {})
        self.assertEqual(str(constructed.exception),
                         "The Deployment constructor should not be called directly. "
                         "Use `@serve.deployment` instead.")

    def test_invalid_options(self):
        cases = [
            (lambda: serve.deployment(5), TypeError,
             "@serve.deployment must be called on a class or function."),
            (lambda: serve.deployment(Model, max_ongoing_requests=None), ValueError,
             "`max_ongoing_requests` must be non-null, got None."),
            (lambda: serve.deployment(Model, num_replicas=0), ValueError,
             "num_replicas is expected to larger than 0"),
            (lambda: serve.deployment(Model, num_replicas=2, autoscaling_config={}), ValueError,
             "Manually setting num_replicas is not allowed when autoscaling_config is provided."),
            (lambda: serve.deployment(Model, version="1"), ValueError,
             "`version` in `@serve.deployment` has been removed."),
            (lambda: serve.deployment(Model, nope=1), TypeError,
             "deployment() got an unexpected keyword argument 'nope'"),
            (lambda: serve.deployment(Model, name="a#b"), ValueError,
             "Deployment names must not contain the '#' character, got 'a#b'."),
            (lambda: serve.deployment(Model, ray_actor_options={"cpus": 1}), ValueError,
             "Specifying 'cpus' in ray_actor_options is not allowed. Allowed options: "
             "['accelerator_type', 'fallback_strategy', 'label_selector', 'memory', "
             "'num_cpus', 'num_gpus', 'resources', 'runtime_env']"),
        ]
        for make, error, message in cases:
            with self.subTest(message=message):
                with self.assertRaises(error) as caught:
                    make()
                self.assertEqual(str(caught.exception), message)

    def test_user_config_must_be_json(self):
        with self.assertRaisesRegex(ValueError, "^user_config is not JSON-serializable: "):
            serve.deployment(Model, user_config={"s": {1, 2}})


class ReplicaContextTest(unittest.TestCase):
    def test_outside_a_replica(self):
        with self.assertRaises(RayServeException) as caught:
            serve.get_replica_context()
        self.assertEqual(str(caught.exception), "`serve.get_replica_context()` may only be "
                                                "called from within a Ray Serve deployment.")

    def test_multiplexed_model_id_is_empty(self):
        self.assertEqual(serve.get_multiplexed_model_id(), "")


class BatchValidationTest(unittest.TestCase):
    def test_ray_messages(self):
        cases = [
            ({"max_batch_size": "3"}, TypeError, "max_batch_size must be integer >= 1, got 3"),
            ({"max_batch_size": 2.5}, TypeError, "max_batch_size must be integer >= 1, got 2.5"),
            ({"max_batch_size": 0}, ValueError, "max_batch_size must be an integer >= 1, got 0"),
            ({"batch_wait_timeout_s": "1"}, TypeError,
             "batch_wait_timeout_s must be a float >= 0, got 1"),
            ({"batch_wait_timeout_s": -1}, ValueError,
             "batch_wait_timeout_s must be a float >= 0, got -1"),
            ({"max_concurrent_batches": 0}, TypeError,
             "max_concurrent_batches must be an integer >= 1, got 0"),
            ({"batch_size_fn": 3}, TypeError,
             "batch_size_fn must be a callable or None, got <class 'int'>"),
        ]
        for kwargs, error, message in cases:
            with self.subTest(kwargs=kwargs):
                with self.assertRaises(error) as caught:
                    serve.batch(**kwargs)
                self.assertEqual(str(caught.exception), message)

    def test_bare_form_needs_async_def(self):
        def sync(items):
            return items

        with self.assertRaises(TypeError) as caught:
            serve.batch(sync)
        self.assertEqual(str(caught.exception),
                         "Functions decorated with @serve.batch must be 'async def'")
        with self.assertRaises(TypeError) as not_callable:
            serve.batch(5)
        self.assertEqual(str(not_callable.exception),
                         "@serve.batch can only be used to decorate functions or methods.")

    def test_integral_float_and_settings_are_exposed(self):
        async def fn(items):
            return items

        wrapped = serve.batch(max_batch_size=4.0, batch_wait_timeout_s=0.5)(fn)
        self.assertIs(wrapped._serve_batch_fn, fn)
        config = wrapped._serve_batch_config
        self.assertEqual((config.max_batch_size, config.batch_wait_timeout_s,
                          config.max_concurrent_batches, config.batch_size_fn), (4, 0.5, 1, None))
        wrapped.set_max_batch_size(16)
        wrapped.set_batch_wait_timeout_s(0.1)
        self.assertEqual((wrapped._get_max_batch_size(), wrapped._get_batch_wait_timeout_s()),
                         (16, 0.1))
        self.assertEqual(config.max_batch_size, 16)


class Batcher:
    """Records the lists its batch method receives."""

    def __init__(self):
        self.batches = []

    @serve.batch(max_batch_size=3, batch_wait_timeout_s=5)
    async def double(self, items):
        self.batches.append(list(items))
        return [2 * x for x in items]


class BatchQueueTest(unittest.TestCase):
    def test_full_batch_runs_without_waiting_for_the_timeout(self):
        batcher = Batcher()

        async def main():
            return await asyncio.gather(*(batcher.double(x) for x in (1, 2, 3)))

        began = time.monotonic()
        self.assertEqual(asyncio.run(main()), [2, 4, 6])
        self.assertLess(time.monotonic() - began, 1.0)  # the timeout is 5 s
        self.assertEqual(batcher.batches, [[1, 2, 3]])

    def test_batches_are_cut_at_max_batch_size(self):
        sizes = []

        @serve.batch(max_batch_size=2, batch_wait_timeout_s=0.01)
        async def echo(items):
            sizes.append(len(items))
            return items

        async def main():
            return await asyncio.gather(*(echo(x) for x in range(5)))

        self.assertEqual(asyncio.run(main()), [0, 1, 2, 3, 4])
        self.assertEqual(sizes, [2, 2, 1])

    def test_timeout_runs_a_partial_batch(self):
        seen = []

        @serve.batch(max_batch_size=10, batch_wait_timeout_s=0.05)
        async def echo(items):
            seen.append(list(items))
            return items

        async def main():
            return await asyncio.gather(echo("a"), echo("b"))

        self.assertEqual(asyncio.run(main()), ["a", "b"])
        self.assertEqual(seen, [["a", "b"]])

    def test_keywords_are_batched_per_name(self):
        @serve.batch(max_batch_size=2, batch_wait_timeout_s=1)
        async def add(xs, y):
            return [x + v for x, v in zip(xs, y)]

        async def main():
            return await asyncio.gather(add(1, y=10), add(2, y=20))

        self.assertEqual(asyncio.run(main()), [11, 22])

    def test_length_mismatch_fails_every_caller(self):
        @serve.batch(max_batch_size=2, batch_wait_timeout_s=1)
        async def short(items):
            return items[:1]

        async def main():
            return await asyncio.gather(short(1), short(2), return_exceptions=True)

        results = asyncio.run(main())
        for result in results:
            self.assertIsInstance(result, RayServeException)
            self.assertEqual(str(result), "Batched function doesn't preserve batch size. The "
                                          "input list has length 2 but the returned list has "
                                          "length 1.")

    def test_exception_reaches_every_caller(self):
        @serve.batch(max_batch_size=2, batch_wait_timeout_s=1)
        async def boom(items):
            raise KeyError("k")

        async def main():
            return await asyncio.gather(boom(1), boom(2), return_exceptions=True)

        first, second = asyncio.run(main())
        self.assertIsInstance(first, KeyError)
        self.assertIs(first, second)

    def test_batch_size_fn(self):
        seen = []

        @serve.batch(max_batch_size=5, batch_wait_timeout_s=0.05, batch_size_fn=sum)
        async def total(items):
            seen.append(list(items))
            return items

        async def main():
            return await asyncio.gather(total(2), total(2), total(6), total(2),
                                        return_exceptions=True)

        results = asyncio.run(main())
        self.assertEqual(results[:2] + results[3:], [2, 2, 2])
        self.assertIsInstance(results[2], RuntimeError)
        self.assertEqual(str(results[2]), "Size of item is greater than max_batch_size. Please "
                                          "increase the max_batch_size or check the "
                                          "implementation of the batch_size_fn.")
        self.assertEqual(seen, [[2, 2], [2]])

    def test_concurrent_batches(self):
        for limit, expected_peak in ((1, 1), (2, 2)):
            running = peak = 0

            @serve.batch(max_batch_size=1, batch_wait_timeout_s=0, max_concurrent_batches=limit)
            async def slow(items):
                nonlocal running, peak
                running += 1
                peak = max(peak, running)
                await asyncio.sleep(0.05)
                running -= 1
                return items

            async def main():
                return await asyncio.gather(slow(1), slow(2), slow(3))

            with self.subTest(limit=limit):
                self.assertEqual(asyncio.run(main()), [1, 2, 3])
                self.assertEqual(peak, expected_peak)

    def test_streaming_batches(self):
        @serve.batch(max_batch_size=2, batch_wait_timeout_s=1)
        async def count(limits):
            for step in range(3):
                yield [step if step < limit else StopIteration for limit in limits]

        async def collect(limit):
            return [x async for x in count(limit)]

        async def main():
            return await asyncio.gather(collect(1), collect(3))

        self.assertEqual(asyncio.run(main()), [[0], [0, 1, 2]])

    def test_queue_follows_the_event_loop(self):
        @serve.batch(batch_wait_timeout_s=0)
        async def double(items):
            return [2 * x for x in items]

        self.assertEqual(asyncio.run(double(1)), 2)
        self.assertEqual(asyncio.run(double(2)), 4)  # a new loop, a new queue


class RequestTest(unittest.TestCase):
    def make(self):
        return Request("get", "/items/7", "a=1&b=2&a=3&empty=",
                       [("Host", "example.com"), ("X-Multi", "one"), ("x-multi", "two")],
                       b'{"k": [1]}')

    def test_parts(self):
        request = self.make()
        self.assertEqual(request.method, "GET")
        self.assertEqual((request.url.path, request.url.query), ("/items/7", "a=1&b=2&a=3&empty="))
        self.assertEqual(str(request.url), "http://example.com/items/7?a=1&b=2&a=3&empty=")
        self.assertEqual(request.path_params, {})
        self.assertIsNone(request.client)

    def test_query_params(self):
        params = self.make().query_params
        self.assertEqual((params["a"], params.get("b"), params.get("zz", "d")), ("3", "2", "d"))
        self.assertEqual(params.getlist("a"), ["1", "3"])
        self.assertIn("empty", params)
        self.assertNotIn("zz", params)
        self.assertEqual(list(params.items()), [("a", "3"), ("b", "2"), ("empty", "")])

    def test_headers_are_case_insensitive(self):
        headers = self.make().headers
        self.assertEqual((headers["HOST"], headers.get("x-MULTI")), ("example.com", "one"))
        self.assertEqual(headers.getlist("X-Multi"), ["one", "two"])
        self.assertIn("x-multi", headers)
        self.assertEqual(headers.items(),
                         [("host", "example.com"), ("x-multi", "one"), ("x-multi", "two")])

    def test_body_and_json(self):
        request = self.make()
        self.assertEqual(asyncio.run(request.body()), b'{"k": [1]}')
        self.assertEqual(asyncio.run(request.json()), {"k": [1]})


class ResponseTest(unittest.TestCase):
    def test_response_renders_content_and_type(self):
        response = Response("h\u00e9", status_code=202, headers={"X-A": "1"},
                            media_type="text/html")
        self.assertEqual((response.status_code, response.body), (202, "h\u00e9".encode()))
        self.assertEqual(response.raw_headers,
                         [(b"x-a", b"1"), (b"content-type", b"text/html; charset=utf-8")])

    def test_explicit_content_type_wins(self):
        response = Response(b"\x00", headers={"Content-Type": "application/x"},
                            media_type="text/plain")
        self.assertEqual(response.headers["content-type"], "application/x")
        self.assertEqual(response.headers.getlist("content-type"), ["application/x"])

    def test_json_and_plain_text(self):
        self.assertEqual(JSONResponse({"a": "\u00e9", "b": [1, None]}).body,
                         '{"a":"\u00e9","b":[1,null]}'.encode())
        plain = PlainTextResponse("x")
        self.assertEqual(plain.headers["content-type"], "text/plain; charset=utf-8")

    def test_headers_can_change_after_construction(self):
        response = Response("x")
        response.headers["X-Later"] = "1"
        response.headers["x-later"] = "2"
        self.assertEqual(response.headers.items(), [("x-later", "2")])

    def test_streaming_response_keeps_its_iterator(self):
        chunks = iter(["a", "b"])
        response = StreamingResponse(chunks, media_type="text/event-stream")
        self.assertIs(response.body_iterator, chunks)
        self.assertEqual(response.headers["content-type"], "text/event-stream; charset=utf-8")

    def test_same_classes_from_every_module(self):
        from haproxy_serve import requests, responses

        self.assertIs(serve.Response, responses.Response)
        self.assertIs(serve.StreamingResponse, responses.StreamingResponse)
        self.assertIs(serve.Request, requests.Request)


class ImportTest(unittest.TestCase):
    def test_api_imports_without_numpy(self):
        code = (
            "import sys; sys.modules['numpy'] = None\n"
            "from haproxy_serve import serve\n"
            "import haproxy_serve.worker\n"
            "@serve.deployment\n"
            "class A:\n"
            "    @serve.batch\n"
            "    async def __call__(self, rs): return rs\n"
            "print(A.name)\n"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env={"PYTHONPATH": str(REPO / "python")}, timeout=60)
        self.assertEqual((done.returncode, done.stdout, done.stderr), (0, "A\n", ""))


if __name__ == "__main__":
    unittest.main()
