#include "haproxy-manager/haproxy/show_parsers.h"

#include <algorithm>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace serve::manager {
namespace {

// Lines without their terminators; a final empty line (the blank line HAProxy ends most replies
// with) is not returned.
std::vector<absl::string_view> lines(absl::string_view text) {
  std::vector<absl::string_view> out = absl::StrSplit(text, '\n');
  for (absl::string_view& line : out) {
    absl::ConsumeSuffix(&line, "\r");
  }
  while (!out.empty() && absl::StripAsciiWhitespace(out.back()).empty()) {
    out.pop_back();
  }
  return out;
}

std::string quote(absl::string_view text) {
  return quoteForError(std::string_view(text.data(), text.size()), 200);
}

template <typename Int>
StatusOr<Int> toInt(absl::string_view field, absl::string_view what, size_t line_no) {
  Int value = 0;
  if (!absl::SimpleAtoi(field, &value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("line ", line_no, ": ", what, " is not an integer: ", quote(field)));
  }
  return value;
}

// Column name -> index, from a header's names.
class Columns {
 public:
  Columns(const std::vector<std::string>& names, absl::string_view context) : context_(context) {
    for (size_t i = 0; i < names.size(); ++i) {
      if (!names[i].empty()) {
        index_.emplace(names[i], i);  // first occurrence wins
      }
    }
  }
  StatusOr<size_t> require(const std::string& name) const {
    auto it = index_.find(name);
    if (it == index_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(context_, ": header has no '", name, "' column"));
    }
    return it->second;
  }
  std::optional<size_t> find(const std::string& name) const {
    auto it = index_.find(name);
    return it == index_.end() ? std::nullopt : std::optional<size_t>(it->second);
  }

 private:
  std::string context_;
  std::map<std::string, size_t> index_;
};

// One CSV record, RFC 4180 quoting ("a,b" and "" inside quotes), as HAProxy's csv_enc writes.
StatusOr<std::vector<std::string>> splitCsv(absl::string_view line, size_t line_no) {
  std::vector<std::string> fields;
  std::string field;
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < line.size() && line[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          quoted = false;
        }
      } else {
        field += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields.push_back(std::move(field));
      field.clear();
    } else {
      field += c;
    }
  }
  if (quoted) {
    return absl::InvalidArgumentError(
        absl::StrCat("show stat: line ", line_no, ": unterminated quoted field"));
  }
  fields.push_back(std::move(field));
  return fields;
}

StatusOr<int64_t> statNumber(const std::vector<std::string>& row, std::optional<size_t> column,
                             absl::string_view name, size_t line_no) {
  if (!column.has_value() || row[*column].empty()) {
    return 0;
  }
  StatusOr<int64_t> value = toInt<int64_t>(row[*column], name, line_no);
  if (!value.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("show stat: ", messageOf(value.status())));
  }
  return value;
}

}  // namespace

