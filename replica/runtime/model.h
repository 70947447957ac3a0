#pragma once

// The one interface between the replica's serving machinery and a model. The batcher calls
// run() from its own thread with a batch of requests that already passed validate(); a model
// must not keep references to the requests after run() returns.
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "replica/types/tensor.h"

namespace serve {

struct TensorSpec {
  std::string name;
  DataType datatype = DataType::kFp32;
  std::vector<int64_t> shape;  // -1 = any size in that dimension
};

struct ModelMetadata {
  std::string name;
  std::string platform;  // e.g. "serve-builtin", "serve-mlp"
  std::string backend;   // "cpu" or "cuda": where forward passes run
  std::vector<std::string> versions;
  std::vector<TensorSpec> inputs;  // empty = accepts any inputs (the built-in test models)
  std::vector<TensorSpec> outputs;
};

class Model {
 public:
  virtual ~Model() = default;

  virtual const ModelMetadata& metadata() const = 0;

  // Checks one request against the model's inputs; InvalidArgument with the expected shape
  // and datatype in the message when it does not fit. Called on the front end's thread.
  virtual Status validate(const InferRequest& request) const = 0;

  // How many forward passes may run at once (on different threads) when batching is off. 1 for
  // models with per-pass state such as scratch buffers or a device stream.
  virtual int maxConcurrentPasses() const { return 1; }

  // True for models that answer HTTP requests at the route prefix themselves (InferRequest::http)
  // rather than KServe tensors there; such models are not warmed up with a zero tensor.
  virtual bool servesHttp() const { return false; }

  // One forward pass over a batch; returns one result per request, in order. A failure that
  // concerns one request is returned in its slot and does not fail the others.
  virtual std::vector<StatusOr<InferResponse>> run(std::span<const InferRequest* const> batch) = 0;

  // Models whose passes complete elsewhere (a Python worker process) start a pass and return at
  // once; `done` gets the results later, exactly once, on any thread. The batcher then keeps
  // passes of such a model in flight together (Python async methods overlap) without a thread
  // waiting on each. The requests stay valid until `done` has returned.
  using Done = std::function<void(std::vector<StatusOr<InferResponse>>)>;
  virtual bool runsAsync() const { return false; }
  virtual void runAsync(std::span<const InferRequest* const> batch, Done done) { done(run(batch)); }
};

}  // namespace serve
