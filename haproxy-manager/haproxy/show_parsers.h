#pragma once

// Parsers for what HAProxy answers on its admin socket (`show stat`, `show servers state`,
// `show map <file>`, `show info`), its master CLI (`show proc`, `reload`) and `haproxy -c`.
// Pure functions over text; every format here was checked against HAProxy 2.6.12 and 2.8.25 and
// is pinned by verbatim captures in tests/testdata/haproxy/. Columns are found by their header
// names, never by position, because each version appends columns (2.8's `show stat` has ten
// more than 2.6's). Malformed input is an error naming what was wrong, never a partial result.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace serve::manager {

// ---- show stat -------------------------------------------------------------------------------

enum class StatKind { kFrontend, kBackend, kServer, kListener };

// One CSV row. Numbers HAProxy leaves empty (a counter that does not apply to the row, such as
// `qcur` on a frontend) read as 0.
struct StatRow {
  std::string proxy;   // pxname
  std::string server;  // svname: the server's name, or FRONTEND / BACKEND
  StatKind kind = StatKind::kServer;
  std::string status;  // UP, DOWN, MAINT, DRAIN, "no check", OPEN, "UP 1/2" (rising), ...
  int64_t scur = 0;    // current sessions
  int64_t qcur = 0;    // requests waiting in the queue
  int64_t slim = 0;    // session limit (a server's maxconn); 0 = none
  int64_t stot = 0;    // sessions since start
  int64_t econ = 0;    // connection errors (servers and backends)
  int64_t weight = 0;
  std::string addr;          // a server's "ip:port"; empty for frontends and backends
  std::string check_status;  // L4OK, L7OK, L4CON, ... ; empty when not checked
  // Connections to the server that are in use / idle / idle and known reusable. A slot is
  // idle only when these, scur and qcur are all 0 (absent columns read as 0).
  int64_t used_conn_cur = 0;
  int64_t idle_conn_cur = 0;
  int64_t safe_conn_cur = 0;

  bool isServer() const { return kind == StatKind::kServer; }
};

// `show stat` CSV: a header line "# pxname,svname,..." then one row per frontend, server,
// backend (and listener, with `option socket-stats`). Quoted fields are unquoted.
StatusOr<std::vector<StatRow>> parseShowStat(std::string_view csv);

// ---- show servers state ----------------------------------------------------------------------

// srv_admin_state bits (include/haproxy/server-t.h, the same in 2.6 and 2.8).
struct ServerAdmin {
  static constexpr int kForcedMaint = 0x01;      // FMAINT: `set server ... state maint`
  static constexpr int kInheritedMaint = 0x02;   // IMAINT: from a tracked server
  static constexpr int kConfigMaint = 0x04;      // CMAINT: `disabled` in the config
  static constexpr int kForcedDrain = 0x08;      // FDRAIN: `set server ... state drain`
  static constexpr int kInheritedDrain = 0x10;   // IDRAIN
  static constexpr int kResolutionMaint = 0x20;  // RMAINT: address resolution failed
  static constexpr int kFqdnChanged = 0x40;      // 2.6 calls it HMAINT: fqdn set at runtime
  // HAProxy's SRV_ADMF_MAINT. CMAINT is deliberately not part of it: a server declared
  // `disabled` keeps CMAINT after `set server ... state ready` (captured: a ready slot of a
  // `server-template ... disabled` line reads admin state 4, a draining one 12), so CMAINT
  // alone does not mean "in maintenance".
  static constexpr int kMaintMask = kForcedMaint | kInheritedMaint | kResolutionMaint;
  static constexpr int kDrainMask = kForcedDrain | kInheritedDrain;
};

// srv_op_state values.
struct ServerOp {
  static constexpr int kStopped = 0;  // down (or in maintenance)
  static constexpr int kStarting = 1;
  static constexpr int kRunning = 2;
  static constexpr int kStopping = 3;
};

struct ServerStateRow {
  int backend_id = 0;
  std::string backend;  // be_name
  int server_id = 0;
  std::string server;   // srv_name
  std::string addr;     // srv_addr
  int port = 0;         // srv_port
  int op_state = 0;     // ServerOp
  int admin_state = 0;  // ServerAdmin bits
  int check_port = 0;   // srv_check_port; 0 = checks use `port`

