#include "common/serve_config.h"

#include <arpa/inet.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <initializer_list>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <system_error>
#include <tuple>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "common/config_keys.h"
#include "common/file_util.h"
#include "common/names.h"

namespace serve {

const ApplicationSpec* ServeConfig::findApplication(const std::string& name) const {
  for (const ApplicationSpec& app : applications) {
    if (app.name == name) {
      return &app;
    }
  }
  return nullptr;
}

namespace {

// yaml-cpp hands every scalar over as text; the type a user meant is recovered here with the
// YAML 1.2 core schema, so `port: "8000"` (a string) and `port: 8000.5` (a float) are told
// apart from `port: 8000`. Plain scalars carry the tag "?", quoted and block scalars "!".
enum class Kind { kNull, kBool, kInt, kFloat, kString, kList, kMapping };

bool isDigit(char c) { return c >= '0' && c <= '9'; }

bool looksLikeInt(absl::string_view text) {
  if (!text.empty() && (text.front() == '-' || text.front() == '+')) {
    text.remove_prefix(1);
  }
  if (text.empty()) {
    return false;
  }
  for (char c : text) {
    if (!isDigit(c)) {
      return false;
    }
  }
  return true;
}

// [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?, or one of the .inf/.nan spellings.
bool looksLikeFloat(absl::string_view text) {
  static constexpr absl::string_view kSpecial[] = {".inf",  ".Inf",  ".INF",  "-.inf",
                                                   "-.Inf", "-.INF", "+.inf", "+.Inf",
                                                   "+.INF", ".nan",  ".NaN",  ".NAN"};
  for (absl::string_view special : kSpecial) {
    if (text == special) {
      return true;
    }
  }
  std::size_t i = 0;
  if (i < text.size() && (text[i] == '-' || text[i] == '+')) {
    ++i;
  }
  std::size_t int_digits = 0;
  while (i < text.size() && isDigit(text[i])) {
    ++i;
    ++int_digits;
  }
  std::size_t frac_digits = 0;
  if (i < text.size() && text[i] == '.') {
    ++i;
    while (i < text.size() && isDigit(text[i])) {
      ++i;
      ++frac_digits;
    }
  }
  if (int_digits == 0 && frac_digits == 0) {
    return false;
  }
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    if (i < text.size() && (text[i] == '-' || text[i] == '+')) {
      ++i;
    }
    std::size_t exp_digits = 0;
    while (i < text.size() && isDigit(text[i])) {
      ++i;
      ++exp_digits;
    }
    if (exp_digits == 0) {
      return false;
    }
  }
  return i == text.size();
}

Kind kindOf(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Sequence:
      return Kind::kList;
    case YAML::NodeType::Map:
      return Kind::kMapping;
    case YAML::NodeType::Scalar:
      break;
    default:
      return Kind::kNull;
  }
  const std::string& tag = node.Tag();
  if (tag == "!" || tag == "tag:yaml.org,2002:str") {
    return Kind::kString;
  }
  const std::string& text = node.Scalar();
  if (text == "true" || text == "True" || text == "TRUE" || text == "false" || text == "False" ||
      text == "FALSE") {
    return Kind::kBool;
  }
  if (looksLikeInt(text)) {
    return Kind::kInt;
  }
  if (looksLikeFloat(text)) {
    return Kind::kFloat;
  }
  return Kind::kString;
}

// "pkg.module:Name" (one colon, not first or last) or "pkg.module.Name", each part a Python
// identifier, as Ray Serve accepts.
bool validImportPath(absl::string_view path) {
  if (path.empty() || path.size() > 512 || path.find(':') != path.rfind(':')) {
    return false;
  }
  const bool has_colon = path.find(':') != absl::string_view::npos;
  bool start = true;
  int dots = 0;
  for (char c : path) {
    if (c == '.' || c == ':') {
      if (start) {
        return false;
      }
      dots += c == '.';
      start = true;
      continue;
    }
    const bool letter = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
    const bool digit = c >= '0' && c <= '9';
    if (!letter && !(digit && !start)) {
      return false;
    }
    start = false;
  }
  return !start && (has_colon || dots > 0);
}

// A YAML value as JSON, for values handed to Python unchanged (init_args, user_config). Scalars
// keep the type YAML gives them (quoted ones stay strings); an integer too large for 64 bits, a
// non-finite float or a key that is not a string is an error naming the value.
StatusOr<nlohmann::json> yamlToJson(const YAML::Node& node);

// What the user wrote, for "expected X, got Y".
std::string describe(const YAML::Node& node) {
  switch (kindOf(node)) {
    case Kind::kNull:
      return "an empty value";
    case Kind::kList:
      return node.size() == 0 ? "an empty list" : "a list";
    case Kind::kMapping:
      return node.size() == 0 ? "an empty mapping" : "a mapping";
    case Kind::kBool:
      return absl::StrCat("the boolean ", node.Scalar());
    case Kind::kInt:
    case Kind::kFloat:
      return std::string(node.Scalar());
    case Kind::kString:
      return absl::StrCat("the string ", quoteForMessage(node.Scalar()));
  }
  return "an unknown value";
}

