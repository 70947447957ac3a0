#include "haproxy-manager/reconcile/global_settings.h"

#include <doctest/doctest.h>

namespace serve::manager {
namespace {

TEST_CASE("global settings: request_timeout_s drives timeout server and queue") {
  ManagerEnv env;
  env.config_file = "/srv/haproxy/haproxy.cfg";
  env.socket_path = "/srv/haproxy/admin.sock";
  ServeConfig config;
  config.http_options.request_timeout_s = 30;
  config.http_options.keep_alive_timeout_s = 60;
  config.http_options.port = 8001;
  GlobalSettings g = globalSettings(env, config);
  CHECK(g.state_dir == "/srv/haproxy");
  CHECK(g.admin_socket == "/srv/haproxy/admin.sock");
  CHECK(g.timeout_server_s == 31);
  CHECK(g.timeout_queue_s == 30);
  CHECK(g.keep_alive_timeout_s == 60);
  CHECK(g.http_port == 8001);

  env.timeout_server_s = 5;       // RAY_SERVE_HAPROXY_TIMEOUT_SERVER_S wins
  env.keep_alive_timeout_s = 10;  // RAY_SERVE_HTTP_KEEP_ALIVE_TIMEOUT_S wins
  g = globalSettings(env, config);
  CHECK(g.timeout_server_s == 5);
  CHECK(g.keep_alive_timeout_s == 10);

  // No request deadline: HAProxy still bounds the wait for a replica and its answer, by the
  // client timeout, so a stuck replica cannot hold a client forever.
  config.http_options.request_timeout_s = 0;
  env.timeout_server_s.reset();
  env.timeout_client_s = 1800;
  g = globalSettings(env, config);
  CHECK(g.timeout_server_s == 1800);
  CHECK(g.timeout_queue_s == 1800);
}

TEST_CASE("global settings: the connect timeout is finite unless set") {
  ManagerEnv env;
  CHECK(globalSettings(env, ServeConfig{}).timeout_connect_s == kDefaultConnectTimeoutS);
  env.timeout_connect_s = 2.5;  // RAY_SERVE_HAPROXY_TIMEOUT_CONNECT_S
  CHECK(globalSettings(env, ServeConfig{}).timeout_connect_s == 2.5);
}

TEST_CASE("global settings: a config file without a directory keeps its files in .") {
  ManagerEnv env;
  env.config_file = "haproxy.cfg";
  CHECK(globalSettings(env, ServeConfig{}).state_dir == ".");
}

}  // namespace
}  // namespace serve::manager
