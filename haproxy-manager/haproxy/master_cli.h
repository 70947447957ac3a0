#pragma once

// The master CLI of HAProxy in master-worker mode (`haproxy -W -S <path>`): process listing and
// reloads. Unlike the admin socket, the master CLI keeps a connection open after a command
// (checked on 2.6 and 2.8: `show proc` alone never gets EOF), so every command is sent as
// "<command>; quit".
#include <chrono>
#include <string>

#include "common/status.h"
#include "haproxy-manager/haproxy/show_parsers.h"

namespace serve::manager {

class MasterCli {
 public:
  explicit MasterCli(std::string socket_path,
                     std::chrono::milliseconds timeout = std::chrono::seconds(5));

  // One command, its whole reply. `command` must be one line without ';'.
  StatusOr<std::string> execute(const std::string& command);

  StatusOr<ShowProc> showProc();

  // Asks the master to reload. On 2.6 this only starts the reload (the master re-executes
  // itself and the reply is empty: kNoStatus); 2.7+ answers when the new worker is up or the
  // attempt failed (kSucceeded / kFailed, with the attempt's startup log). Either way the
  // caller confirms the outcome with `show proc` (HaproxyController::reload does).
  StatusOr<ReloadReply> reload();

  const std::string& socketPath() const { return socket_path_; }

 private:
  std::string socket_path_;
  std::chrono::milliseconds timeout_;
};

}  // namespace serve::manager