StatusOr<nlohmann::json> yamlToJson(const YAML::Node& node) {
  switch (kindOf(node)) {
    case Kind::kNull:
      return nullptr;
    case Kind::kBool: {
      const std::string& t = node.Scalar();
      return t == "true" || t == "True" || t == "TRUE";
    }
    case Kind::kInt: {
      std::int64_t value = 0;
      absl::string_view t = node.Scalar();
      if (t.front() == '+') {
        t.remove_prefix(1);
      }
      const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), value);
      if (ec != std::errc() || end != t.data() + t.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("integer ", quoteForMessage(node.Scalar()), " does not fit in 64 bits"));
      }
      return value;
    }
    case Kind::kFloat: {
      double value = 0;
      absl::string_view t = node.Scalar();
      if (t.front() == '+') {
        t.remove_prefix(1);
      }
      const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), value);
      if (ec != std::errc() || end != t.data() + t.size() || !std::isfinite(value)) {
        return absl::InvalidArgumentError(
            absl::StrCat("number ", quoteForMessage(node.Scalar()), " is not a finite float"));
      }
      return value;
    }
    case Kind::kString:
      return node.Scalar();
    case Kind::kList: {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& item : node) {
        StatusOr<nlohmann::json> value = yamlToJson(item);
        if (!value.ok()) {
          return value.status();
        }
        out.push_back(*std::move(value));
      }
      return out;
    }
    case Kind::kMapping: {
      nlohmann::json out = nlohmann::json::object();
      for (const auto& entry : node) {
        const YAML::Node key(entry.first);
        if (kindOf(key) != Kind::kString && kindOf(key) != Kind::kInt) {
          return absl::InvalidArgumentError(
              absl::StrCat("keys must be strings, got ", describe(key)));
        }
        StatusOr<nlohmann::json> value = yamlToJson(YAML::Node(entry.second));
        if (!value.ok()) {
          return value.status();
        }
        out[key.Scalar()] = *std::move(value);
      }
      return out;
    }
  }
  return nullptr;
}

std::string joinPath(absl::string_view path, absl::string_view key) {
  return path.empty() ? std::string(key) : absl::StrCat(path, ".", key);
}

std::string indexPath(absl::string_view path, std::size_t index) {
  return absl::StrCat(path, "[", index, "]");
}

bool isHostName(absl::string_view host) {
  if (host.empty() || host.size() > 253) {
    return false;
  }
  std::size_t label_length = 0;
  char previous = '.';
  for (char c : host) {
    if (c == '.') {
      if (label_length == 0 || previous == '-') {
        return false;
      }
      label_length = 0;
    } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || isDigit(c) || c == '-') {
      if ((label_length == 0 && c == '-') || ++label_length > 63) {
        return false;
      }
    } else {
      return false;
    }
    previous = c;
  }
  return previous != '-' && previous != '.';
}

bool isHost(const std::string& host) {
  unsigned char buffer[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buffer) == 1 ||
         inet_pton(AF_INET6, host.c_str(), buffer) == 1 || isHostName(host);
}

// One key of a mapping, with the nodes it came from so that errors can point at its line.
// YAML::Node is held by copy construction only: assigning to a Node rebinds the document.
struct Field {
  std::string key;
  YAML::Node key_node;
  YAML::Node value;
  std::string path;
};

// A mapping whose keys have been checked against an allowed list.
struct Mapping {
  YAML::Node node;
  std::string path;
  std::vector<Field> fields;

  const Field* find(absl::string_view key) const {
    for (const Field& field : fields) {
      if (field.key == key) {
        return &field;
      }
    }
    return nullptr;
  }
};

struct SeenName {
  int line = 0;
  std::string owner;  // who used it first, for the message
};

class ConfigParser {
 public:
  explicit ConfigParser(const std::string& source) : source_(source) {}

  StatusOr<ServeConfig> parse(const YAML::Node& root);

 private:
  int lineOf(const YAML::Node& node) const {
    const YAML::Mark mark = node.Mark();
    return mark.is_null() || mark.line < 0 ? 1 : mark.line + 1;
  }

  Status error(const YAML::Node& at, absl::string_view path, absl::string_view rule) const {
    return errorAtLine(lineOf(at), path, rule);
  }

  Status errorAtLine(int line, absl::string_view path, absl::string_view rule) const {
    return absl::InvalidArgumentError(
        absl::StrCat(source_, ":", line, ": ", path.empty() ? "(top level)" : path, ": ", rule));
  }

