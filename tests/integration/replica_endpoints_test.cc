// Every endpoint of a running serve-replica, over real loopback sockets.
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "common/version.h"
#include "tests/integration/replica_fixture.h"

using namespace serve::testing;

TEST_CASE("replica: ready line reports the bound port and pid") {
  auto r = startReplica({});
  auto ready = nlohmann::json::parse(r->readyLine());
  CHECK(r->readyLine().starts_with(R"({"event":"ready","http_port":)"));
  CHECK(ready["http_port"].get<int>() == r->port());
  CHECK(ready["grpc_port"].get<int>() == r->grpcPort());
  CHECK(r->grpcPort() >= 40000);
  CHECK(r->grpcPort() < 41000);
  CHECK(ready["pid"].get<int>() == r->pid());
}

TEST_CASE("replica: health, routes and KServe v2 metadata endpoints") {
  auto r = startReplica({});

  auto healthz = httpGet(r->url("/-/healthz"));
  CHECK(healthz.status == 200);
  CHECK(healthz.body == "success");

  auto routes = httpGet(r->url("/-/routes"));
  CHECK(routes.status == 200);
  CHECK(routes.body == R"({"/echo":"app"})");
  CHECK(routes.headers["content-type"] == "application/json");

  auto live = httpGet(r->url("/v2/health/live"));
  CHECK(live.status == 200);
  CHECK(live.body == R"({"live":true})");
  auto ready = httpGet(r->url("/v2/health/ready"));
  CHECK(ready.status == 200);
  CHECK(ready.body == R"({"ready":true})");

  auto server = httpGet(r->url("/v2"));
  CHECK(server.status == 200);
  CHECK(server.body == R"({"name":"serve-replica","version":")" +
                           std::string(serve::kServeVersion) +
                           R"(","extensions":["binary_tensor_data"]})");

  auto meta = httpGet(r->url("/v2/models/echo"));
  REQUIRE(meta.status == 200);
  auto m = nlohmann::json::parse(meta.body);
  CHECK(m["name"] == "echo");
  CHECK(m["platform"] == "serve-builtin-noop");
  CHECK(m["parameters"]["backend"] == "cpu");
  CHECK(m["versions"] == nlohmann::json::array({"1"}));

  auto model_ready = httpGet(r->url("/v2/models/echo/ready"));
  CHECK(model_ready.status == 200);
  CHECK(model_ready.body == R"({"ready":true})");
}

TEST_CASE("replica: inference through /v2/models/<m>/infer and the route prefix") {
  auto r = startReplica({});
  const std::string body =
      R"({"id":"req-1","inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[[1,2.5],[0.1,-3]]},)"
      R"({"name":"mask","shape":[2],"datatype":"BOOL","data":[true,false]}]})";
  const std::string expected =
      R"({"model_name":"echo","id":"req-1","outputs":[{"name":"x","datatype":"FP32","shape":[2,2],"data":[1,2.5,0.1,-3]},)"
      R"({"name":"mask","datatype":"BOOL","shape":[2],"data":[true,false]}]})";

  auto v2 = httpPost(r->url("/v2/models/echo/infer"), body);
  CHECK(v2.status == 200);
  CHECK(v2.body == expected);
  CHECK(v2.headers["content-type"] == "application/json");

  auto prefixed = httpPost(r->url("/echo"), body);
  CHECK(prefixed.status == 200);
  CHECK(prefixed.body == expected);

  CHECK(metric(*r, requestsSeries("/v2/models/infer", "POST", 200)) == 1);
  CHECK(metric(*r, requestsSeries("/echo", "POST", 200)) == 1);
  CHECK(metric(*r, series("serve_model_requests_total")) == 2);
  CHECK(metric(*r, series("serve_deployment_processing_latency_ms_count", "route=\"/echo\"")) == 1);
}

TEST_CASE("replica: x-request-id is honoured or generated as a UUIDv4, and echoed") {
  auto r = startReplica({});
  auto given = httpPost(r->url("/echo"), inferBody(1), {{"x-request-id", "abc-123"}});
  CHECK(given.status == 200);
  CHECK(given.headers["x-request-id"] == "abc-123");
  CHECK(nlohmann::json::parse(given.body)["id"] == "abc-123");

  auto generated = httpGet(r->url("/-/healthz"));
  std::regex uuid4("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
  CHECK(std::regex_match(generated.headers["x-request-id"], uuid4));
}

TEST_CASE("replica: unknown paths get 404 naming /-/routes") {
  auto r = startReplica({});
  auto res = httpGet(r->url("/nope"));
  CHECK(res.status == 404);
  CHECK(res.body == "Path '/nope' not found. Ping http://127.0.0.1:" + std::to_string(r->port()) +
                        "/-/routes for available routes.");
  CHECK(metric(*r, series("serve_replica_bad_requests_total", "reason=\"not_found\"")) == 1);
}

TEST_CASE("replica: /metrics is Prometheus text with the documented families") {
  auto r = startReplica({});
  auto res = httpGet(r->url("/metrics"));
  CHECK(res.status == 200);
  CHECK(res.headers["content-type"] == "text/plain; version=0.0.4");
  for (const char* family :
       {"serve_replica_http_requests_total", "serve_deployment_processing_latency_ms",
        "serve_replica_queued_requests", "serve_replica_ongoing_requests", "serve_batch_size",
        "serve_batch_wait_ms", "serve_model_forward_passes_total"}) {
    CAPTURE(family);
    CHECK(res.body.find(std::string("# TYPE ") + family + " ") != std::string::npos);
  }
  CHECK(metricValue(res.body, series("serve_replica_healthy")) == 1);
  CHECK(metricValue(res.body, series("serve_replica_ongoing_requests")) == 0);
}

TEST_CASE("replica: --port-file receives the ready line too") {
  TempDir dir;
  std::string path = dir.path() + "/ports.json";
  auto r = startReplica({}, {"--port-file", path});
  std::ifstream in(path);
  std::string line;
  REQUIRE(std::getline(in, line));
  CHECK(line == r->readyLine());
  CHECK(nlohmann::json::parse(line)["http_port"].get<int>() == r->port());
}
