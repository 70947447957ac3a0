#include "replica/runtime/builtin_models.h"

#include <algorithm>
#include <thread>

namespace serve {
namespace {

// Both test models echo; they differ only in how long a forward pass takes.
class EchoModel : public Model {
 public:
  EchoModel(const std::string& name, std::string platform, std::chrono::microseconds delay)
      : delay_(delay) {
    metadata_.name = name;
    metadata_.platform = std::move(platform);
    metadata_.backend = "cpu";
    metadata_.versions = {"1"};
  }

  const ModelMetadata& metadata() const override { return metadata_; }

  // Stateless: any number of passes may run at once (admission still bounds them).
  int maxConcurrentPasses() const override { return 1 << 20; }

  Status validate(const InferRequest& request) const override {
    if (request.inputs.empty()) {
      return absl::InvalidArgumentError("expected at least one input tensor");
    }
    for (const std::string& out : request.requested_outputs) {
      bool known = std::any_of(request.inputs.begin(), request.inputs.end(),
                               [&](const Tensor& t) { return t.name == out; });
      if (!known) {
        return absl::InvalidArgumentError("unknown output '" + out + "': model '" + metadata_.name +
                                          "' echoes its inputs");
      }
    }
    return absl::OkStatus();
  }

  std::vector<StatusOr<InferResponse>> run(std::span<const InferRequest* const> batch) override {
    if (delay_.count() > 0) {
      std::this_thread::sleep_for(delay_);
    }
    std::vector<StatusOr<InferResponse>> results;
    results.reserve(batch.size());
    for (const InferRequest* req : batch) {
      InferResponse resp;
      resp.id = req->id;
      resp.model = metadata_.name;
      for (const Tensor& in : req->inputs) {
        bool wanted = req->requested_outputs.empty() ||
                      std::find(req->requested_outputs.begin(), req->requested_outputs.end(),
                                in.name) != req->requested_outputs.end();
        if (wanted) {
          resp.outputs.push_back(in);
        }
      }
      results.emplace_back(std::move(resp));
    }
    return results;
  }

 private:
  ModelMetadata metadata_;
  std::chrono::microseconds delay_;
};

}  // namespace

std::unique_ptr<Model> makeNoopModel(const std::string& name) {
  return std::make_unique<EchoModel>(name, "serve-builtin-noop", std::chrono::microseconds(0));
}

std::unique_ptr<Model> makeSleepModel(const std::string& name, std::chrono::microseconds sleep) {
  return std::make_unique<EchoModel>(name, "serve-builtin-sleep", sleep);
}

}  // namespace serve
