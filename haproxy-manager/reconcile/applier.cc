#include "haproxy-manager/reconcile/applier.h"

#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "haproxy-manager/diff/differ.h"
#include "haproxy-manager/haproxy/show_parsers.h"
#include "haproxy-manager/reconcile/observed_state.h"
#include "haproxy-manager/render/renderer.h"
#include "spdlog/spdlog.h"

namespace serve::manager {
namespace {

// "set server", "add map", ...: the first two words, for the command counters.
std::string commandKind(const std::string& command) {
  const std::size_t first = command.find(' ');
  const std::size_t second = first == std::string::npos ? first : command.find(' ', first + 1);
  return command.substr(0, second);
}

// The table as HAProxy reports it, or nullopt when it does not answer.
std::optional<RoutingTable> observe(RuntimeApi& api, const RoutingTable& running) {
  StatusOr<std::vector<ServerStateRow>> rows = showServersState(api);
  if (!rows.ok()) {
    if (absl::IsInvalidArgument(rows.status())) {  // it answered, in a form we cannot read
      spdlog::warn("haproxy-manager: cannot read show servers state: {}", messageOf(rows.status()));
    }
    return std::nullopt;
  }
  std::vector<ObservedServer> servers;
  for (const ServerStateRow& row : *rows) {
    servers.push_back(
        {row.backend, row.server, row.addr, row.port, row.inMaintenance(), row.draining()});
  }
  ObservedMaps maps;
  for (const char* file : {kRoutesExactMap, kModelsMap, kNodeMap}) {
    const std::string path = statePath(running.global, file);
    if (StatusOr<std::vector<MapEntry>> entries = showMap(api, path); entries.ok()) {
      auto& out = maps[path];
      for (const MapEntry& entry : *entries) {
        out.emplace_back(entry.key, entry.value);
      }
    }
  }
  return observedTable(running, servers, maps);
}

// One repair per slot or map entry that differs, however many commands it takes.
int countRepairs(const RoutingTable& observed, const RoutingTable& running) {
  int repairs = observed.draining != running.draining ? 1 : 0;
  for (std::size_t b = 0; b < running.backends.size(); ++b) {
    const Backend& want = running.backends[b];
    const Backend& seen = observed.backends[b];
    repairs += want.route_prefix != seen.route_prefix ? 1 : 0;
    repairs += want.model_name != seen.model_name ? 1 : 0;
    for (std::size_t i = 0; i < want.slots.size(); ++i) {
      repairs += slotCommands(backendName(want), i, seen.slots[i], want.slots[i]).empty() ? 0 : 1;
      if (running.global.grpc_port > 0) {
        const bool differs = !slotCommands(grpcBackendName(want), i, grpcSlot(seen.slots[i]),
                                           grpcSlot(want.slots[i]), Health::kTracked)
                                  .empty();
        repairs += differs ? 1 : 0;
      }
    }
  }
  return repairs;
}

}  // namespace

Status applyRuntimePlan(RuntimeApi& api, const std::vector<std::string>& commands,
                        ManagerMetrics& metrics) {
  Status st = applyCommands(api, commands);
  std::map<std::string, double> kinds;
  for (const std::string& command : commands) {
    kinds[commandKind(command)] += 1;
  }
  for (const auto& [kind, n] : kinds) {
    metrics.recordRuntimeCommands(kind, st.ok() ? "ok" : "error", n);
  }
  if (st.ok()) {
    spdlog::debug("haproxy-manager: applied {}", absl::StrJoin(commands, "; "));
  }
  return st;
}

int repairDrift(RuntimeApi& api, const RoutingTable& running, ManagerMetrics& metrics) {
  const std::optional<RoutingTable> observed = observe(api, running);
  if (!observed.has_value() || *observed == running) {
    return 0;
  }
  const Plan repair = diff(*observed, running);
  if (repair.commands.empty()) {
    return 0;
  }
  const int repairs = countRepairs(*observed, running);
  spdlog::warn("haproxy-manager: HAProxy drifted from the routing table ({} repair(s)): {}",
               repairs, absl::StrJoin(repair.commands, "; "));
  metrics.drift_repairs.inc(repairs);
  applyRuntimePlan(api, repair.commands, metrics).IgnoreError();
  return repairs;
}

std::set<SlotRef> idleDrainingSlots(RuntimeApi& api, const RoutingTable& running,
                                    const std::map<SlotRef, Clock::time_point>& drain_started,
                                    Clock::time_point sampled_at) {
  std::set<SlotRef> idle;
  if (drain_started.empty()) {
    return idle;
  }
  StatusOr<std::vector<StatRow>> rows = showStat(api);
  if (!rows.ok()) {
    return idle;
  }
  for (const auto& [ref, since] : drain_started) {
    const Backend* backend = running.findBackend(ref.first);
    if (since >= sampled_at || backend == nullptr) {
      continue;
    }
    // Idle on both protocols: the HTTP server is listed, and no server of the slot has a
    // request in progress or queued.
    const std::string http = backendName(*backend);
    const std::string grpc = grpcBackendName(*backend);
    const std::string server = slotName(ref.second);
    bool listed = false;
    bool busy = false;
    for (const StatRow& row : *rows) {
      if ((row.proxy == http || row.proxy == grpc) && row.server == server) {
        listed = listed || row.proxy == http;
        busy = busy || row.scur != 0 || row.qcur != 0;
      }
    }
    if (listed && !busy) {
      idle.insert(ref);
    }
  }
  return idle;
}

int64_t quiesceFrontends(RuntimeApi& api, bool grpc, std::chrono::milliseconds grace) {
  for (const char* frontend : {"http", "grpc"}) {
    if (std::string_view(frontend) == "grpc" && !grpc) {
      continue;
    }
    if (StatusOr<std::string> out = api.execute(absl::StrCat("disable frontend ", frontend));
        !out.ok()) {
      spdlog::warn("haproxy-manager: disable frontend {}: {}", frontend, messageOf(out.status()));
    }
  }
  const auto until = std::chrono::steady_clock::now() + grace;
  while (true) {
    StatusOr<std::vector<StatRow>> rows = showStat(api);
    if (!rows.ok()) {
      return 0;  // no HAProxy to answer anything: nothing to wait for
    }
    int64_t busy = 0;
    for (const StatRow& row : *rows) {
      const bool application =
          absl::StartsWith(row.proxy, "http-") || absl::StartsWith(row.proxy, "grpc-");
      if (application && row.kind == StatKind::kBackend) {
        busy += row.scur + row.qcur;
      }
    }
    if (busy == 0 || std::chrono::steady_clock::now() >= until) {
      return busy;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

}  // namespace serve::manager
