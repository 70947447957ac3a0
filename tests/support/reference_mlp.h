#pragma once

// The reference forward pass for MLP tests: plain double precision, no BLAS, written for
// obviousness rather than speed.
#include <algorithm>
#include <cmath>
#include <vector>

#include "replica/runtime/mlp_weights.h"

namespace serve::testing {

inline std::vector<double> referenceForward(const MlpWeights& w, const std::vector<float>& x,
                                            int64_t rows) {
  std::vector<double> act(x.begin(), x.end());
  int64_t width = w.inputs();
  for (size_t l = 0; l < w.layers.size(); ++l) {
    const DenseLayer& layer = w.layers[l];
    std::vector<double> next(static_cast<size_t>(rows * layer.out));
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t o = 0; o < layer.out; ++o) {
        double sum = layer.bias[static_cast<size_t>(o)];
        for (int64_t i = 0; i < layer.in; ++i) {
          sum += act[static_cast<size_t>(r * width + i)] *
                 layer.weight[static_cast<size_t>(o * layer.in + i)];
        }
        bool last = l + 1 == w.layers.size();
        next[static_cast<size_t>(r * layer.out + o)] = last ? sum : std::max(sum, 0.0);
      }
    }
    act.swap(next);
    width = layer.out;
  }
  if (w.softmax) {
    for (int64_t r = 0; r < rows; ++r) {
      double* row = act.data() + r * width;
      double max = *std::max_element(row, row + width);
      double sum = 0;
      for (int64_t c = 0; c < width; ++c) {
        row[c] = std::exp(row[c] - max);
        sum += row[c];
      }
      for (int64_t c = 0; c < width; ++c) {
        row[c] /= sum;
      }
    }
  }
  return act;
}

}  // namespace serve::testing
