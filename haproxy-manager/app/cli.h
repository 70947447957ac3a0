#pragma once

// The haproxy-manager command line: `start` runs the manager in the foreground; the other
// subcommands talk to a running one through its control API.
#include <string>
#include <vector>

namespace serve::manager {

// Returns the process exit code. `args` excludes argv[0].
int runCli(const std::vector<std::string>& args);

}  // namespace serve::manager
