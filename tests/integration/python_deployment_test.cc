// kind: python end to end: the real serve-replica with a real Python worker, alone and behind
// HAProxy on a node the manager runs. The failure cases run against the replica directly; the
// examples (examples/python.yaml) run through HAProxy.
#include <signal.h>

#include <fstream>
#include <future>
#include <iterator>
#include <set>
#include <sstream>
#include <thread>

#include "tests/integration/grpc_fixture.h"
#include "tests/integration/manager_fixture.h"
#include "tests/integration/replica_fixture.h"
#include "tests/support/digits.h"

namespace serve::testing {
namespace {

const std::string kAppsDir = std::string(SERVE_SOURCE_DIR) + "/tests/integration/python_apps";

// examples/python/hello.py as the application `hello` at /hello: the neighbour that must keep
// serving while another application fails.
const std::string kHelloApp =
    "  - name: hello\n"
    "    route_prefix: /hello\n"
    "    deployments:\n"
    "      - name: d\n"
    "        model: {kind: python, name: hello, import_path: \"hello:app\", working_dir: " +
    std::string(SERVE_SOURCE_DIR) + "/examples/python}\n";

std::string pythonConfig(const std::string& import_path, const std::string& extra = "") {
  return "http_options: {request_timeout_s: 1}\n"
         "applications:\n"
         "  - name: app\n"
         "    route_prefix: /faults\n"
         "    deployments:\n"
         "      - name: d\n"
         "        max_ongoing_requests: 8\n"
         "        health_check_period_s: 0.2\n" +
         extra + "        model: {kind: python, name: faults, import_path: \"" + import_path +
         "\", working_dir: " + kAppsDir + "}\n";
}

std::map<std::string, std::string> pythonEnv() { return {{"SERVE_PYTHON", SERVE_TEST_PYTHON}}; }

std::unique_ptr<ReplicaProcess> startPythonReplica(const std::string& config) {
  ReplicaOptions o;
  o.config_yaml = config;
  o.env = pythonEnv();
  auto r = std::make_unique<ReplicaProcess>(o);
  const bool started = r->start(std::chrono::seconds(20));
  INFO(r->output());
  REQUIRE(started);
  return r;
}

// Sends `n` GETs to `url` at once; returns the seconds until the last answer and the answers.
std::pair<double, std::multiset<std::string>> concurrentGets(const std::string& url, int n) {
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::future<HttpResult>> calls;
  for (int i = 0; i < n; ++i) {
    calls.push_back(std::async(std::launch::async, [url] { return httpGet(url); }));
  }
  std::multiset<std::string> answers;
  for (auto& c : calls) {
    const HttpResult r = c.get();
    answers.insert(std::to_string(r.status) + " " + r.body);
  }
  return {std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), answers};
}

TEST_CASE("python replica: async calls overlap on the event loop, sync ones take turns") {
  // request_timeout_s gives every call a deadline: they must overlap all the same.
  const std::string config = std::string("http_options: {request_timeout_s: 10}\n") +
                             "applications:\n"
                             "  - name: app\n"
                             "    route_prefix: /slow\n"
                             "    deployments:\n"
                             "      - name: d\n"
                             "        max_ongoing_requests: 8\n"
                             "        model: {kind: python, name: slow, import_path: \"";
  const std::string tail = "\", working_dir: " + kAppsDir + "}\n";
  {
    auto r = startPythonReplica(config + "overlap_app:async_app" + tail);
    const auto [seconds, answers] = concurrentGets(r->url("/slow"), 4);
    CHECK(answers == std::multiset<std::string>{"200 async done", "200 async done",
                                                "200 async done", "200 async done"});
    CHECK(seconds < 1.0);  // four 0.5 s sleeps at once, not one after another (2 s)
  }
  {
    auto r = startPythonReplica(config + "overlap_app:sync_app" + tail);
    const auto [seconds, answers] = concurrentGets(r->url("/slow"), 4);
    CHECK(answers == std::multiset<std::string>{"200 sync done", "200 sync done", "200 sync done",
                                                "200 sync done"});
    CHECK(seconds >= 1.0);  // one at a time on the user thread: 4 x 0.25 s
  }
}

TEST_CASE("python replica: a user exception is a 500 with its type and message, and only that") {
  auto r = startPythonReplica(pythonConfig("faults_app:app"));
  const HttpResult bad = httpPost(r->url("/faults/raise"), "{}");
  CHECK(bad.status == 500);
  CHECK(bad.body == R"({"error":"ValueError: bad input 7"})");
  const HttpResult unserialisable = httpGet(r->url("/faults/unserialisable"));
  CHECK(unserialisable.status == 500);
  CHECK(unserialisable.body ==
        R"({"error":"TypeError: Object of type object is not JSON serializable"})");
  const HttpResult ok = httpGet(r->url("/faults"));
  CHECK(ok.status == 200);
  CHECK(ok.body.starts_with("ok pid="));
  // The traceback is in the replica's log, not in the answer.
  CHECK(eventually(
      [&] { return r->output().find("Traceback (most recent call last)") != std::string::npos; }));
}

TEST_CASE("python replica: a worker killed mid-request fails that request and is restarted") {
  auto r = startPythonReplica(pythonConfig("faults_app:app"));
  const std::string first = httpGet(r->url("/faults")).body;
  const HttpResult crashed = httpGet(r->url("/faults/crash"));
  CHECK(crashed.status == 500);
  CHECK(
      crashed.body ==
      R"({"error":"the Python worker was killed by signal 9 (Killed) while handling this request"})");
  // The next request starts a new worker (the first restart waits for no backoff).
  const HttpResult again = httpGet(r->url("/faults"));
  CHECK(again.status == 200);
  CHECK(again.body.starts_with("ok pid="));
  CHECK(again.body != first);
  CHECK(metric(*r, "serve_python_worker_restarts_total{application=\"app\",deployment=\"d\"}") ==
        1);
}

TEST_CASE("python replica: a hung worker still gets its request answered 408 at the deadline") {
  auto r = startPythonReplica(pythonConfig("faults_app:app"));
  const HttpResult hung = httpGet(r->url("/faults/hang"));
  CHECK(hung.status == 408);
  CHECK(hung.body.find("timed out after 1s.") != std::string::npos);
  CHECK(hung.seconds < 2.0);
}

TEST_CASE("python replica: a hung call makes the watchdog report unhealthy until it ends") {
  ReplicaOptions o;
  o.config_yaml = pythonConfig("faults_app:app");
  o.env = pythonEnv();
  o.extra_args = {"--watchdog-timeout-s", "1"};
  auto r = std::make_unique<ReplicaProcess>(o);
  REQUIRE(r->start(std::chrono::seconds(20)));
  CHECK(httpGet(r->url("/-/healthz")).body == "success");
  // /faults/hang sleeps 3 s in a sync method; its 1 s deadline answers it 408, but the worker
  // stays busy: no pass completes, and after the watchdog's 1 s the replica says so.
  auto hung = std::async(std::launch::async, [&] { return httpGet(r->url("/faults/hang")); });
  CHECK(eventually(
      [&] {
        const HttpResult h = httpGet(r->url("/-/healthz"));
        return h.status == 503 && h.body == "UNHEALTHY";
      },
      std::chrono::seconds(3)));
  CHECK(hung.get().status == 408);
  // The call ends (3 s) and the worker answers again: healthy.
  CHECK(eventually([&] { return httpGet(r->url("/-/healthz")).body == "success"; },
                   std::chrono::seconds(5)));
}

TEST_CASE("python replica: what user code prints is logged and does not disturb the protocol") {
  auto r = startPythonReplica(pythonConfig("faults_app:app"));
  const HttpResult printed = httpGet(r->url("/faults/print"));
  CHECK(printed.status == 200);
  CHECK(printed.body == "printed");
  CHECK(eventually([&] {
    const std::string out = r->output();
    return out.find("stdout: a line on stdout") != std::string::npos &&
           out.find("stderr: a line on stderr") != std::string::npos;
  }));
  CHECK(httpGet(r->url("/faults")).status == 200);
}

TEST_CASE("python replica: check_health raising makes the replica unhealthy") {
  auto r = startPythonReplica(pythonConfig("faults_app:app"));
  CHECK(httpGet(r->url("/-/healthz")).body == "success");
  CHECK(httpGet(r->url("/faults/unhealthy")).body == "now unhealthy");
  CHECK(eventually([&] {
    const HttpResult h = httpGet(r->url("/-/healthz"));
    return h.status == 503 && h.body == "UNHEALTHY";
  }));
  CHECK(r->output().find("health check failed: check_health raised RuntimeError: told to be "
                         "unhealthy") != std::string::npos);
}

TEST_CASE("python replica: an import error or a failing __init__ stops the start with the error") {
  struct Case {
    std::string import_path;
    std::string message;
  };
  for (const Case& c : {Case{"no_such_module:app",
                             "ModuleNotFoundError: No module named "
                             "'no_such_module'"},
                        Case{"faults_app:Missing", "faults_app:Missing"},
                        Case{"faults_app:BrokenInit", "RuntimeError: cannot load weights"}}) {
    CAPTURE(c.import_path);
    ReplicaOptions o;
    o.config_yaml = pythonConfig(c.import_path);
    o.env = pythonEnv();
    ReplicaProcess r(o);
    CHECK_FALSE(r.start(std::chrono::seconds(20)));
    const std::optional<int> code = r.wait(std::chrono::seconds(5));
    REQUIRE(code.has_value());
    CHECK(*code != 0);
    INFO(r.output());
    CHECK(r.output().find(c.message) != std::string::npos);
  }
}

TEST_CASE("node: examples/python.yaml serves its three classes through HAProxy") {
  auto m = startNode("", std::string(SERVE_SOURCE_DIR) + "/examples/python.yaml", pythonEnv());
  REQUIRE(eventually(
      [&] {
        return allServing(*m, "classify", 1) && allServing(*m, "count", 1) &&
               allServing(*m, "hello", 1);
      },
      std::chrono::seconds(30)));
  const std::string base = "http://127.0.0.1:8000";  // the port the example config names
  const std::string two =
      "[0,0,7,16,14,3,0,0,0,0,9,14,11,15,0,0,0,0,1,5,0,15,5,0,0,0,0,0,0,16,5,0,0,0,0,0,3,16,4,0,"
      "0,0,0,1,12,14,1,0,0,0,5,12,16,16,14,1,0,0,8,16,14,10,13,3]";

  // The README's smallest class: a query parameter in, JSON out.
  const HttpResult hello = httpGet(base + "/hello?name=ray");
  CHECK(hello.status == 200);
  CHECK(hello.body == R"({"hello":"ray"})");

  // Text in, text out, through @serve.batch and await request.json().
  HttpResult text = httpPost(base + "/classify", R"({"pixels":)" + two + "}");
  CHECK(text.status == 200);
  CHECK(text.body == R"({"digit":2,"probability":0.9992})");
  CHECK(text.headers["content-type"] == "application/json");

  // KServe v2 by model name: named numpy arrays in and out of the class's infer().
  const HttpResult kserve = httpPost(
      base + "/v2/models/digits_py/infer",
      R"({"inputs":[{"name":"input","shape":[1,64],"datatype":"FP32","data":)" + two + "}]}");
  REQUIRE(kserve.status == 200);
  const auto reply = nlohmann::json::parse(kserve.body);
  CHECK(reply["model_name"] == "digits_py");
  CHECK(reply["outputs"][0]["name"] == "probabilities");
  CHECK(reply["outputs"][0]["shape"] == nlohmann::json::array({1, 10}));
  CHECK(argmax(reply["outputs"][0]["data"]) == 2);
  // kind: mlp gives 0.99918795 for this sample (the C++ back end, same weights).
  CHECK(std::abs(reply["outputs"][0]["data"][2].get<double>() - 0.99918795) < 1e-5);

  // The same through HAProxy's gRPC listener (:9000, the application picked by metadata).
  std::vector<float> pixels;
  for (const auto& v : nlohmann::json::parse(two)) {
    pixels.push_back(v.get<float>());
  }
  auto stub = inferenceStub(9000);
  const InferResult grpc_reply = infer(*stub, rawRequest("digits_py", pixels, {1, 64}, "input"),
                                       std::chrono::seconds(10), {{"application", "classify"}});
  INFO(grpc_reply.status.error_message());
  REQUIRE(grpc_reply.status.ok());
  REQUIRE(grpc_reply.response.raw_output_contents_size() == 1);
  const std::vector<float> probabilities = rawFloats(grpc_reply.response.raw_output_contents(0));
  REQUIRE(probabilities.size() == 10);
  CHECK(std::max_element(probabilities.begin(), probabilities.end()) - probabilities.begin() == 2);
  CHECK(std::abs(probabilities[2] - 0.99918795) < 1e-5);

  // A bad request fails alone, with the class's own message.
  const HttpResult bad = httpPost(base + "/classify", R"({"pixels":[1,2]})");
  CHECK(bad.status == 500);
  CHECK(bad.body == R"({"error":"ValueError: expected 64 pixels, got 2"})");
  // Malformed JSON is the class's exception too (await request.json() raises), as in Ray.
  const HttpResult malformed = httpPost(base + "/classify", R"({"pixels": [1,2)");
  CHECK(malformed.status == 500);
  CHECK(malformed.body ==
        R"j({"error":"JSONDecodeError: Expecting ',' delimiter: line 1 column 16 (char 15)"})j");

  // Streaming: chunks pass through HAProxy as they are produced, not at the end.
  const std::pair<int, std::string> streamed =
      runShell("curl -sN -w '\\n%{time_starttransfer} %{time_total} %{content_type}' '" + base +
               "/count?to=3&delay=0.4'");
  const int rc = streamed.first;
  const std::string& out = streamed.second;
  REQUIRE(rc == 0);
  INFO(out);
  CHECK(out.starts_with("1\n2\n3\n\n"));
  std::istringstream tail(out.substr(out.rfind('\n') + 1));
  std::string content_type;
  double first_byte = 0;
  double total = 0;
  tail >> first_byte >> total >> std::ws;
  std::getline(tail, content_type);
  CHECK(content_type == "text/plain; charset=utf-8");
  CHECK(total - first_byte > 0.6);  // two more chunks, 0.4 s apart, after the first byte
  const auto [sse_rc, sse] = runShell("curl -sN '" + base + "/count?to=2&delay=0.01&sse=1'");
  CHECK(sse == "data: 1\n\ndata: 2\n\n");

  // The counter's generator `infer` over gRPC ModelStreamInfer through HAProxy: one response per
  // number for each request of the stream, then the empty final one Triton's clients ask for; a
  // request that fails gets its error in the stream, and the stream goes on.
  grpc::ClientContext ctx;
  withDeadline(ctx);
  addMetadata(ctx, {{"application", "count"}});
  auto call = stub->ModelStreamInfer(&ctx);
  auto countRequest = [](int64_t to, bool final_flag) {
    ModelInferRequest req;
    req.set_model_name("Counter");
    req.set_id("to-" + std::to_string(to));
    auto* in = req.add_inputs();
    in->set_name("to");
    in->set_datatype("INT64");
    in->add_shape(1);
    in->mutable_contents()->add_int64_contents(to);
    if (final_flag) {
      (*req.mutable_parameters())["triton_enable_empty_final_response"].set_bool_param(true);
    }
    return req;
  };
  REQUIRE(call->Write(countRequest(3, true)));
  REQUIRE(call->Write(countRequest(-1, false)));
  REQUIRE(call->Write(countRequest(2, false)));
  call->WritesDone();
  std::vector<std::string> seen;
  inference::ModelStreamInferResponse message;
  while (call->Read(&message)) {
    if (!message.error_message().empty()) {
      seen.push_back("error: " + message.error_message());
      continue;
    }
    const ModelInferResponse& r = message.infer_response();
    std::string line = r.id();
    for (int i = 0; i < r.raw_output_contents_size(); ++i) {
      int64_t value = 0;
      REQUIRE(r.raw_output_contents(i).size() == sizeof(value));
      std::memcpy(&value, r.raw_output_contents(i).data(), sizeof(value));
      line += " " + r.outputs(i).name() + "=" + std::to_string(value);
    }
    for (int i = 0; i < r.outputs_size(); ++i) {
      for (int64_t v : r.outputs(i).contents().int64_contents()) {
        line += " " + r.outputs(i).name() + "=" + std::to_string(v);
      }
    }
    if (auto f = r.parameters().find("triton_final_response"); f != r.parameters().end()) {
      line += f->second.bool_param() ? " final" : " more";
    }
    seen.push_back(line);
  }
  const grpc::Status finished = call->Finish();
  INFO(finished.error_message());
  CHECK(finished.ok());
  CHECK(seen == std::vector<std::string>{
                    "to-3 count=1 more", "to-3 count=2 more", "to-3 count=3 more", "to-3 final",
                    "error: ValueError: cannot count to -1", "to-2 count=1", "to-2 count=2"});
  // ModelInfer cannot carry a stream and says which RPC can.
  const InferResult unary =
      infer(*stub, countRequest(2, false), std::chrono::seconds(10), {{"application", "count"}});
  CHECK(unary.status.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK(unary.status.error_message() ==
        "model 'Counter' streams its outputs; use the ModelStreamInfer RPC");
}

TEST_CASE("node: a stream holds its admission slot until its client leaves, which stops it") {
  const TempDir marker_dir;
  const std::string marker = marker_dir.path() + "/closed";
  const std::string config =
      "http_options: {host: 127.0.0.1, port: {{HTTP_PORT}}, request_timeout_s: 10}\n"
      "applications:\n"
      "  - name: app\n"
      "    route_prefix: /stream\n"
      "    deployments:\n"
      "      - name: d\n"
      "        max_ongoing_requests: 1\n"
      "        model: {kind: python, name: endless, import_path: \"stream_control_app:app\", "
      "working_dir: " +
      kAppsDir + "}\n";
  std::map<std::string, std::string> env = pythonEnv();
  env["STREAM_CLOSED_MARKER"] = marker;
  auto m = startNode(config, "", env);
  REQUIRE(eventually([&] { return allServing(*m, "app", 1); }, std::chrono::seconds(30)));
  CHECK(httpGet(m->url("/stream/ping")).body == "pong");

  // A client reads the endless stream for 1.5 s and leaves; a request sent 0.3 s in waits for
  // the one slot until then, and is answered right after.
  const std::pair<int, std::string> shell = runShell(
      "(curl -sN --max-time 1.5 '" + m->url("/stream") +
      "' > /dev/null &) ; sleep 0.3; curl -s --max-time 8 -w ' %{http_code} %{time_total}' '" +
      m->url("/stream/ping") + "'");
  const std::string& out = shell.second;  // not a structured binding: INFO captures it
  INFO(out);
  std::istringstream answer(out);
  std::string body;
  int code = 0;
  double seconds = 0;
  answer >> body >> code >> seconds;
  CHECK(body == "pong");
  CHECK(code == 200);
  CHECK(seconds > 0.9);  // held until the streaming client left at 1.5 s
  CHECK(seconds < 4.0);
  // The class's generator was closed (its finally ran) when the client left.
  CHECK(eventually([&] {
    std::ifstream in(marker);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return text == "closed\n";
  }));
}

// Whether status shows application `app`'s deployment as failing; if so, it goes to `found`.
bool failingDeployment(ManagerProcess& m, const std::string& app, nlohmann::json& found) {
  const nlohmann::json status = m.status();
  for (const auto& d : status["deployments"]) {
    if (d["application"] == app && d["state"] == "failing") {
      found = d;
      return true;
    }
  }
  return false;
}

// Two applications: `conf` (config_app.py, two replicas, the given user_config) and `hello`
// (examples/python/hello.py), the neighbour that must keep serving.
std::string configuredNode(const std::string& user_config) {
  return "http_options: {host: 127.0.0.1, port: {{HTTP_PORT}}}\n"
         "applications:\n"
         "  - name: conf\n"
         "    route_prefix: /conf\n"
         "    deployments:\n"
         "      - name: d\n"
         "        num_replicas: 2\n"
         "        user_config: " +
         user_config +
         "\n"
         "        model: {kind: python, name: conf, import_path: \"config_app:app\", "
         "working_dir: " +
         kAppsDir + "}\n" + kHelloApp;
}

// The bodies of `n` requests to `url`, counted.
std::map<std::string, int> answers(const std::string& url, int n) {
  std::map<std::string, int> seen;
  for (int i = 0; i < n; ++i) {
    const HttpResult r = httpGet(url);
    ++seen[std::to_string(r.status) + " " + r.body];
  }
  return seen;
}

// The greetings in `seen` ("200 hi pid=12" -> "hi"), with the worker pids dropped.
std::set<std::string> greetings(const std::map<std::string, int>& seen) {
  std::set<std::string> out;
  for (const auto& [answer, count] : seen) {
    out.insert(answer.substr(0, answer.find(" pid=")));
  }
  return out;
}

std::set<std::string> workerPids(const std::map<std::string, int>& seen) {
  std::set<std::string> out;
  for (const auto& [answer, count] : seen) {
    out.insert(answer.substr(answer.find(" pid=") + 5));
  }
  return out;
}

TEST_CASE("node: a deploy that changes only user_config reconfigures the replicas in place") {
  auto m = startNode(configuredNode("{greeting: hello}"), "", pythonEnv());
  REQUIRE(eventually([&] { return allServing(*m, "conf", 2) && allServing(*m, "hello", 1); },
                     std::chrono::seconds(30)));
  const auto before = processes(*m, "conf");
  const auto first = answers(m->url("/conf"), 20);
  CHECK(greetings(first) == std::set<std::string>{"200 hello"});
  REQUIRE(workerPids(first).size() == 2);  // both replicas answered

  const HttpResult deployed = m->deploy(configuredNode("{greeting: hi}"));
  INFO(deployed.body);
  REQUIRE(deployed.status == 200);
  // Every answer turns to the new greeting, from the same replica processes and the same Python
  // workers: nothing was restarted.
  REQUIRE(eventually(
      [&] { return greetings(answers(m->url("/conf"), 10)) == std::set<std::string>{"200 hi"}; },
      std::chrono::seconds(15)));
  const auto after = answers(m->url("/conf"), 20);
  CHECK(greetings(after) == std::set<std::string>{"200 hi"});
  CHECK(workerPids(after) == workerPids(first));
  CHECK(processes(*m, "conf") == before);
  CHECK(m->status()["replica_restarts"] == 0);

  // A user_config that reconfigure refuses: the running replicas keep serving the last good
  // one while the replacement fails to start, and status says why.
  REQUIRE(m->deploy(configuredNode("{greeting: bad, fail: true}")).status == 200);
  const std::string why =
      "failed to start: model 'conf': config_app:app: ValueError: refused greeting bad";
  nlohmann::json failing;
  REQUIRE(
      eventually([&] { return failingDeployment(*m, "conf", failing); }, std::chrono::seconds(20)));
  INFO(failing.dump());
  CHECK(failing["message"] == why);
  CHECK(greetings(answers(m->url("/conf"), 20)) == std::set<std::string>{"200 hi"});
  CHECK(httpGet(m->url("/hello?name=x")).body == R"({"hello":"x"})");

  // A good user_config again: the node converges on it.
  REQUIRE(m->deploy(configuredNode("{greeting: again}")).status == 200);
  REQUIRE(eventually(
      [&] {
        return allServing(*m, "conf", 2) &&
               greetings(answers(m->url("/conf"), 10)) == std::set<std::string>{"200 again"};
      },
      std::chrono::seconds(40)));
}

TEST_CASE("node: a replica whose check_health keeps failing is replaced, the node keeps serving") {
  const std::string config =
      "http_options: {host: 127.0.0.1, port: {{HTTP_PORT}}}\n"
      "applications:\n"
      "  - name: app\n"
      "    route_prefix: /faults\n"
      "    deployments:\n"
      "      - name: d\n"
      "        health_check_period_s: 0.2\n"
      "        model: {kind: python, name: faults, import_path: \"faults_app:app\", working_dir: " +
      kAppsDir + "}\n";
  auto m = startNode(config, "", pythonEnv());
  REQUIRE(eventually([&] { return allServing(*m, "app", 1); }, std::chrono::seconds(30)));
  const auto before = processes(*m, "app");
  CHECK(httpGet(m->url("/faults/unhealthy")).body == "now unhealthy");
  // A new replica takes over (a new process, serving, in its slot), the old one drains away.
  REQUIRE(eventually(
      [&] {
        const auto now = processes(*m, "app");
        return now.size() == 1 && now.begin()->first != before.begin()->first &&
               allServing(*m, "app", 1);
      },
      std::chrono::seconds(30)));
  const HttpResult ok = httpGet(m->url("/faults"));
  CHECK(ok.status == 200);
  CHECK(ok.body.starts_with("ok pid="));
  CHECK(m->output().find("reported unhealthy 3 times in a row (unhealthy: check_health raised "
                         "RuntimeError: told to be unhealthy); replacing it") != std::string::npos);
}

TEST_CASE("node: a class that cannot be imported shows as failing with the Python error") {
  const std::string config =
      "http_options: {host: 127.0.0.1, port: {{HTTP_PORT}}}\n"
      "applications:\n"
      "  - name: broken\n"
      "    route_prefix: /broken\n"
      "    deployments:\n"
      "      - name: d\n"
      "        model: {kind: python, name: broken, import_path: \"no_such_module:app\", "
      "working_dir: " +
      kAppsDir + "}\n" + kHelloApp;
  auto m = startNode(config, "", pythonEnv());
  REQUIRE(eventually([&] { return allServing(*m, "hello", 1); }, std::chrono::seconds(30)));
  nlohmann::json broken;
  REQUIRE(eventually([&] { return failingDeployment(*m, "broken", broken); },
                     std::chrono::seconds(20)));
  CHECK(broken["message"] ==
        "failed to start: model 'broken': no_such_module:app: ModuleNotFoundError: No module named "
        "'no_such_module'");
  // It backs off (1 s, 2 s, 4 s, ...) instead of looping: over 4 s at most 3 more starts.
  const int restarts_then = m->status()["replica_restarts"].get<int>();
  std::this_thread::sleep_for(std::chrono::seconds(4));
  const int restarts_now = m->status()["replica_restarts"].get<int>();
  CHECK(restarts_now - restarts_then <= 3);
  // The neighbour never noticed; the broken route answers 503 from HAProxy.
  CHECK(httpGet(m->url("/hello?name=x")).body == R"({"hello":"x"})");
  CHECK(httpGet(m->url("/broken")).status == 503);
}

// The replica's only process entry in status: its HTTP port.
int onlyReplicaPort(ManagerProcess& m, const std::string& app) {
  const nlohmann::json status = m.status();  // kept: the loop walks a part of it
  for (const auto& p : status["processes"]) {
    if (p["application"] == app) {
      return p["http_port"].get<int>();
    }
  }
  return 0;
}

std::string rootAppConfig(const std::string& model) {
  return "http_options: {host: 127.0.0.1, port: {{HTTP_PORT}}}\n"
         "applications:\n"
         "  - name: root\n"
         "    route_prefix: /\n"
         "    deployments:\n"
         "      - name: d\n"
         "        model: " +
         model + "\n";
}

TEST_CASE("node: under route prefix /, /metrics through the ingress is the application's own") {
  auto m = startNode(rootAppConfig("{kind: python, name: paths, import_path: \"paths_app:app\", "
                                   "working_dir: " +
                                   kAppsDir + "}"),
                     "", pythonEnv());
  REQUIRE(eventually([&] { return allServing(*m, "root", 1); }, std::chrono::seconds(30)));
  // Through HAProxy's public port the class gets /metrics like any other path, without the mark.
  HttpResult r = httpGet(m->url("/metrics"));
  CHECK(r.status == 200);
  CHECK(r.body == "app saw /metrics; ingress mark passed on: False");
  // A client cannot unmark its request: HAProxy replaces the header.
  r = httpRequest("GET", m->url("/metrics"), "", {{"x-serve-ingress", ""}});
  CHECK(r.body == "app saw /metrics; ingress mark passed on: False");
  // The node's own health and routes are HAProxy's answers, not the replica's.
  CHECK(httpGet(m->url("/-/healthz")).body == "success");
  CHECK(httpGet(m->url("/-/routes")).body == R"({"/":"root"})");
  // On the replica's own port (Prometheus, HAProxy's checks) its pages are still there.
  const int port = onlyReplicaPort(*m, "root");
  REQUIRE(port > 0);
  const std::string direct = "http://127.0.0.1:" + std::to_string(port);
  r = httpGet(direct + "/metrics");
  CHECK(r.status == 200);
  CHECK(r.body.find("\nserve_model_requests_total{") != std::string::npos);
  CHECK(httpGet(direct + "/-/healthz").body == "success");
}

TEST_CASE(
    "node: under route prefix /, a built-in model's metrics are not served through the ingress") {
  auto m = startNode(rootAppConfig("{kind: noop, name: echo}"));
  REQUIRE(eventually([&] { return allServing(*m, "root", 1); }, std::chrono::seconds(30)));
  const std::string host = "127.0.0.1:" + std::to_string(m->httpPort());
  for (const std::string path : {"/metrics", "/-/routes/", "/-/healthz/"}) {
    const HttpResult r = httpGet(m->url(path));
    INFO(path);
    CHECK(r.status == 404);
    CHECK(r.body ==
          "Path '" + path + "' not found. Ping http://" + host + "/-/routes for available routes.");
  }
  // The mark alone decides: the same replica serves its pages to a request without it.
  const int port = onlyReplicaPort(*m, "root");
  REQUIRE(port > 0);
  const HttpResult direct = httpGet("http://127.0.0.1:" + std::to_string(port) + "/metrics");
  CHECK(direct.status == 200);
  CHECK(direct.body.find("\nserve_model_requests_total{") != std::string::npos);
  const HttpResult marked =
      httpRequest("GET", "http://127.0.0.1:" + std::to_string(port) + "/metrics", "",
                  {{"x-serve-ingress", "1"}});
  CHECK(marked.status == 404);
}

}  // namespace
}  // namespace serve::testing
