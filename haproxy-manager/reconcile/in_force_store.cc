#include "haproxy-manager/reconcile/in_force_store.h"

#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"

namespace serve::manager {

InForceStore::InForceStore(const std::string& state_dir)
    : dir_(std::filesystem::absolute(state_dir.empty() ? "." : state_dir)
               .lexically_normal()
               .string()),
      path_((std::filesystem::path(dir_) / kInForceFile).string()) {
  while (dir_.size() > 1 && dir_.ends_with('/')) {
    dir_.pop_back();
  }
}

StatusOr<std::optional<std::string>> InForceStore::replace(const InForceRecord& record) {
  std::optional<std::string> previous;
  if (std::filesystem::exists(path_)) {
    StatusOr<std::string> text = readWholeFile(path_, "in-force record");
    if (!text.ok()) {
      return text.status();
    }
    previous = *std::move(text);
  }
  if (Status st = writePrivateFileAtomically(path_, inForceJson(record), "in-force record");
      !st.ok()) {
    return st;
  }
  return previous;
}

Status InForceStore::restore(const std::optional<std::string>& previous) {
  if (previous.has_value()) {
    return writePrivateFileAtomically(path_, *previous, "in-force record");
  }
  std::error_code ec;
  std::filesystem::remove(path_, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat(path_, ": cannot remove in-force record: ", ec.message()));
  }
  return absl::OkStatus();
}

StatusOr<std::optional<ResumedConfig>> InForceStore::resumable(
    const std::string& start_yaml) const {
  if (!std::filesystem::exists(path_)) {
    return std::nullopt;
  }
  StatusOr<std::string> text = readWholeFile(path_, "in-force record");
  if (!text.ok()) {
    return text.status();
  }
  StatusOr<InForceRecord> record = parseInForce(*text, path_);
  if (!record.ok()) {
    return record.status();
  }
  // Only a snapshot this manager wrote: the record must not send a successor to another file.
  if (std::filesystem::path(record->snapshot).lexically_normal().parent_path().string() != dir_) {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": the snapshot ", record->snapshot,
                                                   " is not in the state directory ", dir_));
  }
  StatusOr<std::string> yaml = readWholeFile(record->snapshot, "config snapshot");
  if (!yaml.ok()) {
    return yaml.status();
  }
  if (*yaml == start_yaml) {
    return std::nullopt;
  }
  StatusOr<ServeConfig> config = parseServeConfig(*yaml, record->snapshot);
  if (!config.ok()) {
    return config.status();
  }
  return ResumedConfig{*std::move(yaml), *std::move(record), *std::move(config)};
}

}  // namespace serve::manager
