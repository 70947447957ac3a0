// serve-replica: parses flags and environment, builds the replica, runs it.
#include <signal.h>

#include <cstdio>
#include <string>
#include <vector>

#include "common/env_settings.h"
#include "replica/app/flags.h"
#include "replica/app/replica_app.h"

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

  // Signals are taken synchronously by ReplicaApp::run(); block them before any thread starts
  // so every thread inherits the mask. A peer closing its socket must not kill the process.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto app = serve::ReplicaApp::create(*flags, *env);
  if (!app.ok()) {
    std::fprintf(stderr, "serve-replica: %s\n", std::string(app.status().message()).c_str());
    return 1;
  }
  return (*app)->run();
}
