#pragma once

// haproxy.cfg and the map files beside it: rendered from a routing table, written atomically,
// checked as a candidate before a reload, and the last good set that every failure rolls back
// to. "Last good" always describes what HAProxy runs: it is replaced after a successful reload
// and after every runtime change (only server lines differ then, in a structure HAProxy has
// validated), so a restart or a refused candidate never brings back an older table.
#include <string>

#include "common/status.h"
#include "haproxy-manager/model/routing_table.h"
#include "haproxy-manager/render/renderer.h"

namespace serve::manager {

class ConfigFiles {
 public:
  ConfigFiles(std::string config_path, std::string template_dir);

  // Loads the templates each time: an edited template takes effect at the next reload.
  StatusOr<RenderedConfig> render(const RoutingTable& table) const;
  // The map files next to the config file, and the config itself at `config_path`.
  Status write(const RenderedConfig& rendered, const std::string& config_path) const;
  // Writes the last good files back (after a refused candidate or a failed reload).
  Status rollBack() const;
  // Renders `running` with its draining slots freed (what a new worker would run), writes it
  // and makes it the last good set: the files follow a runtime change, and a restart starts
  // from the current table.
  Status follow(const RoutingTable& running);

  void setLastGood(RenderedConfig rendered) { last_good_ = std::move(rendered); }
  const RenderedConfig& lastGood() const { return last_good_; }
  const std::string& configPath() const { return config_path_; }
  std::string candidatePath() const { return config_path_ + ".candidate"; }

 private:
  std::string config_path_;
  std::string template_dir_;
  RenderedConfig last_good_;
};

}  // namespace serve::manager
