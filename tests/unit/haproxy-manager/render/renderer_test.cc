#include "haproxy-manager/render/renderer.h"

#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "common/file_util.h"
#include "tests/unit/haproxy-manager/table_builders.h"

namespace serve::manager {
namespace {

using namespace serve::manager::testing;

const std::string kTemplateDir = std::string(SERVE_TESTDATA_DIR) + "/../../templates";
const std::string kGoldenDir = std::string(SERVE_TESTDATA_DIR) + "/manager/render";

Templates shippedTemplates() {
  StatusOr<Templates> t = loadTemplates(kTemplateDir);
  REQUIRE_MESSAGE(t.ok(), messageOf(t.status()));
  return *t;
}

RenderedConfig renderOk(const RoutingTable& table) {
  StatusOr<RenderedConfig> rendered = render(table, shippedTemplates());
  REQUIRE_MESSAGE(rendered.ok(), messageOf(rendered.status()));
  return *rendered;
}

// Compares with a golden file; SERVE_UPDATE_GOLDEN=1 rewrites it instead (then review the diff).
void checkGolden(const std::string& name, const std::string& actual) {
  const std::string path = kGoldenDir + "/" + name;
  if (const char* update = std::getenv("SERVE_UPDATE_GOLDEN");
      update && std::string(update) == "1") {
    std::ofstream(path, std::ios::binary) << actual;
  }
  StatusOr<std::string> golden = readWholeFile(path, "golden file");
  REQUIRE_MESSAGE(golden.ok(), messageOf(golden.status()));
  CHECK(actual == *golden);
}

// The lines of `text` from the one starting with `first` up to (excluding) the next blank line.
std::string block(const std::string& text, const std::string& first) {
  std::istringstream in(text);
  std::string line;
  std::string out;
  bool inside = false;
  while (std::getline(in, line)) {
    if (!inside && line == first) {
      inside = true;
    } else if (inside && line.empty()) {
      break;
    }
    if (inside) {
      out += line + "\n";
    }
  }
  return out;
}

TEST_CASE("renderer: two applications render to the golden config and maps") {
  RoutingTable t = table({
      backend(
          "digits", "/digits",
          {withGrpc(active("digits-1", 30000), 40000), withGrpc(active("digits-2", 30001), 40001)}),
      backend("echo", "/echo/v1", {freeSlot(), active("echo-1", 30002)}),
  });
  t.global.grpc_port = 9000;
  t.backends[0].model_name = "digits-mlp";
  t.backends[1].max_ongoing_requests = 8;
  t.backends[1].max_queued_requests = 3;
  const RenderedConfig out = renderOk(t);
  checkGolden("two_apps.cfg", out.config);
  CHECK(out.files.at(kRoutesExactMap) == "/digits http-digits\n/echo/v1 http-echo\n");
  CHECK(out.files.at(kRoutesPrefixMap) == "/digits/ http-digits\n/echo/v1/ http-echo\n");
  CHECK(out.files.at(kModelsMap) == "digits-mlp http-digits\necho http-echo\n");
  CHECK(out.files.at(kRoutesRewriteMap) ==
        "/digits /v2/models/digits-mlp/infer\n/echo/v1 /v2/models/echo/infer\n");
  CHECK(out.files.at(kRoutesLabelMap) == "/digits/ /digits\n/echo/v1/ /echo/v1\n");
  CHECK(out.files.at(kNodeMap) ==
        "draining 0\nroutes {\"/digits\":\"digits\",\"/echo/v1\":\"echo\"}\n");
  CHECK(out.files.at(kError408File).rfind("HTTP/1.1 408 Request Timeout\r\n", 0) == 0);
  CHECK(out.files.at(kError503File).rfind("HTTP/1.1 503 Service Unavailable\r\n", 0) == 0);
  CHECK(out.files.at(kGrpcError504File).find("\r\ngrpc-status: 4\r\n") != std::string::npos);
  CHECK(out.files.at(kGrpcError503File).find("\r\ngrpc-status: 14\r\n") != std::string::npos);
  CHECK(out.files.size() == 10);
}

TEST_CASE("renderer: with an ingress log socket, the http frontend logs every request to it") {
  RoutingTable t = table({
      backend("digits", "/digits", {active("digits-1", 30000), active("digits-2", 30001)}),
      backend("echo", "/echo/v1", {freeSlot(), active("echo-1", 30002)}),
  });
  t.backends[0].model_name = "digits-mlp";
  t.backends[1].max_ongoing_requests = 8;
  t.global.ingress_log_socket = "/run/serve/ingress.sock";
  const RenderedConfig out = renderOk(t);
  checkGolden("two_apps_ingress_log.cfg", out.config);
  const std::string frontend = block(out.config, "frontend http");
  CHECK(frontend.find("\n  log /run/serve/ingress.sock len 4096 format priority local0 info\n"
                      "  log-format \"serve1 %b %[var(txn.route)] %ST %Ta %ts %{+Q}HM\"\n"
                      "  option dontlognull\n") != std::string::npos);
  CHECK(frontend.find("  http-request set-var(txn.route) path if healthz || routes || v2_live || "
                      "v2_ready || v2_server\n") != std::string::npos);
  CHECK(frontend.find("  http-request set-var(txn.route) path,field(1,/,4) if "
                      "{ var(txn.backend) -m found }\n") != std::string::npos);
  CHECK(frontend.find("  http-request set-var(txn.route) path,concat(/),"
                      "map_beg(/run/serve/routes_label.map) if { var(txn.backend) -m found } "
                      "!{ var(txn.route) -m found }\n") != std::string::npos);
  // Only the http frontend logs; the others have no logger.
  CHECK(out.config.find("\n  log ") == out.config.find("\n  log /run/serve/ingress.sock"));
}

TEST_CASE("renderer: without an ingress log socket, nothing about request logs is rendered") {
  RoutingTable t = table({backend("a", "/a", {active("a-1", 30000)})});
  REQUIRE(t.global.ingress_log_socket.empty());
  const RenderedConfig out = renderOk(t);
  CHECK(out.config.find("\n  log ") == std::string::npos);
  CHECK(out.config.find("log-format") == std::string::npos);
  CHECK(out.config.find("dontlognull") == std::string::npos);
  CHECK(out.config.find("txn.route") == std::string::npos);
  CHECK(out.config.find(kRoutesLabelMap) == std::string::npos);
  // The map is kept up to date anyway, so turning logging on is a reload like any setting.
  CHECK(out.files.at(kRoutesLabelMap) == "/a/ /a\n");
}

TEST_CASE("renderer: same input, same bytes") {
  RoutingTable t = table({backend("a", "/a", {active("a-1", 30000)})});
  CHECK(renderOk(t) == renderOk(t));
}

TEST_CASE("renderer: active slots are server lines, free and draining runs are templates") {
  RoutingTable t =
      table({backend("a", "/a",
                     {active("a-1", 30000), freeSlot(), freeSlot(), active("a-4", 30004, "::1"),
                      draining("a-5", 30005), active("a-6", 30006)},
                     8)});
  CHECK(block(renderOk(t).config, "backend http-a") ==
        "backend http-a\n"
        "  balance leastconn\n"
        "  http-reuse safe\n"
        "  option httpchk GET /-/healthz\n"
        "  http-check expect status 200\n"
        "  default-server check inter 5s fastinter 250ms downinter 250ms fall 2 rise 2 "
        "maxconn 5 observe layer4 error-limit 3 on-error mark-down\n"
        "  # Not in a worker that is stopping after a reload: its backends count no usable server "
        "any\n"
        "  # more, though requests still in its connections are served normally.\n"
        "  http-request return status 503 content-type text/plain string \"No replica of "
        "application 'a' is available.\" if { nbsrv(http-a) eq 0 } !{ stopping }\n"
        "  server slot1 127.0.0.1:30000\n"
        "  server slot4 [::1]:30004\n"
        "  server slot6 127.0.0.1:30006\n"
        "  server-template slot 2-3 127.0.0.1:1 disabled\n"
        "  server-template slot 5-5 127.0.0.1:1 disabled\n"
        "  server-template slot 7-8 127.0.0.1:1 disabled\n");
}

TEST_CASE("renderer: settings drive the directives") {
  RoutingTable t = table({backend("a", "/", {}, 16)});
  t.global.timeout_server_s.reset();
  t.global.timeout_queue_s.reset();
  t.global.timeout_connect_s.reset();
  t.global.retries = 5;
  t.global.observe_mark_down = false;
  t.global.balance_algorithm = "random(2)";
  t.global.health_check_inter_s = 0.5;
  t.global.hard_stop_after_s = 2.5;
  t.global.http_host = "::";
  const std::string config = renderOk(t).config;
  CHECK(config.find("  timeout server ") == std::string::npos);
  CHECK(config.find("  timeout queue ") == std::string::npos);
  CHECK(config.find("  timeout connect ") == std::string::npos);
  CHECK(config.find("  retries 5\n") != std::string::npos);
  CHECK(config.find("  hard-stop-after 2500ms\n") != std::string::npos);
  CHECK(config.find("  bind [::]:8000\n") != std::string::npos);
  CHECK(config.find("  balance random(2)\n") != std::string::npos);
  CHECK(config.find("default-server check inter 500ms fastinter 250ms downinter 250ms fall 2 "
                    "rise 2 maxconn 5\n") != std::string::npos);
  CHECK(config.find("  server-template slot 1-16 127.0.0.1:1 disabled\n") != std::string::npos);
}

TEST_CASE("renderer: a root prefix maps '/' once in each route map") {
  const RenderedConfig out = renderOk(table({backend("root", "/")}));
  CHECK(out.files.at(kRoutesExactMap) == "/ http-root\n");
  CHECK(out.files.at(kRoutesPrefixMap) == "/ http-root\n");
  CHECK(out.files.at(kRoutesLabelMap) == "/ /\n");
}

TEST_CASE("renderer: the gRPC frontend routes by the application metadata") {
  RoutingTable t = table({
      backend("a", "/a", {withGrpc(active("a-1", 30000), 40000), active("a-2", 30001)}, 4),
      backend("b", "/b", {draining("b-1", 30002), withGrpc(active("b-2", 30003), 40003)}, 2),
  });
  t.global.grpc_port = 9000;
  t.backends[1].slots[0].endpoint.grpc_port = 40002;
  const std::string config = renderOk(t).config;
  CHECK(block(config, "frontend grpc") ==
        "frontend grpc\n"
        "  bind 0.0.0.0:9000 proto h2\n"
        "  http-after-response set-header content-type application/grpc if "
        "{ var(txn.grpc_reply) -m found }\n"
        "  use_backend grpc-a if { req.hdr(application) -m str a }\n"
        "  use_backend grpc-b if { req.hdr(application) -m str b }\n"
        "  default_backend grpc_not_found\n");
  CHECK(block(config, "backend grpc_not_found") ==
        "backend grpc_not_found\n"
        "  http-request set-var(txn.grpc_reply) bool(1)\n"
        "  http-request return status 200 hdr grpc-status 5 hdr grpc-message \"Request metadata "
        "'application' is missing: this node serves several gRPC applications (a, b).\" if "
        "!{ req.hdr(application) -m found }\n"
        "  http-request return status 200 hdr grpc-status 5 hdr grpc-message \"Unknown "
        "application in request metadata 'application': this node serves a, b.\"\n");
  // Every slot is listed and tracks its HTTP slot; slots without a gRPC replica are disabled.
  CHECK(block(config, "backend grpc-a") ==
        "backend grpc-a\n"
        "  balance leastconn\n"
        "  default-server proto h2 maxconn 5\n"
        "  # HAProxy's own errors as gRPC answers: a server timeout is DEADLINE_EXCEEDED, no free\n"
        "  # replica until the queue timeout (or none reachable) UNAVAILABLE.\n"
        "  errorfile 504 /run/serve/grpc-504.http\n"
        "  errorfile 503 /run/serve/grpc-503.http\n"
        "  http-request set-var(txn.grpc_reply) bool(1) if { nbsrv(grpc-a) eq 0 } !{ stopping }\n"
        "  http-request return status 200 hdr grpc-status 14 hdr grpc-message \"No replica of "
        "application 'a' is available.\" if { nbsrv(grpc-a) eq 0 } !{ stopping }\n"
        "  server slot1 127.0.0.1:40000 track http-a/slot1\n"
        "  server slot2 127.0.0.1:1 track http-a/slot2 disabled\n"
        "  server slot3 127.0.0.1:1 track http-a/slot3 disabled\n"
        "  server slot4 127.0.0.1:1 track http-a/slot4 disabled\n");
  CHECK(block(config, "backend grpc-b")
            .find("  server slot1 127.0.0.1:1 track http-b/slot1 "
                  "disabled\n  server slot2 127.0.0.1:40003 track "
                  "http-b/slot2\n") != std::string::npos);
}

TEST_CASE("renderer: one application takes every gRPC request, none answers NOT_FOUND") {
  RoutingTable one = table({backend("a", "/a", {withGrpc(active("a-1", 30000), 40000)}, 1)});
  one.global.grpc_port = 9001;
  const std::string config = renderOk(one).config;
  CHECK(config.find("  bind 0.0.0.0:9001 proto h2\n") != std::string::npos);
  CHECK(config.find("  default_backend grpc-a\n") != std::string::npos);

  RoutingTable none = table({});
  none.global.grpc_port = 9000;
  CHECK(block(renderOk(none).config, "backend grpc_not_found") ==
        "backend grpc_not_found\n"
        "  http-request set-var(txn.grpc_reply) bool(1)\n"
        "  http-request return status 200 hdr grpc-status 5 hdr grpc-message \"No application "
        "is deployed on this node (request metadata 'application').\"\n");

  // With request logging, gRPC calls are logged in their own line format.
  one.global.ingress_log_socket = "/run/serve/ingress.sock";
  const std::string logged = block(renderOk(one).config, "frontend grpc");
  CHECK(logged.find("  log-format \"serve1grpc %b %[var(txn.grpc_path)] %ST "
                    "%[var(txn.grpc_status)] %Ta %ts\"\n") != std::string::npos);
  CHECK(logged.find("  http-request set-var(txn.grpc_path) path if "
                    "{ path_reg ^/[A-Za-z0-9_.]+/[A-Za-z0-9_]+$ }\n") != std::string::npos);

  RoutingTable off = table({backend("a", "/a", {withGrpc(active("a-1", 30000), 40000)}, 1)});
  REQUIRE(off.global.grpc_port == 0);
  CHECK(renderOk(off).config.find("grpc") == std::string::npos);
}

TEST_CASE("renderer: with no application, healthz says so and no backend is rendered") {
  RoutingTable t = table({}, /*draining=*/true);
  const RenderedConfig out = renderOk(t);
  CHECK(out.config.find("string \"No application is deployed.\" if healthz\n") !=
        std::string::npos);
  CHECK(out.config.find("acl replica_up") == std::string::npos);
  CHECK(out.config.find("backend http-") == std::string::npos);
  CHECK(out.files.at(kNodeMap) == "draining 1\nroutes {}\n");
  CHECK(out.files.at(kRoutesExactMap).empty());
}

TEST_CASE("renderer: a template that does not parse is an error naming it") {
  Templates broken = shippedTemplates();
  broken.config = "global\n{{#backends}}\n";
  StatusOr<RenderedConfig> out = render(table({}), broken);
  REQUIRE_FALSE(out.ok());
  CHECK(messageOf(out.status()).rfind("haproxy.cfg.mustache: ", 0) == 0);
}

TEST_CASE("renderer: durations are exact HAProxy times") {
  CHECK(haproxyDuration(5) == "5s");
  CHECK(haproxyDuration(0.25) == "250ms");
  CHECK(haproxyDuration(3600) == "3600s");
  CHECK(haproxyDuration(1.0005) == "1001ms");
  CHECK(haproxyDuration(0) == "0s");
}

}  // namespace
}  // namespace serve::manager
