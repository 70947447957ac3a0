#include "replica/app/flags.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "common/cli.h"
#include "common/config_keys.h"

namespace serve {
namespace {

constexpr char kDescription[] =
    "serve-replica: serves one deployment of one application from a Serve config file.";

constexpr char kFooter[] = R"(When ready it prints one line on stdout:
  {"event":"ready","http_port":N,"grpc_port":M,"pid":N}
SIGTERM drains (health turns 503 DRAINING, in-flight and queued requests finish, exit 0);
a second SIGTERM or SIGINT stops at once and logs the requests it abandons.)";

using keys::flagKey;

// --grpc-port: a port, or "none" for no gRPC server.
CLI::Validator portOrNone() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        if (value == "none" || cli::integerIn(0, 65535)(value).empty()) {
          return {};
        }
        return "expected an integer in [0, 65535] or \"none\", got '" + value + "'";
      },
      "", "portOrNone");
}

// A numeric flag's help: what it does, then its row's rule and default in the words its errors
// use, so that --help, the errors and docs/configuration.md say the same range.
std::string keyedHelp(const std::string& what, const keys::Key& key, const std::string& more = "") {
  std::string text =
      absl::StrCat(what, ":\n", keys::ruleText(key), " (default ", keys::defaultText(key), ")");
  if (!more.empty()) {
    absl::StrAppend(&text, ";\n", more);
  }
  return text;
}

// The flags, bound to `f`; parseReplicaFlags and replicaUsage share them.
void defineFlags(CLI::App& app, ReplicaFlags& f) {
  app.description(kDescription);
  app.footer(kFooter);
  app.get_formatter()->column_width(30);
  app.add_option("--config", f.config_path, "Serve-style YAML config (see docs/configuration.md)")
      ->type_name("FILE")
      ->required()
      ->check(cli::nonEmpty());
  app.add_option("--app", f.app, "application to serve (applications[].name)")
      ->type_name("NAME")
      ->required()
      ->check(cli::nonEmpty());
  app.add_option("--deployment", f.deployment,
                 "deployment to serve; may be omitted when the application has one")
      ->type_name("NAME")
      ->check(cli::nonEmpty());
  app.add_option("--http-port", f.http_port,
                 keyedHelp("bind the HTTP server on exactly port N", flagKey("--http-port"),
                           "0 = the first free port in\n"
                           "[RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT, ..._MAX_HTTP_PORT)"))
      ->type_name("N")
      ->transform(cli::keyValue(flagKey("--http-port")));
  app.add_option_function<std::string>(
         "--grpc-port",
         [&f](const std::string& v) {
           f.grpc_port = v == "none" ? ReplicaFlags::kNoGrpc : std::stoi(v);
         },
         "0-65535: bind the gRPC server (KServe v2 GRPCInferenceService and\n"
         "grpc.health.v1) on exactly port N; 0 (the default) = the first free\n"
         "port in [RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT, ..._MAX_GRPC_PORT);\n"
         "none = no gRPC server (the ready line says \"grpc_port\":null)")
      ->type_name("N|none")
      ->transform(portOrNone());
  app.add_option_function<std::string>(
         "--host", [&f](const std::string& v) { f.host = v; },
         "bind address; default RAY_SERVE_DEFAULT_HTTP_HOST (127.0.0.1)")
      ->type_name("ADDR")
      ->check(cli::nonEmpty());
  app.add_option("--port-file", f.port_file, "also write the ready line (JSON) to PATH, atomically")
      ->type_name("PATH")
      ->check(cli::nonEmpty());
  app.add_option("--base-dir", f.base_dir,
                 "resolve relative paths in the config (model files, working_dir)\n"
                 "against DIR instead of the config file's folder (the manager runs\n"
                 "replicas from a snapshot of the config in its state directory)")
      ->type_name("DIR")
      ->check(cli::nonEmpty());
  app.add_option("--control-socket", f.control_socket,
                 "answer the manager's control requests (reconfigure, health) on\n"
                 "a unix socket at PATH, created mode 0600 (docs/replica.md)")
      ->type_name("PATH")
      ->check(cli::nonEmpty());
  app.add_option("--max-body-bytes", f.max_body_bytes,
                 keyedHelp("largest request body accepted", flagKey("--max-body-bytes"),
                           "larger bodies get 413"))
      ->type_name("N")
      ->transform(cli::keyValue(flagKey("--max-body-bytes")));
  app.add_option("--http-max-threads", f.http_max_threads,
                 keyedHelp("most connection threads", flagKey("--http-max-threads")))
      ->type_name("N")
      ->transform(cli::keyValue(flagKey("--http-max-threads")));
  app.add_option("--grpc-max-threads", f.grpc_max_threads,
                 keyedHelp("most gRPC calls served at once", flagKey("--grpc-max-threads"),
                           "one more is answered RESOURCE_EXHAUSTED"))
      ->type_name("N")
      ->transform(cli::keyValue(flagKey("--grpc-max-threads")));
  app.add_option(
         "--max-connections", f.max_connections,
         keyedHelp("most open HTTP connections, served or waiting for a thread",
                   flagKey("--max-connections"), "one more is answered 503 and closed unread"))
      ->type_name("N")
      ->transform(cli::keyValue(flagKey("--max-connections")));
  app.add_option("--request-read-timeout-s", f.request_read_timeout_s,
                 keyedHelp("a request must arrive whole within S seconds",
                           flagKey("--request-read-timeout-s"), "slower clients get 408"))
      ->type_name("S")
      ->check(cli::keyValue(flagKey("--request-read-timeout-s")));
  app.add_option("--watchdog-timeout-s", f.watchdog_timeout_s,
                 keyedHelp("report UNHEALTHY when queued work makes no progress for S seconds",
                           flagKey("--watchdog-timeout-s")))
      ->type_name("S")
      ->check(cli::keyValue(flagKey("--watchdog-timeout-s")));
  app.add_option_function<double>(
         "--draining-period-s", [&f](double v) { f.draining_period_s = v; },
         keyedHelp("after SIGTERM keep serving S seconds before closing listeners",
                   flagKey("--draining-period-s")))
      ->type_name("S")
      ->check(cli::keyValue(flagKey("--draining-period-s")));
  app.add_option_function<std::string>(
         "--log-dir", [&f](const std::string& v) { f.log_dir = v; },
         "log directory (default RAY_SERVE_LOG_DIR or logs/serve)")
      ->type_name("DIR")
      ->check(cli::nonEmpty());
  cli::readInOrder(app);
}

}  // namespace

std::string replicaUsage() {
  ReplicaFlags f;
  CLI::App app("", "serve-replica");
  defineFlags(app, f);
  return app.help();
}

StatusOr<ReplicaFlags> parseReplicaFlags(const std::vector<std::string>& args) {
  ReplicaFlags f;
  CLI::App app("", "serve-replica");
  defineFlags(app, f);
  cli::ParseResult parsed = cli::parse(app, args);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(parsed.error + " (see --help)");
  }
  f.help = parsed.help;
  return f;
}

}  // namespace serve