  Status expected(const Field& field, absl::string_view rule) const {
    return error(field.key_node, field.path,
                 absl::StrCat("expected ", rule, ", got ", describe(field.value)));
  }

  Status missing(const Mapping& mapping, absl::string_view key) const {
    return error(mapping.node, joinPath(mapping.path, key), "required key is missing");
  }

  StatusOr<Mapping> mapping(const YAML::Node& node, const std::string& path,
                            std::initializer_list<absl::string_view> allowed) const;
  // The value of a key: a wrong type is reported at the key's line, because yaml-cpp marks an
  // empty value with the position of the token after it.
  StatusOr<Mapping> mapping(const Field& field,
                            std::initializer_list<absl::string_view> allowed) const {
    if (!field.value.IsMap()) {
      return expected(field, "a mapping");
    }
    return mapping(field.value, field.path, allowed);
  }
  // The value of a kInt or kNumber key, checked against its row in common/config_keys.h: the
  // one place a number is checked, and so the one form of the message, "<file>:<line>: <key
  // path>: expected <the row's rule>, got <value>".
  StatusOr<double> checked(const Field& field, const keys::Key& key) const;
  StatusOr<std::string> text(const Field& field, absl::string_view rule) const;
  StatusOr<std::string> text(const Field& field, const keys::Key& key) const {
    return text(field, keys::ruleText(key));
  }

  Status parseHttpOptions(const Field& field, HttpOptions& out);
  Status parseGrpcOptions(const Field& field, GrpcOptions& out);
  StatusOr<ApplicationSpec> parseApplication(const YAML::Node& node, const std::string& path);
  StatusOr<DeploymentSpec> parseDeployment(const YAML::Node& node, const std::string& path,
                                           const ApplicationSpec& app);
  StatusOr<ActorOptions> parseActorOptions(const Field& field);
  StatusOr<ModelSpec> parseModel(const Field& field, const Field& deployment_name,
                                 const std::string& deployment_path);
  Status parsePythonModel(const Mapping& model, const Field& field, ModelSpec& result);
  // The Python worker's own keys (python, arena_mb), shared by kinds python and onnx.
  Status parseWorkerKeys(const Mapping& model, PythonModelSpec& py) const;
  StatusOr<std::string> nonEmptyPath(const Field& field) const;
  StatusOr<BatchingSpec> parseBatching(const Field& field);

  const std::string& source_;
  std::map<std::string, SeenName> app_names_;
  std::map<std::string, SeenName> route_prefixes_;
  std::map<std::string, SeenName> model_names_;
  int http_port_line_ = 0;  // where each port was set, 0 when left at its default
  int grpc_port_line_ = 0;
};

StatusOr<Mapping> ConfigParser::mapping(const YAML::Node& node, const std::string& path,
                                        std::initializer_list<absl::string_view> allowed) const {
  if (!node.IsMap()) {
    return error(node, path, absl::StrCat("expected a mapping, got ", describe(node)));
  }
  Mapping result{node, path, {}};
  for (const auto& entry : node) {
    // Copies, not references: the iterator hands out a temporary pair of handles.
    const YAML::Node key_node(entry.first);
    if (!key_node.IsScalar()) {
      return error(
          key_node, path,
          absl::StrCat("expected keys to be strings, got ", describe(key_node), " as a key"));
    }
    const std::string& key = key_node.Scalar();
    std::string key_path = joinPath(path, absl::CHexEscape(key));
    bool known = false;
    for (absl::string_view candidate : allowed) {
      known = known || candidate == key;
    }
    if (!known) {
      return error(key_node, key_path,
                   absl::StrCat("unknown key (allowed: ", absl::StrJoin(allowed, ", "), ")"));
    }
    if (const Field* first = result.find(key)) {
      return error(key_node, key_path,
                   absl::StrCat("duplicate key (first at line ", lineOf(first->key_node), ")"));
    }
    result.fields.push_back(Field{key, key_node, YAML::Node(entry.second), std::move(key_path)});
  }
  return result;
}

StatusOr<double> ConfigParser::checked(const Field& field, const keys::Key& key) const {
  const Kind kind = kindOf(field.value);
  const bool integer = key.type == keys::Type::kInt;
  if (kind != Kind::kInt && (integer || kind != Kind::kFloat)) {
    return expected(field, keys::ruleText(key));
  }
  absl::string_view text = field.value.Scalar();
  if (text.front() == '+') {
    text.remove_prefix(1);
  }
  // Integers are read as integers, so that 2^53 + 1 is not rounded into range.
  double value = 0;
  bool parsed = false;
  if (integer) {
    std::int64_t whole = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), whole);
    parsed = ec == std::errc() && end == text.data() + text.size();
    value = static_cast<double>(whole);
  } else {
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    parsed = ec == std::errc() && end == text.data() + text.size();
  }
  if (!parsed || !keys::accepts(key, value)) {
    return expected(field, keys::ruleText(key));
  }
  return value;
}

