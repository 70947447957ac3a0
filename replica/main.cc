// serve-replica: parses flags and environment, builds the replica, runs it.
#include <cstdio>
#include <memory>
#include <new>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/env_settings.h"
#include "replica/app/flags.h"
#include "replica/app/replica_app.h"
#include "replica/app/shutdown_signals.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  auto flags = serve::parseReplicaFlags(args);
  if (!flags.ok()) {
    std::fprintf(stderr, "serve-replica: %s\n", std::string(flags.status().message()).c_str());
    return 2;
  }
  if (flags->help) {
    std::fputs(serve::replicaUsage().c_str(), stdout);
    return 0;
  }
  auto env = serve::readReplicaEnv(serve::processEnv());
  if (!env.ok()) {
    std::fprintf(stderr, "serve-replica: %s\n", std::string(env.status().message()).c_str());
    return 2;
  }

  serve::ShutdownSignals::install();

  // The model loaders turn a failed allocation into a message of their own (naming the file);
  // one anywhere else during start-up still ends as a refusal, not as an abort.
  auto create = [&]() -> serve::StatusOr<std::unique_ptr<serve::ReplicaApp>> {
    try {
      return serve::ReplicaApp::create(*flags, *env);
    } catch (const std::bad_alloc&) {
      return absl::ResourceExhaustedError("not enough memory to start (std::bad_alloc)");
    }
  };
  auto app = create();
  if (!app.ok()) {
    const std::string message(app.status().message());
    std::fprintf(stderr, "serve-replica: %s\n", message.c_str());
    // The same on stdout as an event, for the manager that reads it (its status shows it).
    std::fputs((nlohmann::json{{"event", "failed"}, {"error", message}}.dump() + "\n").c_str(),
               stdout);
    return 1;
  }
  return (*app)->run();
}
