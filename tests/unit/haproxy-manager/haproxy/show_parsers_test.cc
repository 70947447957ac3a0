#include "haproxy-manager/haproxy/show_parsers.h"

#include <doctest/doctest.h>

#include <string>
#include <utility>
#include <vector>

#include "common/file_util.h"

// The inputs are verbatim captures from HAProxy 2.6.12 and 2.8.25
// (tests/testdata/haproxy/capture.sh), so the expected values are what those versions printed.
namespace serve::manager {
namespace {

std::string testdata(const std::string& name) {
  StatusOr<std::string> text =
      readWholeFile(std::string(SERVE_TESTDATA_DIR) + "/haproxy/" + name, "testdata");
  REQUIRE_MESSAGE(text.ok(), text.status().message());
  return *text;
}

std::vector<std::pair<int, int>> pidsAndReloads(const std::vector<ProcEntry>& entries) {
  std::vector<std::pair<int, int>> out;
  for (const ProcEntry& entry : entries) {
    out.emplace_back(entry.pid, entry.reloads);
  }
  return out;
}

TEST_CASE("parseShowProc reads the master, current and old workers of 2.6 and 2.8") {
  struct Case {
    std::string file;
    int master_pid;
    int reloads;
    int failed;
    std::vector<std::pair<int, int>> workers;  // pid, reloads
    std::vector<std::pair<int, int>> old_workers;
    int current;
    std::string version;
  };
  const std::string v26 = "2.6.12-1+deb12u4";
  const std::string v28 = "2.8.25-5cf5d0683";
  const std::vector<Case> cases = {
      {"show_proc_2.6.txt", 6467, 0, 0, {{6471, 0}}, {}, 6471, v26},
      {"show_proc_2.6_after_reload.txt", 6467, 1, 0, {{6509, 0}}, {{6471, 1}}, 6509, v26},
      // A failed reload leaves the current worker in "# workers" with reload count 1.
      {"show_proc_2.6_after_failed_reload.txt", 6467, 2, 1, {{6509, 1}}, {{6471, 2}}, 6509, v26},
      {"show_proc_2.8.txt", 6531, 0, 0, {{6535, 0}}, {}, 6535, v28},
      {"show_proc_2.8_after_reload.txt", 6531, 1, 0, {{6572, 0}}, {{6535, 1}}, 6572, v28},
      {"show_proc_2.8_after_failed_reload.txt", 6531, 2, 1, {{6572, 1}}, {{6535, 2}}, 6572, v28},
  };
  for (const Case& c : cases) {
    CAPTURE(c.file);
    StatusOr<ShowProc> proc = parseShowProc(testdata(c.file));
    REQUIRE_MESSAGE(proc.ok(), proc.status().message());
    CHECK(proc->master.pid == c.master_pid);
    CHECK(proc->master.reloads == c.reloads);
    CHECK(proc->master.version == c.version);
    CHECK(proc->failed_reloads == c.failed);
    CHECK(pidsAndReloads(proc->workers) == c.workers);
    CHECK(pidsAndReloads(proc->old_workers) == c.old_workers);
    CHECK(proc->currentWorkerPid() == c.current);
    for (const ProcEntry& worker : proc->workers) {
      CHECK(worker.version == c.version);
    }
  }
  StatusOr<ShowProc> first = parseShowProc(testdata("show_proc_2.6.txt"));
  REQUIRE(first.ok());
  CHECK(first->master.uptime == "0d00h00m02s");
  CHECK(first->workers[0].uptime == "0d00h00m02s");
}

TEST_CASE("parseShowProc: several current workers, the newest is current") {
  StatusOr<ShowProc> proc = parseShowProc(
      "#<PID>          <type>          <reloads>       <uptime>        <version>\n"
      "100             master          3 [failed: 0]   0d00h00m09s     2.6.12\n"
      "# workers\n"
      "102             worker          1               0d00h00m05s     2.6.12\n"
      "103             worker          0               0d00h00m01s     2.6.12\n"
      "# programs\n"
      "104             program         0               0d00h00m01s     -\n");
  REQUIRE_MESSAGE(proc.ok(), proc.status().message());
  CHECK(proc->currentWorkerPid() == 103);
  CHECK(proc->old_workers.empty());
}

TEST_CASE("parseShowProc rejects what is not show proc output") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "expected a header line starting with \"#<PID>\""},
      {"Unknown command, but maybe one of the following ones is a better match:\n",
       "expected a header line starting with \"#<PID>\", got \"Unknown command"},
      {"#<PID> <type>\n# workers\n12 worker 0 0d00h00m01s 2.6\n", "no master line"},
      {"#<PID> <type>\n100 master 0 0d00h00m01s 2.6\n",
       "line 2: expected \"[failed: N]\" after the master's reload count"},
      {"#<PID> <type>\n100 master 0 [failed: x] 0d00h00m01s 2.6\n", "line 2: bad [failed: N]"},
      {"#<PID> <type>\n100 master 0 [failed: 0] 0d00h00m01s 2.6\n# workers\n"
       "abc worker 0 0d00h00m01s 2.6\n",
       "line 4: pid and reloads must be numbers"},
      {"#<PID> <type>\n100 master 0 [failed: 0] 0d00h00m01s 2.6\n# workers\n"
       "101 daemon 0 0d00h00m01s 2.6\n",
       "line 4: unknown process type"},
      {"#<PID> <type>\n100 master 0 [failed: 0] 0d00h00m01s 2.6\n# zombies\n",
       "line 3: unknown section"},
  };
  for (const auto& c : cases) {
    const auto& [text, expected] = c;  // clang 14 cannot capture a binding in CAPTURE's lambda
    CAPTURE(c.first);
    StatusOr<ShowProc> proc = parseShowProc(text);
    REQUIRE_FALSE(proc.ok());
    CHECK(proc.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK_MESSAGE(messageOf(proc.status()).find(expected) != std::string::npos,
                  messageOf(proc.status()));
  }
}

