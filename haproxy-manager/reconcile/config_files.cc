#include "haproxy-manager/reconcile/config_files.h"

#include <filesystem>
#include <utility>

#include "common/file_util.h"
#include "haproxy-manager/reconcile/reconciler.h"

namespace serve::manager {

ConfigFiles::ConfigFiles(std::string config_path, std::string template_dir)
    : config_path_(std::move(config_path)), template_dir_(std::move(template_dir)) {}

StatusOr<RenderedConfig> ConfigFiles::render(const RoutingTable& table) const {
  StatusOr<Templates> templates = loadTemplates(template_dir_);
  if (!templates.ok()) {
    return templates.status();
  }
  return serve::manager::render(table, *templates);
}

Status ConfigFiles::write(const RenderedConfig& rendered, const std::string& config_path) const {
  const std::string dir = std::filesystem::path(config_path_).parent_path().string();
  for (const auto& [name, content] : rendered.files) {
    const std::string path = (dir.empty() ? "." : dir) + "/" + name;
    if (Status st = writePrivateFileAtomically(path, content, "HAProxy map file"); !st.ok()) {
      return st;
    }
  }
  return writePrivateFileAtomically(config_path, rendered.config, "HAProxy config");
}

Status ConfigFiles::rollBack() const { return write(last_good_, config_path_); }

Status ConfigFiles::follow(const RoutingTable& running) {
  StatusOr<RenderedConfig> rendered = render(withDrainingFreed(running));
  if (!rendered.ok()) {
    return rendered.status();
  }
  if (Status st = write(*rendered, config_path_); !st.ok()) {
    return st;
  }
  last_good_ = *std::move(rendered);
  return absl::OkStatus();
}

}  // namespace serve::manager
