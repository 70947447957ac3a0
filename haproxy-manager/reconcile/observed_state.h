#pragma once

// What HAProxy is actually running, as a routing table, so that diff(observed, running) yields
// the commands that repair drift (for example a slot changed by hand with socat). Pure.
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "haproxy-manager/model/routing_table.h"

namespace serve::manager {

// One row of `show servers state`, reduced to what the comparison needs.
struct ObservedServer {
  std::string backend;
  std::string server;
  std::string addr;
  int port = 0;
  bool maintenance = false;  // out of service (a free slot)
  bool draining = false;     // in service for its current requests only
};

// Map file (absolute path, as in haproxy.cfg) -> its (key, value) entries from `show map`.
using ObservedMaps = std::map<std::string, std::vector<std::pair<std::string, std::string>>>;

// Starts from `running` and overwrites what HAProxy reports: slot states and endpoints, the
// route prefix and model name each backend is mapped from, and the drain flag. Slots or maps
// HAProxy does not report keep their running value (nothing to repair there).
RoutingTable observedTable(const RoutingTable& running, const std::vector<ObservedServer>& servers,
                           const ObservedMaps& maps);

}  // namespace serve::manager
