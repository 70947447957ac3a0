#pragma once

// (running table, desired table) -> plan. Pure. A plan is either runtime-API commands that turn
// the running HAProxy into the desired one without a reload, or a reload with its reasons when
// the structure changes (applications added or removed, slot capacity grown, or global settings
// changed). Per-server limits (maxconn) change at runtime. The same function repairs drift: pass
// the table observed from HAProxy's `show servers state` and `show map` as `running`.
#include <string>
#include <vector>

#include "haproxy-manager/model/routing_table.h"

namespace serve::manager {

// Why a reload is needed: `kind` is a short label for metrics, `text` the sentence for logs and
// API replies.
struct ReloadReason {
  std::string kind;  // global | application_added | application_removed | slots_grown |
                     // queue_limit
                     // (the manager adds runtime_error and restart)
  std::string text;

  friend bool operator==(const ReloadReason&, const ReloadReason&) = default;
};

struct Plan {
  std::vector<std::string> commands;         // runtime-API commands, in the order to send them
  std::vector<ReloadReason> reload_reasons;  // non-empty: reload instead; commands are empty

  bool needsReload() const { return !reload_reasons.empty(); }
  bool empty() const { return commands.empty() && reload_reasons.empty(); }
};

// Commands come in three groups so that a route can only ever point at a ready backend: map
// removals, then server changes (backends and slots in order), then map additions.
Plan diff(const RoutingTable& running, const RoutingTable& desired);

// How a server's health is known: its own checks (HTTP slots), or by tracking another server
// (gRPC slots follow the HTTP slot of the same replica; HAProxy refuses `health` on them).
enum class Health { kChecked, kTracked };

// The runtime commands for one slot going from `from` to `to` (empty when nothing changes for
// HAProxy). Only the endpoint's host and port are compared: pass a gRPC slot as grpcSlot().
// Exposed for the tests and the drift repair counters.
std::vector<std::string> slotCommands(const std::string& backend, std::size_t index,
                                      const Slot& from, const Slot& to,
                                      Health health = Health::kChecked);

}  // namespace serve::manager
