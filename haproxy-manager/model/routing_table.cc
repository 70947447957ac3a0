#include "haproxy-manager/model/routing_table.h"

#include <map>

#include "absl/strings/str_cat.h"

namespace serve::manager {

const Backend* RoutingTable::findBackend(const std::string& application) const {
  for (const Backend& backend : backends) {
    if (backend.application == application) {
      return &backend;
    }
  }
  return nullptr;
}

std::string backendName(const Backend& backend) { return kBackendNamePrefix + backend.application; }

std::string grpcBackendName(const Backend& backend) {
  return kGrpcBackendNamePrefix + backend.application;
}

std::string slotName(std::size_t index) { return absl::StrCat("slot", index + 1); }

std::string routesJson(const RoutingTable& table) {
  // Prefixes and application names are validated against charsets without '"' or '\', so they
  // need no escaping; the map keeps the output sorted and stable.
  std::map<std::string, std::string> routes;
  for (const Backend& backend : table.backends) {
    routes[backend.route_prefix] = backend.application;
  }
  std::string out = "{";
  for (const auto& [prefix, application] : routes) {
    if (out.size() > 1) {
      out += ",";
    }
    absl::StrAppend(&out, "\"", prefix, "\":\"", application, "\"");
  }
  out += "}";
  return out;
}

Slot grpcSlot(const Slot& slot) {
  if (slot.state == SlotState::kFree || slot.endpoint.grpc_port == 0) {
    return Slot{};
  }
  Slot view = slot;
  view.endpoint.port = slot.endpoint.grpc_port;
  return view;
}

}  // namespace serve::manager
