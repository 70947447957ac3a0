// The replica's KServe v2 gRPC front end, driven by a grpc++ client built from the project's
// .proto files (the generated stubs, not a hand-made client), against a real serve-replica.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <atomic>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <vector>

#include "common/version.h"
#include "proto/health.grpc.pb.h"
#include "tests/integration/grpc_fixture.h"
#include "tests/integration/replica_fixture.h"
#include "tests/support/json_file.h"

using namespace serve::testing;
using grpc::health::v1::Health;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

namespace {

std::shared_ptr<grpc::Channel> channelTo(const ReplicaProcess& r) {
  return grpc::CreateChannel("127.0.0.1:" + std::to_string(r.grpcPort()),
                             grpc::InsecureChannelCredentials());
}

std::unique_ptr<GRPCInferenceService::Stub> stubFor(const ReplicaProcess& r) {
  return inferenceStub(r.grpcPort());
}

std::string grpcSeries(const std::string& method, const std::string& code) {
  return grpcRequestsSeries(method, code);
}

HealthCheckResponse::ServingStatus healthOf(Health::Stub& health, grpc::Status* status = nullptr) {
  grpc::ClientContext ctx;
  withDeadline(ctx, std::chrono::seconds(2));
  HealthCheckResponse resp;
  grpc::Status st = health.Check(&ctx, HealthCheckRequest(), &resp);
  if (status != nullptr) {
    *status = st;
  }
  return st.ok() ? resp.status() : HealthCheckResponse::UNKNOWN;
}

}  // namespace

TEST_CASE("grpc: the ready line carries the gRPC port; --grpc-port none turns gRPC off") {
  auto r = startReplica({});
  auto ready = nlohmann::json::parse(r->readyLine());
  REQUIRE(ready["grpc_port"].is_number());
  CHECK(ready["grpc_port"].get<int>() == r->grpcPort());
  CHECK(r->grpcPort() != r->port());

  int explicit_port = freeLoopbackPort();
  auto fixed = startReplica({}, {"--grpc-port", std::to_string(explicit_port)});
  CHECK(fixed->grpcPort() == explicit_port);

  auto off = startReplica({}, {"--grpc-port", "none"});
  CHECK(nlohmann::json::parse(off->readyLine())["grpc_port"].is_null());
  CHECK(off->grpcPort() == 0);
}

TEST_CASE("grpc: a gRPC port that is taken is skipped; an explicit one is an error naming it") {
  auto first = startReplica({});
  int taken = first->grpcPort();
  ReplicaOptions o;
  o.config_yaml = testConfig({});
  o.env = {{"RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT", std::to_string(taken)},
           {"RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT", std::to_string(taken + 5)}};
  ReplicaProcess second(o);
  REQUIRE(second.start());
  CHECK(second.grpcPort() > taken);

  ReplicaOptions clash;
  clash.config_yaml = testConfig({});
  clash.extra_args = {"--grpc-port", std::to_string(taken)};
  ReplicaProcess third(clash);
  CHECK_FALSE(third.start());
  auto code = third.wait(std::chrono::seconds(5));
  REQUIRE(code.has_value());
  CHECK(*code == 1);
  CHECK(third.output().find("--grpc-port=" + std::to_string(taken) + ": cannot bind") !=
        std::string::npos);
}

