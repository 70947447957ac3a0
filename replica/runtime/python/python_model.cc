#include "replica/runtime/python/python_model.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"

namespace serve::python {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kMaxRestartBackoff{30'000};
// A worker that lived this long before it died restarts at once, with the backoff reset.
constexpr std::chrono::seconds kStableRun{60};

// Request payloads into the replica's half of the arena (inline when it is full); released when
// the worker's final answer has arrived.
class OutgoingBuffers {
 public:
  explicit OutgoingBuffers(Arena& arena) : arena_(arena) {}
  ~OutgoingBuffers() { releaseAll(); }

  nlohmann::json put(std::string_view bytes, std::string& inline_bytes) {
    if (!bytes.empty()) {
      if (std::optional<std::size_t> off = arena_.allocate(bytes.size())) {
        std::memcpy(arena_.view(*off, bytes.size())->data(), bytes.data(), bytes.size());
        allocated_.push_back(*off);
        return {{"at", "arena"}, {"off", *off}, {"len", bytes.size()}};
      }
    }
    const std::size_t off = inline_bytes.size();
    inline_bytes.append(bytes);
    return {{"at", "inline"}, {"off", off}, {"len", bytes.size()}};
  }

  void releaseAll() {
    for (std::size_t off : allocated_) {
      arena_.release(off);
    }
    allocated_.clear();
  }

 private:
  Arena& arena_;
  std::vector<std::size_t> allocated_;
};

// Response payloads out of a worker frame; the worker's arena blocks are handed back with one
// `release` once the frame is read.
class IncomingBuffers {
 public:
  IncomingBuffers(Worker& worker, const Frame& frame) : worker_(worker), frame_(frame) {}
  ~IncomingBuffers() {
    if (!to_release_.empty()) {
      // A worker gone by now has no blocks to free: nothing to do about a failed send.
      worker_.send(Frame{{{"op", "release"}, {"bufs", to_release_}}, {}}).IgnoreError();
    }
  }

  StatusOr<std::string> take(const nlohmann::json& ref) {
    if (!ref.is_object() || !ref.contains("off") || !ref.contains("len")) {
      return absl::InternalError("the Python worker sent a malformed buffer reference");
    }
    const std::uint64_t off = ref["off"].get<std::uint64_t>();
    const std::uint64_t len = ref["len"].get<std::uint64_t>();
    if (ref.value("at", "") == "inline") {
      if (off > frame_.inline_bytes.size() || len > frame_.inline_bytes.size() - off) {
        return absl::InternalError("the Python worker sent an inline buffer outside its frame");
      }
      return frame_.inline_bytes.substr(off, len);
    }
    Arena& arena = worker_.arena();
    if (off < arena.half()) {
      return absl::InternalError("the Python worker sent a buffer in the replica's half");
    }
    StatusOr<std::span<std::byte>> bytes = arena.view(off, len);
    if (!bytes.ok()) {
      return bytes.status();
    }
    to_release_.push_back({off, len});
    return std::string(reinterpret_cast<const char*>(bytes->data()), bytes->size());
  }

