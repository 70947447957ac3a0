#include "haproxy-manager/haproxy/runtime_api.h"

#include <regex>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "haproxy-manager/haproxy/unix_socket.h"

namespace serve::manager {
namespace {

// The reply to a `show` command, or an error quoting what came back instead.
template <typename T, typename Parser>
StatusOr<T> showCommand(RuntimeApi& api, const std::string& command, Parser parse) {
  StatusOr<std::string> reply = api.execute(command);
  if (!reply.ok()) {
    return reply.status();
  }
  StatusOr<T> parsed = parse(*reply);
  if (!parsed.ok()) {
    return absl::Status(parsed.status().code(),
                        absl::StrCat("'", command, "': ", messageOf(parsed.status())));
  }
  return parsed;
}

Status sendBatch(RuntimeApi& api, const std::vector<std::string>& batch) {
  const std::string line = absl::StrJoin(batch, "; ");
  StatusOr<std::string> reply = api.execute(line);
  if (!reply.ok()) {
    return absl::Status(
        reply.status().code(),
        absl::StrCat("runtime commands [", line, "] not applied: ", messageOf(reply.status())));
  }
  const std::string unexpected = unexpectedReplyText(*reply);
  if (!unexpected.empty()) {
    return absl::FailedPreconditionError(absl::StrCat("HAProxy rejected runtime commands [", line,
                                                      "]: ", quoteForError(unexpected)));
  }
  return absl::OkStatus();
}

// Words split at spaces that are not escaped with a backslash, as HAProxy's CLI splits them.
size_t wordCount(absl::string_view command) {
  size_t words = 0;
  bool in_word = false;
  for (size_t i = 0; i < command.size(); ++i) {
    if (command[i] == ' ') {
      in_word = false;
      continue;
    }
    if (!in_word) {
      ++words;
      in_word = true;
    }
    if (command[i] == '\\') {
      ++i;  // the escaped character belongs to this word
    }
  }
  return words;
}

Status checkCommand(const std::string& command) {
  if (absl::StripAsciiWhitespace(command).empty() ||
      command.find_first_of(";\n") != std::string::npos) {
    // An empty command is an error of its own on 2.6 ("set ...;" answers "Unknown command"),
    // and ';' or a newline would split one command into several.
    return absl::InvalidArgumentError(
        absl::StrCat("runtime command must be one non-empty command without ';' or newline: ",
                     quoteForError(command)));
  }
  // `add map <map> <key> a b` and `set map <map> <key> a b` answer success and store just "a"
  // (2.6 and 2.8): a value's spaces must be escaped ("a\ b"). Refuse what would be cut.
  if ((absl::StartsWith(command, "add map ") || absl::StartsWith(command, "set map ")) &&
      wordCount(command) > 5) {
    return absl::InvalidArgumentError(absl::StrCat(
        "map command has more than one value word; HAProxy would keep only the first (escape "
        "spaces in the value as '\\ '): ",
        quoteForError(command)));
  }
  return absl::OkStatus();
}

}  // namespace

RuntimeApi::~RuntimeApi() = default;

AdminSocketClient::AdminSocketClient(std::string socket_path, std::chrono::milliseconds timeout)
    : socket_path_(std::move(socket_path)), timeout_(timeout) {}

StatusOr<std::string> AdminSocketClient::execute(const std::string& command) {
  if (command.find('\n') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("runtime command contains a newline: ", quoteForError(command)));
  }
  return unixSocketRequest(socket_path_, command + "\n", timeout_);
}

std::string unexpectedReplyText(std::string_view reply_std) {
  const absl::string_view reply(reply_std.data(), reply_std.size());
  // What `set server <b>/<s> addr <ip> [port <p>]` prints when it worked (srv_update_addr_port
  // in HAProxy's server.c): the address part, an optional port part, and who asked.
  static const std::regex kAddrChanged(
      "(IP changed from '[^']*' to '[^']*'|no need to change the addr)"
      "(, (port changed from '[^']*' to '[^']*'|no need to change the port))?"
      " by '[^']*'");
  std::vector<absl::string_view> unexpected;
  for (absl::string_view line : absl::StrSplit(reply, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || std::regex_match(line.begin(), line.end(), kAddrChanged)) {
      continue;
    }
    unexpected.push_back(line);
  }
  return absl::StrJoin(unexpected, "\n");
}

Status applyCommands(RuntimeApi& api, const std::vector<std::string>& commands) {
  for (const std::string& command : commands) {
    if (Status valid = checkCommand(command); !valid.ok()) {
      return valid;
    }
  }
  std::vector<std::string> batch;
  size_t batch_chars = 0;
  for (const std::string& command : commands) {
    const size_t added = (batch.empty() ? 0 : 2) + command.size();
    if (!batch.empty() && batch_chars + added > kMaxBatchChars) {
      if (Status status = sendBatch(api, batch); !status.ok()) {
        return status;
      }
      batch.clear();
      batch_chars = 0;
    }
    batch_chars += (batch.empty() ? 0 : 2) + command.size();
    batch.push_back(command);
  }
  if (!batch.empty()) {
    return sendBatch(api, batch);
  }
  return absl::OkStatus();
}

StatusOr<ShowInfo> showInfo(RuntimeApi& api) {
  return showCommand<ShowInfo>(api, "show info", parseShowInfo);
}

StatusOr<std::vector<StatRow>> showStat(RuntimeApi& api) {
  return showCommand<std::vector<StatRow>>(api, "show stat", parseShowStat);
}

StatusOr<std::vector<ServerStateRow>> showServersState(RuntimeApi& api) {
  return showCommand<std::vector<ServerStateRow>>(api, "show servers state", parseServersState);
}

StatusOr<std::vector<MapEntry>> showMap(RuntimeApi& api, const std::string& map_file) {
  return showCommand<std::vector<MapEntry>>(api, "show map " + map_file, parseShowMap);
}

}  // namespace serve::manager
