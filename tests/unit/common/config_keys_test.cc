#include "common/config_keys.h"

#include <doctest/doctest.h>

#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/env_settings.h"
#include "common/serve_config.h"
#include "replica/app/flags.h"
#include "tests/support/env_lookup.h"

namespace serve::keys {
namespace {

TEST_CASE("ruleText renders a row's range, special value and choices") {
  struct Case {
    std::string_view key;
    std::string rule;
  };
  const std::vector<Case> cases = {
      {"http_options.port", "an integer in [1, 65535]"},
      {"http_options.request_timeout_s", "a number in [0, 86400] (0 = no timeout)"},
      {"http_options.keep_alive_timeout_s", "a number in (0, 86400]"},
      {"deployments[].max_ongoing_requests", "an integer >= 1"},
      {"deployments[].max_queued_requests", "-1 (unbounded) or an integer >= 0"},
      {"deployments[].model.sleep_ms", "a number in [0, 86400000]"},
      {"deployments[].batching.linger_fraction", "a number in [0, 1]"},
      {"deployments[].model.kind", "one of mlp, python, onnx, noop, sleep"},
      {"http_options.host", "an IP address or a host name"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.key);
    CHECK(ruleText(findKey(kServeConfigKeys, c.key)) == c.rule);
  }
  CHECK(ruleText(envKey("RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE")) == "an integer in [1, 1000000]");
  CHECK(ruleText(flagKey("--request-read-timeout-s")) == "a number in [0.1, 3600]");
  CHECK(defaultText(configKey("deployments[].batching.linger_fraction")) == "0.25");
  CHECK(defaultText(configKey("deployments[].model.name")) == "deployment name");
}

TEST_CASE("accepts: the range's ends, the special value, and nothing else") {
  const Key& keep_alive = configKey("http_options.keep_alive_timeout_s");
  CHECK_FALSE(accepts(keep_alive, 0));
  CHECK(accepts(keep_alive, 0.001));
  CHECK(accepts(keep_alive, 86400));
  CHECK_FALSE(accepts(keep_alive, 86400.001));
  CHECK_FALSE(accepts(keep_alive, 1e300));
  const Key& queued = configKey("deployments[].max_queued_requests");
  CHECK(accepts(queued, -1));
  CHECK_FALSE(accepts(queued, -2));
  CHECK(accepts(queued, 0));
  CHECK(accepts(queued, kIntMax));
  CHECK_FALSE(accepts(queued, kIntMax + 1));
}

// ---- docs/configuration.md shows the same rows ----

std::string withoutBackticks(std::string text) {
  std::erase(text, '`');
  return text;
}

std::string trimmed(const std::string& text) {
  const auto first = text.find_first_not_of(' ');
  const auto last = text.find_last_not_of(' ');
  return first == std::string::npos ? "" : text.substr(first, last - first + 1);
}

// The cells of a Markdown table row, without the outer pipes.
std::vector<std::string> cells(const std::string& line) {
  std::vector<std::string> out;
  std::string cell;
  for (std::size_t i = 1; i < line.size(); ++i) {
    if (line[i] == '|' && line[i - 1] != '\\') {
      out.push_back(trimmed(cell));
      cell.clear();
    } else {
      cell += line[i];
    }
  }
  return out;
}

// The rows of the table under `header` (exactly that line), by their first cell.
std::map<std::string, std::vector<std::string>> docTable(const std::string& header) {
  std::ifstream in(SERVE_SOURCE_DIR "/docs/configuration.md");
  REQUIRE(in.good());
  std::map<std::string, std::vector<std::string>> rows;
  std::string line;
  bool inside = false;
  int found = 0;
  while (std::getline(in, line)) {
    if (line == header) {
      inside = true;
      ++found;
      std::getline(in, line);  // |---|---|
      continue;
    }
    if (inside && !line.starts_with("|")) {
      inside = false;
    }
    if (inside) {
      std::vector<std::string> row = cells(line);
      const std::string name = withoutBackticks(row.front());
      CHECK_MESSAGE(rows.count(name) == 0, "listed twice: ", name);
      rows[name] = std::move(row);
    }
  }
  INFO("the header: ", header);
  CHECK(found == 1);
  return rows;
}

std::string unitText(const Key& key) { return key.unit.empty() ? "—" : std::string(key.unit); }

// Checks the doc's rows against `table`; `columns` renders a row's cells as the doc should show
// them, in the doc's column order, without the last (free prose) column.
void checkDocTable(std::span<const Key> table, const std::string& header,
                   const std::function<std::vector<std::string>(const Key&)>& columns,
                   const std::vector<std::size_t>& compared) {
  const std::map<std::string, std::vector<std::string>> doc = docTable(header);
  std::set<std::string> code_names;
  for (const Key& key : table) {
    const std::string name(key.name);
    code_names.insert(name);
    const std::vector<std::string> expected = columns(key);
    std::string expected_row = "| `" + name + "` |";
    for (std::size_t i = 1; i < expected.size(); ++i) {
      expected_row += " " + expected[i] + " |";
    }
    INFO("common/config_keys.h renders the row as: ", expected_row, " ... |");
    auto it = doc.find(name);
    CHECK_MESSAGE(it != doc.end(), "missing from docs/configuration.md: ", name);
    if (it == doc.end()) {
      continue;
    }
    REQUIRE(it->second.size() == expected.size() + 1);
    for (std::size_t column : compared) {
      CAPTURE(column);
      CHECK(withoutBackticks(it->second[column]) == expected[column]);
    }
  }
  for (const auto& entry : doc) {  // not a structured binding: clang 14 cannot capture one
    const std::string& name = entry.first;
    CHECK_MESSAGE(code_names.count(name) == 1,
                  "docs/configuration.md lists a key common/config_keys.h does not: ", name);
  }
}

TEST_CASE("docs/configuration.md: the config keys table is common/config_keys.h's") {
  checkDocTable(kServeConfigKeys, "| key | type | unit | default | accepted | meaning |",
                [](const Key& key) {
                  return std::vector<std::string>{std::string(key.name),
                                                  std::string(typeName(key.type)), unitText(key),
                                                  defaultText(key), ruleText(key)};
                },
                {1, 2, 3, 4});
}

TEST_CASE("docs/configuration.md: the replica's variables are common/config_keys.h's") {
  // Column 2 ("used by") is prose.
  checkDocTable(
      kReplicaEnvKeys, "| variable | default | used by | accepted | meaning |",
      [](const Key& key) {
        return std::vector<std::string>{std::string(key.name), defaultText(key), "", ruleText(key)};
      },
      {1, 3});
}

TEST_CASE("docs/configuration.md: serve-replica's numeric flags are common/config_keys.h's") {
  checkDocTable(kReplicaFlagKeys, "| flag | unit | default | accepted | meaning |",
                [](const Key& key) {
                  return std::vector<std::string>{std::string(key.name), unitText(key),
                                                  defaultText(key), ruleText(key)};
                },
                {1, 2, 3});
}

// ---- the code enforces the rows ----

bool isNumeric(const Key& key) { return key.type == Type::kInt || key.type == Type::kNumber; }

// Values each numeric row must refuse: past each end, the open end itself, and for an integer a
// fraction.
std::vector<std::string> refused(const Key& key) {
  std::vector<std::string> out;
  if (!key.max_is_limit) {
    out.push_back(formatNumber(key.max + 1));
  }
  double below = key.min - 1;
  if (!key.special_meaning.empty() && below == key.special) {
    below -= 1;
  }
  out.push_back(formatNumber(below));
  if (key.min_open) {
    out.push_back(formatNumber(key.min));
  }
  if (key.type == Type::kInt) {
    out.push_back("1.5");
  }
  return out;
}

// Values each numeric row must accept.
std::vector<std::string> acceptedValues(const Key& key) {
  std::vector<std::string> out = {formatNumber(key.max)};
  if (!key.min_open) {
    out.push_back(formatNumber(key.min));
  }
  if (!key.special_meaning.empty()) {
    out.push_back(formatNumber(key.special));
  }
  return out;
}

struct Placed {
  std::string yaml;
  int line = 0;
  std::string path;
};

// A valid config but for `key` set to `value`, and where the error about it must point.
Placed placed(std::string_view key_view, const std::string& value) {
  const std::string key(key_view);
  const std::string app =
      "applications:\n  - {name: app, route_prefix: /app, deployments: [{name: d, model: {kind: "
      "noop}}]}\n";
  for (const std::string section : {"http_options", "grpc_options"}) {
    if (key.starts_with(section + ".")) {
      const std::string field = key.substr(section.size() + 1);
      return {section + ": {" + field + ": " + value + "}\n" + app, 1, key};
    }
  }
  const std::string prefix = "deployments[].";
  REQUIRE(key.starts_with(prefix));
  const std::string rest = key.substr(prefix.size());
  std::string model = "{kind: noop}";
  std::string line7;
  int line = 7;
  if (rest == "model.sleep_ms") {
    model = "{kind: sleep, sleep_ms: " + value + "}";
    line = 6;
  } else if (rest == "model.arena_mb") {
    model = "{kind: python, import_path: 'm:C', arena_mb: " + value + "}";
    line = 6;
  } else if (const auto dot = rest.find('.'); dot != std::string::npos) {
    line7 = rest.substr(0, dot) + ": {" + rest.substr(dot + 1) + ": " + value + "}";
  } else {
    line7 = rest + ": " + value;
  }
  return {
      "applications:\n"
      "  - name: app\n"
      "    route_prefix: /app\n"
      "    deployments:\n"
      "      - name: d\n"
      "        model: " +
          model + "\n        " + line7 + "\n",
      line, "applications[0].deployments[0]." + rest};
}

TEST_CASE("the config parser checks every numeric key against its row, in the row's words") {
  int checked = 0;
  for (const Key& key : kServeConfigKeys) {
    if (!isNumeric(key)) {
      continue;
    }
    CAPTURE(key.name);
    for (const std::string& value : refused(key)) {
      CAPTURE(value);
      const Placed p = placed(key.name, value);
      StatusOr<ServeConfig> config = parseServeConfig(p.yaml, "test.yaml");
      REQUIRE_FALSE(config.ok());
      CHECK(config.status().message() == "test.yaml:" + std::to_string(p.line) + ": " + p.path +
                                             ": expected " + ruleText(key) + ", got " + value);
      ++checked;
    }
    for (const std::string& value : acceptedValues(key)) {
      CAPTURE(value);
      const Placed p = placed(key.name, value);
      StatusOr<ServeConfig> config = parseServeConfig(p.yaml, "test.yaml");
      // grpc_options.port 8000 would collide with the HTTP port; no row's ends are 8000.
      CHECK_MESSAGE(config.ok(), config.status().message());
    }
  }
  CHECK(checked == 42);
}

// What a parsed config holds for each numeric key, to compare with the row's default.
std::map<std::string, double> numericValues(const ServeConfig& c) {
  const DeploymentSpec& d = c.applications.front().deployments.front();
  return {
      {"http_options.port", c.http_options.port},
      {"http_options.request_timeout_s", c.http_options.request_timeout_s},
      {"http_options.keep_alive_timeout_s", c.http_options.keep_alive_timeout_s},
      {"grpc_options.port", c.grpc_options.port},
      {"deployments[].num_replicas", d.num_replicas},
      {"deployments[].max_ongoing_requests", d.max_ongoing_requests},
      {"deployments[].max_queued_requests", d.max_queued_requests},
      {"deployments[].graceful_shutdown_timeout_s", d.graceful_shutdown_timeout_s},
      {"deployments[].ray_actor_options.num_cpus", d.ray_actor_options.num_cpus},
      {"deployments[].ray_actor_options.num_gpus", d.ray_actor_options.num_gpus},
      {"deployments[].model.sleep_ms", d.model.sleep_ms},
      {"deployments[].model.arena_mb", d.model.python.arena_mb},
      {"deployments[].health_check_period_s", d.health_check_period_s},
      {"deployments[].health_check_timeout_s", d.health_check_timeout_s},
      {"deployments[].batching.max_batch_size", d.batching.max_batch_size},
      {"deployments[].batching.batch_wait_timeout_s", d.batching.batch_wait_timeout_s},
      {"deployments[].batching.linger_fraction", d.batching.linger_fraction},
  };
}

TEST_CASE("a config that leaves a numeric key out gets the row's default") {
  StatusOr<ServeConfig> config = parseServeConfig(
      "applications:\n  - {name: app, route_prefix: /app, deployments: [{name: d, model: {kind: "
      "noop}}]}\n",
      "test.yaml");
  REQUIRE(config.ok());
  const std::map<std::string, double> values = numericValues(*config);
  std::size_t numeric = 0;
  for (const Key& key : kServeConfigKeys) {
    if (!isNumeric(key)) {
      continue;
    }
    ++numeric;
    CAPTURE(key.name);
    REQUIRE(values.count(std::string(key.name)) == 1);
    CHECK(values.at(std::string(key.name)) == key.default_value);
  }
  CHECK(numeric == values.size());
}

TEST_CASE("readReplicaEnv checks every numeric variable against its row") {
  const ReplicaEnv defaults;
  const std::map<std::string, double> default_values = {
      {"RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT", defaults.min_http_port},
      {"RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT", defaults.max_http_port},
      {"RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT", defaults.min_grpc_port},
      {"RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT", defaults.max_grpc_port},
      {"RAY_SERVE_DIRECT_INGRESS_PORT_RETRY_COUNT", defaults.port_retry_count},
      {"RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", defaults.min_draining_period_s},
      {"RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE", defaults.request_path_log_buffer_size},
      {"OMP_NUM_THREADS", defaults.omp_num_threads},  // 0: unset
      {"RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH", defaults.grpc_max_message_length},
  };
  std::size_t numeric = 0;
  for (const Key& key : kReplicaEnvKeys) {
    if (!isNumeric(key)) {
      continue;
    }
    ++numeric;
    const std::string name(key.name);
    CAPTURE(name);
    REQUIRE(default_values.count(name) == 1);
    CHECK(default_values.at(name) == key.default_value);
    for (const std::string& value : refused(key)) {
      CAPTURE(value);
      StatusOr<ReplicaEnv> env = readReplicaEnv(testing::envFrom({{name, value}}));
      REQUIRE_FALSE(env.ok());
      CHECK(env.status().message() == name + "=" + value + ": expected " + ruleText(key));
    }
  }
  CHECK(numeric == default_values.size());
}

TEST_CASE("serve-replica checks every numeric flag against its row") {
  const ReplicaFlags defaults;
  const std::map<std::string, double> default_values = {
      {"--http-port", defaults.http_port},
      {"--max-body-bytes", static_cast<double>(defaults.max_body_bytes)},
      {"--http-max-threads", static_cast<double>(defaults.http_max_threads)},
      {"--max-connections", static_cast<double>(defaults.max_connections)},
      {"--grpc-max-threads", static_cast<double>(defaults.grpc_max_threads)},
      {"--request-read-timeout-s", defaults.request_read_timeout_s},
      {"--watchdog-timeout-s", defaults.watchdog_timeout_s},
  };
  for (const Key& key : kReplicaFlagKeys) {
    const std::string flag(key.name);
    CAPTURE(flag);
    if (key.default_text.empty()) {
      REQUIRE(default_values.count(flag) == 1);
      CHECK(default_values.at(flag) == key.default_value);
    }
    for (const std::string& value : refused(key)) {
      CAPTURE(value);
      StatusOr<ReplicaFlags> flags =
          parseReplicaFlags({"--config", "c.yaml", "--app", "a", flag + "=" + value});
      REQUIRE_FALSE(flags.ok());
      CHECK(flags.status().message() ==
            flag + ": expected " + ruleText(key) + ", got '" + value + "' (see --help)");
    }
    for (const std::string& value : acceptedValues(key)) {
      CAPTURE(value);
      StatusOr<ReplicaFlags> flags =
          parseReplicaFlags({"--config", "c.yaml", "--app", "a", flag + "=" + value});
      CHECK_MESSAGE(flags.ok(), flags.status().message());
    }
  }
  // --draining-period-s overrides the variable, so it has the variable's range.
  CHECK(ruleText(flagKey("--draining-period-s")) ==
        ruleText(envKey("RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S")));
}

}  // namespace
}  // namespace serve::keys