TEST_CASE("grpc: ServerLive, ServerReady, ModelReady, ServerMetadata and ModelMetadata") {
  auto r = startReplica({});
  auto stub = stubFor(*r);
  {
    grpc::ClientContext ctx;
    withDeadline(ctx);
    inference::ServerLiveResponse resp;
    REQUIRE(stub->ServerLive(&ctx, {}, &resp).ok());
    CHECK(resp.live());
  }
  {
    grpc::ClientContext ctx;
    withDeadline(ctx);
    inference::ServerReadyResponse resp;
    REQUIRE(stub->ServerReady(&ctx, {}, &resp).ok());
    CHECK(resp.ready());
  }
  {
    grpc::ClientContext ctx;
    withDeadline(ctx);
    inference::ModelReadyRequest req;
    req.set_name("echo");
    inference::ModelReadyResponse resp;
    REQUIRE(stub->ModelReady(&ctx, req, &resp).ok());
    CHECK(resp.ready());
  }
  {
    grpc::ClientContext ctx;
    withDeadline(ctx);
    inference::ModelReadyRequest req;
    req.set_name("nope");
    inference::ModelReadyResponse resp;
    grpc::Status st = stub->ModelReady(&ctx, req, &resp);
    CHECK(st.error_code() == grpc::StatusCode::NOT_FOUND);
    CHECK(st.error_message() == "Unknown model 'nope'; this replica serves 'echo'");
  }
  {
    grpc::ClientContext ctx;
    withDeadline(ctx);
    inference::ServerMetadataResponse resp;
    REQUIRE(stub->ServerMetadata(&ctx, {}, &resp).ok());
    CHECK(resp.name() == "serve-replica");
    CHECK(resp.version() == serve::kServeVersion);
    CHECK(resp.extensions_size() == 0);
  }
  {
    grpc::ClientContext ctx;
    withDeadline(ctx);
    inference::ModelMetadataRequest req;
    req.set_name("echo");
    inference::ModelMetadataResponse resp;
    REQUIRE(stub->ModelMetadata(&ctx, req, &resp).ok());
    CHECK(resp.name() == "echo");
    CHECK(resp.platform() == "serve-builtin-noop");
    REQUIRE(resp.versions_size() == 1);
    CHECK(resp.versions(0) == "1");
  }
  {
    grpc::ClientContext ctx;
    withDeadline(ctx);
    inference::ModelMetadataRequest req;
    req.set_name("echo");
    req.set_version("7");
    inference::ModelMetadataResponse resp;
    grpc::Status st = stub->ModelMetadata(&ctx, req, &resp);
    CHECK(st.error_code() == grpc::StatusCode::NOT_FOUND);
    CHECK(st.error_message() == "Model 'echo' has no version '7'");
  }
  CHECK(metric(*r, grpcSeries("ServerLive", "OK")) == 1);
  CHECK(metric(*r, grpcSeries("ModelReady", "NOT_FOUND")) == 1);
  CHECK(metric(*r, grpcSeries("ModelMetadata", "OK")) == 1);
  CHECK(metric(*r, grpcSeries("ModelMetadata", "NOT_FOUND")) == 1);
}

TEST_CASE("grpc: ModelInfer answers typed contents typed and raw contents raw, exactly") {
  auto r = startReplica({});
  auto stub = stubFor(*r);

  ModelInferRequest typed = typedRequest("echo", {1.5f, -2.0f, 3.25f, 1e-3f}, {2, 2});
  typed.set_id("typed-1");
  InferResult a = infer(*stub, typed);
  REQUIRE_MESSAGE(a.status.ok(), a.status.error_message());
  CHECK(a.response.model_name() == "echo");
  CHECK(a.response.id() == "typed-1");
  CHECK(a.response.raw_output_contents_size() == 0);
  REQUIRE(a.response.outputs_size() == 1);
  const auto& out = a.response.outputs(0);
  CHECK(out.name() == "x");
  CHECK(out.datatype() == "FP32");
  CHECK(std::vector<int64_t>(out.shape().begin(), out.shape().end()) == std::vector<int64_t>{2, 2});
  CHECK(std::vector<float>(out.contents().fp32_contents().begin(),
                           out.contents().fp32_contents().end()) ==
        std::vector<float>{1.5f, -2.0f, 3.25f, 1e-3f});

  InferResult b = infer(*stub, rawRequest("echo", {7.0f, 8.5f, -9.0f}, {1, 3}));
  REQUIRE_MESSAGE(b.status.ok(), b.status.error_message());
  REQUIRE(b.response.outputs_size() == 1);
  CHECK(b.response.outputs(0).datatype() == "FP32");
  CHECK_FALSE(b.response.outputs(0).has_contents());
  REQUIRE(b.response.raw_output_contents_size() == 1);
  CHECK(rawFloats(b.response.raw_output_contents(0)) == std::vector<float>{7.0f, 8.5f, -9.0f});
  CHECK_FALSE(b.response.id().empty());  // a generated id, as HTTP gives one

  // A request id sent as metadata is used and echoed back as metadata.
  grpc::ClientContext ctx;
  withDeadline(ctx);
  ctx.AddMetadata("x-request-id", "meta-42");
  ModelInferResponse c;
  REQUIRE(stub->ModelInfer(&ctx, typedRequest("echo", {1}, {1}), &c).ok());
  CHECK(c.id() == "meta-42");
  auto echoed = ctx.GetServerInitialMetadata().find("x-request-id");
  REQUIRE(echoed != ctx.GetServerInitialMetadata().end());
  CHECK(std::string(echoed->second.data(), echoed->second.size()) == "meta-42");

  CHECK(metric(*r, grpcSeries("ModelInfer", "OK")) == 3);
  CHECK(metric(*r, series("serve_model_requests_total")) == 3);
  // gRPC calls are not HTTP requests: the HTTP series stay as they were.
  CHECK(metric(*r, requestsSeries("/echo", "POST", 200)) == -1);
}

