// gRPC through HAProxy: the manager's h2c frontend picks the application's gRPC backend by the
// `application` request metadata, and the replicas it runs serve KServe v2 on their own gRPC
// ports. A grpc++ client built from the project's .proto files talks to HAProxy's gRPC port;
// everything is real (manager, HAProxy, replica processes) on loopback.
#include <atomic>
#include <thread>

#include "haproxy-manager/haproxy/show_parsers.h"
#include "proto/health.grpc.pb.h"
#include "tests/integration/grpc_fixture.h"
#include "tests/integration/manager_fixture.h"
#include "tests/support/haproxy_binaries.h"

namespace serve::testing {
namespace {

// `app` (noop model `echo`) and `slow` (sleep model `sleeper`: two at a time, no queue).
std::string twoAppConfig(int app_replicas = 1) {
  return "http_options: {host: 127.0.0.1, port: {{HTTP_PORT}}, request_timeout_s: 30}\n"
         "applications:\n"
         "  - name: app\n"
         "    route_prefix: /app\n"
         "    deployments:\n"
         "      - {name: d, num_replicas: " +
         std::to_string(app_replicas) +
         ", max_ongoing_requests: 8, model: {kind: noop, name: echo}}\n"
         "  - name: slow\n"
         "    route_prefix: /slow\n"
         "    deployments:\n"
         "      - {name: s, max_ongoing_requests: 2, max_queued_requests: 0,\n"
         "         model: {kind: sleep, sleep_ms: 1500, name: sleeper}}\n";
}

// The replicas of `app` as the manager's status lists them: HTTP and gRPC addresses.
struct SlotAddresses {
  std::string http;
  std::string grpc;
};

std::vector<SlotAddresses> slotAddresses(ManagerProcess& m, const std::string& app) {
  std::vector<SlotAddresses> out;
  const nlohmann::json status = m.status();
  for (const auto& a : status["applications"]) {
    if (a["name"] != app) {
      continue;
    }
    for (const auto& slot : a["slots"]) {
      if (slot["state"] == "active") {
        out.push_back(
            {slot["address"].get<std::string>(), slot.value("grpc_address", std::string())});
      }
    }
  }
  return out;
}

// All `n` replicas of `app` serve, and each one's gRPC slot is in the routing table too.
bool servingBoth(ManagerProcess& m, const std::string& app, std::size_t n) {
  if (!allServing(m, app, n)) {
    return false;
  }
  for (const SlotAddresses& slot : slotAddresses(m, app)) {
    if (slot.grpc.empty()) {
      return false;
    }
  }
  return true;
}

double replicaMetric(const std::string& http_address, const std::string& series_text) {
  return metricValue(httpGet("http://" + http_address + "/metrics").body, series_text);
}

std::string sleepSeries(const std::string& name) {
  return name + "{application=\"slow\",deployment=\"s\"}";
}

// A context for one call: a deadline, and the request metadata.
std::unique_ptr<grpc::ClientContext> context(const Metadata& metadata) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  withDeadline(*ctx);
  addMetadata(*ctx, metadata);
  return ctx;
}

// For BackgroundLoad: a unary ModelInfer call, each of `threads` threads on a channel of its
// own; the outcome is the gRPC code.
BackgroundLoad<grpc::StatusCode>::Call inferCalls(int port, int threads, const Metadata& metadata) {
  auto stubs = std::make_shared<std::vector<std::unique_ptr<GRPCInferenceService::Stub>>>();
  for (int i = 0; i < threads; ++i) {
    stubs->push_back(inferenceStub(port));
  }
  return [stubs, metadata](int i) {
    InferResult r = infer(*(*stubs)[i], typedRequest("echo", {static_cast<float>(i)}, {1, 1}),
                          std::chrono::seconds(10), metadata);
    return std::pair<grpc::StatusCode, std::string>(
        r.status.error_code(),
        std::to_string(r.status.error_code()) + " " + r.status.error_message());
  };
}

// Every RPC through HAProxy on one HAProxy binary; see the test case below.
void checkGrpcFrontend(const HaproxyBinary& binary) {
  auto m = startNode(twoAppConfig(), "", {{"RAY_SERVE_HAPROXY_BINARY_PATH", binary.path}});
  REQUIRE(eventually([&] { return servingBoth(*m, "app", 1) && servingBoth(*m, "slow", 1); },
                     std::chrono::seconds(30)));
  auto stub = inferenceStub(m->grpcPort());
  const Metadata to_app{{"application", "app"}};
  const Metadata to_slow{{"application", "slow"}};

  inference::ServerLiveResponse live;
  REQUIRE(stub->ServerLive(context(to_app).get(), {}, &live).ok());
  CHECK(live.live());
  inference::ServerReadyResponse ready;
  REQUIRE(stub->ServerReady(context(to_app).get(), {}, &ready).ok());
  CHECK(ready.ready());
  inference::ServerMetadataResponse server;
  REQUIRE(stub->ServerMetadata(context(to_app).get(), {}, &server).ok());
  CHECK(server.name() == "serve-replica");

  // The standard health service answers through HAProxy too.
  auto health = grpc::health::v1::Health::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(m->grpcPort()), grpc::InsecureChannelCredentials()));
  grpc::health::v1::HealthCheckResponse serving;
  REQUIRE(health->Check(context(to_app).get(), {}, &serving).ok());
  CHECK(serving.status() == grpc::health::v1::HealthCheckResponse::SERVING);

  // The metadata picks the replica: each application's replica knows only its own model.
  inference::ModelReadyRequest echo_ready;
  echo_ready.set_name("echo");
  inference::ModelReadyResponse model_ready;
  REQUIRE(stub->ModelReady(context(to_app).get(), echo_ready, &model_ready).ok());
  CHECK(model_ready.ready());
  inference::ModelMetadataRequest echo_meta;
  echo_meta.set_name("echo");
  inference::ModelMetadataResponse meta;
  REQUIRE(stub->ModelMetadata(context(to_app).get(), echo_meta, &meta).ok());
  CHECK(meta.name() == "echo");
  const grpc::Status wrong_app = stub->ModelMetadata(context(to_slow).get(), echo_meta, &meta);
  CHECK(wrong_app.error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK(wrong_app.error_message() == "Unknown model 'echo'; this replica serves 'sleeper'");

  // Typed contents come back typed, raw contents raw, exactly.
  InferResult typed = infer(*stub, typedRequest("echo", {1.5f, -2.0f, 3.25f, 1e-3f}, {2, 2}),
                            std::chrono::seconds(10), to_app);
  REQUIRE_MESSAGE(typed.status.ok(), typed.status.error_message());
  CHECK(typed.response.model_name() == "echo");
  CHECK(typedOutput(typed.response) == std::vector<float>{1.5f, -2.0f, 3.25f, 1e-3f});
  InferResult raw = infer(*stub, rawRequest("echo", {7.0f, 8.5f, -9.0f}, {1, 3}),
                          std::chrono::seconds(10), to_app);
  REQUIRE_MESSAGE(raw.status.ok(), raw.status.error_message());
  REQUIRE(raw.response.raw_output_contents_size() == 1);
  CHECK(rawFloats(raw.response.raw_output_contents(0)) == std::vector<float>{7.0f, 8.5f, -9.0f});

  // Bad input is the replica's INVALID_ARGUMENT, naming the shape, unchanged by HAProxy.
  InferResult bad =
      infer(*stub, typedRequest("echo", {1, 2, 3}, {2, 2}), std::chrono::seconds(10), to_app);
  CHECK(bad.status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(bad.status.error_message() ==
        "input 'x': shape [2,2] has 4 elements but contents.fp32_contents has 3");

  // No or an unknown application: HAProxy answers NOT_FOUND itself, naming the metadata key.
  InferResult missing = infer(*stub, typedRequest("echo", {1}, {1}));
  CHECK(missing.status.error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK(missing.status.error_message() ==
        "Request metadata 'application' is missing: this node serves several gRPC applications "
        "(app, slow).");
  InferResult unknown = infer(*stub, typedRequest("echo", {1}, {1}), std::chrono::seconds(10),
                              {{"application", "x"}});
  CHECK(unknown.status.error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK(unknown.status.error_message() ==
        "Unknown application in request metadata 'application': this node serves app, slow.");

  // Exactly the calls above reached the replica of `app`.
  const std::string app_replica = slotAddresses(*m, "app").at(0).http;
  CHECK(replicaMetric(app_replica, grpcRequestsSeries("ModelInfer", "OK")) == 2);
  CHECK(replicaMetric(app_replica, grpcRequestsSeries("ModelInfer", "INVALID_ARGUMENT")) == 1);
  CHECK(replicaMetric(app_replica, grpcRequestsSeries("ModelMetadata", "OK")) == 1);
  CHECK(replicaMetric(app_replica, grpcRequestsSeries("ServerLive", "OK")) == 1);
  CHECK(replicaMetric(app_replica, grpcRequestsSeries("ModelInfer", "NOT_FOUND")) == -1);

  // HAProxy logged every call: the manager's ingress metrics have them by application, method
  // and code (trailers-only errors carry grpc-status in the headers HAProxy logs).
  const auto ingress = [&](const std::string& app, const std::string& method,
                           const std::string& code) {
    return metricValue(httpGet(m->controlUrl("/metrics")).body,
                       "serve_num_grpc_requests{application=\"" + app + "\",method=\"" + method +
                           "\",code=\"" + code + "\"}");
  };
  const std::string infer_path = "/inference.GRPCInferenceService/ModelInfer";
  CHECK(eventually([&] { return ingress("app", infer_path, "OK") == 2; }));
  CHECK(ingress("app", infer_path, "INVALID_ARGUMENT") == 1);
  CHECK(ingress("-", infer_path, "NOT_FOUND") == 2);
  CHECK(ingress("slow", "/inference.GRPCInferenceService/ModelMetadata", "NOT_FOUND") == 1);
  CHECK(ingress("app", "/grpc.health.v1.Health/Check", "OK") == 1);

  // A gRPC slot taken out by hand (socat) is put back by the manager: counted once, and the
  // application answers again.
  m->admin("set server grpc-app/slot1 state maint");
  CHECK(eventually([&] {
    return infer(*stub, typedRequest("echo", {4}, {1}), std::chrono::seconds(10), to_app)
        .status.ok();
  }));
  CHECK(metricValue(httpGet(m->controlUrl("/metrics")).body, "serve_haproxy_drift_repairs_total") ==
        1);
}

TEST_CASE("manager grpc: HAProxy's gRPC port serves KServe v2 to the application in metadata") {
  for (const HaproxyBinary& binary : haproxyBinaries()) {
    CAPTURE(binary.version);
    checkGrpcFrontend(binary);
  }
}

TEST_CASE("manager grpc: backpressure and deadlines through HAProxy, one pool with HTTP") {
  auto m = startNode(twoAppConfig());
  REQUIRE(eventually([&] { return servingBoth(*m, "slow", 1); }, std::chrono::seconds(30)));
  auto stub = inferenceStub(m->grpcPort());
  const Metadata to_slow{{"application", "slow"}};
  const std::string replica = slotAddresses(*m, "slow").at(0).http;
  const std::string ongoing = sleepSeries("serve_replica_ongoing_requests");

  // Two HTTP requests fill the replica's two places; gRPC calls are turned away at once.
  std::vector<HttpResult> http(2);
  std::vector<std::thread> holders;
  for (auto& result : http) {
    holders.emplace_back([&] { result = httpPost(m->url("/slow"), kInferBody); });
  }
  REQUIRE(eventually([&] { return replicaMetric(replica, ongoing) == 2; }));
  for (int i = 0; i < 3; ++i) {
    InferResult rejected =
        infer(*stub, typedRequest("sleeper", {3}, {1}), std::chrono::seconds(10), to_slow);
    CHECK(rejected.status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
    CHECK(rejected.status.error_message() == "Request dropped due to backpressure");
    CHECK(rejected.seconds < 0.5);
  }
  for (auto& t : holders) {
    t.join();
  }
  CHECK(http[0].status == 200);
  CHECK(http[1].status == 200);

  // And the other way round: two gRPC calls in progress, an HTTP request gets 503.
  std::vector<InferResult> grpc_calls(2);
  std::vector<std::thread> callers;
  for (auto& result : grpc_calls) {
    callers.emplace_back([&] {
      auto own = inferenceStub(m->grpcPort());
      result = infer(*own, typedRequest("sleeper", {5}, {1}), std::chrono::seconds(10), to_slow);
    });
  }
  REQUIRE(eventually([&] { return replicaMetric(replica, ongoing) == 2; }));
  const HttpResult turned_away = httpPost(m->url("/slow"), kInferBody);
  CHECK(turned_away.status == 503);
  for (auto& t : callers) {
    t.join();
  }
  for (const InferResult& r : grpc_calls) {
    CHECK_MESSAGE(r.status.ok(), r.status.error_message());
  }

  // The client's deadline travels through HAProxy (grpc-timeout): the replica gives up too.
  InferResult late =
      infer(*stub, typedRequest("sleeper", {6}, {1}), std::chrono::milliseconds(300), to_slow);
  CHECK(late.status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED);
  CHECK(late.seconds < 1.0);
  REQUIRE(eventually([&] {
    return replicaMetric(replica,
                         grpcRequestsSeries("ModelInfer", "DEADLINE_EXCEEDED", "slow", "s")) == 1;
  }));

  CHECK(replicaMetric(replica, grpcRequestsSeries("ModelInfer", "OK", "slow", "s")) == 2);
  CHECK(replicaMetric(replica,
                      grpcRequestsSeries("ModelInfer", "RESOURCE_EXHAUSTED", "slow", "s")) == 3);
  // The model ran the two HTTP requests and the two gRPC calls; nothing else reached it.
  CHECK(replicaMetric(replica, sleepSeries("serve_model_requests_total")) == 4);
}

TEST_CASE("manager grpc: scaling under gRPC load reloads nothing and fails no call") {
  // 1 -> 3 -> 1 replicas while two clients call without pause, then 0.
  const std::string one = oneAppConfig("num_replicas: 1, model: {kind: noop, name: echo}");
  const std::string three = oneAppConfig("num_replicas: 3, model: {kind: noop, name: echo}");
  auto m = startNode(one);
  REQUIRE(eventually([&] { return servingBoth(*m, "app", 1); }, std::chrono::seconds(30)));
  const int worker = m->workerPid();
  REQUIRE(worker > 0);

  // One application: it takes calls that carry no `application` metadata.
  BackgroundLoad<grpc::StatusCode> load(grpc::StatusCode::OK, 2, inferCalls(m->grpcPort(), 2, {}));
  REQUIRE(eventually([&] { return load.ok() >= 20; }));

  HttpResult r = m->deploy(three);
  INFO(r.body);
  REQUIRE(r.status == 200);
  REQUIRE(eventually([&] { return servingBoth(*m, "app", 3); }, std::chrono::seconds(30)));
  // Every replica gets gRPC calls from HAProxy.
  const std::vector<SlotAddresses> slots = slotAddresses(*m, "app");
  REQUIRE(slots.size() == 3);
  for (const SlotAddresses& slot : slots) {
    CAPTURE(slot.grpc);
    CHECK(eventually([&] {
      return replicaMetric(slot.http, grpcRequestsSeries("ModelInfer", "OK", "app", "d")) >= 5;
    }));
  }

  r = m->deploy(one);
  REQUIRE(r.status == 200);
  REQUIRE(eventually([&] { return servingBoth(*m, "app", 1) && occupiedSlots(*m, "app") == 1; },
                     std::chrono::seconds(30)));
  const long before = load.ok();
  REQUIRE(eventually([&] { return load.ok() >= before + 20; }));
  load.stop();

  INFO(load.failures());
  CHECK(load.failed() == 0);

  // Scaled to zero, the application answers UNAVAILABLE from HAProxy, by name.
  r = m->deploy(oneAppConfig("num_replicas: 0, model: {kind: noop, name: echo}"));
  REQUIRE(r.status == 200);
  REQUIRE(eventually([&] { return occupiedSlots(*m, "app") == 0; }, std::chrono::seconds(30)));
  auto stub = inferenceStub(m->grpcPort());
  InferResult none = infer(*stub, typedRequest("echo", {1}, {1}));
  CHECK(none.status.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK(none.status.error_message() == "No replica of application 'app' is available.");

  CHECK(m->workerPid() == worker);
  const std::string metrics = httpGet(m->controlUrl("/metrics")).body;
  CHECK(metricValue(metrics,
                    "serve_haproxy_reloads_total{reason=\"slots_grown\",result=\"success\"}") ==
        -1);
}

// One reload under gRPC load on one HAProxy binary; see the test case below.
void checkReloadUnderLoad(const HaproxyBinary& binary) {
  const std::string one = oneAppConfig("num_replicas: 1, model: {kind: noop, name: echo}");
  const std::string two = one +
                          "  - name: other\n"
                          "    route_prefix: /other\n"
                          "    deployments:\n"
                          "      - {name: o, model: {kind: noop, name: other}}\n";
  auto m = startNode(one, "", {{"RAY_SERVE_HAPROXY_BINARY_PATH", binary.path}});
  REQUIRE(eventually([&] { return servingBoth(*m, "app", 1); }, std::chrono::seconds(30)));
  const int worker = m->workerPid();

  // Long-lived HTTP/2 connections to the old worker: on the reload HAProxy tells these clients
  // to go (GOAWAY) once their calls are done, and they reconnect to the new worker.
  BackgroundLoad<grpc::StatusCode> load(grpc::StatusCode::OK, 2,
                                        inferCalls(m->grpcPort(), 2, {{"application", "app"}}));
  BackgroundClient http(m->url("/app"), 2);  // keep-alive HTTP/1.1 clients alongside
  REQUIRE(eventually([&] { return load.ok() >= 20 && http.ok() >= 20; }));
  const HttpResult r = m->deploy(two);
  INFO(r.body);
  REQUIRE(r.status == 200);
  REQUIRE(eventually([&] { return servingBoth(*m, "other", 1); }, std::chrono::seconds(30)));
  CHECK(m->workerPid() != worker);
  const long before = load.ok();
  REQUIRE(eventually([&] { return load.ok() >= before + 50; }));
  load.stop();
  http.stop();
  INFO(load.failures());
  INFO(http.failures());
  INFO(m->output());
  CHECK(load.failed() == 0);
  CHECK(http.failed() == 0);

  // The new application answers by name; a call without a name no longer has a default.
  auto stub = inferenceStub(m->grpcPort());
  InferResult other = infer(*stub, typedRequest("other", {2}, {1}), std::chrono::seconds(10),
                            {{"application", "other"}});
  CHECK_MESSAGE(other.status.ok(), other.status.error_message());
  CHECK(infer(*stub, typedRequest("echo", {2}, {1})).status.error_code() ==
        grpc::StatusCode::NOT_FOUND);
  CHECK(metricValue(
            httpGet(m->controlUrl("/metrics")).body,
            "serve_haproxy_reloads_total{reason=\"application_added\",result=\"success\"}") == 1);
}

// The old worker keeps serving calls on the connections it has until the clients leave; its
// backends then count no usable server, which must not turn into "no replica" answers.
TEST_CASE("manager grpc: a reload that adds an application fails no call or request in flight") {
  for (const HaproxyBinary& binary : haproxyBinaries()) {
    CAPTURE(binary.version);
    checkReloadUnderLoad(binary);
  }
}

TEST_CASE("manager grpc: HAProxy's own timeouts are gRPC answers, with exact counts") {
  // request_timeout_s 1: HAProxy waits 2 s for a server (timeout server) and 1 s in its queue.
  // The replica of `slow` runs with no deadline of its own and takes 3 s per call, so HAProxy
  // gives up first. Its max_ongoing_requests is 4: four calls take the slot, a fifth queues.
  auto m = startManager(managerConfig(1500, 1));
  ReplicaOptions o;
  o.config_yaml = replicaConfig(managerConfig(3000, 0));
  o.app = "slow";
  o.env = {{"RAY_SERVE_LOG_TO_STDERR", "0"},
           {"RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", "0"}};
  o.extra_args = {"--grpc-port", "0"};
  ReplicaProcess replica(o);
  REQUIRE(replica.start());
  const HttpResult reg =
      m->registerReplica("slow", "s", replica.port(), "slow-1", replica.pid(), replica.grpcPort());
  REQUIRE_MESSAGE(reg.status == 200, reg.body);

  const Metadata to_slow{{"application", "slow"}};
  std::vector<InferResult> held(4);
  std::vector<std::thread> callers;
  for (auto& result : held) {
    callers.emplace_back([&] {
      auto own = inferenceStub(m->grpcPort());
      result = infer(*own, typedRequest("sleeper", {1}, {1}), std::chrono::seconds(10), to_slow);
    });
  }
  const auto in_progress = [&] {  // HAProxy's count of calls on the gRPC slot
    StatusOr<std::vector<manager::StatRow>> rows = manager::parseShowStat(m->admin("show stat"));
    for (const manager::StatRow& row : rows.ok() ? *rows : std::vector<manager::StatRow>{}) {
      if (row.proxy == "grpc-slow" && row.server == "slot1") {
        return row.scur;
      }
    }
    return int64_t{-1};
  };
  REQUIRE(eventually([&] { return in_progress() == 4; }));
  auto stub = inferenceStub(m->grpcPort());
  InferResult queued =
      infer(*stub, typedRequest("sleeper", {2}, {1}), std::chrono::seconds(10), to_slow);
  CHECK(queued.status.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK(queued.status.error_message() ==
        "No replica could take the call: all were busy until the queue timeout, or none could be "
        "reached.");
  CHECK(queued.seconds > 0.9);
  CHECK(queued.seconds < 1.9);
  for (auto& t : callers) {
    t.join();
  }
  for (const InferResult& r : held) {
    CHECK(r.status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED);
    CHECK(r.status.error_message() == "The call timed out before a replica answered.");
    CHECK(r.seconds > 1.9);
    CHECK(r.seconds < 2.9);
  }
  const std::string infer_path = "/inference.GRPCInferenceService/ModelInfer";
  const auto ingress = [&](const std::string& code) {
    return metricValue(httpGet(m->controlUrl("/metrics")).body,
                       "serve_num_grpc_requests{application=\"slow\",method=\"" + infer_path +
                           "\",code=\"" + code + "\"}");
  };
  CHECK(eventually([&] { return ingress("DEADLINE_EXCEEDED") == 4; }));
  CHECK(ingress("UNAVAILABLE") == 1);
}

}  // namespace
}  // namespace serve::testing