// Plain numbers are taken as written (`name: 2024` is the name "2024"); booleans, empty values,
// lists and mappings are not strings.
StatusOr<std::string> ConfigParser::text(const Field& field, absl::string_view rule) const {
  const Kind kind = kindOf(field.value);
  if (kind != Kind::kString && kind != Kind::kInt && kind != Kind::kFloat) {
    return expected(field, rule);
  }
  return field.value.Scalar();
}

// The rows of common/config_keys.h this parser checks values against. Every number has a finite
// bound there, so no value can overflow where it becomes an HAProxy duration, a std::chrono
// deadline or a resource request: a day for every time, and resource amounts no node has (a
// replica asking for more than the node offers is refused at deploy, before any replica starts).
using keys::configKey;

Status ConfigParser::parseHttpOptions(const Field& field, HttpOptions& out) {
  StatusOr<Mapping> options =
      mapping(field, {"host", "port", "request_timeout_s", "keep_alive_timeout_s"});
  if (!options.ok()) {
    return options.status();
  }
  if (const Field* host = options->find("host")) {
    constexpr const keys::Key& kHost = configKey("http_options.host");
    StatusOr<std::string> value = text(*host, kHost);
    if (!value.ok()) {
      return value.status();
    }
    if (!isHost(*value)) {
      return expected(*host, keys::ruleText(kHost));
    }
    out.host = *value;
  }
  if (const Field* port = options->find("port")) {
    StatusOr<double> value = checked(*port, configKey("http_options.port"));
    if (!value.ok()) {
      return value.status();
    }
    out.port = static_cast<int>(*value);
    http_port_line_ = lineOf(port->key_node);
  }
  if (const Field* timeout = options->find("request_timeout_s")) {
    StatusOr<double> value = checked(*timeout, configKey("http_options.request_timeout_s"));
    if (!value.ok()) {
      return value.status();
    }
    out.request_timeout_s = *value;
  }
  if (const Field* timeout = options->find("keep_alive_timeout_s")) {
    StatusOr<double> value = checked(*timeout, configKey("http_options.keep_alive_timeout_s"));
    if (!value.ok()) {
      return value.status();
    }
    out.keep_alive_timeout_s = *value;
  }
  return absl::OkStatus();
}

Status ConfigParser::parseGrpcOptions(const Field& field, GrpcOptions& out) {
  StatusOr<Mapping> options = mapping(field, {"port"});
  if (!options.ok()) {
    return options.status();
  }
  if (const Field* port = options->find("port")) {
    StatusOr<double> value = checked(*port, configKey("grpc_options.port"));
    if (!value.ok()) {
      return value.status();
    }
    out.port = static_cast<int>(*value);
    grpc_port_line_ = lineOf(port->key_node);
  }
  return absl::OkStatus();
}

StatusOr<ActorOptions> ConfigParser::parseActorOptions(const Field& field) {
  StatusOr<Mapping> options = mapping(field, {"num_cpus", "num_gpus"});
  if (!options.ok()) {
    return options.status();
  }
  ActorOptions result;
  if (const Field* cpus = options->find("num_cpus")) {
    StatusOr<double> value = checked(*cpus, configKey("deployments[].ray_actor_options.num_cpus"));
    if (!value.ok()) {
      return value.status();
    }
    result.num_cpus = *value;
  }
  if (const Field* gpus = options->find("num_gpus")) {
    StatusOr<double> value = checked(*gpus, configKey("deployments[].ray_actor_options.num_gpus"));
    if (!value.ok()) {
      return value.status();
    }
    result.num_gpus = *value;
  }
  return result;
}

