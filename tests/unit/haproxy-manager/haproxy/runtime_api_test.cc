#include "haproxy-manager/haproxy/runtime_api.h"

#include <doctest/doctest.h>

#include <deque>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"

namespace serve::manager {
namespace {

// Records every line sent and answers from a script (blank lines, HAProxy's success, when the
// script runs out).
class FakeRuntimeApi : public RuntimeApi {
 public:
  StatusOr<std::string> execute(const std::string& command) override {
    sent.push_back(command);
    if (replies.empty()) {
      return std::string("\n");
    }
    StatusOr<std::string> reply = replies.front();
    replies.pop_front();
    return reply;
  }
  std::vector<std::string> sent;
  std::deque<StatusOr<std::string>> replies;
};

// Replies below were captured from HAProxy 2.6.12 and 2.8.25 (identical on both).
TEST_CASE("unexpectedReplyText accepts blank lines and set server addr reports only") {
  struct Case {
    std::string reply;
    std::string unexpected;
  };
  const std::vector<Case> cases = {
      {"\n", ""},
      {"\n\n\n", ""},
      {"no need to change the addr, port changed from '1' to '30001' by 'stats socket "
       "command'\n\n",
       ""},
      {"IP changed from '127.0.0.1' to '127.0.0.2', port changed from '30001' to '30005' by "
       "'stats socket command'\n\n",
       ""},
      {"IP changed from '127.0.0.2' to '::1' by 'stats socket command'\n\n", ""},
      {"no need to change the addr, no need to change the port by 'stats socket "
       "command'\n\n\n\n",
       ""},
      {"no need to change the addr, port changed from '30003' to '30001' by 'stats socket "
       "command'\n\nNo such server.\n\n\n",
       "No such server."},
      {"Invalid addr '1.2.3' by 'stats socket command'\n\n",
       "Invalid addr '1.2.3' by 'stats socket command'"},
      {"no need to change the addr, problem converting port 'abc' to an int by 'stats socket "
       "command'\n\n",
       "no need to change the addr, problem converting port 'abc' to an int by 'stats socket "
       "command'"},
      {"Key not found.\n\n", "Key not found."},
      {"maxconn string empty or preceded by garbage\n",
       "maxconn string empty or preceded by garbage"},
      {"agent checks are not enabled on this server.\n\n",
       "agent checks are not enabled on this server."},
  };
  for (const Case& c : cases) {
    CAPTURE(c.reply);
    CHECK(unexpectedReplyText(c.reply) == c.unexpected);
  }
}

TEST_CASE("applyCommands joins commands into one line per batch") {
  FakeRuntimeApi api;
  Status status = applyCommands(api, {"set server be/s1 addr 127.0.0.1 port 30001",
                                      "set server be/s1 state ready", "add map /m.map /a be"});
  REQUIRE_MESSAGE(status.ok(), status.message());
  CHECK(api.sent == std::vector<std::string>{"set server be/s1 addr 127.0.0.1 port 30001; set "
                                             "server be/s1 state ready; add map /m.map /a be"});
  FakeRuntimeApi none;
  CHECK(applyCommands(none, {}).ok());
  CHECK(none.sent.empty());
}

TEST_CASE("applyCommands splits long plans into batches of at most kMaxBatchChars") {
  std::vector<std::string> commands;
  for (int i = 0; i < 300; ++i) {
    commands.push_back("set server backend_" + std::to_string(i) + "/slot1 state ready");
  }
  commands.push_back(std::string(kMaxBatchChars + 10, 'x'));  // too long for any batch: alone
  commands.push_back("set server be/s1 health up");
  FakeRuntimeApi api;
  REQUIRE(applyCommands(api, commands).ok());
  // 300 commands of ~40 characters fill three batches and part of a fourth; then the long
  // command goes alone, and the last command starts a batch of its own.
  REQUIRE(api.sent.size() == 6);
  for (size_t i = 0; i < 3; ++i) {
    CAPTURE(i);
    CHECK(api.sent[i].size() <= kMaxBatchChars);
    CHECK(api.sent[i].size() > kMaxBatchChars - 50);  // full, not one command per connection
  }
  CHECK(api.sent[4] == commands[300]);
  CHECK(api.sent[5] == "set server be/s1 health up");
  CHECK(absl::StrJoin(api.sent, "; ") == absl::StrJoin(commands, "; "));
}

TEST_CASE("applyCommands fails on a reply that is not a success, naming the batch") {
  FakeRuntimeApi api;
  api.replies.push_back(std::string(
      "no need to change the addr, port changed from '30003' to '30001' by 'stats socket "
      "command'\n\nNo such server.\n\n\n"));
  Status status = applyCommands(
      api, {"set server be/s1 addr 127.0.0.1 port 30001", "set server be/nosuch state ready"});
  REQUIRE_FALSE(status.ok());
  CHECK(status.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(messageOf(status) ==
        "HAProxy rejected runtime commands [set server be/s1 addr 127.0.0.1 port 30001; set "
        "server be/nosuch state ready]: \"No such server.\"");
}

TEST_CASE("applyCommands stops at the first failing batch") {
  std::vector<std::string> commands(400, "set server backend/slot1 state ready");
  FakeRuntimeApi api;
  api.replies.push_back(std::string("\n"));
  api.replies.push_back(std::string("Unknown command.\n"));
  Status status = applyCommands(api, commands);
  REQUIRE_FALSE(status.ok());
  CHECK(api.sent.size() == 2);
  CHECK(messageOf(status).find("Unknown command.") != std::string::npos);
}

TEST_CASE("applyCommands passes transport errors on with the commands") {
  FakeRuntimeApi api;
  api.replies.push_back(absl::UnavailableError("/run/admin.sock: connect: Connection refused"));
  Status status = applyCommands(api, {"del map /m.map /a"});
  REQUIRE_FALSE(status.ok());
  CHECK(status.code() == absl::StatusCode::kUnavailable);
  CHECK(messageOf(status) ==
        "runtime commands [del map /m.map /a] not applied: /run/admin.sock: connect: Connection "
        "refused");
}

TEST_CASE("applyCommands refuses commands that would not be one command") {
  for (const std::string bad : {"", "  ", "set server a/b state ready; set server a/c state ready",
                                "show info\nshow stat"}) {
    CAPTURE(bad);
    FakeRuntimeApi api;
    Status status = applyCommands(api, {"set server be/s1 state ready", bad});
    CHECK(status.code() == absl::StatusCode::kInvalidArgument);
    CHECK(api.sent.empty());
  }
}

TEST_CASE("applyCommands refuses map values HAProxy would cut at the first space") {
  FakeRuntimeApi api;
  Status cut = applyCommands(api, {"set map /n.map routes {\"/a\": \"app a\"}"});
  CHECK(cut.code() == absl::StatusCode::kInvalidArgument);
  CHECK(messageOf(cut).find("map command has more than one value word") == 0);
  CHECK(applyCommands(api, {"add map /m.map /k a b"}).code() == absl::StatusCode::kInvalidArgument);
  CHECK(api.sent.empty());
  Status escaped =
      applyCommands(api, {"add map /m.map /k a\\ b\\ c", "set map /m.map /k v", "del map /m.map /k",
                          "set server be/s1 addr 1.2.3.4 port 80"});
  CHECK_MESSAGE(escaped.ok(), escaped.message());
  CHECK(api.sent.size() == 1);
}

TEST_CASE("typed show reads quote the command when the reply does not parse") {
  FakeRuntimeApi api;
  api.replies.push_back(std::string("Unknown map identifier. Please use #<id> or <file>.\n\n"));
  StatusOr<std::vector<MapEntry>> entries = showMap(api, "/x.map");
  REQUIRE_FALSE(entries.ok());
  CHECK(api.sent == std::vector<std::string>{"show map /x.map"});
  CHECK(messageOf(entries.status()).find("'show map /x.map': show map: line 1") == 0);
}

}  // namespace
}  // namespace serve::manager