 private:
  Worker& worker_;
  const Frame& frame_;
  nlohmann::json to_release_ = nlohmann::json::array();
};

// Connects a stream to the worker that produces it: each part the consumer takes is acknowledged
// (the worker keeps at most a window of parts unacknowledged), and a consumer that gives up
// cancels the generator. A worker gone (or replaced) by then has nothing to hear.
template <typename Part>
void connectStream(PartStream<Part>& stream, const std::weak_ptr<Worker>& worker,
                   std::uint64_t id) {
  auto sendToWorker = [worker, id](const char* op) {
    if (std::shared_ptr<Worker> w = worker.lock()) {
      w->send(Frame{{{"op", op}, {"id", id}}, {}}).IgnoreError();
    }
  };
  stream.setHooks({.on_taken = [sendToWorker] { sendToWorker("stream_ack"); },
                   .on_cancel = [sendToWorker] { sendToWorker("cancel"); }});
}

// A user exception as the client sees it: "ValueError: bad input".
Status userError(const nlohmann::json& error) {
  return absl::InternalError(
      absl::StrCat(error.value("type", "Exception"), ": ", error.value("message", "")));
}

// How a stream ended, from its last frame (`http_end`, `infer_end`) or the channel's failure:
// "" when it ran to its end, else the error the consumer reports.
std::string streamEndError(const StatusOr<Frame>& last) {
  if (!last.ok()) {
    return std::string(last.status().message());
  }
  if (last->header.contains("error")) {
    return std::string(userError(last->header["error"]).message());
  }
  return "";
}

// The worker died (or never answered): a 500 that says so.
Status workerGone(const Status& st) { return absl::InternalError(st.message()); }

// Why a reply answers none of a batch's `n` items (the worker died, the method raised for the
// whole batch, or the reply does not hold `n` answers); OK when it holds one per item.
Status batchFailure(const StatusOr<Frame>& reply, std::size_t n) {
  if (!reply.ok()) {
    return workerGone(reply.status());
  }
  if (reply->header.value("op", "") == "error") {
    return userError(reply->header["error"]);
  }
  const nlohmann::json& answers = reply->header.value("items", nlohmann::json());
  if (!answers.is_array() || answers.size() != n) {
    return absl::InternalError(absl::StrCat("the Python worker answered ",
                                            answers.is_array() ? answers.size() : 0, " of ", n,
                                            " requests"));
  }
  return absl::OkStatus();
}

HeaderList headerList(const nlohmann::json& headers) {
  HeaderList out;
  if (headers.is_array()) {
    for (const auto& h : headers) {
      if (h.is_array() && h.size() == 2 && h[0].is_string() && h[1].is_string()) {
        out.emplace_back(h[0].get<std::string>(), h[1].get<std::string>());
      }
    }
  }
  return out;
}

std::vector<TensorSpec> tensorSpecs(const nlohmann::json& list) {
  std::vector<TensorSpec> out;
  if (!list.is_array()) {
    return out;
  }
  for (const auto& t : list) {
    TensorSpec spec;
    spec.name = t.value("name", "");
    if (std::optional<DataType> dt = parseDataType(t.value("datatype", "FP32"))) {
      spec.datatype = *dt;
    }
    if (t.contains("shape") && t["shape"].is_array()) {
      for (const auto& d : t["shape"]) {
        spec.shape.push_back(d.get<int64_t>());
      }
    }
    out.push_back(std::move(spec));
  }
  return out;
}

std::optional<DeclaredBatching> batchingOf(const nlohmann::json& methods) {
  for (const char* name : {"__call__", "infer"}) {
    if (methods.contains(name) && methods[name].contains("batch") &&
        methods[name]["batch"].is_object()) {
      const auto& b = methods[name]["batch"];
      return DeclaredBatching{b.value("max_batch_size", 10), b.value("batch_wait_timeout_s", 0.01)};
    }
  }
  return std::nullopt;
}

bool isPackageDir(const std::filesystem::path& dir) {
  std::error_code ec;
  return std::filesystem::is_regular_file(dir / "haproxy_serve" / "worker.py", ec);
}

}  // namespace

std::string packageDir() {
  if (const char* env = std::getenv("SERVE_PYTHON_PACKAGE_DIR"); env != nullptr && *env != '\0') {
    return env;
  }
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const auto installed = exe.parent_path().parent_path() / "share" / "haproxy-serve" / "python";
    if (isPackageDir(installed)) {
      return installed.string();
    }
  }
  return SERVE_SOURCE_PYTHON_DIR;
}