StatusOr<ModelSpec> ConfigParser::parseModel(const Field& field, const Field& deployment_name,
                                             const std::string& deployment_path) {
  StatusOr<Mapping> model =
      mapping(field, {"kind", "name", "path", "sleep_ms", "import_path", "init_args", "init_kwargs",
                      "working_dir", "python", "arena_mb"});
  if (!model.ok()) {
    return model.status();
  }
  ModelSpec result;
  const Field* kind = model->find("kind");
  if (kind == nullptr) {
    return missing(*model, "kind");
  }
  constexpr const keys::Key& kKind = configKey("deployments[].model.kind");
  StatusOr<std::string> kind_value = text(*kind, kKind);
  if (!kind_value.ok()) {
    return kind_value.status();
  }
  if (std::find(kKind.choices.begin(), kKind.choices.end(), *kind_value) == kKind.choices.end()) {
    return expected(*kind, keys::ruleText(kKind));
  }
  result.kind = *kind_value;

  // The model name defaults to the deployment name; a clash is reported where the name came from.
  const Field* name = model->find("name");
  const Field& name_source = name != nullptr ? *name : deployment_name;
  if (name != nullptr) {
    StatusOr<std::string> value = text(*name, configKey("deployments[].model.name"));
    if (!value.ok()) {
      return value.status();
    }
    if (Status valid = validateName("model name", *value); !valid.ok()) {
      return error(name->key_node, name->path, valid.message());
    }
    result.name = *value;
  } else {
    result.name = deployment_name.value.Scalar();
  }
  const int name_line = lineOf(name_source.key_node);
  auto [seen, inserted] =
      model_names_.try_emplace(result.name, SeenName{name_line, deployment_path});
  if (!inserted) {
    return errorAtLine(name_line, joinPath(field.path, "name"),
                       absl::StrCat("duplicate model name ", quoteForMessage(result.name),
                                    name == nullptr ? " (the deployment name)" : "",
                                    "; model names must be unique in the file (first used by ",
                                    seen->second.owner, " at line ", seen->second.line, ")"));
  }

  const Field* path = model->find("path");
  if (result.kind == "mlp" || result.kind == "onnx") {
    if (path == nullptr) {
      return error(model->node, joinPath(field.path, "path"),
                   result.kind == "mlp"
                       ? "required key is missing (model kind mlp loads its weights from it)"
                       : "required key is missing (model kind onnx loads the ONNX graph from it)");
    }
    constexpr const keys::Key& kPath = configKey("deployments[].model.path");
    StatusOr<std::string> value = text(*path, kPath);
    if (!value.ok()) {
      return value.status();
    }
    if (value->empty()) {
      return expected(*path, keys::ruleText(kPath));
    }
    result.path = *value;
  } else if (path != nullptr) {
    return error(path->key_node, path->path,
                 absl::StrCat("only allowed for model kinds mlp and onnx, not ", result.kind));
  }

  if (const Field* sleep_ms = model->find("sleep_ms")) {
    if (result.kind != "sleep") {
      return error(sleep_ms->key_node, sleep_ms->path,
                   absl::StrCat("only allowed for model kind sleep, not ", result.kind));
    }
    StatusOr<double> value = checked(*sleep_ms, configKey("deployments[].model.sleep_ms"));
    if (!value.ok()) {
      return value.status();
    }
    result.sleep_ms = *value;
  }
  if (Status st = parsePythonModel(*model, field, result); !st.ok()) {
    return st;
  }
  return result;
}

Status ConfigParser::parsePythonModel(const Mapping& model, const Field& field, ModelSpec& result) {
  // kind onnx runs in the Python worker too (a built-in class), so the worker's own settings
  // apply to it; what names and constructs a user's class does not.
  static constexpr absl::string_view kClassKeys[] = {"import_path", "init_args", "init_kwargs",
                                                     "working_dir"};
  static constexpr absl::string_view kWorkerKeys[] = {"python", "arena_mb"};
  const bool runs_worker = result.kind == "python" || result.kind == "onnx";
  for (absl::string_view key : kWorkerKeys) {
    if (const Field* f = model.find(key); f != nullptr && !runs_worker) {
      return error(f->key_node, f->path,
                   absl::StrCat("only allowed for model kinds python and onnx, not ", result.kind));
    }
  }
  if (result.kind != "python") {
    for (absl::string_view key : kClassKeys) {
      if (const Field* f = model.find(key)) {
        return error(f->key_node, f->path,
                     absl::StrCat("only allowed for model kind python, not ", result.kind));
      }
    }
  }
  if (!runs_worker) {
    return absl::OkStatus();
  }
  PythonModelSpec& py = result.python;
  if (result.kind == "onnx") {
    return parseWorkerKeys(model, py);
  }
  const Field* import_path = model.find("import_path");
  if (import_path == nullptr) {
    return error(model.node, joinPath(field.path, "import_path"),
                 "required key is missing (model kind python imports the class from it, e.g. "
                 "\"my_module:MyDeployment\")");
  }
  constexpr const keys::Key& kImportPath = configKey("deployments[].model.import_path");
  StatusOr<std::string> import_value = text(*import_path, kImportPath);
  if (!import_value.ok()) {
    return import_value.status();
  }
  if (!validImportPath(*import_value)) {
    return expected(*import_path, keys::ruleText(kImportPath));
  }
  py.import_path = *import_value;

  if (const Field* args = model.find("init_args")) {
    if (kindOf(args->value) != Kind::kList) {
      return expected(*args, keys::ruleText(configKey("deployments[].model.init_args")));
    }
    StatusOr<nlohmann::json> value = yamlToJson(args->value);
    if (!value.ok()) {
      return error(args->value, args->path, std::string(value.status().message()));
    }
    py.init_args_json = value->dump();
  }
  if (const Field* kwargs = model.find("init_kwargs")) {
    if (kindOf(kwargs->value) != Kind::kMapping) {
      return expected(*kwargs, keys::ruleText(configKey("deployments[].model.init_kwargs")));
    }
    StatusOr<nlohmann::json> value = yamlToJson(kwargs->value);
    if (!value.ok()) {
      return error(kwargs->value, kwargs->path, std::string(value.status().message()));
    }
    py.init_kwargs_json = value->dump();
  }
  if (const Field* f = model.find("working_dir")) {
    StatusOr<std::string> value = nonEmptyPath(*f);
    if (!value.ok()) {
      return value.status();
    }
    py.working_dir = *value;
  }
  return parseWorkerKeys(model, py);
}

