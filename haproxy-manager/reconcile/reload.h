#pragma once

// The two ways the manager replaces HAProxy's configuration as a whole: a validated hitless
// reload, and a restart after the master died. Both go through ConfigFiles, so what HAProxy
// loads is always rendered from the manager's table, and every failure leaves the last good
// files in place.
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "haproxy-manager/diff/differ.h"
#include "haproxy-manager/haproxy/process_control.h"
#include "haproxy-manager/haproxy/runtime_api.h"
#include "haproxy-manager/metrics/manager_metrics.h"
#include "haproxy-manager/reconcile/config_files.h"

namespace serve::manager {

struct ReloadParts {
  ProcessControl& haproxy;
  RuntimeApi& admin;  // the running worker's: its server states carry over
  ConfigFiles& files;
  ManagerMetrics& metrics;
  const Clock& clock;
};

// Renders `desired`, writes it as a candidate next to the config, checks it with `haproxy -c`,
// saves the running worker's server states for the new one, installs the candidate and reloads.
// On success the new files are the last good set. A candidate HAProxy refuses is
// InvalidArgument with its ALERT lines; a failed reload is Internal; in both cases the last
// good files are back on disk and HAProxy keeps serving them. Every reason's
// serve_haproxy_reloads_total{reason,result} counts the result.
StatusOr<ReloadOutcome> reloadTo(const RoutingTable& desired,
                                 const std::vector<ReloadReason>& reasons, ReloadParts parts);

// The master died: renders `running` (its draining slots freed: their connections died with
// the master), makes that the last good set and starts HAProxy again from it, so the new
// worker routes from its first request.
Status restartFrom(const RoutingTable& running, ReloadParts parts);

}  // namespace serve::manager