StatusOr<std::unique_ptr<PythonModel>> PythonModel::create(PythonModelOptions options) {
  std::unique_ptr<PythonModel> model(new PythonModel(std::move(options)));
  const PythonModelSpec& py = model->options_.spec.python;

  WorkerOptions& w = model->worker_options_;
  w.python = py.python;
  if (w.python.empty()) {
    const char* env = std::getenv("SERVE_PYTHON");
    w.python = env != nullptr && *env != '\0' ? env : "python3";
  }
  if (!py.working_dir.empty()) {
    std::filesystem::path dir(py.working_dir);
    if (dir.is_relative() && !model->options_.config_dir.empty()) {
      dir = std::filesystem::path(model->options_.config_dir) / dir;
    }
    // Checked here, because posix_spawn's chdir failing would read as the interpreter failing.
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) {
      return absl::InvalidArgumentError(absl::StrCat("model.working_dir ", dir.string(),
                                                     " cannot be used: ", std::strerror(errno)));
    }
    if (!S_ISDIR(st.st_mode)) {
      return absl::InvalidArgumentError(absl::StrCat("model.working_dir ", dir.string(), " is ",
                                                     fileTypeName(st.st_mode),
                                                     ", not a directory"));
    }
    if (::access(dir.c_str(), R_OK | X_OK) != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("model.working_dir ", dir.string(),
                       " cannot be entered and listed: ", std::strerror(errno)));
    }
    w.working_dir = dir.lexically_normal().string();
    w.python_path.push_back(w.working_dir);
  }
  const std::string package = packageDir();
  if (!isPackageDir(package)) {
    return absl::FailedPreconditionError(
        absl::StrCat("the haproxy_serve Python package is not in ", package,
                     " (set SERVE_PYTHON_PACKAGE_DIR to the folder that holds haproxy_serve/)"));
  }
  w.python_path.push_back(package);
  w.arena_bytes = static_cast<std::size_t>(py.arena_mb) << 20;

  model->init_ = {{"op", "init"},
                  {"protocol", 1},
                  {"import_path", py.import_path},
                  {"init_args", nlohmann::json::parse(py.init_args_json)},
                  {"init_kwargs", nlohmann::json::parse(py.init_kwargs_json)},
                  {"user_config", nlohmann::json::parse(model->options_.user_config_json)},
                  {"application", model->options_.application},
                  {"deployment", model->options_.deployment},
                  {"replica_id", model->options_.replica_id},
                  {"route_prefix", model->options_.route_prefix},
                  {"max_ongoing_requests", model->options_.max_ongoing_requests},
                  {"arena_size", w.arena_bytes}};
  if (Status st = model->startWorker(); !st.ok()) {
    return st;
  }
  const nlohmann::json& ready = model->worker_->ready();
  model->metadata_.name = model->options_.spec.name;
  model->metadata_.platform = "serve-python";
  model->metadata_.backend = "python";
  model->metadata_.versions = {"1"};
  if (ready.contains("kserve") && ready["kserve"].is_object()) {
    model->metadata_.inputs = tensorSpecs(ready["kserve"].value("inputs", nlohmann::json()));
    model->metadata_.outputs = tensorSpecs(ready["kserve"].value("outputs", nlohmann::json()));
  }
  model->declared_batching_ = batchingOf(ready.value("methods", nlohmann::json::object()));
  spdlog::info("python worker {} ready: {} (Python {})", model->worker_->pid(), py.import_path,
               ready.value("python", "?"));
  return model;
}

PythonModel::~PythonModel() { stopHealthChecks(); }

void PythonModel::stopHealthChecks() {
  {
    std::lock_guard lock(health_mu_);
    stop_health_ = true;
  }
  health_cv_.notify_all();
  if (health_thread_.joinable()) {
    health_thread_.join();
  }
}

Status PythonModel::startWorker() {
  nlohmann::json init = init_;
  StatusOr<std::unique_ptr<Worker>> worker = Worker::start(worker_options_, init);
  if (!worker.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(options_.spec.python.import_path, ": ", worker.status().message()));
  }
  worker_ = std::shared_ptr<Worker>(*std::move(worker));
  return absl::OkStatus();
}