StatusOr<std::vector<StatRow>> parseShowStat(std::string_view csv_std) {
  const absl::string_view csv(csv_std.data(), csv_std.size());
  const std::vector<absl::string_view> all = lines(csv);
  if (all.empty() || !absl::StartsWith(all[0], "# pxname,")) {
    return absl::InvalidArgumentError(
        absl::StrCat("show stat: expected a header line starting with \"# pxname,\", got ",
                     quote(all.empty() ? absl::string_view() : all[0])));
  }
  StatusOr<std::vector<std::string>> names = splitCsv(all[0].substr(2), 1);
  if (!names.ok()) {
    return names.status();
  }
  const size_t width = names->size();
  const Columns columns(*names, "show stat");
  StatusOr<size_t> pxname = columns.require("pxname");
  StatusOr<size_t> svname = columns.require("svname");
  StatusOr<size_t> status = columns.require("status");
  StatusOr<size_t> scur = columns.require("scur");
  StatusOr<size_t> qcur = columns.require("qcur");
  for (const auto* required : {&pxname, &svname, &status, &scur, &qcur}) {
    if (!required->ok()) {
      return required->status();
    }
  }
  const std::optional<size_t> type = columns.find("type");

  std::vector<StatRow> rows;
  for (size_t i = 1; i < all.size(); ++i) {
    const size_t line_no = i + 1;
    if (all[i].empty()) {
      continue;
    }
    StatusOr<std::vector<std::string>> fields = splitCsv(all[i], line_no);
    if (!fields.ok()) {
      return fields.status();
    }
    if (fields->size() != width) {
      return absl::InvalidArgumentError(absl::StrCat("show stat: line ", line_no, " has ",
                                                     fields->size(), " fields, the header ", width,
                                                     ": ", quote(all[i])));
    }
    const std::vector<std::string>& f = *fields;
    StatRow row;
    row.proxy = f[*pxname];
    row.server = f[*svname];
    row.status = f[*status];
    if (type.has_value() && !f[*type].empty()) {
      StatusOr<int> kind = toInt<int>(f[*type], "type", line_no);
      if (!kind.ok() || *kind < 0 || *kind > 3) {
        return absl::InvalidArgumentError(
            absl::StrCat("show stat: line ", line_no, ": unknown type ", quote(f[*type])));
      }
      static constexpr StatKind kKinds[] = {StatKind::kFrontend, StatKind::kBackend,
                                            StatKind::kServer, StatKind::kListener};
      row.kind = kKinds[*kind];
    } else if (row.server == "FRONTEND") {
      row.kind = StatKind::kFrontend;
    } else if (row.server == "BACKEND") {
      row.kind = StatKind::kBackend;
    }
    struct NumberColumn {
      const char* name;
      int64_t* out;
    };
    const NumberColumn numbers[] = {
        {"scur", &row.scur},
        {"qcur", &row.qcur},
        {"slim", &row.slim},
        {"stot", &row.stot},
        {"econ", &row.econ},
        {"weight", &row.weight},
        {"used_conn_cur", &row.used_conn_cur},
        {"idle_conn_cur", &row.idle_conn_cur},
        {"safe_conn_cur", &row.safe_conn_cur},
    };
    for (const NumberColumn& number : numbers) {
      StatusOr<int64_t> value = statNumber(f, columns.find(number.name), number.name, line_no);
      if (!value.ok()) {
        return value.status();
      }
      *number.out = *value;
    }
    if (std::optional<size_t> addr = columns.find("addr"); addr.has_value()) {
      row.addr = f[*addr];
    }
    if (std::optional<size_t> check = columns.find("check_status"); check.has_value()) {
      row.check_status = f[*check];
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

StatusOr<std::vector<ServerStateRow>> parseServersState(std::string_view text_std) {
  const absl::string_view text(text_std.data(), text_std.size());
  const std::vector<absl::string_view> all = lines(text);
  if (all.empty() || absl::StripAsciiWhitespace(all[0]) != "1") {
    return absl::InvalidArgumentError(
        absl::StrCat("show servers state: expected format version \"1\" on the first line, got ",
                     quote(all.empty() ? absl::string_view() : all[0])));
  }
  if (all.size() < 2 || !absl::StartsWith(all[1], "# ")) {
    return absl::InvalidArgumentError(
        absl::StrCat("show servers state: expected a header line \"# be_id be_name ...\", got ",
                     quote(all.size() < 2 ? absl::string_view() : all[1])));
  }
  const std::vector<std::string> names = absl::StrSplit(all[1].substr(2), ' ', absl::SkipEmpty());
  const Columns columns(names, "show servers state");
  std::map<std::string, size_t> at;  // the columns used, by name
  for (const char* name : {"be_id", "be_name", "srv_id", "srv_name", "srv_addr", "srv_port",
                           "srv_op_state", "srv_admin_state", "srv_check_port"}) {
    StatusOr<size_t> index = columns.require(name);
    if (!index.ok()) {
      return index.status();
    }
    at[name] = *index;
  }

  std::vector<ServerStateRow> rows;
  for (size_t i = 2; i < all.size(); ++i) {
    const size_t line_no = i + 1;
    if (all[i].empty()) {
      continue;
    }
    const std::vector<absl::string_view> f = absl::StrSplit(all[i], ' ', absl::SkipEmpty());
    if (f.size() != names.size()) {
      return absl::InvalidArgumentError(absl::StrCat("show servers state: line ", line_no, " has ",
                                                     f.size(), " fields, the header ", names.size(),
                                                     ": ", quote(all[i])));
    }
    ServerStateRow row;
    row.backend = std::string(f[at["be_name"]]);
    row.server = std::string(f[at["srv_name"]]);
    row.addr = std::string(f[at["srv_addr"]]);
    const std::pair<const char*, int*> numbers[] = {{"be_id", &row.backend_id},
                                                    {"srv_id", &row.server_id},
                                                    {"srv_port", &row.port},
                                                    {"srv_op_state", &row.op_state},
                                                    {"srv_admin_state", &row.admin_state},
                                                    {"srv_check_port", &row.check_port}};
    for (const auto& [name, out] : numbers) {
      StatusOr<int> value = toInt<int>(f[at[name]], name, line_no);
      if (!value.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("show servers state: ", messageOf(value.status())));
      }
      *out = *value;
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

StatusOr<std::vector<MapEntry>> parseShowMap(std::string_view text_std) {
  const absl::string_view text(text_std.data(), text_std.size());
  std::vector<MapEntry> entries;
  const std::vector<absl::string_view> all = lines(text);
  for (size_t i = 0; i < all.size(); ++i) {
    const absl::string_view line = all[i];
    const size_t ref_end = line.find(' ');
    const size_t key_end =
        ref_end == absl::string_view::npos ? ref_end : line.find(' ', ref_end + 1);
    if (!absl::StartsWith(line, "0x") || ref_end == absl::string_view::npos ||
        ref_end + 1 == key_end || ref_end + 1 == line.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "show map: line ", i + 1, ": expected \"0x<ref> <key> <value>\", got ", quote(line)));
    }
    MapEntry entry;
    if (key_end == absl::string_view::npos) {
      entry.key = std::string(line.substr(ref_end + 1));
    } else {
      entry.key = std::string(line.substr(ref_end + 1, key_end - ref_end - 1));
      entry.value = std::string(line.substr(key_end + 1));
    }
    entries.push_back(std::move(entry));
  }
  return entries;
}

std::optional<int> ShowProc::currentWorkerPid() const {
  if (workers.empty()) {
    return std::nullopt;
  }
  const auto newest = std::min_element(
      workers.begin(), workers.end(),
      [](const ProcEntry& a, const ProcEntry& b) { return a.reloads < b.reloads; });
  return newest->pid;
}

StatusOr<ShowProc> parseShowProc(std::string_view text_std) {
  const absl::string_view text(text_std.data(), text_std.size());
  const std::vector<absl::string_view> all = lines(text);
  if (all.empty() || !absl::StartsWith(all[0], "#<PID>")) {
    return absl::InvalidArgumentError(
        absl::StrCat("show proc: expected a header line starting with \"#<PID>\", got ",
                     quote(all.empty() ? absl::string_view() : all[0])));
  }
  enum class Section { kMaster, kWorkers, kOldWorkers, kPrograms };
  Section section = Section::kMaster;
  ShowProc proc;
  bool have_master = false;
  for (size_t i = 1; i < all.size(); ++i) {
    const size_t line_no = i + 1;
    const absl::string_view line = absl::StripAsciiWhitespace(all[i]);
    if (line.empty()) {
      continue;
    }
    if (line[0] == '#') {
      const absl::string_view name = absl::StripAsciiWhitespace(line.substr(1));
      if (name == "workers") {
        section = Section::kWorkers;
      } else if (name == "old workers") {
        section = Section::kOldWorkers;
      } else if (name == "programs" || name == "old programs") {
        section = Section::kPrograms;
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("show proc: line ", line_no, ": unknown section ", quote(line)));
      }
      continue;
    }
    if (section == Section::kPrograms) {
      continue;  // `program` sections: not ours
    }
    const std::vector<absl::string_view> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    auto malformed = [&](absl::string_view why) {
      return absl::InvalidArgumentError(
          absl::StrCat("show proc: line ", line_no, ": ", why, ": ", quote(line)));
    };
    if (f.size() < 4) {
      return malformed("expected <pid> <type> <reloads> <uptime> [<version>]");
    }
    ProcEntry entry;
    StatusOr<int> pid = toInt<int>(f[0], "pid", line_no);
    StatusOr<int> reloads = toInt<int>(f[2], "reloads", line_no);
    if (!pid.ok() || !reloads.ok() || *pid <= 0 || *reloads < 0) {
      return malformed("pid and reloads must be numbers");
    }
    entry.pid = *pid;
    entry.reloads = *reloads;
    size_t next = 3;
    if (f[1] == "master") {
      if (section != Section::kMaster || have_master) {
        return malformed("unexpected master line");
      }
      // "[failed: N]" follows the master's reload count.
      if (f.size() >= next + 2 && f[next] == "[failed:" && absl::EndsWith(f[next + 1], "]")) {
        StatusOr<int> failed =
            toInt<int>(absl::StripSuffix(f[next + 1], "]"), "failed reloads", line_no);
        if (!failed.ok()) {
          return malformed("bad [failed: N]");
        }
        proc.failed_reloads = *failed;
        next += 2;
      } else {
        return malformed("expected \"[failed: N]\" after the master's reload count");
      }
    } else if (f[1] == "worker") {
      if (section == Section::kMaster) {
        return malformed("worker line before \"# workers\"");
      }
    } else {
      return malformed("unknown process type");
    }
    if (f.size() <= next) {
      return malformed("missing uptime");
    }
    entry.uptime = std::string(f[next]);
    if (f.size() > next + 1) {
      entry.version = std::string(f[next + 1]);
    }
    if (f[1] == "master") {
      proc.master = std::move(entry);
      have_master = true;
    } else if (section == Section::kWorkers) {
      proc.workers.push_back(std::move(entry));
    } else {
      proc.old_workers.push_back(std::move(entry));
    }
  }
  if (!have_master) {
    return absl::InvalidArgumentError("show proc: no master line");
  }
  return proc;
}

StatusOr<ShowInfo> parseShowInfo(std::string_view text_std) {
  const absl::string_view text(text_std.data(), text_std.size());
  ShowInfo info;
  bool have_pid = false;
  bool have_version = false;
  const std::vector<absl::string_view> all = lines(text);
  for (size_t i = 0; i < all.size(); ++i) {
    const size_t line_no = i + 1;
    const size_t colon = all[i].find(": ");
    if (colon == absl::string_view::npos) {
      if (absl::StripAsciiWhitespace(all[i]).empty()) {
        continue;
      }
      return absl::InvalidArgumentError(absl::StrCat(
          "show info: line ", line_no, ": expected \"<name>: <value>\", got ", quote(all[i])));
    }
    const absl::string_view key = all[i].substr(0, colon);
    const absl::string_view value = all[i].substr(colon + 2);
    auto number = [&](int64_t* out) -> Status {
      StatusOr<int64_t> n = toInt<int64_t>(value, key, line_no);
      if (!n.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("show info: ", messageOf(n.status())));
      }
      *out = *n;
      return absl::OkStatus();
    };
    Status status;
    if (key == "Pid") {
      int64_t pid = 0;
      status = number(&pid);
      info.pid = static_cast<int>(pid);
      have_pid = status.ok();
    } else if (key == "Version") {
      info.version = std::string(value);
      have_version = true;
    } else if (key == "Uptime_sec") {
      status = number(&info.uptime_sec);
    } else if (key == "CurrConns") {
      status = number(&info.curr_conns);
    } else if (key == "Stopping") {
      int64_t stopping = 0;
      status = number(&stopping);
      info.stopping = stopping != 0;
    }
    if (!status.ok()) {
      return status;
    }
  }
  if (!have_pid || !have_version) {
    return absl::InvalidArgumentError(absl::StrCat("show info: no ", have_pid ? "Version" : "Pid",
                                                   " line in ", quote(all.empty() ? "" : all[0])));
  }
  return info;
}

StatusOr<ReloadReply> parseReloadReply(std::string_view text_std) {
  const absl::string_view text(text_std.data(), text_std.size());
  ReloadReply reply;
  if (absl::StripAsciiWhitespace(text).empty()) {
    return reply;  // 2.6: the master re-executes itself and answers nothing
  }
  absl::string_view rest = text;
  absl::string_view first = rest.substr(0, rest.find('\n'));
  absl::ConsumeSuffix(&first, "\r");
  if (first == "Success=1") {
    reply.kind = ReloadReply::Kind::kSucceeded;
  } else if (first == "Success=0") {
    reply.kind = ReloadReply::Kind::kFailed;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("reload: expected \"Success=0|1\" or nothing, got ", quote(text)));
  }
  const size_t separator = text.find("\n--\n");
  if (separator != absl::string_view::npos) {
    reply.startup_log = std::string(absl::StripTrailingAsciiWhitespace(text.substr(separator + 4)));
  }
  return reply;
}

