#pragma once

// The built-in TEST models. They exist to measure and exercise the serving machinery, not to
// serve anything useful:
//   noop  — returns its inputs as outputs; measures framework overhead.
//   sleep — waits `sleep_ms` per forward pass (not per request), then returns its inputs;
//           exercises deadlines, backpressure and batching.
#include <chrono>
#include <memory>

#include "replica/runtime/model.h"

namespace serve {

std::unique_ptr<Model> makeNoopModel(const std::string& name);
std::unique_ptr<Model> makeSleepModel(const std::string& name, std::chrono::microseconds sleep);

}  // namespace serve
