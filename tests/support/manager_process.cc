#include "tests/support/manager_process.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>

namespace serve::testing {

namespace {

std::string replaceAll(std::string text, const std::string& from, const std::string& to) {
  for (std::size_t pos = text.find(from); pos != std::string::npos;
       pos = text.find(from, pos + to.size())) {
    text.replace(pos, from.size(), to);
  }
  return text;
}

// The admin socket without any project code in the way: connect, send, read until EOF.
std::string unixRequest(const std::string& path, const std::string& request) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return "";
  }
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  const std::string line = request + "\n";
  if (::write(fd, line.data(), line.size()) < 0) {
    ::close(fd);
    return "";
  }
  std::string out;
  char buf[8192];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n <= 0) {
      break;
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

// A free port outside the replicas' default ranges, which the manager rightly refuses for its
// own listeners.
int freeListenerPort() {
  while (true) {
    const int port = freeLoopbackPort();
    if (!(port >= 30000 && port < 31000) && !(port >= 40000 && port < 41000)) {
      return port;
    }
  }
}

}  // namespace

ManagerProcess::ManagerProcess(ManagerTestOptions options) : options_(std::move(options)) {}

ManagerProcess::~ManagerProcess() {
  child_->signal(SIGTERM);
  if (!child_->wait(std::chrono::seconds(30))) {
    child_->signal(SIGKILL);
    child_->wait(std::chrono::seconds(5));
  }
  // Replicas the manager started run in their own process groups; if the manager could not
  // stop them, end them here. They are recognised by this test's directory in their command
  // line (their --log-dir), so nothing else is touched.
  for (int pid : replicaPids()) {
    ::kill(pid, SIGKILL);
  }
}

std::set<int> ManagerProcess::replicaPids() const {
  std::set<int> pids;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) {
      continue;
    }
    std::ifstream in(entry.path() / "cmdline");
    std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (cmdline.find(dir_.path() + "/") != std::string::npos &&
        cmdline.find("serve-replica") != std::string::npos) {
      // A zombie (exited, not yet reaped) has an empty cmdline and is not counted.
      pids.insert(std::stoi(name));
    }
  }
  return pids;
}

std::string ManagerProcess::expand(const std::string& yaml) const {
  std::string out = replaceAll(yaml, "{{HTTP_PORT}}", std::to_string(http_port_));
  out = replaceAll(out, "{{GRPC_PORT}}", std::to_string(grpc_port_));
  // HAProxy's gRPC listener on a free port too, unless the test chose one.
  if (out.find("grpc_options:") == std::string::npos) {
    out += "\ngrpc_options: {port: " + std::to_string(grpc_port_) + "}\n";
  }
  return out;
}