StatusOr<std::shared_ptr<Worker>> PythonModel::liveWorker() {
  std::lock_guard lock(worker_mu_);
  if (worker_ != nullptr && worker_->alive()) {
    return worker_;
  }
  const auto now = Clock::now();
  if (now < next_restart_) {
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_restart_ - now);
    return absl::UnavailableError(
        absl::StrCat("the Python worker exited; it is restarted in ", wait.count(), " ms"));
  }
  if (worker_ != nullptr) {
    spdlog::warn("python worker {} {}; restarting it", worker_->pid(), worker_->exitDescription());
  }
  const auto started = Clock::now();
  worker_.reset();
  Status st = startWorker();
  restarts_.fetch_add(1);
  if (on_restart_) {
    on_restart_();
  }
  // Back off from crash loops: 1 s, doubling to 30 s, reset by a run of a minute.
  backoff_ = std::min(kMaxRestartBackoff, std::max(std::chrono::milliseconds(1000), backoff_ * 2));
  next_restart_ = started + backoff_;
  if (!st.ok()) {
    spdlog::error("restarting the Python worker failed: {}", std::string(st.message()));
    return absl::UnavailableError(st.message());
  }
  return worker_;
}

Status PythonModel::validate(const InferRequest& request) const { return absl::OkStatus(); }

std::vector<StatusOr<InferResponse>> PythonModel::run(std::span<const InferRequest* const> batch) {
  struct Wait {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<std::vector<StatusOr<InferResponse>>> results;
  };
  auto wait = std::make_shared<Wait>();
  runAsync(batch, [wait](std::vector<StatusOr<InferResponse>> results) {
    std::lock_guard lock(wait->mu);
    wait->results = std::move(results);
    wait->cv.notify_all();
  });
  std::unique_lock lock(wait->mu);
  wait->cv.wait(lock, [&] { return wait->results.has_value(); });
  return std::move(*wait->results);
}

void PythonModel::runAsync(std::span<const InferRequest* const> batch, Done done) {
  StatusOr<std::shared_ptr<Worker>> worker = liveWorker();
  if (!worker.ok()) {
    done(std::vector<StatusOr<InferResponse>>(batch.size(), worker.status()));
    return;
  }
  {
    // A worker that has run for a minute is stable: its next crash restarts it at once.
    std::lock_guard lock(worker_mu_);
    if (Clock::now() - next_restart_ > kStableRun) {
      backoff_ = std::chrono::milliseconds(0);
    }
  }
  std::vector<const InferRequest*> http;
  std::vector<const InferRequest*> infer;
  std::vector<std::size_t> http_at;
  std::vector<std::size_t> infer_at;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (batch[i]->http != nullptr) {
      http.push_back(batch[i]);
      http_at.push_back(i);
    } else {
      infer.push_back(batch[i]);
      infer_at.push_back(i);
    }
  }
  if (infer.empty()) {
    runHttp(*worker, http, std::move(done));
    return;
  }
  if (http.empty()) {
    runInfer(*worker, infer, std::move(done));
    return;
  }
  // Both kinds in one batch: two frames, one answer once both are back.
  struct Join {
    std::mutex mu;
    int left = 2;
    std::vector<StatusOr<InferResponse>> results;
  };
  auto join = std::make_shared<Join>();
  join->results.assign(batch.size(), absl::InternalError("not run"));
  auto part = [join, done](std::vector<std::size_t> at) {
    return [join, done, at = std::move(at)](std::vector<StatusOr<InferResponse>> out) {
      bool last = false;
      {
        std::lock_guard lock(join->mu);
        for (std::size_t k = 0; k < out.size() && k < at.size(); ++k) {
          join->results[at[k]] = std::move(out[k]);
        }
        last = --join->left == 0;
      }
      if (last) {
        done(std::move(join->results));
      }
    };
  };
  runHttp(*worker, http, part(std::move(http_at)));
  runInfer(*worker, infer, part(std::move(infer_at)));
}

