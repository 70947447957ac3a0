#pragma once

// What every setting accepts, in one place: the serve config's keys, the replica's environment
// variables and serve-replica's flags, each with its type, unit, range and default. The config
// parser (common/serve_config.cc), the environment reader (common/env_settings.cc) and the flag
// parser (replica/app/flags.cc, through common/cli.h) check values against these rows and word
// their errors with ruleText(), so the manager and the replica refuse the same values in the same
// words; tests/unit/common/config_keys_test.cc checks that docs/configuration.md shows the same
// rows.
//
// Look a row up with configKey("deployments[].max_ongoing_requests") (or envKey, flagKey) in a
// constant expression: a name that is not in the table does not compile.
#include <cstddef>
#include <limits>
#include <span>
#include <string>
#include <string_view>

namespace serve::keys {

enum class Type { kInt, kNumber, kBool, kString, kList, kMapping };

// The largest int, the max of integer keys bounded only by what an int holds.
inline constexpr double kIntMax = std::numeric_limits<int>::max();

struct Key {
  // As docs/configuration.md writes it: "http_options.port", "deployments[].model.kind" (the
  // deployments of every application), "RAY_SERVE_LOG_DIR", "--max-body-bytes".
  std::string_view name;
  Type type = Type::kString;
  std::string_view unit;  // "s", "ms", "MiB", "bytes", "requests", ...; empty: none
  // kInt and kNumber: the accepted range, [min, max], or (min, max] with min_open.
  double min = 0;
  double max = 0;
  bool min_open = false;
  // The max is only the type's limit (kIntMax), not a rule of the key's: the rule reads
  // "an integer >= min".
  bool max_is_limit = false;
  // One value with a meaning of its own ("-1" = unbounded, "0" = no timeout), accepted even
  // outside the range; none when special_meaning is empty.
  double special = 0;
  std::string_view special_meaning;
  // The default: a number for kInt and kNumber (unless default_text says more), else the text.
  double default_value = 0;
  std::string_view default_text;
  // kString, kBool, kList, kMapping: what is accepted, in the words of an "expected ..." error.
  std::string_view rule;
  // kString: the only values accepted, when the key is an enumeration.
  std::span<const std::string_view> choices;
};

// The shortest decimal text that reads back as `value`; integers without an exponent.
std::string formatNumber(double value);

// What the key accepts, as errors say it after "expected ": "an integer in [1, 65535]",
// "a number in (0, 3600]", "-1 (unbounded) or an integer >= 0", "one of mlp, python, ...".
std::string ruleText(const Key& key);

// The default as the reference shows it.
std::string defaultText(const Key& key);

// "int", "number", "bool", "string", "list", "mapping".
std::string_view typeName(Type type);

// Whether `value` is in the key's range or is its special value. kInt and kNumber only; whether
// the value is an integer is the caller's check (it knows the text).
bool accepts(const Key& key, double value);

// The key's row with another name and default: a flag that overrides a variable takes the
// variable's range.
constexpr Key renamed(Key key, std::string_view name, std::string_view default_text) {
  key.name = name;
  key.default_text = default_text;
  return key;
}

inline constexpr std::string_view kModelKinds[] = {"mlp", "python", "onnx", "noop", "sleep"};

// Every key of the serve config that holds a value (the sections and lists that hold other keys
// are not rows).
inline constexpr Key kServeConfigKeys[] = {
    {.name = "http_options.host",
     .default_text = "0.0.0.0",
     .rule = "an IP address or a host name"},
    {.name = "http_options.port",
     .type = Type::kInt,
     .min = 1,
     .max = 65535,
     .default_value = 8000},
    {.name = "http_options.request_timeout_s",
     .type = Type::kNumber,
     .unit = "s",
     .min = 0,
     .max = 86400,
     .special = 0,
     .special_meaning = "no timeout",
     .default_value = 0},
    {.name = "http_options.keep_alive_timeout_s",
     .type = Type::kNumber,
     .unit = "s",
     .min = 0,
     .max = 86400,
     .min_open = true,
     .default_value = 90},
    {.name = "grpc_options.port",
     .type = Type::kInt,
     .min = 0,
     .max = 65535,
     .special = 0,
     .special_meaning = "no gRPC listener",
     .default_value = 9000},
    {.name = "applications[].name", .default_text = "required", .rule = "a name"},
    {.name = "applications[].route_prefix",
     .default_text = "required",
     .rule = "a route prefix such as /app"},
    {.name = "deployments[].name", .default_text = "required", .rule = "a name"},
    {.name = "deployments[].num_replicas",
     .type = Type::kInt,
     .unit = "replicas",
     .min = 0,
     .max = 1024,
     .default_value = 1},
    {.name = "deployments[].max_ongoing_requests",
     .type = Type::kInt,
     .unit = "requests",
     .min = 1,
     .max = kIntMax,
     .max_is_limit = true,
     .default_value = 5},
    {.name = "deployments[].max_queued_requests",
     .type = Type::kInt,
     .unit = "requests",
     .min = 0,
     .max = kIntMax,
     .max_is_limit = true,
     .special = -1,
     .special_meaning = "unbounded",
     .default_value = -1},
    {.name = "deployments[].graceful_shutdown_timeout_s",
     .type = Type::kNumber,
     .unit = "s",
     .min = 0,
     .max = 86400,
     .default_value = 20},
    {.name = "deployments[].ray_actor_options.num_cpus",
     .type = Type::kNumber,
     .unit = "CPUs",
     .min = 0,
     .max = 1024,
     .default_value = 1},
    {.name = "deployments[].ray_actor_options.num_gpus",
     .type = Type::kNumber,
     .unit = "GPUs",
     .min = 0,
     .max = 64,
     .default_value = 0},
    {.name = "deployments[].model.kind", .default_text = "required", .choices = kModelKinds},
    {.name = "deployments[].model.name", .default_text = "deployment name", .rule = "a name"},
    {.name = "deployments[].model.path", .default_text = "none", .rule = "a non-empty file path"},
    {.name = "deployments[].model.sleep_ms",
     .type = Type::kNumber,
     .unit = "ms",
     .min = 0,
     .max = 86400000,
     .default_value = 0},
    {.name = "deployments[].model.import_path",
     .default_text = "none",
     .rule = "a Python import path \"package.module:Name\" or \"package.module.Name\" of "
             "identifiers"},
    {.name = "deployments[].model.init_args",
     .type = Type::kList,
     .default_text = "[]",
     .rule = "a list of arguments for the class's __init__"},
    {.name = "deployments[].model.init_kwargs",
     .type = Type::kMapping,
     .default_text = "{}",
     .rule = "a mapping of keyword arguments for the class's __init__"},
    {.name = "deployments[].model.working_dir", .default_text = "none", .rule = "a non-empty path"},
    {.name = "deployments[].model.python",
     .default_text = "$SERVE_PYTHON, else python3",
     .rule = "a non-empty path"},
    {.name = "deployments[].model.arena_mb",
     .type = Type::kInt,
     .unit = "MiB",
     .min = 1,
     .max = 4096,
     .default_value = 64},
    {.name = "deployments[].user_config",
     .type = Type::kMapping,
     .default_text = "none",
     .rule = "a mapping (Ray Serve's user_config)"},
    {.name = "deployments[].health_check_period_s",
     .type = Type::kNumber,
     .unit = "s",
     .min = 0,
     .max = 3600,
     .min_open = true,
     .default_value = 10},
    {.name = "deployments[].health_check_timeout_s",
     .type = Type::kNumber,
     .unit = "s",
     .min = 0,
     .max = 3600,
     .min_open = true,
     .default_value = 30},
    {.name = "deployments[].batching.max_batch_size",
     .type = Type::kInt,
     .unit = "requests",
     .min = 1,
     .max = 4096,
     .default_value = 1},
    {.name = "deployments[].batching.batch_wait_timeout_s",
     .type = Type::kNumber,
     .unit = "s",
     .min = 0,
     .max = 60,
     .default_value = 0},
    {.name = "deployments[].batching.linger_fraction",
     .type = Type::kNumber,
     .min = 0,
     .max = 1,
     .default_value = 0.25},
};

// The variables readReplicaEnv reads, and the two the replica's Python workers read.
inline constexpr Key kReplicaEnvKeys[] = {
    {.name = "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT",
     .type = Type::kInt,
     .min = 1,
     .max = 65535,
     .default_value = 30000},
    // The ranges are half-open, [min, max), so the largest max is 65536.
    {.name = "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT",
     .type = Type::kInt,
     .min = 1,
     .max = 65536,
     .default_value = 31000},
    {.name = "RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT",
     .type = Type::kInt,
     .min = 1,
     .max = 65535,
     .default_value = 40000},
    {.name = "RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT",
     .type = Type::kInt,
     .min = 1,
     .max = 65536,
     .default_value = 41000},
    {.name = "RAY_SERVE_DIRECT_INGRESS_PORT_RETRY_COUNT",
     .type = Type::kInt,
     .unit = "ports",
     .min = 1,
     .max = 10000,
     .default_value = 100},
    {.name = "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S",
     .type = Type::kNumber,
     .unit = "s",
     .min = 0,
     .max = 3600,
     .default_value = 30},
    {.name = "RAY_SERVE_DEFAULT_HTTP_HOST",
     .default_text = "127.0.0.1",
     .rule = "an IPv4 or IPv6 address or \"localhost\""},
    {.name = "RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE",
     .type = Type::kInt,
     .unit = "lines",
     .min = 1,
     .max = 1000000,
     .default_value = 1},
    {.name = "RAY_SERVE_LOG_TO_STDERR", .type = Type::kBool, .default_text = "1", .rule = "0 or 1"},
    {.name = "RAY_SERVE_THROUGHPUT_OPTIMIZED",
     .type = Type::kBool,
     .default_text = "0",
     .rule = "0 or 1"},
    {.name = "RAY_SERVE_LOG_DIR",
     .default_text = "logs/serve",
     .rule = "a non-empty directory path"},
    {.name = "OMP_NUM_THREADS",
     .type = Type::kInt,
     .unit = "threads",
     .min = 1,
     .max = 1024,
     .default_text = "unset"},
    {.name = "SERVE_PYTHON", .default_text = "python3", .rule = "an interpreter's name or path"},
    {.name = "SERVE_PYTHON_PACKAGE_DIR",
     .default_text = "<bin>/../share/haproxy-serve/python, else the source tree's python/",
     .rule = "a directory path"},
    {.name = "RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH",
     .type = Type::kInt,
     .unit = "bytes",
     .min = 1024,
     .max = 2147483647,
     .default_value = 4194304},
};

constexpr const Key& findKey(std::span<const Key> table, std::string_view name) {
  for (const Key& key : table) {
    if (key.name == name) {
      return key;
    }
  }
  // In a constant expression (as intended) this does not compile: the name is not a row.
  throw "no such key";
}

constexpr const Key& configKey(std::string_view name) { return findKey(kServeConfigKeys, name); }
constexpr const Key& envKey(std::string_view name) { return findKey(kReplicaEnvKeys, name); }

// serve-replica's flags that take a number. --draining-period-s overrides
// RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S and so takes its range.
inline constexpr Key kReplicaFlagKeys[] = {
    {.name = "--http-port", .type = Type::kInt, .min = 0, .max = 65535, .default_value = 0},
    {.name = "--max-body-bytes",
     .type = Type::kInt,
     .unit = "bytes",
     .min = 1,
     .max = 1073741824,
     .default_value = 16777216},
    {.name = "--http-max-threads",
     .type = Type::kInt,
     .unit = "threads",
     .min = 8,
     .max = 16384,
     .default_value = 512},
    {.name = "--grpc-max-threads",
     .type = Type::kInt,
     .unit = "threads",
     .min = 4,
     .max = 16384,
     .default_value = 512},
    {.name = "--max-connections",
     .type = Type::kInt,
     .unit = "connections",
     .min = 1,
     .max = 1048576,
     .default_value = 1024},
    {.name = "--request-read-timeout-s",
     .type = Type::kNumber,
     .unit = "s",
     .min = 0.1,
     .max = 3600,
     .default_value = 10},
    {.name = "--watchdog-timeout-s",
     .type = Type::kNumber,
     .unit = "s",
     .min = 0,
     .max = 86400,
     .special = 0,
     .special_meaning = "off",
     .default_value = 30},
    renamed(envKey("RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"), "--draining-period-s",
            "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"),
};

constexpr const Key& flagKey(std::string_view name) { return findKey(kReplicaFlagKeys, name); }

}  // namespace serve::keys
