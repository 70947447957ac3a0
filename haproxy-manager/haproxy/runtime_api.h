#pragma once

// HAProxy's runtime API (the admin "stats socket"): the one-method seam the reconciler talks
// through, its socket implementation, the batching of state-changing commands with a check of
// every reply, and typed `show` reads.
#include <chrono>
#include <string>
#include <vector>

#include "common/status.h"
#include "haproxy-manager/haproxy/show_parsers.h"

namespace serve::manager {

class RuntimeApi {
 public:
  virtual ~RuntimeApi();
  // Runs one command line (several commands may be joined with ';') and returns HAProxy's
  // whole reply text. An error means the exchange failed, not that HAProxy disliked the
  // command: checking the text is the caller's job (applyCommands does it).
  virtual StatusOr<std::string> execute(const std::string& command) = 0;
};

// One connection per call: in non-interactive mode the admin socket runs one line and closes.
// Holds no connection between calls, so threads may share it.
class AdminSocketClient : public RuntimeApi {
 public:
  explicit AdminSocketClient(std::string socket_path,
                             std::chrono::milliseconds timeout = std::chrono::seconds(5));

  // `command` must be one line; a newline in it is an InvalidArgument error.
  StatusOr<std::string> execute(const std::string& command) override;
  const std::string& socketPath() const { return socket_path_; }

 private:
  std::string socket_path_;
  std::chrono::milliseconds timeout_;
};

// The most characters of commands joined into one connection's line (HAProxy's own limit is
// tune.bufsize, 16 KiB by default; this leaves room).
inline constexpr size_t kMaxBatchChars = 4000;

// Sends state-changing commands (`set server`, `set maxconn server`, `add map`, `del map`,
// `set map`, ...) in order, joined with "; " into lines of at most kMaxBatchChars (a longer
// single command goes alone). These commands answer nothing but blank lines on success, except
// `set server <b>/<s> addr`, which reports what it changed (see unexpectedReplyText). Any other
// reply text fails the call with an error naming the batch's commands and quoting the reply;
// batches after it are not sent. HAProxy goes on with the rest of a line after a failing
// command, so after an error the state of that whole batch is unknown: re-read it or reload.
// Commands must be non-empty and contain no ';' or newline, and a map value's spaces must be
// escaped as "\ " (HAProxy silently keeps only a value's first word): otherwise
// InvalidArgument and nothing is sent. Also checked on both versions: `add map` of an existing
// key adds a second entry, `set map` changes every entry of the key and answers
// "entry not found." for a missing one, `del map` removes them all.
// A rejected reply is FailedPrecondition; a failed exchange keeps the transport's code.
Status applyCommands(RuntimeApi& api, const std::vector<std::string>& commands);

// What in a reply to state-changing commands is not a success report: the reply minus blank
// lines and minus the lines with which `set server ... addr` confirms a change, such as
//   no need to change the addr, port changed from '1' to '18002' by 'stats socket command'
//   IP changed from '127.0.0.1' to '127.0.0.2', no need to change the port by 'stats socket
//   command'
// Those lines are matched whole: "Invalid addr '1.2.3' by 'stats socket command'" and
// "no need to change the addr, problem converting port 'abc' to an int by '...'" are errors
// and stay. Empty means every command succeeded. Checked on HAProxy 2.6.12 and 2.8.25.
std::string unexpectedReplyText(std::string_view reply);

// Typed reads.
StatusOr<ShowInfo> showInfo(RuntimeApi& api);
StatusOr<std::vector<StatRow>> showStat(RuntimeApi& api);
StatusOr<std::vector<ServerStateRow>> showServersState(RuntimeApi& api);
StatusOr<std::vector<MapEntry>> showMap(RuntimeApi& api, const std::string& map_file);

}  // namespace serve::manager