bool ManagerProcess::start(std::chrono::milliseconds timeout) {
  // Five different ports (a port released by the probe can come back on the next probe).
  std::set<int> taken;
  auto pick = [&] {
    int port = freeListenerPort();
    while (!taken.insert(port).second) {
      port = freeListenerPort();
    }
    return port;
  };
  http_port_ = pick();
  grpc_port_ = pick();
  metrics_port_ = pick();
  stats_port_ = pick();
  control_port_ = pick();
  const std::string config = options_.config_path.empty()
                                 ? dir_.write("serve.yaml", expand(options_.config_yaml))
                                 : options_.config_path;
  std::map<std::string, std::string> env = {
      {"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
      {"RAY_SERVE_HAPROXY_SOCKET_PATH", adminSocket()},
      {"RAY_SERVE_HAPROXY_CONFIG_FILE_LOC", configFile()},
      {"RAY_SERVE_HAPROXY_METRICS_PORT", std::to_string(metrics_port_)},
      {"RAY_SERVE_HAPROXY_STATS_PORT", std::to_string(stats_port_)},
      {"RAY_SERVE_HAPROXY_CONTROL_PORT", std::to_string(control_port_)},
      {"RAY_SERVE_HAPROXY_NBTHREAD", "2"},
      {"RAY_SERVE_HAPROXY_MAXCONN", "1000"},
      // Fast checks, but with a timeout (= inter) that a busy 2-core machine can meet.
      {"RAY_SERVE_HAPROXY_HEALTH_CHECK_INTER", "1s"},
      {"RAY_SERVE_HAPROXY_HEALTH_CHECK_FASTINTER", "200ms"},
      {"RAY_SERVE_HAPROXY_HEALTH_CHECK_DOWNINTER", "200ms"},
      {"RAY_SERVE_HAPROXY_BROADCAST_COALESCE_S", "0.05"},
      {"RAY_SERVE_HAPROXY_TIMEOUT_CONNECT_S", "1"},
      {"RAY_SERVE_LOG_DIR", dir_.path() + "/logs"},
      {"RAY_SERVE_LOG_TO_STDERR", "1"},
  };
  if (!options_.haproxy_binary.empty()) {
    env["RAY_SERVE_HAPROXY_BINARY_PATH"] = options_.haproxy_binary;
  }
  for (const auto& [k, v] : options_.env) {
    env[k] = v;
  }
  std::vector<std::string> argv = {SERVE_MANAGER_BINARY, "start", "--config", config};
  if (!options_.supervise) {
    argv.push_back("--no-replicas");
  } else {
    env["SERVE_REPLICA_BINARY"] = SERVE_REPLICA_BINARY;
  }
  argv_ = argv;
  env_ = env;
  return startAgain(timeout);
}

bool ManagerProcess::startAgain(std::chrono::milliseconds timeout) {
  child_ = std::make_unique<ChildProcess>();
  if (!child_->spawn(argv_, env_)) {
    return false;
  }
  if (!child_->waitForReady(timeout)) {
    return false;
  }
  std::ifstream in(dir_.path() + "/run/control.token");
  token_.clear();
  std::getline(in, token_);
  return !token_.empty();
}

std::string ManagerProcess::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(http_port_) + path;
}

std::string ManagerProcess::controlUrl(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(control_port_) + path;
}

HttpResult ManagerProcess::registerReplica(const std::string& app, const std::string& deployment,
                                           int port, const std::string& id, int pid,
                                           int grpc_port) {
  nlohmann::json body{{"replica_id", id},      {"application", app}, {"deployment", deployment},
                      {"host", "127.0.0.1"},   {"http_port", port},  {"pid", pid},
                      {"grpc_port", grpc_port}};
  return httpRequest("POST", controlUrl("/replicas"), body.dump(),
                     {{"Authorization", "Bearer " + token_}}, std::chrono::seconds(60));
}

HttpResult ManagerProcess::deregister(const std::string& id) {
  return httpRequest("DELETE", controlUrl("/replicas/" + id), "",
                     {{"Authorization", "Bearer " + token_}}, std::chrono::seconds(60));
}

HttpResult ManagerProcess::deploy(const std::string& yaml) {
  return httpRequest(
      "POST", controlUrl("/deploy"), expand(yaml),
      {{"Authorization", "Bearer " + token_}, {"X-Serve-Config-Source", "test.yaml"}},
      std::chrono::seconds(60));
}

HttpResult ManagerProcess::post(const std::string& path) {
  return httpRequest("POST", controlUrl(path), "", {{"Authorization", "Bearer " + token_}},
                     std::chrono::seconds(60));
}

nlohmann::json ManagerProcess::status() {
  return nlohmann::json::parse(httpGet(controlUrl("/status")).body);
}

std::string ManagerProcess::admin(const std::string& command) {
  return unixRequest(adminSocket(), command);
}

int ManagerProcess::workerPid() {
  std::istringstream in(admin("show info"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Pid: ", 0) == 0) {
      return std::stoi(line.substr(5));
    }
  }
  return 0;
}

std::unique_ptr<ReplicaProcess> startTestReplica(const std::string& config_yaml,
                                                 const std::string& app,
                                                 std::map<std::string, std::string> env) {
  ReplicaOptions o;
  o.config_yaml = config_yaml;
  o.app = app;
  o.env = std::move(env);
  o.env.emplace("RAY_SERVE_LOG_TO_STDERR", "0");
  o.env.emplace("RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", "0");
  // No gRPC listener: these replicas are registered for HTTP only, and leaving the gRPC range
  // to the manager's own replicas keeps the tests from competing for its ports.
  o.extra_args = {"--grpc-port", "none"};
  auto replica = std::make_unique<ReplicaProcess>(o);
  if (!replica->start()) {
    return nullptr;
  }
  return replica;
}

}  // namespace serve::testing
