#include "haproxy-manager/reconcile/reload.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "haproxy-manager/reconcile/reconciler.h"
#include "haproxy-manager/render/renderer.h"
#include "spdlog/spdlog.h"

namespace serve::manager {
namespace {

double msBetween(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

// The candidate's checks: rendered, written, accepted by `haproxy -c`. On failure `result` says
// how the reload counters record it: "invalid" (the config) or "failed" (the machine).
StatusOr<RenderedConfig> prepareCandidate(const RoutingTable& desired, ReloadParts parts,
                                          const std::string& why, const char*& result) {
  result = "invalid";
  StatusOr<RenderedConfig> rendered = parts.files.render(desired);
  if (!rendered.ok()) {
    return rendered.status();
  }
  const std::string candidate = parts.files.candidatePath();
  if (Status st = parts.files.write(*rendered, candidate); !st.ok()) {
    parts.files.rollBack().IgnoreError();
    result = "failed";
    return st;
  }
  if (Status st = parts.haproxy.validate(candidate); !st.ok()) {
    parts.files.rollBack().IgnoreError();  // the map files back to what is running
    std::remove(candidate.c_str());
    spdlog::error(
        "haproxy-manager: candidate config refused by haproxy -c ({}); keeping the running "
        "config: {}",
        why, messageOf(st));
    return absl::InvalidArgumentError(
        absl::StrCat("the new HAProxy config was refused by haproxy -c; the running config is "
                     "unchanged. ",
                     messageOf(st)));
  }
  return rendered;
}

}  // namespace

StatusOr<ReloadOutcome> reloadTo(const RoutingTable& desired,
                                 const std::vector<ReloadReason>& reasons, ReloadParts parts) {
  const Clock::time_point started = parts.clock.now();
  std::vector<std::string> texts;
  for (const ReloadReason& reason : reasons) {
    texts.push_back(reason.text);
  }
  const std::string why = absl::StrJoin(texts, "; ");
  auto count = [&](const char* result) {
    for (const ReloadReason& reason : reasons) {
      parts.metrics.recordReload(reason.kind, result);
    }
  };

  const char* failure = "";
  StatusOr<RenderedConfig> rendered = prepareCandidate(desired, parts, why, failure);
  if (!rendered.ok()) {
    count(failure);
    return rendered.status();
  }
  // Carry health and admin state into the new worker.
  if (StatusOr<std::string> state = parts.admin.execute("show servers state"); state.ok()) {
    writePrivateFileAtomically(statePath(desired.global, kServerStateFile), *state,
                               "server state file")
        .IgnoreError();
  }
  const std::string& config_file = parts.files.configPath();
  if (::rename(parts.files.candidatePath().c_str(), config_file.c_str()) != 0) {
    count("failed");
    return absl::InternalError(
        absl::StrCat("cannot install ", config_file, ": ", std::strerror(errno)));
  }
  StatusOr<ReloadOutcome> outcome = parts.haproxy.reload();
  if (!outcome.ok()) {
    parts.files.rollBack().IgnoreError();
    count("failed");
    spdlog::error("haproxy-manager: reload failed ({}); HAProxy keeps the previous config: {}", why,
                  messageOf(outcome.status()));
    return absl::InternalError(
        absl::StrCat("HAProxy reload failed; it keeps serving the previous config. ",
                     messageOf(outcome.status())));
  }
  parts.files.setLastGood(*std::move(rendered));
  count("success");
  const double ms = msBetween(started, parts.clock.now());
  parts.metrics.reload_ms.observe(ms);
  spdlog::info(
      "haproxy-manager: reloaded HAProxy in {:.0f} ms (worker {} -> {}, takeover {} ms): {}", ms,
      outcome->old_worker_pid, outcome->new_worker_pid, outcome->duration.count(), why);
  return outcome;
}

Status restartFrom(const RoutingTable& running, ReloadParts parts) {
  spdlog::error("haproxy-manager: the HAProxy master died; starting it again");
  parts.metrics.restarts.inc();
  if (Status st = parts.files.follow(running); !st.ok()) {
    spdlog::warn(
        "haproxy-manager: cannot render the current table ({}); restarting from the "
        "last good files",
        messageOf(st));
    parts.files.rollBack().IgnoreError();
  }
  if (Status st = parts.haproxy.restart(); !st.ok()) {
    parts.metrics.recordReload("restart", "failed");
    spdlog::error("haproxy-manager: restarting HAProxy failed: {}", messageOf(st));
    return st;
  }
  parts.metrics.recordReload("restart", "success");
  return absl::OkStatus();
}

}  // namespace serve::manager
