#pragma once

// Which config is in force on the node, kept in the state directory so that it outlives the
// manager. A fresh start records its start file; each deploy the node takes records the deploy
// (before HAProxy is changed, undone if the deploy is refused). A successor that adopts a running
// node reads it back and goes on with that config instead of rolling the node back to whatever
// file it was itself started with.
//
// The record names one of the state directory's immutable config snapshots (config-<hash>.yaml)
// and the folder its relative paths resolve against. This is the node-local source of desired
// state; a cluster store would hold the same record per node.
#include <optional>
#include <string>

#include "common/serve_config.h"
#include "common/status.h"
#include "haproxy-manager/reconcile/adoption.h"

namespace serve::manager {

// A recorded config, read back and parsed.
struct ResumedConfig {
  std::string yaml;  // the snapshot's bytes
  InForceRecord record;
  ServeConfig config;
};

class InForceStore {
 public:
  // `state_dir`: the manager's private state directory (absolute or relative to the cwd).
  explicit InForceStore(const std::string& state_dir);

  std::string path() const { return path_; }

  // Records `record` as the config in force. Returns the record it replaced (its text, for
  // restore()), or nullopt when there was none.
  StatusOr<std::optional<std::string>> replace(const InForceRecord& record);
  // Puts back what replace() returned (nullopt: removes the record).
  Status restore(const std::optional<std::string>& previous);

  // The config a successor goes on with: the recorded one, when its snapshot's bytes differ
  // from `start_yaml` (the same bytes: nullopt, nothing to resume). A record that cannot be
  // used (damaged, its snapshot outside the state directory, gone or no longer a valid config)
  // is an error naming the file and the reason; the caller runs its start file then.
  StatusOr<std::optional<ResumedConfig>> resumable(const std::string& start_yaml) const;

 private:
  std::string dir_;  // absolute
  std::string path_;
};

}  // namespace serve::manager