void PythonModel::runHttp(const std::shared_ptr<Worker>& worker_ptr,
                          const std::vector<const InferRequest*>& items, Done done) {
  Worker& worker = *worker_ptr;
  auto out = std::make_shared<OutgoingBuffers>(worker.arena());
  Frame frame;
  frame.header = {{"op", "http"}, {"items", nlohmann::json::array()}};
  struct Item {
    std::string id, model;
  };
  auto meta = std::make_shared<std::vector<Item>>();
  for (const InferRequest* r : items) {
    const HttpPayload& p = *r->http;
    nlohmann::json headers = nlohmann::json::array();
    for (const auto& [name, value] : p.headers) {
      headers.push_back({name, value});
    }
    frame.header["items"].push_back({{"method", p.method},
                                     {"path", p.path},
                                     {"query", p.query},
                                     {"headers", std::move(headers)},
                                     {"body", out->put(p.body, frame.inline_bytes)},
                                     {"request_id", r->id}});
    meta->push_back({r->id, r->model});
  }
  // The answer: `http_response`, or `http_start` (answered now, as a stream), chunks, `http_end`.
  struct Exchange {
    std::mutex mu;
    std::shared_ptr<HttpReply> streaming;
  };
  auto ex = std::make_shared<Exchange>();
  auto once = std::make_shared<Done>(std::move(done));
  Worker* w = &worker;
  std::weak_ptr<Worker> weak = worker_ptr;
  worker.submit(
      std::move(frame),
      [ex, w, weak, meta, once](Frame& partial) {
        const std::string op = partial.header.value("op", "");
        if (op == "http_start") {
          auto reply = std::make_shared<HttpReply>();
          reply->status = partial.header.value("status", 200);
          reply->headers = headerList(partial.header.value("headers", nlohmann::json()));
          reply->stream = std::make_shared<ChunkStream>();
          connectStream(*reply->stream, weak, partial.header.value("id", std::uint64_t{0}));
          {
            std::lock_guard lock(ex->mu);
            ex->streaming = reply;
          }
          InferResponse response;
          response.id = meta->front().id;
          response.model = meta->front().model;
          response.http = std::move(reply);
          std::vector<StatusOr<InferResponse>> results;
          results.emplace_back(std::move(response));
          (*once)(std::move(results));
        } else if (op == "http_chunk") {
          IncomingBuffers in(*w, partial);
          StatusOr<std::string> body = in.take(partial.header.value("body", nlohmann::json()));
          std::lock_guard lock(ex->mu);
          if (ex->streaming != nullptr && body.ok()) {
            ex->streaming->stream->push(*std::move(body));
          }
        }
      },
      [ex, out, w, meta, once](StatusOr<Frame> reply) {
        out->releaseAll();
        std::shared_ptr<HttpReply> streaming;
        {
          std::lock_guard lock(ex->mu);
          streaming = ex->streaming;
        }
        if (streaming != nullptr) {
          streaming->stream->finish(streamEndError(reply));
          return;
        }
        std::vector<StatusOr<InferResponse>> results;
        if (Status st = batchFailure(reply, meta->size()); !st.ok()) {
          results.assign(meta->size(), st);
          (*once)(std::move(results));
          return;
        }
        const nlohmann::json& answers = reply->header["items"];
        IncomingBuffers in(*w, *reply);
        for (std::size_t i = 0; i < meta->size(); ++i) {
          const nlohmann::json& a = answers[i];
          if (a.contains("error")) {
            results.emplace_back(userError(a["error"]));
            continue;
          }
          StatusOr<std::string> body = in.take(a.value("body", nlohmann::json()));
          if (!body.ok()) {
            results.emplace_back(body.status());
            continue;
          }
          auto http = std::make_shared<HttpReply>();
          http->status = a.value("status", 200);
          http->headers = headerList(a.value("headers", nlohmann::json()));
          http->body = *std::move(body);
          InferResponse response;
          response.id = (*meta)[i].id;
          response.model = (*meta)[i].model;
          response.http = std::move(http);
          results.emplace_back(std::move(response));
        }
        (*once)(std::move(results));
      });
}

