#pragma once

// kind: python: the user's class in a Python worker process (docs/python.md). HTTP requests at
// the route prefix reach the class's __call__, KServe v2 inference its `infer`; both go through
// the replica's admission, deadlines and batcher like any model's requests.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/serve_config.h"
#include "replica/runtime/model.h"
#include "replica/runtime/python/worker.h"

namespace serve::python {

struct PythonModelOptions {
  ModelSpec spec;  // kind python
  std::string application;
  std::string deployment;
  std::string route_prefix;
  std::string replica_id;
  int max_ongoing_requests = 5;
  std::string user_config_json = "null";
  std::string config_dir;  // working_dir resolves against it
  double health_check_period_s = 10;
  double health_check_timeout_s = 30;
};

// The batching a class asked for with @serve.batch on the method requests reach.
struct DeclaredBatching {
  int max_batch_size = 1;
  double batch_wait_timeout_s = 0;
};

class PythonModel : public Model {
 public:
  // Starts the worker and returns once the class is constructed (and reconfigured, with a
  // user_config). A failure names the Python error, e.g. "ModuleNotFoundError: No module named
  // 'foo'".
  static StatusOr<std::unique_ptr<PythonModel>> create(PythonModelOptions options);
  ~PythonModel() override;

  const ModelMetadata& metadata() const override { return metadata_; }
  Status validate(const InferRequest& request) const override;
  // The worker runs async methods concurrently and queues sync ones; admission bounds the rest.
  int maxConcurrentPasses() const override { return 1 << 20; }
  bool servesHttp() const override { return true; }
  std::vector<StatusOr<InferResponse>> run(std::span<const InferRequest* const> batch) override;
  // Frames go to the worker at once; the answer comes on the worker's reader thread.
  bool runsAsync() const override { return true; }
  void runAsync(std::span<const InferRequest* const> batch, Done done) override;

  std::optional<DeclaredBatching> declaredBatching() const { return declared_batching_; }

  // Runs the class's check_health every health_check_period_s on a thread of its own and reports
  // each result (ok, or why not) to `on_result`, until destruction.
  void startHealthChecks(std::function<void(const Status&)> on_result);
  void stopHealthChecks();  // waits for a check in progress; idempotent

  // Runs the class's reconfigure(user_config) in the live worker (Ray's in-place update on a
  // deploy that changes only user_config); once it returned, a restarted worker is initialised
  // with this user_config too. Fails with the Python error, or after `timeout`.
  Status reconfigure(const nlohmann::json& user_config, std::chrono::milliseconds timeout);

  int workerRestarts() const { return restarts_.load(); }
  // Called after each restart of a dead worker (for the metric); set before requests run.
  void onWorkerRestart(std::function<void()> callback) { on_restart_ = std::move(callback); }

 private:
  explicit PythonModel(PythonModelOptions options) : options_(std::move(options)) {}
  Status startWorker();
  // The live worker, restarting a dead one (after its backoff); Unavailable while it waits.
  StatusOr<std::shared_ptr<Worker>> liveWorker();
  void runHttp(const std::shared_ptr<Worker>& worker, const std::vector<const InferRequest*>& items,
               Done done);
  void runInfer(const std::shared_ptr<Worker>& worker,
                const std::vector<const InferRequest*>& items, Done done);
  Status checkHealthOnce();
  // Sends a control frame ("check_health", "reconfigure") and waits for done or error.
  Status control(nlohmann::json header, std::chrono::milliseconds timeout, const char* what);
  void healthLoop(std::function<void(const Status&)> on_result);

  PythonModelOptions options_;
  WorkerOptions worker_options_;
  nlohmann::json init_;
  ModelMetadata metadata_;
  std::optional<DeclaredBatching> declared_batching_;

  std::mutex worker_mu_;  // guards worker_, next_restart_, backoff_, init_ after create()
  std::shared_ptr<Worker> worker_;
  std::chrono::steady_clock::time_point next_restart_{};
  std::chrono::milliseconds backoff_{0};
  std::atomic<int> restarts_{0};
  std::function<void()> on_restart_;

  std::mutex health_mu_;  // guards stop_health_
  std::condition_variable health_cv_;
  bool stop_health_ = false;
  std::thread health_thread_;
};

// Where the haproxy_serve package is: $SERVE_PYTHON_PACKAGE_DIR, else
// <exe dir>/../share/haproxy-serve/python, else the source tree's python/ folder.
std::string packageDir();

}  // namespace serve::python
