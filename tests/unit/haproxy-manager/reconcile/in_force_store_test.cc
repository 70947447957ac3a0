// The record of the config in force, on a real scratch folder: what a deploy writes and undoes,
// and what a successor may resume.
#include "haproxy-manager/reconcile/in_force_store.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include "common/file_util.h"
#include "tests/support/scratch_dir.h"

namespace serve::manager {
namespace {

using serve::testing::ScratchDir;

const std::string kV1 =
    "applications:\n- name: app\n  route_prefix: /app\n  deployments:\n"
    "  - {name: d, num_replicas: 1, model: {kind: noop, name: echo}}\n";
const std::string kV2 =
    "applications:\n- name: app\n  route_prefix: /app\n  deployments:\n"
    "  - {name: d, num_replicas: 2, model: {kind: noop, name: echo}}\n";

std::string write(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
  return path;
}

TEST_CASE("in-force record: what one manager writes the next one reads back") {
  const InForceRecord record{"/var/lib/serve/config-00ff.yaml", "/etc/serve"};
  const StatusOr<InForceRecord> read = parseInForce(inForceJson(record), "r.json");
  REQUIRE(read.ok());
  CHECK(*read == record);
}

TEST_CASE("in-force record: a damaged one is refused with what is wrong") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "r.json: not valid JSON (truncated or damaged)"},
      {R"({"snapshot": "/s/config-1.yaml", "base_dir")",
       "r.json: not valid JSON (truncated or damaged)"},
      {"[]", "r.json: not a JSON object"},
      {R"({"base_dir": "/etc"})", "r.json: 'snapshot' must be a string"},
      {R"({"snapshot": 7, "base_dir": "/etc"})", "r.json: 'snapshot' must be a string"},
      {R"({"snapshot": "/s/config-1.yaml"})", "r.json: 'base_dir' must be a string"},
      {R"({"snapshot": "config-1.yaml", "base_dir": "/etc"})",
       "r.json: 'snapshot' must be an absolute path"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.first);
    const StatusOr<InForceRecord> read = parseInForce(c.first, "r.json");
    REQUIRE_FALSE(read.ok());
    CHECK(messageOf(read.status()) == c.second);
  }
}

TEST_CASE("in-force store: a deploy replaces the record, and a refused one puts it back") {
  ScratchDir dir;
  InForceStore store(dir.path);
  CHECK(store.path() == dir.path + "/config-in-force.json");
  const InForceRecord v1{write(dir.path + "/config-1.yaml", kV1), "/etc/serve"};
  const InForceRecord v2{write(dir.path + "/config-2.yaml", kV2), "/srv/models"};

  // The start: nothing to replace.
  StatusOr<std::optional<std::string>> first = store.replace(v1);
  REQUIRE(first.ok());
  CHECK_FALSE(first->has_value());
  // A deploy: the start's record comes back, for undoing.
  StatusOr<std::optional<std::string>> second = store.replace(v2);
  REQUIRE(second.ok());
  REQUIRE(second->has_value());
  CHECK(**second == inForceJson(v1));
  // HAProxy refused it: v1 is in force again, for a successor too.
  REQUIRE(store.restore(*second).ok());
  StatusOr<std::optional<ResumedConfig>> resumed = store.resumable(kV2);
  REQUIRE(resumed.ok());
  REQUIRE(resumed->has_value());
  CHECK((*resumed)->record == v1);
  CHECK((*resumed)->yaml == kV1);
  CHECK((*resumed)->config.applications.at(0).deployments.at(0).num_replicas == 1);
  // Undoing the very first record removes it.
  REQUIRE(store.restore(std::nullopt).ok());
  CHECK_FALSE(std::filesystem::exists(store.path()));
  resumed = store.resumable(kV2);
  REQUIRE(resumed.ok());
  CHECK_FALSE(resumed->has_value());
}

TEST_CASE("in-force store: a successor resumes only a different, valid config of its own") {
  ScratchDir dir;
  InForceStore store(dir.path + "/");  // the same directory, however it is written
  const std::string v2 = write(dir.path + "/config-2.yaml", kV2);
  REQUIRE(store.replace({v2, "/srv/models"}).ok());

  SUBCASE("the same bytes as the start file: nothing to resume") {
    StatusOr<std::optional<ResumedConfig>> resumed = store.resumable(kV2);
    REQUIRE(resumed.ok());
    CHECK_FALSE(resumed->has_value());
  }
  SUBCASE("another config: resumed, with where its paths resolve") {
    StatusOr<std::optional<ResumedConfig>> resumed = store.resumable(kV1);
    REQUIRE(resumed.ok());
    REQUIRE(resumed->has_value());
    CHECK((*resumed)->record.base_dir == "/srv/models");
    CHECK((*resumed)->config.applications.at(0).deployments.at(0).num_replicas == 2);
  }
  SUBCASE("a snapshot outside the state directory is not followed") {
    ScratchDir elsewhere;
    const std::string outside = write(elsewhere.path + "/config-9.yaml", kV2);
    REQUIRE(store.replace({outside, "/srv"}).ok());
    StatusOr<std::optional<ResumedConfig>> resumed = store.resumable(kV1);
    REQUIRE_FALSE(resumed.ok());
    CHECK(messageOf(resumed.status()) == store.path() + ": the snapshot " + outside +
                                             " is not in the state directory " + dir.path);
  }
  SUBCASE("a snapshot that is gone") {
    std::filesystem::remove(v2);
    StatusOr<std::optional<ResumedConfig>> resumed = store.resumable(kV1);
    REQUIRE_FALSE(resumed.ok());
    CHECK(messageOf(resumed.status()).starts_with(v2 + ": cannot open config snapshot: "));
  }
  SUBCASE("a snapshot that is no longer a valid config") {
    write(v2, "applications: 3\n");
    StatusOr<std::optional<ResumedConfig>> resumed = store.resumable(kV1);
    REQUIRE_FALSE(resumed.ok());
    CHECK(messageOf(resumed.status()).starts_with(v2 + ":"));
  }
  SUBCASE("a damaged record") {
    write(store.path(), "{\"snapshot\": ");
    StatusOr<std::optional<ResumedConfig>> resumed = store.resumable(kV1);
    REQUIRE_FALSE(resumed.ok());
    CHECK(messageOf(resumed.status()) == store.path() + ": not valid JSON (truncated or damaged)");
  }
}

}  // namespace
}  // namespace serve::manager
