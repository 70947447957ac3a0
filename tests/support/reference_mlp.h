#pragma once

// The reference forward pass for MLP tests: plain double precision, no BLAS, written for
// obviousness rather than speed.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
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

// Random weights with He-style initialisation, for back-end tests.
inline MlpWeights randomMlp(const std::vector<int64_t>& widths, bool softmax, uint64_t seed) {
  std::mt19937_64 rng(seed);
  MlpWeights w;
  w.softmax = softmax;
  for (size_t l = 0; l + 1 < widths.size(); ++l) {
    DenseLayer layer;
    layer.in = widths[l];
    layer.out = widths[l + 1];
    std::normal_distribution<float> dist(0.0f, std::sqrt(2.0f / static_cast<float>(layer.in)));
    layer.weight.resize(static_cast<size_t>(layer.in * layer.out));
    layer.bias.resize(static_cast<size_t>(layer.out));
    for (float& v : layer.weight) {
      v = dist(rng);
    }
    for (float& v : layer.bias) {
      v = dist(rng) * 0.1f;
    }
    w.layers.push_back(std::move(layer));
  }
  return w;
}

inline std::vector<float> randomInputs(int64_t rows, int64_t cols, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  std::vector<float> x(static_cast<size_t>(rows * cols));
  for (float& v : x) {
    v = dist(rng);
  }
  return x;
}

// ‖y − ref‖₂ / ‖ref‖₂ for one row.
inline double rowError(const float* y, const double* ref, int64_t cols) {
  double diff = 0, norm = 0;
  for (int64_t c = 0; c < cols; ++c) {
    diff += (y[c] - ref[c]) * (y[c] - ref[c]);
    norm += ref[c] * ref[c];
  }
  return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30);
}

}  // namespace serve::testing