TEST_CASE("parseShowStat reads rows by column name on 2.6 and 2.8") {
  for (const auto& c : std::vector<std::pair<std::string, int>>{{"show_stat_2.6.csv", 9977},
                                                                {"show_stat_2.8.csv", 9971}}) {
    const auto& [file, frontend_slim] = c;
    CAPTURE(c.first);
    StatusOr<std::vector<StatRow>> rows = parseShowStat(testdata(file));
    REQUIRE_MESSAGE(rows.ok(), rows.status().message());
    REQUIRE(rows->size() == 9);
    std::vector<std::string> names;
    for (const StatRow& row : *rows) {
      names.push_back(row.proxy + "/" + row.server);
    }
    CHECK(names == std::vector<std::string>{"fe/FRONTEND", "origin/FRONTEND", "be_app/slot1",
                                            "be_app/slot2", "be_app/slot3", "be_app/BACKEND",
                                            "be_other/slot1", "be_other/slot2",
                                            "be_other/BACKEND"});
    const StatRow& fe = (*rows)[0];
    CHECK(fe.kind == StatKind::kFrontend);
    CHECK(fe.status == "OPEN");
    CHECK(fe.slim == frontend_slim);
    CHECK(fe.stot == 3);
    CHECK(fe.qcur == 0);  // empty in the CSV
    CHECK(fe.addr.empty());
    CHECK((*rows)[1].scur == 2);  // the capture's in-flight connections to `origin`

    const StatRow& slot1 = (*rows)[2];
    CHECK(slot1.kind == StatKind::kServer);
    CHECK(slot1.isServer());
    CHECK(slot1.status == "UP");
    CHECK(slot1.scur == 0);
    CHECK(slot1.qcur == 0);
    CHECK(slot1.slim == 5);  // set maxconn server be_app/slot1 5
    CHECK(slot1.stot == 3);
    CHECK(slot1.weight == 1);
    CHECK(slot1.addr == "127.0.0.1:18002");
    CHECK(slot1.check_status == "L4OK");
    CHECK(slot1.idle_conn_cur == 2);
    CHECK(slot1.safe_conn_cur == 0);
    CHECK(slot1.used_conn_cur == 0);

    CHECK((*rows)[3].status == "DRAIN");
    const StatRow& slot3 = (*rows)[4];
    CHECK(slot3.status == "MAINT");
    CHECK(slot3.addr == "127.0.0.1:1");
    CHECK(slot3.check_status.empty());
    const StatRow& backend = (*rows)[5];
    CHECK(backend.kind == StatKind::kBackend);
    CHECK(backend.status == "UP");
    CHECK(backend.slim == 998);
    CHECK((*rows)[6].addr == "127.0.0.1:18003");
    CHECK((*rows)[6].status == "UP");
  }
}