StatusOr<std::string> ConfigParser::nonEmptyPath(const Field& field) const {
  // model.working_dir and model.python share the rule.
  constexpr const keys::Key& kPath = configKey("deployments[].model.working_dir");
  StatusOr<std::string> value = text(field, kPath);
  if (!value.ok()) {
    return value.status();
  }
  if (value->empty()) {
    return expected(field, keys::ruleText(kPath));
  }
  return value;
}

Status ConfigParser::parseWorkerKeys(const Mapping& model, PythonModelSpec& py) const {
  if (const Field* f = model.find("python")) {
    StatusOr<std::string> value = nonEmptyPath(*f);
    if (!value.ok()) {
      return value.status();
    }
    py.python = *value;
  }
  if (const Field* arena = model.find("arena_mb")) {
    StatusOr<double> value = checked(*arena, configKey("deployments[].model.arena_mb"));
    if (!value.ok()) {
      return value.status();
    }
    py.arena_mb = static_cast<int>(*value);
  }
  return absl::OkStatus();
}

StatusOr<BatchingSpec> ConfigParser::parseBatching(const Field& field) {
  StatusOr<Mapping> batching =
      mapping(field, {"max_batch_size", "batch_wait_timeout_s", "linger_fraction"});
  if (!batching.ok()) {
    return batching.status();
  }
  BatchingSpec result;
  if (const Field* size = batching->find("max_batch_size")) {
    StatusOr<double> value = checked(*size, configKey("deployments[].batching.max_batch_size"));
    if (!value.ok()) {
      return value.status();
    }
    result.max_batch_size = static_cast<int>(*value);
  }
  if (const Field* wait = batching->find("batch_wait_timeout_s")) {
    StatusOr<double> value =
        checked(*wait, configKey("deployments[].batching.batch_wait_timeout_s"));
    if (!value.ok()) {
      return value.status();
    }
    result.batch_wait_timeout_s = *value;
  }
  if (const Field* linger = batching->find("linger_fraction")) {
    StatusOr<double> value = checked(*linger, configKey("deployments[].batching.linger_fraction"));
    if (!value.ok()) {
      return value.status();
    }
    result.linger_fraction = *value;
  }
  return result;
}

