#include "haproxy-manager/reconcile/adoption.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "haproxy-manager/reconcile/observed_state.h"
#include "haproxy-manager/render/renderer.h"
#include "nlohmann/json.hpp"

namespace serve::manager {
namespace {

using nlohmann::json;

Status damaged(const std::string& source, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(source, ": ", what));
}

// `object[key]` as an int in [low, high]; `fallback` when absent.
StatusOr<int> intField(const json& object, const char* key, int low, int high, int fallback,
                       const std::string& source) {
  if (!object.contains(key)) {
    return fallback;
  }
  const json& value = object[key];
  if (!value.is_number_integer() || value.get<long long>() < low || value.get<long long>() > high) {
    return damaged(source, absl::StrCat("'", key, "' must be an integer in [", low, ", ", high,
                                        "], got ", value.dump()));
  }
  return value.get<int>();
}

StatusOr<std::string> stringField(const json& object, const char* key, const std::string& fallback,
                                  const std::string& source) {
  if (!object.contains(key)) {
    return fallback;
  }
  if (!object[key].is_string()) {
    return damaged(source, absl::StrCat("'", key, "' must be a string"));
  }
  return object[key].get<std::string>();
}

StatusOr<ReplicaRegistration> parseRegistration(const json& r, const std::string& source) {
  if (!r.is_object()) {
    return damaged(source, "each replica must be an object");
  }
  ReplicaRegistration reg;
  StatusOr<std::string> id = stringField(r, "replica_id", "", source);
  StatusOr<std::string> app = stringField(r, "application", "", source);
  StatusOr<std::string> deployment = stringField(r, "deployment", "", source);
  StatusOr<std::string> host = stringField(r, "host", "127.0.0.1", source);
  StatusOr<int> http = intField(r, "http_port", 0, 65535, 0, source);
  StatusOr<int> grpc = intField(r, "grpc_port", 0, 65535, 0, source);
  StatusOr<int> pid = intField(r, "pid", 0, 1 << 30, 0, source);
  for (const Status& st : {id.status(), app.status(), deployment.status(), host.status(),
                           http.status(), grpc.status(), pid.status()}) {
    if (!st.ok()) {
      return st;
    }
  }
  if (id->empty()) {
    return damaged(source, "a replica has no replica_id");
  }
  return ReplicaRegistration{*id, *app, *deployment, *host, *http, *grpc, *pid};
}

}  // namespace

json registrationJson(const ReplicaRegistration& r) {
  return {{"replica_id", r.replica_id},
          {"application", r.application},
          {"deployment", r.deployment},
          {"host", r.host},
          {"http_port", r.http_port},
          {"grpc_port", r.grpc_port},
          {"pid", r.pid}};
}

std::string managerStateJson(const ManagerState& state) {
  json replicas = json::array();
  for (const ReplicaRegistration& r : state.replicas) {
    replicas.push_back(registrationJson(r));
  }
  return json{{"haproxy_master_pid", state.haproxy_master_pid}, {"replicas", replicas}}.dump();
}

StatusOr<ManagerState> parseManagerState(const std::string& text, const std::string& source) {
  const json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    return damaged(source, "not valid JSON (truncated or damaged)");
  }
  if (!doc.is_object() || !doc.contains("haproxy_master_pid")) {
    return damaged(source, "no 'haproxy_master_pid'");
  }
  ManagerState state;
  StatusOr<int> pid = intField(doc, "haproxy_master_pid", 1, 1 << 30, 0, source);
  if (!pid.ok()) {
    return pid.status();
  }
  state.haproxy_master_pid = *pid;
  if (doc.contains("replicas")) {
    if (!doc["replicas"].is_array()) {
      return damaged(source, "'replicas' must be a list");
    }
    for (const json& r : doc["replicas"]) {
      StatusOr<ReplicaRegistration> reg = parseRegistration(r, source);
      if (!reg.ok()) {
        return reg.status();
      }
      state.replicas.push_back(*std::move(reg));
    }
  }
  return state;
}

std::string inForceJson(const InForceRecord& record) {
  return json{{"snapshot", record.snapshot}, {"base_dir", record.base_dir}}.dump();
}

StatusOr<InForceRecord> parseInForce(const std::string& text, const std::string& source) {
  const json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    return damaged(source, "not valid JSON (truncated or damaged)");
  }
  if (!doc.is_object()) {
    return damaged(source, "not a JSON object");
  }
  InForceRecord record;
  for (const auto& [key, field] :
       {std::pair{"snapshot", &record.snapshot}, std::pair{"base_dir", &record.base_dir}}) {
    if (!doc.contains(key) || !doc[key].is_string()) {
      return damaged(source, absl::StrCat("'", key, "' must be a string"));
    }
    *field = doc[key].get<std::string>();
  }
  if (!record.snapshot.starts_with("/")) {
    return damaged(source, "'snapshot' must be an absolute path");
  }
  return record;
}

std::vector<ReplicaRegistration> liveRegistrations(const std::vector<ReplicaRegistration>& all,
                                                   const std::function<bool(int)>& alive) {
  std::vector<ReplicaRegistration> live;
  for (const ReplicaRegistration& r : all) {
    if (r.pid <= 0 || alive(r.pid)) {
      live.push_back(r);
    }
  }
  return live;
}

RoutingTable adoptedTable(RoutingTable base, const std::vector<ServerStateRow>& servers,
                          const std::vector<ReplicaRegistration>& replicas) {
  std::vector<ObservedServer> observed;
  std::map<std::string, std::size_t> capacity;
  for (const ServerStateRow& row : servers) {
    observed.push_back(
        {row.backend, row.server, row.addr, row.port, row.inMaintenance(), row.draining()});
    if (row.server.rfind("slot", 0) == 0) {
      capacity[row.backend] += 1;
    }
  }
  for (Backend& backend : base.backends) {
    if (auto it = capacity.find(backendName(backend)); it != capacity.end()) {
      backend.slots.resize(it->second);
    }
  }
  RoutingTable table = observedTable(base, observed, ObservedMaps{});
  for (Backend& backend : table.backends) {
    for (Slot& slot : backend.slots) {
      for (const ReplicaRegistration& reg : replicas) {
        if (slot.state != SlotState::kFree && slot.endpoint.host == reg.host &&
            slot.endpoint.port == reg.http_port) {
          slot.replica_id = reg.replica_id;
        }
      }
    }
  }
  return table;
}

bool tableHolds(const RoutingTable& table, const ReplicaRegistration& replica) {
  for (const Backend& backend : table.backends) {
    for (const Slot& slot : backend.slots) {
      const bool named = slot.replica_id == replica.replica_id;
      const bool at_endpoint =
          slot.endpoint.host == replica.host && slot.endpoint.port == replica.http_port;
      if (slot.state != SlotState::kFree && (named || at_endpoint)) {
        return true;
      }
    }
  }
  return false;
}

}  // namespace serve::manager
