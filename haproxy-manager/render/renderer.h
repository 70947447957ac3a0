#pragma once

// Routing table -> haproxy.cfg text and the files it references (map files, error pages).
// Pure: the templates are passed in as text, nothing is read or written here, and the same
// inputs always give the same bytes. Everything that reaches the output has been validated
// (names and prefixes by common/names, settings by readManagerEnv), so values are inserted
// without escaping.
#include <map>
#include <string>

#include "common/status.h"
#include "haproxy-manager/model/routing_table.h"

namespace serve::manager {

// The template set, as read from RAY_SERVE_HAPROXY_TEMPLATE_DIR (default: templates/).
struct Templates {
  std::string config;     // haproxy.cfg.mustache
  std::string error_408;  // 408.http: sent when a replica does not answer in time
  std::string error_503;  // 503.http: no replica could take the request
  // The same two for gRPC calls: trailers-only answers (HTTP 200, grpc-status 4 and 14), which
  // gRPC clients read as DEADLINE_EXCEEDED and UNAVAILABLE with HAProxy's message.
  std::string grpc_error_504;  // grpc-504.http
  std::string grpc_error_503;  // grpc-503.http
};

inline constexpr char kConfigTemplateFile[] = "haproxy.cfg.mustache";
inline constexpr char kError408File[] = "408.http";
inline constexpr char kError503File[] = "503.http";
inline constexpr char kGrpcError504File[] = "grpc-504.http";
inline constexpr char kGrpcError503File[] = "grpc-503.http";

// Reads the template set from `dir`; a missing file is an error naming it.
StatusOr<Templates> loadTemplates(const std::string& dir);

// The files HAProxy reads besides haproxy.cfg, by name; they live in GlobalSettings::state_dir.
inline constexpr char kRoutesExactMap[] = "routes_exact.map";      // prefix -> backend
inline constexpr char kRoutesPrefixMap[] = "routes_prefix.map";    // prefix + "/" -> backend
inline constexpr char kModelsMap[] = "models.map";                 // KServe model name -> backend
inline constexpr char kRoutesRewriteMap[] = "routes_rewrite.map";  // prefix -> replica path
inline constexpr char kNodeMap[] = "node.map";                     // draining, routes JSON
inline constexpr char kServerStateFile[] = "server-state";
// prefix + "/" -> prefix: the `route` label of the ingress request metrics, looked up with
// path + "/" so that the prefix itself and every path below it find the prefix.
inline constexpr char kRoutesLabelMap[] = "routes_label.map";

struct RenderedConfig {
  std::string config;                        // haproxy.cfg
  std::map<std::string, std::string> files;  // file name (in state_dir) -> content

  friend bool operator==(const RenderedConfig&, const RenderedConfig&) = default;
};

// Fails only when the config template does not parse (the message names the template and
// the mustache error).
StatusOr<RenderedConfig> render(const RoutingTable& table, const Templates& templates);

// Absolute path of a file in the state directory, as haproxy.cfg and runtime commands name it.
std::string statePath(const GlobalSettings& global, const std::string& file_name);

// "5s", "250ms": the shortest exact HAProxy time for a duration in seconds (rounded to ms).
std::string haproxyDuration(double seconds);

// The map lines for one backend, spelled once for the files and the runtime commands.
std::string exactRouteKey(const Backend& backend);   // the prefix itself
std::string prefixRouteKey(const Backend& backend);  // prefix + "/" ("/" stays "/")
// A request for exactly the route prefix reaches the replica as a KServe v2 infer call for the
// backend's model, so the route prefix lives only in HAProxy: changing it needs neither a
// reload nor new replicas.
std::string replicaInferPath(const Backend& backend);  // "/v2/models/<model>/infer"
// The route label of requests matched by the backend's prefix (key: prefixRouteKey).
std::string routeLabel(const Backend& backend);

// Where a slot's server points: the replica's endpoint, or the placeholder for free slots
// (port 1 refuses at once, so a slot enabled by mistake just redispatches).
inline constexpr char kPlaceholderHost[] = "127.0.0.1";
inline constexpr int kPlaceholderPort = 1;
std::string serverAddress(const Slot& slot);

}  // namespace serve::manager