StatusOr<DeploymentSpec> ConfigParser::parseDeployment(const YAML::Node& node,
                                                       const std::string& path,
                                                       const ApplicationSpec& app) {
  StatusOr<Mapping> deployment =
      mapping(node, path,
              {"name", "num_replicas", "max_ongoing_requests", "max_queued_requests",
               "graceful_shutdown_timeout_s", "ray_actor_options", "model", "batching",
               "user_config", "health_check_period_s", "health_check_timeout_s"});
  if (!deployment.ok()) {
    return deployment.status();
  }
  DeploymentSpec result;
  result.line = lineOf(node);

  const Field* name = deployment->find("name");
  if (name == nullptr) {
    return missing(*deployment, "name");
  }
  StatusOr<std::string> name_value = text(*name, configKey("deployments[].name"));
  if (!name_value.ok()) {
    return name_value.status();
  }
  if (Status valid = validateName("deployment name", *name_value); !valid.ok()) {
    return error(name->key_node, name->path, valid.message());
  }
  result.name = *name_value;
  for (const DeploymentSpec& other : app.deployments) {
    if (other.name == result.name) {
      return error(name->key_node, name->path,
                   absl::StrCat("duplicate deployment name ", quoteForMessage(result.name),
                                " in application ", quoteForMessage(app.name),
                                " (first defined at line ", other.line, ")"));
    }
  }

  if (const Field* replicas = deployment->find("num_replicas")) {
    // 0 is an application scaled to zero: its routes stay, and HAProxy answers 503.
    StatusOr<double> value = checked(*replicas, configKey("deployments[].num_replicas"));
    if (!value.ok()) {
      return value.status();
    }
    result.num_replicas = static_cast<int>(*value);
  }
  if (const Field* ongoing = deployment->find("max_ongoing_requests")) {
    StatusOr<double> value = checked(*ongoing, configKey("deployments[].max_ongoing_requests"));
    if (!value.ok()) {
      return value.status();
    }
    result.max_ongoing_requests = static_cast<int>(*value);
  }
  if (const Field* queued = deployment->find("max_queued_requests")) {
    StatusOr<double> value = checked(*queued, configKey("deployments[].max_queued_requests"));
    if (!value.ok()) {
      return value.status();
    }
    result.max_queued_requests = static_cast<int>(*value);
  }
  if (const Field* grace = deployment->find("graceful_shutdown_timeout_s")) {
    StatusOr<double> value =
        checked(*grace, configKey("deployments[].graceful_shutdown_timeout_s"));
    if (!value.ok()) {
      return value.status();
    }
    result.graceful_shutdown_timeout_s = *value;
  }
  if (const Field* actor = deployment->find("ray_actor_options")) {
    StatusOr<ActorOptions> value = parseActorOptions(*actor);
    if (!value.ok()) {
      return value.status();
    }
    result.ray_actor_options = *value;
  }
  const Field* model = deployment->find("model");
  if (model == nullptr) {
    return missing(*deployment, "model");
  }
  StatusOr<ModelSpec> model_value = parseModel(*model, *name, path);
  if (!model_value.ok()) {
    return model_value.status();
  }
  result.model = *std::move(model_value);
  if (const Field* batching = deployment->find("batching")) {
    StatusOr<BatchingSpec> value = parseBatching(*batching);
    if (!value.ok()) {
      return value.status();
    }
    result.batching = *value;
    result.batching_configured = true;
  }
  if (const Field* user_config = deployment->find("user_config")) {
    if (result.model.kind != "python") {
      return error(user_config->key_node, user_config->path,
                   absl::StrCat("only allowed for model kind python (it goes to the class's "
                                "reconfigure), not ",
                                result.model.kind));
    }
    const Kind kind = kindOf(user_config->value);
    if (kind != Kind::kMapping && kind != Kind::kNull) {
      return expected(*user_config, keys::ruleText(configKey("deployments[].user_config")));
    }
    StatusOr<nlohmann::json> value = yamlToJson(user_config->value);
    if (!value.ok()) {
      return error(user_config->value, user_config->path, std::string(value.status().message()));
    }
    result.user_config_json = value->dump();
  }
  constexpr const keys::Key& kPeriod = configKey("deployments[].health_check_period_s");
  constexpr const keys::Key& kTimeout = configKey("deployments[].health_check_timeout_s");
  for (auto [key, row, target] :
       {std::tuple{"health_check_period_s", &kPeriod, &result.health_check_period_s},
        std::tuple{"health_check_timeout_s", &kTimeout, &result.health_check_timeout_s}}) {
    if (const Field* f = deployment->find(key)) {
      StatusOr<double> value = checked(*f, *row);
      if (!value.ok()) {
        return value.status();
      }
      *target = *value;
    }
  }
  return result;
}

StatusOr<ApplicationSpec> ConfigParser::parseApplication(const YAML::Node& node,
                                                         const std::string& path) {
  StatusOr<Mapping> app = mapping(node, path, {"name", "route_prefix", "deployments"});
  if (!app.ok()) {
    return app.status();
  }
  ApplicationSpec result;
  result.line = lineOf(node);

  const Field* name = app->find("name");
  if (name == nullptr) {
    return missing(*app, "name");
  }
  StatusOr<std::string> name_value = text(*name, configKey("applications[].name"));
  if (!name_value.ok()) {
    return name_value.status();
  }
  if (Status valid = validateName("application name", *name_value); !valid.ok()) {
    return error(name->key_node, name->path, valid.message());
  }
  result.name = *name_value;
  auto [seen_name, name_inserted] =
      app_names_.try_emplace(result.name, SeenName{lineOf(name->key_node), path});
  if (!name_inserted) {
    return error(name->key_node, name->path,
                 absl::StrCat("duplicate application name ", quoteForMessage(result.name),
                              " (first used by ", seen_name->second.owner, " at line ",
                              seen_name->second.line, ")"));
  }

  const Field* prefix = app->find("route_prefix");
  if (prefix == nullptr) {
    return missing(*app, "route_prefix");
  }
  StatusOr<std::string> prefix_value = text(*prefix, configKey("applications[].route_prefix"));
  if (!prefix_value.ok()) {
    return prefix_value.status();
  }
  if (Status valid = validateRoutePrefix(*prefix_value); !valid.ok()) {
    return error(prefix->key_node, prefix->path, valid.message());
  }
  result.route_prefix = *prefix_value;
  auto [seen_prefix, prefix_inserted] =
      route_prefixes_.try_emplace(result.route_prefix, SeenName{lineOf(prefix->key_node), path});
  if (!prefix_inserted) {
    return error(prefix->key_node, prefix->path,
                 absl::StrCat("duplicate route prefix ", quoteForMessage(result.route_prefix),
                              " (first used by ", seen_prefix->second.owner, " at line ",
                              seen_prefix->second.line, ")"));
  }

  const Field* deployments = app->find("deployments");
  if (deployments == nullptr) {
    return missing(*app, "deployments");
  }
  if (!deployments->value.IsSequence() || deployments->value.size() == 0) {
    return expected(*deployments, "a non-empty list of deployments");
  }
  for (std::size_t i = 0; i < deployments->value.size(); ++i) {
    StatusOr<DeploymentSpec> deployment =
        parseDeployment(deployments->value[i], indexPath(deployments->path, i), result);
    if (!deployment.ok()) {
      return deployment.status();
    }
    result.deployments.push_back(*std::move(deployment));
  }
  return result;
}