TEST_CASE("parseShowStat unquotes fields and finds the kind without a type column") {
  StatusOr<std::vector<StatRow>> rows = parseShowStat(
      "# pxname,svname,qcur,scur,status,check_status,addr\n"
      "px,FRONTEND,,4,OPEN,,\n"
      "px,\"a,b\",1,2,\"no check\",\"L7STS\",\"10.0.0.1:80\"\n"
      "px,BACKEND,1,6,UP,,\n");
  REQUIRE_MESSAGE(rows.ok(), rows.status().message());
  REQUIRE(rows->size() == 3);
  CHECK((*rows)[0].kind == StatKind::kFrontend);
  CHECK((*rows)[0].scur == 4);
  CHECK((*rows)[1].kind == StatKind::kServer);
  CHECK((*rows)[1].server == "a,b");
  CHECK((*rows)[1].status == "no check");
  CHECK((*rows)[1].qcur == 1);
  CHECK((*rows)[1].addr == "10.0.0.1:80");
  CHECK((*rows)[2].kind == StatKind::kBackend);
}

TEST_CASE("parseShowStat rejects malformed CSV") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "expected a header line starting with \"# pxname,\""},
      {"pxname,svname\n", "expected a header line starting with \"# pxname,\""},
      {"# pxname,svname,scur,qcur\n", "header has no 'status' column"},
      {"# pxname,svname,qcur,scur,status\npx,srv,0,1\n", "line 2 has 4 fields, the header 5"},
      {"# pxname,svname,qcur,scur,status\npx,srv,0,many,UP\n",
       "line 2: scur is not an integer: \"many\""},
      {"# pxname,svname,qcur,scur,status\npx,\"srv,0,1,UP\n", "line 2: unterminated quoted field"},
      {"# pxname,svname,qcur,scur,status,type\npx,srv,0,1,UP,7\n", "line 2: unknown type \"7\""},
  };
  for (const auto& c : cases) {
    const auto& [text, expected] = c;  // clang 14 cannot capture a binding in CAPTURE's lambda
    CAPTURE(c.first);
    StatusOr<std::vector<StatRow>> rows = parseShowStat(text);
    REQUIRE_FALSE(rows.ok());
    CHECK(rows.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK_MESSAGE(messageOf(rows.status()).find(expected) != std::string::npos,
                  messageOf(rows.status()));
  }
}

TEST_CASE("parseServersState reads addresses, ports and admin bits on 2.6 and 2.8") {
  for (const std::string file : {"show_servers_state_2.6.txt", "show_servers_state_2.8.txt"}) {
    CAPTURE(file);
    StatusOr<std::vector<ServerStateRow>> rows = parseServersState(testdata(file));
    REQUIRE_MESSAGE(rows.ok(), rows.status().message());
    REQUIRE(rows->size() == 5);
    struct Expected {
      int backend_id;
      std::string backend;
      int server_id;
      std::string server;
      int port;
      int op_state;
      int admin_state;
      int check_port;
      bool maint;
      bool draining;
    };
    const std::vector<Expected> expected = {
        // A `disabled` slot made ready keeps CMAINT (4) and is not in maintenance.
        {4, "be_app", 1, "slot1", 18002, ServerOp::kRunning, 4, 0, false, false},
        {4, "be_app", 2, "slot2", 18002, ServerOp::kRunning, 12, 0, false, true},
        {4, "be_app", 3, "slot3", 1, ServerOp::kStopped, 5, 0, true, false},
        {5, "be_other", 1, "slot1", 18003, ServerOp::kRunning, 4, 18002, false, false},
        {5, "be_other", 2, "slot2", 1, ServerOp::kStopped, 5, 0, true, false},
    };
    for (size_t i = 0; i < expected.size(); ++i) {
      CAPTURE(i);
      const ServerStateRow& row = (*rows)[i];
      const Expected& e = expected[i];
      CHECK(row.backend_id == e.backend_id);
      CHECK(row.backend == e.backend);
      CHECK(row.server_id == e.server_id);
      CHECK(row.server == e.server);
      CHECK(row.addr == "127.0.0.1");
      CHECK(row.port == e.port);
      CHECK(row.op_state == e.op_state);
      CHECK(row.admin_state == e.admin_state);
      CHECK(row.check_port == e.check_port);
      CHECK(row.inMaintenance() == e.maint);
      CHECK(row.draining() == e.draining);
    }
  }
}

