#include "haproxy-manager/haproxy/master_cli.h"

#include "absl/strings/str_cat.h"
#include "haproxy-manager/haproxy/unix_socket.h"

namespace serve::manager {

MasterCli::MasterCli(std::string socket_path, std::chrono::milliseconds timeout)
    : socket_path_(std::move(socket_path)), timeout_(timeout) {}

StatusOr<std::string> MasterCli::execute(const std::string& command) {
  if (command.find_first_of(";\n") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("master CLI command must be one command: ", quoteForError(command)));
  }
  return unixSocketRequest(socket_path_, command + "; quit\n", timeout_);
}

StatusOr<ShowProc> MasterCli::showProc() {
  StatusOr<std::string> reply = execute("show proc");
  if (!reply.ok()) {
    return reply.status();
  }
  StatusOr<ShowProc> proc = parseShowProc(*reply);
  if (!proc.ok()) {
    return absl::Status(proc.status().code(),
                        absl::StrCat(socket_path_, ": ", messageOf(proc.status())));
  }
  return proc;
}

StatusOr<ReloadReply> MasterCli::reload() {
  StatusOr<std::string> reply = execute("reload");
  if (!reply.ok()) {
    return reply.status();
  }
  StatusOr<ReloadReply> parsed = parseReloadReply(*reply);
  if (!parsed.ok()) {
    return absl::Status(parsed.status().code(),
                        absl::StrCat(socket_path_, ": ", messageOf(parsed.status())));
  }
  return parsed;
}

}  // namespace serve::manager
