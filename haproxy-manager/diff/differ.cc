#include "haproxy-manager/diff/differ.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "haproxy-manager/render/renderer.h"

namespace serve::manager {

namespace {

// Which global settings differ, by name, for the reload reason.
std::vector<std::string> changedGlobals(const GlobalSettings& a, const GlobalSettings& b) {
  std::vector<std::string> changed;
  auto check = [&](bool differs, const char* name) {
    if (differs) {
      changed.push_back(name);
    }
  };
  check(a.admin_socket != b.admin_socket, "admin socket");
  check(a.state_dir != b.state_dir, "config directory");
  check(a.maxconn != b.maxconn, "maxconn");
  check(a.nbthread != b.nbthread, "nbthread");
  check(a.hard_stop_after_s != b.hard_stop_after_s, "hard-stop-after");
  check(a.timeout_client_s != b.timeout_client_s, "timeout client");
  check(a.timeout_server_s != b.timeout_server_s, "timeout server");
  check(a.timeout_connect_s != b.timeout_connect_s, "timeout connect");
  check(a.timeout_queue_s != b.timeout_queue_s, "timeout queue");
  check(a.keep_alive_timeout_s != b.keep_alive_timeout_s, "timeout http-keep-alive");
  check(a.retries != b.retries, "retries");
  check(a.balance_algorithm != b.balance_algorithm, "balance");
  check(a.health_check_fall != b.health_check_fall || a.health_check_rise != b.health_check_rise ||
            a.health_check_inter_s != b.health_check_inter_s ||
            a.health_check_fastinter_s != b.health_check_fastinter_s ||
            a.health_check_downinter_s != b.health_check_downinter_s,
        "health checks");
  check(
      a.observe_mark_down != b.observe_mark_down || a.observe_error_limit != b.observe_error_limit,
      "observe layer4");
  check(a.http_host != b.http_host || a.http_port != b.http_port, "HTTP listener");
  check(a.grpc_port != b.grpc_port, "gRPC listener");
  check(a.metrics_port != b.metrics_port, "metrics port");
  check(a.stats_port != b.stats_port, "stats port");
  check(a.control_port != b.control_port, "control port");
  check(a.ingress_log_socket != b.ingress_log_socket, "ingress log socket");
  return changed;
}

std::vector<ReloadReason> reloadReasons(const RoutingTable& running, const RoutingTable& desired) {
  std::vector<ReloadReason> reasons;
  if (std::vector<std::string> changed = changedGlobals(running.global, desired.global);
      !changed.empty()) {
    std::string list;
    for (const std::string& name : changed) {
      absl::StrAppend(&list, list.empty() ? "" : ", ", name);
    }
    reasons.push_back({"global", absl::StrCat("global settings changed: ", list)});
  }
  for (const Backend& backend : desired.backends) {
    const Backend* old = running.findBackend(backend.application);
    if (old == nullptr) {
      reasons.push_back(
          {"application_added", absl::StrCat("application '", backend.application, "' added")});
      continue;
    }
    if (backend.max_queued_requests != old->max_queued_requests) {
      reasons.push_back(
          {"queue_limit",
           absl::StrCat("application '", backend.application, "' max_queued_requests ",
                        old->max_queued_requests, " -> ", backend.max_queued_requests)});
    }
    if (backend.slots.size() != old->slots.size()) {
      reasons.push_back(
          {"slots_grown",
           absl::StrCat("application '", backend.application, "' needs ", backend.slots.size(),
                        " server slots (has ", old->slots.size(), ")")});
    }
  }
  for (const Backend& backend : running.backends) {
    if (desired.findBackend(backend.application) == nullptr) {
      reasons.push_back(
          {"application_removed", absl::StrCat("application '", backend.application, "' removed")});
    }
  }
  return reasons;
}

std::string setServer(const std::string& backend, std::size_t index, const std::string& what) {
  return absl::StrCat("set server ", backend, "/", slotName(index), " ", what);
}

std::string addrCommand(const std::string& backend, std::size_t index, const Slot& slot) {
  const bool free = slot.state == SlotState::kFree;
  return setServer(backend, index,
                   absl::StrCat("addr ", free ? kPlaceholderHost : slot.endpoint.host, " port ",
                                free ? kPlaceholderPort : slot.endpoint.port));
}

}  // namespace

std::vector<std::string> slotCommands(const std::string& backend, std::size_t index,
                                      const Slot& from, const Slot& to, Health health) {
  const bool from_free = from.state == SlotState::kFree;
  const bool same_endpoint = !from_free && from.endpoint.host == to.endpoint.host &&
                             from.endpoint.port == to.endpoint.port;
  std::vector<std::string> out;
  switch (to.state) {
    case SlotState::kFree:
      if (!from_free) {
        out.push_back(setServer(backend, index, "state maint"));
        out.push_back(addrCommand(backend, index, to));
      }
      break;
    case SlotState::kActive:
      if (same_endpoint) {
        if (from.state == SlotState::kDraining) {
          out.push_back(setServer(backend, index, "state ready"));
        }
        break;
      }
      if (!from_free) {
        out.push_back(setServer(backend, index, "state maint"));
      }
      out.push_back(addrCommand(backend, index, to));
      out.push_back(setServer(backend, index, "state ready"));
      // Leaving maintenance restarts checks from DOWN; the replica said it is ready, so it
      // takes traffic now. A failing check still takes it out after `fall` probes. A tracking
      // server has the health of the server it tracks, which this just set.
      if (health == Health::kChecked) {
        out.push_back(setServer(backend, index, "health up"));
      }
      break;
    case SlotState::kDraining:
      if (same_endpoint) {
        if (from.state == SlotState::kActive) {
          out.push_back(setServer(backend, index, "state drain"));
        }
        break;
      }
      if (!from_free) {
        out.push_back(setServer(backend, index, "state maint"));
      }
      out.push_back(addrCommand(backend, index, to));
      out.push_back(setServer(backend, index, "state drain"));
      break;
  }
  return out;
}

Plan diff(const RoutingTable& running, const RoutingTable& desired) {
  Plan plan;
  plan.reload_reasons = reloadReasons(running, desired);
  if (plan.needsReload()) {
    return plan;
  }

  const GlobalSettings& g = desired.global;
  const std::string exact_map = statePath(g, kRoutesExactMap);
  const std::string prefix_map = statePath(g, kRoutesPrefixMap);
  const std::string models_map = statePath(g, kModelsMap);
  const std::string rewrite_map = statePath(g, kRoutesRewriteMap);
  const std::string label_map = statePath(g, kRoutesLabelMap);
  // HAProxy loads the label map only when the config logs requests (it is a global setting, so
  // turning logging on or off reloads); otherwise commands on it would be "unknown map".
  const bool route_labels = !g.ingress_log_socket.empty();
  const std::string node_map = statePath(g, kNodeMap);

  std::vector<std::string> removals;
  std::vector<std::string> servers;
  std::vector<std::string> additions;
  // Same set of backends in both tables here (otherwise it is a reload), in the same order.
  for (std::size_t b = 0; b < desired.backends.size(); ++b) {
    const Backend& to = desired.backends[b];
    const Backend& from = *running.findBackend(to.application);
    const std::string name = backendName(to);
    // An empty old key is a map entry observed missing (drift): nothing to delete.
    if (from.route_prefix != to.route_prefix) {
      if (!from.route_prefix.empty()) {
        removals.push_back(absl::StrCat("del map ", exact_map, " ", exactRouteKey(from)));
        removals.push_back(absl::StrCat("del map ", prefix_map, " ", prefixRouteKey(from)));
        if (route_labels) {
          removals.push_back(absl::StrCat("del map ", label_map, " ", prefixRouteKey(from)));
        }
      }
      additions.push_back(absl::StrCat("add map ", exact_map, " ", exactRouteKey(to), " ", name));
      additions.push_back(absl::StrCat("add map ", prefix_map, " ", prefixRouteKey(to), " ", name));
      if (route_labels) {
        additions.push_back(
            absl::StrCat("add map ", label_map, " ", prefixRouteKey(to), " ", routeLabel(to)));
      }
    }
    if (from.model_name != to.model_name) {
      if (!from.model_name.empty()) {
        removals.push_back(absl::StrCat("del map ", models_map, " ", from.model_name));
      }
      additions.push_back(absl::StrCat("add map ", models_map, " ", to.model_name, " ", name));
    }
    if (from.route_prefix != to.route_prefix || from.model_name != to.model_name ||
        from.passthrough != to.passthrough) {
      if (!from.route_prefix.empty() && !from.passthrough) {
        removals.push_back(absl::StrCat("del map ", rewrite_map, " ", exactRouteKey(from)));
      }
      if (!to.passthrough) {
        additions.push_back(absl::StrCat("add map ", rewrite_map, " ", exactRouteKey(to), " ",
                                         replicaInferPath(to)));
      }
    }
    // HTTP slots first: a gRPC slot takes its health from the HTTP slot it tracks.
    std::vector<std::string> backend_names = {name};
    for (std::size_t i = 0; i < to.slots.size(); ++i) {
      std::vector<std::string> commands = slotCommands(name, i, from.slots[i], to.slots[i]);
      servers.insert(servers.end(), commands.begin(), commands.end());
    }
    if (g.grpc_port > 0) {
      const std::string grpc_name = grpcBackendName(to);
      backend_names.push_back(grpc_name);
      for (std::size_t i = 0; i < to.slots.size(); ++i) {
        std::vector<std::string> commands = slotCommands(grpc_name, i, grpcSlot(from.slots[i]),
                                                         grpcSlot(to.slots[i]), Health::kTracked);
        servers.insert(servers.end(), commands.begin(), commands.end());
      }
    }
    // A new max_ongoing_requests is every slot's maxconn, changed in place (the rendered
    // default-server line follows with the next write of the files). The replica enforces the
    // one limit for both protocols together; HAProxy holds each protocol to it.
    if (from.max_ongoing_requests != to.max_ongoing_requests) {
      for (const std::string& backend_name : backend_names) {
        for (std::size_t i = 0; i < to.slots.size(); ++i) {
          servers.push_back(absl::StrCat("set maxconn server ", backend_name, "/", slotName(i), " ",
                                         to.max_ongoing_requests));
        }
      }
    }
  }
  if (routesJson(running) != routesJson(desired)) {
    additions.push_back(absl::StrCat("set map ", node_map, " routes ", routesJson(desired)));
  }
  if (running.draining != desired.draining) {
    additions.push_back(
        absl::StrCat("set map ", node_map, " draining ", desired.draining ? "1" : "0"));
  }

  plan.commands = std::move(removals);
  plan.commands.insert(plan.commands.end(), servers.begin(), servers.end());
  plan.commands.insert(plan.commands.end(), additions.begin(), additions.end());
  return plan;
}

}  // namespace serve::manager