std::string quoteForError(std::string_view text, size_t max_chars) {
  std::string out = "\"";
  for (size_t i = 0; i < text.size() && i < max_chars; ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      out += absl::StrCat("\\x", absl::Hex(c, absl::kZeroPad2));
    } else {
      out += static_cast<char>(c);
    }
  }
  if (text.size() > max_chars) {
    out += "...";
  }
  return out + "\"";
}

std::vector<std::string> alertLines(std::string_view log_std) {
  const absl::string_view log(log_std.data(), log_std.size());
  std::vector<std::string> out;
  for (absl::string_view raw : absl::StrSplit(log, '\n')) {
    // Drop terminal colour sequences (ESC '[' ... letter), which HAProxy emits on a tty.
    std::string line;
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '\x1b' && i + 1 < raw.size() && raw[i + 1] == '[') {
        i += 2;
        while (i < raw.size() && !absl::ascii_isalpha(static_cast<unsigned char>(raw[i]))) {
          ++i;
        }
        continue;
      }
      if (raw[i] != '\r') {
        line += raw[i];
      }
    }
    absl::string_view rest = line;
    if (!absl::ConsumePrefix(&rest, "[ALERT]")) {
      continue;
    }
    rest = absl::StripLeadingAsciiWhitespace(rest);
    // "(6514) : " - the pid of the process that logged.
    if (absl::StartsWith(rest, "(")) {
      const size_t close = rest.find(')');
      if (close != absl::string_view::npos) {
        rest = absl::StripLeadingAsciiWhitespace(rest.substr(close + 1));
        absl::ConsumePrefix(&rest, ":");
        rest = absl::StripLeadingAsciiWhitespace(rest);
      }
    }
    out.push_back(absl::StrCat("[ALERT] ", absl::StripTrailingAsciiWhitespace(rest)));
  }
  return out;
}

}  // namespace serve::manager
