#pragma once

// A multi-layer perceptron as stored in a safetensors file. Layer i is the pair of tensors
// "layers.<i>.weight" (F32, shape [out, in], the PyTorch nn.Linear layout) and
// "layers.<i>.bias" (F32, shape [out]), for i = 0, 1, ... with no gaps; ReLU follows every
// layer but the last. The optional "__metadata__" keys:
//   "output_activation": "softmax" (default) or "none"
//   "input_name" / "output_name": the KServe tensor names (default "input" / "output")
#include <string>
#include <vector>

#include "common/status.h"
#include "replica/runtime/safetensors.h"

namespace serve {

struct DenseLayer {
  int64_t in = 0;
  int64_t out = 0;
  std::vector<float> weight;  // out × in, row-major
  std::vector<float> bias;    // out
};

struct MlpWeights {
  std::vector<DenseLayer> layers;
  bool softmax = true;
  std::string input_name = "input";
  std::string output_name = "output";

  int64_t inputs() const { return layers.front().in; }
  int64_t outputs() const { return layers.back().out; }
};

// Builds the MLP from the file's tensors. Refuses, naming the tensor: a missing layer or bias,
// a tensor that belongs to no layer, wrong rank, wrong dtype, non-finite values, and shapes that
// do not chain ("layers.1.weight has 20 inputs but layers.0 has 32 outputs").
StatusOr<MlpWeights> loadMlpWeights(const SafetensorsFile& file);

}  // namespace serve