  bool inMaintenance() const { return (admin_state & ServerAdmin::kMaintMask) != 0; }
  bool draining() const { return !inMaintenance() && (admin_state & ServerAdmin::kDrainMask) != 0; }
};

// `show servers state`: a format version line ("1"), a header "# be_id be_name srv_id ...", then
// one space-separated row per server (the same text HAProxy writes to a server-state file).
StatusOr<std::vector<ServerStateRow>> parseServersState(std::string_view text);

// ---- show map <file> -------------------------------------------------------------------------

struct MapEntry {
  std::string key;
  std::string value;
  bool operator==(const MapEntry&) const = default;
};

// Lines "0x55a881898b40 <key> <value>", in the map's order; the value is the rest of the line
// (a map file's value may contain spaces). Any other line, such as "Unknown map identifier...",
// is an error that quotes it.
StatusOr<std::vector<MapEntry>> parseShowMap(std::string_view text);

// ---- show proc (master CLI) ------------------------------------------------------------------

struct ProcEntry {
  int pid = 0;
  int reloads = 0;     // for a worker: reloads it has lived through (0 = the newest generation)
  std::string uptime;  // e.g. "0d00h00m02s"
  std::string version;
};

// `show proc`, the same layout in 2.6 and 2.8:
//   #<PID>          <type>          <reloads>       <uptime>        <version>
//   6467            master          2 [failed: 1]   0d00h00m03s     2.6.12-1+deb12u4
//   # workers
//   6509            worker          1               0d00h00m01s     2.6.12-1+deb12u4
//   # old workers
//   6471            worker          2               0d00h00m03s     2.6.12-1+deb12u4
//   # programs
// "# workers" lists the current generation, "# old workers" the soft-stopping ones still
// finishing connections. A worker's reload count is not a generation number: after a failed
// reload the current worker reads 1 (it lived through one reload attempt), so only the
// section tells current from old.
struct ShowProc {
  ProcEntry master;
  // The master's "[failed: N]": failed reloads since the last successful one (a successful
  // reload resets it to 0; checked on 2.6 and 2.8), so a failed reload always raises it.
  int failed_reloads = 0;
  std::vector<ProcEntry> workers;
  std::vector<ProcEntry> old_workers;

  // The current worker: the one listed under "# workers" (with several, the one with the
  // fewest reloads, which is the newest). nullopt while none is listed (e.g. mid-reload).
  std::optional<int> currentWorkerPid() const;
};

StatusOr<ShowProc> parseShowProc(std::string_view text);

// ---- show info -------------------------------------------------------------------------------

struct ShowInfo {
  int pid = 0;  // the process answering: a worker's pid on the admin socket
  std::string version;
  int64_t uptime_sec = 0;
  int64_t curr_conns = 0;
  bool stopping = false;  // a soft-stopping (old) worker answers 1
};

// "Key: value" lines; Pid and Version are required.
StatusOr<ShowInfo> parseShowInfo(std::string_view text);

// ---- reload (master CLI) ---------------------------------------------------------------------

// The master's answer to `reload`. 2.6 reloads asynchronously (it re-executes itself) and
// answers nothing; 2.7+ waits for the outcome and answers "Success=1" or "Success=0", a "--"
// line and the startup log of the attempt.
struct ReloadReply {
  enum class Kind { kNoStatus, kSucceeded, kFailed };
  Kind kind = Kind::kNoStatus;
  std::string startup_log;  // the lines after "--"; empty for kNoStatus
};

StatusOr<ReloadReply> parseReloadReply(std::string_view text);

// ---- error messages --------------------------------------------------------------------------

// `text` in double quotes for an error message: newlines shown as \n, other control
// characters as \xNN, quotes and backslashes escaped, cut to `max_chars` (then "...").
std::string quoteForError(std::string_view text, size_t max_chars = 300);

// ---- startup and check logs ------------------------------------------------------------------

// The "[ALERT]" lines of HAProxy's log output (`haproxy -c`, stderr, a reload's startup log),
// with terminal colour codes removed and the "(pid)" column dropped:
//   "[ALERT]    (6514) : config : parsing [h.cfg:27] : unknown keyword 'x' in 'backend' section"
//   -> "[ALERT] config : parsing [h.cfg:27] : unknown keyword 'x' in 'backend' section"
std::vector<std::string> alertLines(std::string_view log);

}  // namespace serve::manager
