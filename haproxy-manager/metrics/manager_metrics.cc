#include "haproxy-manager/metrics/manager_metrics.h"

namespace serve::manager {

ManagerMetrics::ManagerMetrics()
    : drift_repairs(registry_
                        .counter("serve_haproxy_drift_repairs_total",
                                 "HAProxy state found different from the routing table "
                                 "(slots or map entries) and put back")
                        .with()),
      restarts(registry_
                   .counter("serve_haproxy_restarts_total",
                            "HAProxy master processes found dead and started again")
                   .with()),
      propagation_ms(registry_
                         .histogram("serve_haproxy_propagation_latency_ms",
                                    "Time from a routing change (registration, deploy, drain) "
                                    "until HAProxy applied it",
                                    {}, metrics::latencyBucketsMs())
                         .with()),
      reload_ms(registry_
                    .histogram("serve_haproxy_reload_duration_ms",
                               "Validated reloads: render, haproxy -c, reload, worker takeover", {},
                               metrics::latencyBucketsMs())
                    .with()),
      old_workers(registry_
                      .gauge("serve_haproxy_old_workers",
                             "HAProxy workers from earlier reloads still finishing requests")
                      .with()),
      replicas(
          registry_
              .gauge("serve_haproxy_registered_replicas", "Replicas registered with the manager")
              .with()),
      draining(registry_.gauge("serve_haproxy_node_draining", "1 while the node drains").with()),
      replicas_lost(registry_
                        .counter("serve_haproxy_replicas_lost_total",
                                 "Registered replicas whose process disappeared without "
                                 "deregistering")
                        .with()),
      replica_restarts(registry_
                           .counter("serve_replica_restarts_total",
                                    "Replicas that exited unexpectedly and were started again")
                           .with()),
      reloads_(&registry_.counter("serve_haproxy_reloads_total",
                                  "HAProxy reloads by reason and result", {"reason", "result"})),
      commands_(&registry_.counter("serve_haproxy_runtime_commands_total",
                                   "Runtime-API commands sent by kind and result",
                                   {"kind", "result"})),
      slots_(&registry_.gauge("serve_haproxy_slots", "Server slots per backend by state",
                              {"backend", "state"})) {}

void ManagerMetrics::recordReload(const std::string& reason, const std::string& result) {
  reloads_->with({reason, result}).inc();
}

void ManagerMetrics::recordRuntimeCommands(const std::string& kind, const std::string& result,
                                           double n) {
  commands_->with({kind, result}).inc(n);
}

void ManagerMetrics::setSlots(const std::string& backend, const std::string& state, double n) {
  slots_->with({backend, state}).set(n);
}

}  // namespace serve::manager
