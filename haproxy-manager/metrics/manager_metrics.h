#pragma once

// The manager's own metrics, served at the control port's /metrics and, through HAProxy, at
// :9101/metrics/manager next to HAProxy's exporter. Names are listed in docs/manager.md.
#include <string>

#include "common/metrics.h"

namespace serve::manager {

class ManagerMetrics {
  metrics::Registry registry_;  // first: the references below point into it

 public:
  ManagerMetrics();

  std::string serialize() const { return registry_.serialize(); }

  // serve_haproxy_reloads_total{reason, result}: reason is a ReloadReason kind (one count per
  // reason of the reload), result one of success | invalid | failed.
  void recordReload(const std::string& reason, const std::string& result);
  // serve_haproxy_runtime_commands_total{kind, result}: kind is the command's verb
  // ("set server", "add map", ...), result ok | error.
  void recordRuntimeCommands(const std::string& kind, const std::string& result, double n);
  // serve_haproxy_slots{backend, state}: state free | active | draining.
  void setSlots(const std::string& backend, const std::string& state, double n);

  metrics::Counter& drift_repairs;     // serve_haproxy_drift_repairs_total
  metrics::Counter& restarts;          // serve_haproxy_restarts_total: HAProxy found dead
  metrics::Histogram& propagation_ms;  // serve_haproxy_propagation_latency_ms: change -> applied
  metrics::Histogram& reload_ms;       // serve_haproxy_reload_duration_ms
  metrics::Gauge& old_workers;         // serve_haproxy_old_workers: soft-stopping workers alive
  metrics::Gauge& replicas;            // serve_haproxy_registered_replicas
  metrics::Gauge& draining;            // serve_haproxy_node_draining
  metrics::Counter& replicas_lost;     // serve_haproxy_replicas_lost_total: registered pid died
  metrics::Counter&
      replica_restarts;  // serve_replica_restarts_total: crashed replicas started again

 private:
  metrics::Family<metrics::Counter>* reloads_;
  metrics::Family<metrics::Counter>* commands_;
  metrics::Family<metrics::Gauge>* slots_;
};

}  // namespace serve::manager