TEST_CASE("parseServersState rejects malformed input") {
  const std::string header =
      "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_port "
      "srv_check_port\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "expected format version \"1\" on the first line"},
      {"2\n" + header, "expected format version \"1\" on the first line, got \"2\""},
      {"1\n3 be 1 s 127.0.0.1 2 0 80 0\n", "expected a header line \"# be_id be_name ...\""},
      {"1\n# be_id be_name srv_id srv_name srv_addr\n", "header has no 'srv_port' column"},
      {"1\n" + header + "3 be 1 s 127.0.0.1 2 0 80\n", "line 3 has 8 fields, the header 9"},
      {"1\n" + header + "3 be 1 s 127.0.0.1 2 0 http 0\n",
       "line 3: srv_port is not an integer: \"http\""},
  };
  for (const auto& c : cases) {
    const auto& [text, expected] = c;  // clang 14 cannot capture a binding in CAPTURE's lambda
    CAPTURE(c.first);
    StatusOr<std::vector<ServerStateRow>> rows = parseServersState(text);
    REQUIRE_FALSE(rows.ok());
    CHECK_MESSAGE(messageOf(rows.status()).find(expected) != std::string::npos,
                  messageOf(rows.status()));
  }
}

TEST_CASE("parseShowMap keeps the order and the rest of the line as the value") {
  for (const std::string file : {"show_map_2.6.txt", "show_map_2.8.txt"}) {
    CAPTURE(file);
    StatusOr<std::vector<MapEntry>> entries = parseShowMap(testdata(file));
    REQUIRE_MESSAGE(entries.ok(), entries.status().message());
    CHECK(*entries == std::vector<MapEntry>{{"/app", "app_main"},
                                            {"/other/path", "be_other"},
                                            {"/spaced", "value with spaces"},
                                            {"/added", "be_other"}});
  }
  StatusOr<std::vector<MapEntry>> empty = parseShowMap("\n");
  REQUIRE(empty.ok());
  CHECK(empty->empty());
}

TEST_CASE("parseShowMap rejects anything but entries") {
  for (const std::string& text :
       {std::string("Unknown map identifier. Please use #<id> or <file>.\n\n"),
        std::string(testdata("show_map_list_2.6.txt")), std::string("0x1234\n"),
        std::string("0x1234  value\n")}) {
    CAPTURE(text);
    StatusOr<std::vector<MapEntry>> entries = parseShowMap(text);
    REQUIRE_FALSE(entries.ok());
    CHECK_MESSAGE(messageOf(entries.status()).find("line 1: expected \"0x<ref> <key> <value>\"") !=
                      std::string::npos,
                  messageOf(entries.status()));
  }
  StatusOr<std::vector<MapEntry>> unknown =
      parseShowMap("Unknown map identifier. Please use #<id> or <file>.\n");
  CHECK(messageOf(unknown.status()).find("Unknown map identifier") != std::string::npos);
}

TEST_CASE("parseShowInfo reads the answering pid and version") {
  struct Case {
    std::string file;
    int pid;
    std::string version;
  };
  for (const Case& c : std::vector<Case>{{"show_info_2.6.txt", 6471, "2.6.12-1+deb12u4"},
                                         {"show_info_2.8.txt", 6535, "2.8.25-5cf5d0683"}}) {
    CAPTURE(c.file);
    StatusOr<ShowInfo> info = parseShowInfo(testdata(c.file));
    REQUIRE_MESSAGE(info.ok(), info.status().message());
    CHECK(info->pid == c.pid);
    CHECK(info->version == c.version);
    CHECK(info->uptime_sec == 1);
    CHECK(info->curr_conns == 2);
    CHECK_FALSE(info->stopping);
  }
  StatusOr<ShowInfo> stopping = parseShowInfo("Version: 2.6\nPid: 12\nStopping: 1\n");
  REQUIRE(stopping.ok());
  CHECK(stopping->stopping);
}