TEST_CASE("grpc: bad input is INVALID_ARGUMENT with the shape; an unknown model is NOT_FOUND") {
  auto r = startReplica({});
  auto stub = stubFor(*r);
  InferResult shape = infer(*stub, typedRequest("echo", {1, 2, 3}, {2, 2}));
  CHECK(shape.status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(shape.status.error_message() ==
        "input 'x': shape [2,2] has 4 elements but contents.fp32_contents has 3");

  InferResult raw = infer(*stub, rawRequest("echo", {1, 2}, {1, 3}));
  CHECK(raw.status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(raw.status.error_message() ==
        "input 'x': shape [1,3] of FP32 needs 12 bytes but raw_input_contents[0] has 8");

  InferResult unknown = infer(*stub, typedRequest("resnet", {1}, {1}));
  CHECK(unknown.status.error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK(unknown.status.error_message() == "Unknown model 'resnet'; this replica serves 'echo'");

  // An error's request id comes back in the trailers, so the answer stays trailers-only.
  grpc::ClientContext ctx;
  withDeadline(ctx);
  ctx.AddMetadata("x-request-id", "bad-7");
  ModelInferResponse ignored;
  CHECK(stub->ModelInfer(&ctx, typedRequest("resnet", {1}, {1}), &ignored).error_code() ==
        grpc::StatusCode::NOT_FOUND);
  CHECK(ctx.GetServerInitialMetadata().count("x-request-id") == 0);
  auto trailer = ctx.GetServerTrailingMetadata().find("x-request-id");
  REQUIRE(trailer != ctx.GetServerTrailingMetadata().end());
  CHECK(std::string(trailer->second.data(), trailer->second.size()) == "bad-7");

  CHECK(metric(*r, grpcSeries("ModelInfer", "INVALID_ARGUMENT")) == 2);
  CHECK(metric(*r, grpcSeries("ModelInfer", "NOT_FOUND")) == 2);
  CHECK(metric(*r, series("serve_replica_bad_requests_total", "reason=\"invalid_input\"")) == 2);
  CHECK(metric(*r, series("serve_replica_bad_requests_total", "reason=\"unknown_model\"")) == 2);
  CHECK(metric(*r, series("serve_model_requests_total")) == 0);
}

TEST_CASE("grpc: a message over RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH is refused") {
  auto r = startReplica({}, {}, {{"RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH", "1024"}});
  auto stub = stubFor(*r);
  CHECK(infer(*stub, rawRequest("echo", std::vector<float>(100, 1.0f), {100})).status.ok());
  InferResult big = infer(*stub, rawRequest("echo", std::vector<float>(1000, 1.0f), {1000}));
  CHECK(big.status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST_CASE("grpc: the client's deadline and request_timeout_s both give DEADLINE_EXCEEDED") {
  SUBCASE("a short client deadline") {
    auto r = startReplica({.kind = "sleep", .sleep_ms = 800, .max_ongoing = 1});
    auto stub = stubFor(*r);
    InferResult res = infer(*stub, typedRequest("echo", {1}, {1}), std::chrono::milliseconds(200));
    CHECK(res.status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED);
    CHECK(res.seconds < 0.5);
    // The server gave up at the same deadline: its slot is free again once the pass ends.
    REQUIRE(waitForMetric(*r, series("serve_replica_ongoing_requests"), 0));
    CHECK(metric(*r, grpcSeries("ModelInfer", "DEADLINE_EXCEEDED")) == 1);
  }
  SUBCASE("the deployment's request_timeout_s, answered by the server") {
    auto r = startReplica(
        {.kind = "sleep", .sleep_ms = 800, .max_ongoing = 1, .request_timeout_s = 0.2});
    auto stub = stubFor(*r);
    ModelInferRequest req = typedRequest("echo", {1}, {1});
    req.set_id("slow-1");
    InferResult res = infer(*stub, req);  // the client's own deadline is 10 s
    CHECK(res.status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED);
    CHECK(res.status.error_message() == "Request slow-1 timed out after 0.2s.");
    CHECK(res.seconds < 0.5);
    CHECK(metric(*r, grpcSeries("ModelInfer", "DEADLINE_EXCEEDED")) == 1);
  }
}

TEST_CASE("grpc: HTTP and gRPC share one admission pool, with exact counts") {
  // One slot and one queue place for both protocols together.
  auto r = startReplica({.kind = "sleep", .sleep_ms = 600, .max_ongoing = 1, .max_queued = 1});
  auto stub = stubFor(*r);
  HttpResult http_first;
  std::thread holder([&] { http_first = httpPost(r->url("/echo"), inferBody(1)); });
  REQUIRE(waitForMetric(*r, series("serve_replica_ongoing_requests"), 1));
  InferResult grpc_queued;
  std::thread waiter([&] { grpc_queued = infer(*stub, typedRequest("echo", {2}, {1})); });
  REQUIRE(waitForMetric(*r, series("serve_replica_queued_requests"), 1));

  // The pool is full: further gRPC calls and HTTP requests are turned away at once.
  for (int i = 0; i < 3; ++i) {
    InferResult rejected = infer(*stub, typedRequest("echo", {3}, {1}));
    CHECK(rejected.status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
    CHECK(rejected.status.error_message() == "Request dropped due to backpressure");
    CHECK(rejected.seconds < 0.3);
  }
  HttpResult http_rejected = httpPost(r->url("/echo"), inferBody(4));
  CHECK(http_rejected.status == 503);

  holder.join();
  waiter.join();
  CHECK(http_first.status == 200);
  REQUIRE_MESSAGE(grpc_queued.status.ok(), grpc_queued.status.error_message());
  CHECK(grpc_queued.response.outputs(0).contents().fp32_contents(0) == 2.0f);

  CHECK(metric(*r, grpcSeries("ModelInfer", "OK")) == 1);
  CHECK(metric(*r, grpcSeries("ModelInfer", "RESOURCE_EXHAUSTED")) == 3);
  CHECK(metric(*r, requestsSeries("/echo", "POST", 200)) == 1);
  CHECK(metric(*r, requestsSeries("/echo", "POST", 503)) == 1);
  CHECK(metric(*r, series("serve_model_requests_total")) == 2);
}

TEST_CASE("grpc: health is SERVING, then NOT_SERVING while draining; in-flight calls finish") {
  auto r = startReplica({.kind = "sleep", .sleep_ms = 1500, .max_ongoing = 2},
                        {"--draining-period-s", "0.5"});
  auto channel = channelTo(*r);
  auto health = Health::NewStub(channel);
  auto stub = GRPCInferenceService::NewStub(channel);
  CHECK(healthOf(*health) == HealthCheckResponse::SERVING);

  InferResult inflight;
  std::thread t([&] { inflight = infer(*stub, typedRequest("echo", {5}, {1})); });
  REQUIRE(waitForMetric(*r, series("serve_replica_ongoing_requests"), 1));
  r->signal(SIGTERM);

  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (healthOf(*health) != HealthCheckResponse::NOT_SERVING &&
         std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(healthOf(*health) == HealthCheckResponse::NOT_SERVING);
  {
    grpc::ClientContext ctx;
    withDeadline(ctx);
    inference::ServerReadyResponse ready;
    REQUIRE(stub->ServerReady(&ctx, {}, &ready).ok());
    CHECK_FALSE(ready.ready());
    grpc::ClientContext live_ctx;
    withDeadline(live_ctx);
    inference::ServerLiveResponse live;
    REQUIRE(stub->ServerLive(&live_ctx, {}, &live).ok());
    CHECK(live.live());
  }

  // After the draining period the listener is closed: a new client gets UNAVAILABLE.
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  auto late = stubFor(*r);
  InferResult refused = infer(*late, typedRequest("echo", {6}, {1}), std::chrono::seconds(2));
  CHECK(refused.status.error_code() == grpc::StatusCode::UNAVAILABLE);

  t.join();
  REQUIRE_MESSAGE(inflight.status.ok(), inflight.status.error_message());
  CHECK(inflight.response.outputs(0).contents().fp32_contents(0) == 5.0f);
  auto code = r->wait(std::chrono::seconds(5));
  REQUIRE(code.has_value());
  CHECK(*code == 0);
  CHECK(r->output().find(R"({"event":"stopped"})") != std::string::npos);
}

TEST_CASE("grpc: the digits model gives the training script's predictions, raw and typed") {
  nlohmann::json expected = readJson(std::string(SERVE_SOURCE_DIR) + "/models/digits.json");
  const auto& heldout = expected["heldout"];
  REQUIRE(heldout.size() >= 10);
  ReplicaOptions o;
  o.config_yaml =
      "applications:\n"
      "  - name: app\n"
      "    route_prefix: /digits\n"
      "    deployments:\n"
      "      - name: d\n"
      "        max_ongoing_requests: 32\n"
      "        model: {kind: mlp, name: digits, path: " +
      std::string(SERVE_SOURCE_DIR) +
      "/models/digits.safetensors}\n"
      "        batching: {max_batch_size: 8, batch_wait_timeout_s: 0.01}\n";
  ReplicaProcess r(o);
  REQUIRE(r.start());
  auto stub = stubFor(r);

  {
    grpc::ClientContext ctx;
    withDeadline(ctx);
    inference::ModelMetadataRequest req;
    req.set_name("digits");
    inference::ModelMetadataResponse meta;
    REQUIRE(stub->ModelMetadata(&ctx, req, &meta).ok());
    REQUIRE(meta.inputs_size() == 1);
    CHECK(meta.inputs(0).name() == "input");
    CHECK(meta.inputs(0).datatype() == "FP32");
    CHECK(std::vector<int64_t>(meta.inputs(0).shape().begin(), meta.inputs(0).shape().end()) ==
          std::vector<int64_t>{-1, 64});
    REQUIRE(meta.outputs_size() == 1);
    CHECK(meta.outputs(0).name() == "probabilities");
  }

  // Sent concurrently so that batches of several samples form; even samples raw, odd typed.
  std::vector<InferResult> results(heldout.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < heldout.size(); ++i) {
    threads.emplace_back([&, i] {
      auto pixels = heldout[i]["inputs"].get<std::vector<float>>();
      ModelInferRequest req = i % 2 == 0 ? rawRequest("digits", pixels, {1, 64}, "input")
                                         : typedRequest("digits", pixels, {1, 64}, "input");
      results[i] = infer(*stub, req);
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  for (size_t i = 0; i < heldout.size(); ++i) {
    CAPTURE(i);
    REQUIRE_MESSAGE(results[i].status.ok(), results[i].status.error_message());
    const ModelInferResponse& resp = results[i].response;
    REQUIRE(resp.outputs_size() == 1);
    CHECK(resp.outputs(0).name() == "probabilities");
    CHECK(resp.outputs(0).datatype() == "FP32");
    std::vector<float> probs =
        i % 2 == 0 ? rawFloats(resp.raw_output_contents(0))
                   : std::vector<float>(resp.outputs(0).contents().fp32_contents().begin(),
                                        resp.outputs(0).contents().fp32_contents().end());
    REQUIRE(probs.size() == 10);
    auto predicted = std::max_element(probs.begin(), probs.end()) - probs.begin();
    CHECK(predicted == heldout[i]["predicted"].get<int>());
    auto want = heldout[i]["probabilities"].get<std::vector<double>>();
    for (size_t c = 0; c < 10; ++c) {
      CHECK(std::abs(probs[c] - want[c]) < 1e-4);
    }
  }

  // The model's own check names the expected shape.
  InferResult bad =
      infer(*stub, typedRequest("digits", std::vector<float>(63, 0), {1, 63}, "input"));
  CHECK(bad.status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(bad.status.error_message() ==
        "input 'input': expected FP32 with shape [-1, 64], got FP32 [1, 63]");
  CHECK(metric(r, series("serve_model_requests_total")) == static_cast<double>(heldout.size()));
}