StatusOr<ServeConfig> ConfigParser::parse(const YAML::Node& root) {
  StatusOr<Mapping> top = mapping(root, "", {"http_options", "grpc_options", "applications"});
  if (!top.ok()) {
    return top.status();
  }
  ServeConfig config;
  config.source = source_;
  const Field* http = top->find("http_options");
  if (http != nullptr) {
    if (Status status = parseHttpOptions(*http, config.http_options); !status.ok()) {
      return status;
    }
  }
  const Field* grpc = top->find("grpc_options");
  if (grpc != nullptr) {
    if (Status status = parseGrpcOptions(*grpc, config.grpc_options); !status.ok()) {
      return status;
    }
  }
  if (config.http_options.port == config.grpc_options.port) {
    // Blame whichever side set the port explicitly; grpc_options when both did.
    const std::string rule = absl::StrCat("the HTTP and gRPC ports must differ (both are ",
                                          config.http_options.port, ")");
    if (grpc_port_line_ > 0) {
      return errorAtLine(grpc_port_line_, "grpc_options.port", rule);
    }
    return errorAtLine(http_port_line_, "http_options.port", rule);
  }

  const Field* applications = top->find("applications");
  if (applications == nullptr) {
    return missing(*top, "applications");
  }
  if (!applications->value.IsSequence() || applications->value.size() == 0) {
    return expected(*applications, "a non-empty list of applications");
  }
  for (std::size_t i = 0; i < applications->value.size(); ++i) {
    StatusOr<ApplicationSpec> app =
        parseApplication(applications->value[i], indexPath(applications->path, i));
    if (!app.ok()) {
      return app.status();
    }
    config.applications.push_back(*std::move(app));
  }
  return config;
}

// Where each YAML document in `text` starts, at most `limit` of them. Counting with an event
// handler instead of YAML::LoadAll, and stopping at the limit, because yaml-cpp 0.7's LoadAll
// never returns on some inputs: for a stray "," at the top level its parser reports one more
// empty document on every call, and LoadAll collects them until memory runs out (found by
// fuzz/serve_config_fuzz.cc; the input is in fuzz/corpus/serve_config/).
class DocumentCounter : public YAML::EventHandler {
 public:
  std::vector<YAML::Mark> starts;

  void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

std::vector<YAML::Mark> documentStarts(const std::string& text, size_t limit) {
  std::istringstream stream(text);
  YAML::Parser parser(stream);
  DocumentCounter counter;
  while (counter.starts.size() < limit && parser.HandleNextDocument(counter)) {
  }
  return std::move(counter.starts);
}

}  // namespace

StatusOr<ServeConfig> parseServeConfig(const std::string& yaml_text, const std::string& source) {
  try {
    const std::vector<YAML::Mark> documents = documentStarts(yaml_text, 2);
    if (documents.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ":1: (top level): expected a mapping, got an empty document"));
    }
    if (documents.size() > 1) {
      const YAML::Mark& mark = documents[1];
      return absl::InvalidArgumentError(
          absl::StrCat(source, ":", mark.is_null() ? 1 : mark.line + 1,
                       ": (top level): expected one YAML document, got more than one"));
    }
    const YAML::Node document = YAML::Load(yaml_text);
    ConfigParser parser(source);
    return parser.parse(document);
  } catch (const YAML::Exception& e) {
    const int line = e.mark.is_null() ? 1 : e.mark.line + 1;
    const std::string column =
        e.mark.is_null() ? "" : absl::StrCat(" (column ", e.mark.column + 1, ")");
    return absl::InvalidArgumentError(
        absl::StrCat(source, ":", line, ": YAML syntax error: ", e.msg, column));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": cannot parse YAML: ", e.what()));
  }
}

StatusOr<ServeConfig> loadServeConfig(const std::string& path) {
  StatusOr<std::string> bytes = readWholeFile(path, "config file");
  if (!bytes.ok()) {
    return bytes.status();
  }
  return parseServeConfig(*bytes, path);
}

}  // namespace serve
