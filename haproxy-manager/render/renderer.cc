#include "haproxy-manager/render/renderer.h"

#include <cmath>
#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/version.h"
#include "kainjow/mustache.hpp"

namespace serve::manager {

namespace mustache = kainjow::mustache;

StatusOr<Templates> loadTemplates(const std::string& dir) {
  Templates t;
  const std::pair<const char*, std::string*> files[] = {
      {kConfigTemplateFile, &t.config},       {kError408File, &t.error_408},
      {kError503File, &t.error_503},          {kGrpcError504File, &t.grpc_error_504},
      {kGrpcError503File, &t.grpc_error_503},
  };
  for (const auto& [name, out] : files) {
    StatusOr<std::string> text = readWholeFile(dir + "/" + name, "HAProxy template");
    if (!text.ok()) {
      return text.status();
    }
    *out = *std::move(text);
  }
  return t;
}

std::string statePath(const GlobalSettings& global, const std::string& file_name) {
  return absl::StrCat(global.state_dir, "/", file_name);
}

std::string haproxyDuration(double seconds) {
  const auto ms = static_cast<std::int64_t>(std::llround(seconds * 1000.0));
  if (ms % 1000 == 0) {
    return absl::StrCat(ms / 1000, "s");
  }
  return absl::StrCat(ms, "ms");
}

std::string exactRouteKey(const Backend& backend) { return backend.route_prefix; }

std::string prefixRouteKey(const Backend& backend) {
  return backend.route_prefix == "/" ? "/" : backend.route_prefix + "/";
}

std::string replicaInferPath(const Backend& backend) {
  return absl::StrCat("/v2/models/", backend.model_name, "/infer");
}

std::string routeLabel(const Backend& backend) { return backend.route_prefix; }

std::string serverAddress(const Slot& slot) {
  if (slot.state == SlotState::kFree) {
    return absl::StrCat(kPlaceholderHost, ":", kPlaceholderPort);
  }
  // An IPv6 literal needs brackets in a server line; HAProxy also accepts "ipv6@" but brackets
  // read like every other tool.
  const bool ipv6 = slot.endpoint.host.find(':') != std::string::npos;
  return ipv6 ? absl::StrCat("[", slot.endpoint.host, "]:", slot.endpoint.port)
              : absl::StrCat(slot.endpoint.host, ":", slot.endpoint.port);
}

namespace {

// Active slots become `server` lines at the replica's address; free ones collapse into
// `server-template` ranges of placeholders. Draining slots render as free: after a reload the
// new worker has no requests on them, and the old worker finishes its own.
mustache::data backendData(const RoutingTable& table, const Backend& backend) {
  const GlobalSettings& g = table.global;
  mustache::data data;
  data.set("application", backend.application);
  data.set("backend", backendName(backend));
  data.set("balance", g.balance_algorithm);
  data.set("inter", haproxyDuration(g.health_check_inter_s));
  data.set("fastinter", haproxyDuration(g.health_check_fastinter_s));
  data.set("downinter", haproxyDuration(g.health_check_downinter_s));
  data.set("fall", std::to_string(g.health_check_fall));
  data.set("rise", std::to_string(g.health_check_rise));
  data.set("maxconn", std::to_string(backend.max_ongoing_requests));
  if (backend.max_queued_requests >= 0) {
    data.set("max_queued", std::to_string(backend.max_queued_requests));
  }
  if (g.observe_mark_down) {
    data.set("observe", true);
    data.set("error_limit", std::to_string(g.observe_error_limit));
  }

  mustache::data servers{mustache::data::type::list};
  mustache::data free_slots{mustache::data::type::list};
  std::size_t run_start = 0;
  bool in_run = false;
  auto close_run = [&](std::size_t end) {  // [run_start, end) are free
    mustache::data range;
    range.set("range", end - run_start == 1 ? absl::StrCat(run_start + 1, "-", run_start + 1)
                                            : absl::StrCat(run_start + 1, "-", end));
    range.set("placeholder", serverAddress(Slot{}));
    free_slots << range;
    in_run = false;
  };
  for (std::size_t i = 0; i < backend.slots.size(); ++i) {
    const Slot& slot = backend.slots[i];
    if (slot.state == SlotState::kActive) {
      if (in_run) {
        close_run(i);
      }
      mustache::data server;
      server.set("name", slotName(i));
      server.set("address", serverAddress(slot));
      servers << server;
    } else if (!in_run) {
      run_start = i;
      in_run = true;
    }
  }
  if (in_run) {
    close_run(backend.slots.size());
  }
  data.set("servers", servers);
  data.set("free_slots", free_slots);

  // The gRPC backend lists every slot (a `track` argument names one server, so no templates);
  // free, draining and gRPC-less slots start disabled, as the HTTP ones do.
  data.set("grpc_backend", grpcBackendName(backend));
  mustache::data grpc_servers{mustache::data::type::list};
  for (std::size_t i = 0; i < backend.slots.size(); ++i) {
    const Slot& slot = backend.slots[i];
    const Slot view = slot.state == SlotState::kActive ? grpcSlot(slot) : Slot{};
    mustache::data server;
    server.set("name", slotName(i));
    server.set("address", serverAddress(view));
    if (view.state == SlotState::kFree) {
      server.set("disabled", true);
    }
    grpc_servers << server;
  }
  data.set("grpc_servers", grpc_servers);
  return data;
}

std::string mapFile(const std::vector<std::pair<std::string, std::string>>& entries) {
  std::string out;
  for (const auto& [key, value] : entries) {
    absl::StrAppend(&out, key, " ", value, "\n");
  }
  return out;
}

}  // namespace

StatusOr<RenderedConfig> render(const RoutingTable& table, const Templates& templates) {
  const GlobalSettings& g = table.global;
  mustache::data data;
  data.set("admin_socket", g.admin_socket);
  data.set("maxconn", std::to_string(g.maxconn));
  data.set("nbthread", std::to_string(g.nbthread));
  data.set("hard_stop_after", haproxyDuration(g.hard_stop_after_s));
  data.set("server_state_file", statePath(g, kServerStateFile));
  if (g.retries.has_value()) {
    data.set("retries", std::to_string(*g.retries));
  }
  data.set("timeout_client", haproxyDuration(g.timeout_client_s));
  if (g.timeout_connect_s.has_value()) {
    data.set("timeout_connect", haproxyDuration(*g.timeout_connect_s));
  }
  if (g.timeout_server_s.has_value()) {
    data.set("timeout_server", haproxyDuration(*g.timeout_server_s));
  }
  if (g.timeout_queue_s.has_value()) {
    data.set("timeout_queue", haproxyDuration(*g.timeout_queue_s));
  }
  data.set("keep_alive", haproxyDuration(g.keep_alive_timeout_s));
  data.set("check_timeout", haproxyDuration(g.health_check_inter_s));
  data.set("error_408", statePath(g, kError408File));
  data.set("error_503", statePath(g, kError503File));
  data.set("grpc_error_504", statePath(g, kGrpcError504File));
  data.set("grpc_error_503", statePath(g, kGrpcError503File));
  const bool ipv6_bind = g.http_host.find(':') != std::string::npos;
  data.set("http_bind", ipv6_bind ? absl::StrCat("[", g.http_host, "]") : g.http_host);
  data.set("http_port", std::to_string(g.http_port));
  data.set("metrics_port", std::to_string(g.metrics_port));
  data.set("stats_port", std::to_string(g.stats_port));
  const bool ipv6_stats = g.stats_bind.find(':') != std::string::npos;
  data.set("stats_bind", ipv6_stats ? absl::StrCat("[", g.stats_bind, "]") : g.stats_bind);
  if (!g.stats_auth.empty()) {
    data.set("stats_auth", g.stats_auth);
  }
  data.set("control_port", std::to_string(g.control_port));
  data.set("server_version", std::string(kServeVersion));
  data.set("node_map", statePath(g, kNodeMap));
  data.set("models_map", statePath(g, kModelsMap));
  data.set("routes_exact_map", statePath(g, kRoutesExactMap));
  data.set("routes_prefix_map", statePath(g, kRoutesPrefixMap));
  data.set("routes_rewrite_map", statePath(g, kRoutesRewriteMap));
  data.set("routes_label_map", statePath(g, kRoutesLabelMap));
  // Request logging for the ingress metrics: rendered only when a socket is set.
  if (!g.ingress_log_socket.empty()) {
    data.set("ingress_log", true);
    data.set("ingress_log_socket", g.ingress_log_socket);
  }

  if (g.grpc_port > 0) {
    data.set("grpc", true);
    data.set("grpc_port", std::to_string(g.grpc_port));
    std::string apps;
    for (const Backend& backend : table.backends) {
      absl::StrAppend(&apps, apps.empty() ? "" : ", ", backend.application);
    }
    data.set("grpc_apps", apps);
    if (table.backends.size() == 1) {
      data.set("grpc_default", grpcBackendName(table.backends.front()));
    }
  }

  mustache::data backends{mustache::data::type::list};
  std::vector<std::pair<std::string, std::string>> exact;
  std::vector<std::pair<std::string, std::string>> prefix;
  std::vector<std::pair<std::string, std::string>> models;
  std::vector<std::pair<std::string, std::string>> rewrites;
  std::vector<std::pair<std::string, std::string>> labels;
  for (const Backend& backend : table.backends) {
    backends << backendData(table, backend);
    exact.emplace_back(exactRouteKey(backend), backendName(backend));
    prefix.emplace_back(prefixRouteKey(backend), backendName(backend));
    models.emplace_back(backend.model_name, backendName(backend));
    if (!backend.passthrough) {
      rewrites.emplace_back(exactRouteKey(backend), replicaInferPath(backend));
    }
    labels.emplace_back(prefixRouteKey(backend), routeLabel(backend));
  }
  data.set("backends", backends);
  data.set("has_backends", !table.backends.empty());

  mustache::mustache tmpl{templates.config};
  if (!tmpl.is_valid()) {
    return absl::InvalidArgumentError(
        absl::StrCat(kConfigTemplateFile, ": ", tmpl.error_message()));
  }
  // Values are validated, and HTML escaping would corrupt the config: insert them verbatim.
  tmpl.set_custom_escape([](const std::string& s) { return s; });

  RenderedConfig out;
  out.config = tmpl.render(data);
  std::sort(exact.begin(), exact.end());
  std::sort(prefix.begin(), prefix.end());
  std::sort(models.begin(), models.end());
  std::sort(rewrites.begin(), rewrites.end());
  std::sort(labels.begin(), labels.end());
  out.files[kRoutesExactMap] = mapFile(exact);
  out.files[kRoutesPrefixMap] = mapFile(prefix);
  out.files[kModelsMap] = mapFile(models);
  out.files[kRoutesRewriteMap] = mapFile(rewrites);
  out.files[kRoutesLabelMap] = mapFile(labels);
  out.files[kNodeMap] =
      mapFile({{"draining", table.draining ? "1" : "0"}, {"routes", routesJson(table)}});
  out.files[kError408File] = templates.error_408;
  out.files[kError503File] = templates.error_503;
  out.files[kGrpcError504File] = templates.grpc_error_504;
  out.files[kGrpcError503File] = templates.grpc_error_503;
  return out;
}

}  // namespace serve::manager