// The output tensors of an infer answer (or of one part of a stream), checked against their
// shapes.
StatusOr<std::vector<Tensor>> outputsOf(const nlohmann::json& outputs, IncomingBuffers& in) {
  std::vector<Tensor> result;
  for (const auto& o : outputs) {
    Tensor t;
    t.name = o.value("name", "");
    std::optional<DataType> dt = parseDataType(o.value("datatype", ""));
    if (!dt) {
      return absl::InternalError(absl::StrCat("output '", t.name, "' has datatype ",
                                              o.value("datatype", ""), ", not a KServe one"));
    }
    t.datatype = *dt;
    for (const auto& d : o.value("shape", nlohmann::json::array())) {
      t.shape.push_back(d.get<int64_t>());
    }
    StatusOr<std::string> data = in.take(o.value("data", nlohmann::json()));
    StatusOr<int64_t> count = shapeElementCount(t.shape);
    if (!data.ok() || !count.ok() ||
        data->size() != static_cast<std::size_t>(*count) * dataTypeSize(t.datatype)) {
      return absl::InternalError(
          absl::StrCat("output '", t.name, "' does not hold as many bytes as its shape says"));
    }
    const auto* first = reinterpret_cast<const std::byte*>(data->data());
    t.data.assign(first, first + data->size());  // an empty output has no buffer to memcpy into
    result.push_back(std::move(t));
  }
  return result;
}

void PythonModel::runInfer(const std::shared_ptr<Worker>& worker_ptr,
                           const std::vector<const InferRequest*>& items, Done done) {
  Worker& worker = *worker_ptr;
  auto out = std::make_shared<OutgoingBuffers>(worker.arena());
  Frame frame;
  frame.header = {{"op", "infer"}, {"model", metadata_.name}, {"items", nlohmann::json::array()}};
  struct Item {
    std::string id, model;
  };
  auto meta = std::make_shared<std::vector<Item>>();
  for (const InferRequest* r : items) {
    nlohmann::json inputs = nlohmann::json::array();
    for (const Tensor& t : r->inputs) {
      std::string_view bytes(reinterpret_cast<const char*>(t.data.data()), t.data.size());
      inputs.push_back({{"name", t.name},
                        {"datatype", std::string(dataTypeName(t.datatype))},
                        {"shape", t.shape},
                        {"data", out->put(bytes, frame.inline_bytes)}});
    }
    frame.header["items"].push_back(
        {{"inputs", std::move(inputs)}, {"outputs", r->requested_outputs}});
    meta->push_back({r->id, r->model});
  }
  // A generator `infer` answers `infer_start`, then one `infer_chunk` per part, then `infer_end`.
  struct Exchange {
    std::mutex mu;
    std::shared_ptr<TensorStream> streaming;
  };
  auto ex = std::make_shared<Exchange>();
  auto once = std::make_shared<Done>(std::move(done));
  Worker* w = &worker;
  std::weak_ptr<Worker> weak = worker_ptr;
  worker.submit(
      std::move(frame),
      [ex, w, weak, meta, once](Frame& partial) {
        const std::string op = partial.header.value("op", "");
        if (op == "infer_start") {
          auto stream = std::make_shared<TensorStream>();
          connectStream(*stream, weak, partial.header.value("id", std::uint64_t{0}));
          {
            std::lock_guard lock(ex->mu);
            ex->streaming = stream;
          }
          InferResponse response;
          response.id = meta->front().id;
          response.model = meta->front().model;
          response.stream = std::move(stream);
          std::vector<StatusOr<InferResponse>> results;
          results.emplace_back(std::move(response));
          (*once)(std::move(results));
        } else if (op == "infer_chunk") {
          IncomingBuffers in(*w, partial);
          StatusOr<std::vector<Tensor>> outputs =
              outputsOf(partial.header.value("outputs", nlohmann::json::array()), in);
          std::lock_guard lock(ex->mu);
          if (ex->streaming != nullptr) {
            if (outputs.ok()) {
              ex->streaming->push(*std::move(outputs));
            } else {
              ex->streaming->finish(std::string(outputs.status().message()));
            }
          }
        }
      },
      [ex, out, w, meta, once](StatusOr<Frame> reply) {
        out->releaseAll();
        std::shared_ptr<TensorStream> streaming;
        {
          std::lock_guard lock(ex->mu);
          streaming = ex->streaming;
        }
        if (streaming != nullptr) {
          streaming->finish(streamEndError(reply));
          return;
        }
        std::vector<StatusOr<InferResponse>> results;
        if (Status st = batchFailure(reply, meta->size()); !st.ok()) {
          results.assign(meta->size(), st);
          (*once)(std::move(results));
          return;
        }
        const nlohmann::json& answers = reply->header["items"];
        IncomingBuffers in(*w, *reply);
        for (std::size_t i = 0; i < meta->size(); ++i) {
          const nlohmann::json& a = answers[i];
          if (a.contains("error")) {
            results.emplace_back(userError(a["error"]));
            continue;
          }
          StatusOr<std::vector<Tensor>> outputs =
              outputsOf(a.value("outputs", nlohmann::json::array()), in);
          if (!outputs.ok()) {
            results.emplace_back(outputs.status());
            continue;
          }
          InferResponse response;
          response.id = (*meta)[i].id;
          response.model = (*meta)[i].model;
          response.outputs = *std::move(outputs);
          results.emplace_back(std::move(response));
        }
        (*once)(std::move(results));
      });
}