TEST_CASE("parseShowInfo rejects malformed input") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "show info: no Pid line"},
      {"Version: 2.6\n", "show info: no Pid line"},
      {"Pid: 12\n", "show info: no Version line"},
      {"Version: 2.6\nPid: twelve\n", "line 2: Pid is not an integer: \"twelve\""},
      {"Unknown command.\n", "line 1: expected \"<name>: <value>\""},
  };
  for (const auto& c : cases) {
    const auto& [text, expected] = c;  // clang 14 cannot capture a binding in CAPTURE's lambda
    CAPTURE(c.first);
    StatusOr<ShowInfo> info = parseShowInfo(text);
    REQUIRE_FALSE(info.ok());
    CHECK_MESSAGE(messageOf(info.status()).find(expected) != std::string::npos,
                  messageOf(info.status()));
  }
}

TEST_CASE("parseReloadReply: 2.6 answers nothing, 2.8 answers Success=0|1 and the log") {
  for (const std::string file : {"reload_reply_success_2.6.txt", "reload_reply_failure_2.6.txt"}) {
    CAPTURE(file);
    StatusOr<ReloadReply> reply = parseReloadReply(testdata(file));
    REQUIRE(reply.ok());
    CHECK(reply->kind == ReloadReply::Kind::kNoStatus);
    CHECK(reply->startup_log.empty());
  }
  StatusOr<ReloadReply> success = parseReloadReply(testdata("reload_reply_success_2.8.txt"));
  REQUIRE(success.ok());
  CHECK(success->kind == ReloadReply::Kind::kSucceeded);
  CHECK(success->startup_log ==
        "[NOTICE]   (6531) : New worker (6572) forked\n[NOTICE]   (6531) : Loading success.");

  StatusOr<ReloadReply> failure = parseReloadReply(testdata("reload_reply_failure_2.8.txt"));
  REQUIRE(failure.ok());
  CHECK(failure->kind == ReloadReply::Kind::kFailed);
  CHECK(alertLines(failure->startup_log) ==
        std::vector<std::string>{
            "[ALERT] config : parsing [/tmp/haproxy-capture-2.8/haproxy.cfg:27] : unknown keyword "
            "'bogus_directive' in 'backend' section",
            "[ALERT] config : Error(s) found in configuration file : "
            "/tmp/haproxy-capture-2.8/haproxy.cfg",
            "[ALERT] config : Fatal errors found in configuration."});

  StatusOr<ReloadReply> other = parseReloadReply("Unknown command.\n");
  REQUIRE_FALSE(other.ok());
  CHECK(messageOf(other.status()).find("expected \"Success=0|1\" or nothing") != std::string::npos);
}

TEST_CASE("alertLines keeps HAProxy's ALERT lines without colours or pids") {
  CHECK(alertLines(testdata("check_invalid_2.6.txt")) ==
        std::vector<std::string>{
            "[ALERT] config : parsing [/tmp/haproxy-capture-2.6/haproxy.cfg:27] : unknown keyword "
            "'bogus_directive' in 'backend' section",
            "[ALERT] config : Error(s) found in configuration file : "
            "/tmp/haproxy-capture-2.6/haproxy.cfg",
            "[ALERT] config : Fatal errors found in configuration."});
  CHECK(alertLines("\x1b[1;31m[ALERT]\x1b[0m    (12) : config : bad\r\n[WARNING] (12) : meh\n") ==
        std::vector<std::string>{"[ALERT] config : bad"});
  CHECK(alertLines("[NOTICE] (1) : fine\n").empty());
}

TEST_CASE("quoteForError keeps HAProxy's text readable") {
  CHECK(quoteForError("no need to change the addr, problem converting port 'x' to an int") ==
        "\"no need to change the addr, problem converting port 'x' to an int\"");
  CHECK(quoteForError("No such server.\nKey not found.") == "\"No such server.\\nKey not found.\"");
  CHECK(quoteForError("a\"b\\c\x01") == "\"a\\\"b\\\\c\\x01\"");
  CHECK(quoteForError("abcdef", 3) == "\"abc...\"");
}

}  // namespace
}  // namespace serve::manager