Status PythonModel::checkHealthOnce() {
  return control(
      {{"op", "check_health"}},
      std::chrono::milliseconds(static_cast<int64_t>(options_.health_check_timeout_s * 1000)),
      "check_health");
}

Status PythonModel::reconfigure(const nlohmann::json& user_config,
                                std::chrono::milliseconds timeout) {
  if (Status st =
          control({{"op", "reconfigure"}, {"user_config", user_config}}, timeout, "reconfigure");
      !st.ok()) {
    return st;
  }
  std::lock_guard lock(worker_mu_);
  init_["user_config"] = user_config;
  return absl::OkStatus();
}

Status PythonModel::control(nlohmann::json header, std::chrono::milliseconds timeout,
                            const char* what) {
  StatusOr<std::shared_ptr<Worker>> worker = liveWorker();
  if (!worker.ok()) {
    return worker.status();
  }
  struct Wait {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<StatusOr<Frame>> reply;
  };
  auto wait = std::make_shared<Wait>();
  (*worker)->submit(Frame{std::move(header), {}}, {}, [wait](StatusOr<Frame> reply) {
    std::lock_guard lock(wait->mu);
    wait->reply = std::move(reply);
    wait->cv.notify_all();
  });
  std::unique_lock lock(wait->mu);
  if (!wait->cv.wait_for(lock, timeout, [&] { return wait->reply.has_value(); })) {
    return absl::DeadlineExceededError(absl::StrCat(
        what, " did not return within ", static_cast<double>(timeout.count()) / 1000, " s"));
  }
  if (!wait->reply->ok()) {
    return wait->reply->status();
  }
  if ((*wait->reply)->header.value("op", "") == "error") {
    return absl::UnavailableError(
        absl::StrCat(what, " raised ", userError((*wait->reply)->header["error"]).message()));
  }
  return absl::OkStatus();
}

void PythonModel::startHealthChecks(std::function<void(const Status&)> on_result) {
  health_thread_ = std::thread([this, on_result = std::move(on_result)] { healthLoop(on_result); });
}

void PythonModel::healthLoop(std::function<void(const Status&)> on_result) {
  const auto period =
      std::chrono::milliseconds(static_cast<int64_t>(options_.health_check_period_s * 1000));
  std::unique_lock lock(health_mu_);
  while (!health_cv_.wait_for(lock, period, [&] { return stop_health_; })) {
    lock.unlock();
    on_result(checkHealthOnce());
    lock.lock();
  }
}

}  // namespace serve::python
