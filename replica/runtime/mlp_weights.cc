#include "replica/runtime/mlp_weights.h"

#include <charconv>
#include <map>
#include <optional>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"

namespace serve {
namespace {

enum class Part { kWeight, kBias };

struct LayerName {
  size_t index = 0;
  Part part = Part::kWeight;
};

// "layers.<i>.weight" / "layers.<i>.bias" with <i> in plain decimal; a leading zero ("01") is
// refused so that two spellings cannot name the same layer.
std::optional<LayerName> parseLayerName(std::string_view name) {
  constexpr std::string_view kPrefix = "layers.";
  if (!name.starts_with(kPrefix)) {
    return std::nullopt;
  }
  name.remove_prefix(kPrefix.size());
  size_t dot = name.find('.');
  if (dot == std::string_view::npos) {
    return std::nullopt;
  }
  std::string_view digits = name.substr(0, dot);
  std::string_view suffix = name.substr(dot + 1);
  if (digits.empty() || (digits.size() > 1 && digits[0] == '0')) {
    return std::nullopt;
  }
  LayerName parsed;
  auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), parsed.index);
  if (error != std::errc() || end != digits.data() + digits.size()) {
    return std::nullopt;
  }
  if (suffix == "weight") {
    parsed.part = Part::kWeight;
  } else if (suffix == "bias") {
    parsed.part = Part::kBias;
  } else {
    return std::nullopt;
  }
  return parsed;
}

struct LayerTensors {
  const SafetensorsTensor* weight = nullptr;
  const SafetensorsTensor* bias = nullptr;
};

std::string shapeText(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    absl::StrAppend(&out, i == 0 ? "" : ", ", shape[i]);
  }
  return out + "]";
}

class Loader {
 public:
  explicit Loader(const SafetensorsFile& file) : file_(file) {}

  StatusOr<MlpWeights> load() {
    std::map<size_t, LayerTensors> found;
    for (const auto& [name, tensor] : file_.tensors()) {
      std::optional<LayerName> layer = parseLayerName(name);
      if (!layer) {
        return fail(
            absl::StrCat("tensor '", name,
                         "' is not part of an MLP (expected layers.<i>.weight / layers.<i>.bias)"));
      }
      LayerTensors& slot = found[layer->index];
      (layer->part == Part::kWeight ? slot.weight : slot.bias) = &tensor;
    }
    if (found.empty()) {
      return fail("no layers: expected tensors layers.0.weight and layers.0.bias");
    }
    // A map iterates in index order, so the first index that differs from its position is the
    // lowest missing layer.
    size_t expected = 0;
    for (const auto& [index, tensors] : found) {
      if (index != expected) {
        return fail(
            absl::StrCat("layer ", expected, " is missing: found layers ", indexList(found)));
      }
      ++expected;
    }

    MlpWeights weights;
    for (const auto& [index, tensors] : found) {
      StatusOr<DenseLayer> layer =
          loadLayer(index, tensors, weights.layers.empty() ? nullptr : &weights.layers.back());
      if (!layer.ok()) {
        return layer.status();
      }
      weights.layers.push_back(*std::move(layer));
    }
    if (Status st = loadMetadata(weights); !st.ok()) {
      return st;
    }
    return weights;
  }

 private:
  Status fail(const std::string& what) const {
    return absl::InvalidArgumentError(absl::StrCat(file_.source(), ": ", what));
  }

  static std::string indexList(const std::map<size_t, LayerTensors>& found) {
    std::string out;
    for (const auto& [index, tensors] : found) {
      absl::StrAppend(&out, out.empty() ? "" : ", ", index);
    }
    return out;
  }

  StatusOr<DenseLayer> loadLayer(size_t index, const LayerTensors& tensors,
                                 const DenseLayer* previous) const {
    const std::string prefix = absl::StrCat("layers.", index);
    const std::string weight_name = prefix + ".weight";
    const std::string bias_name = prefix + ".bias";
    if (tensors.weight == nullptr) {
      return fail(weight_name + " is missing");
    }
    if (tensors.bias == nullptr) {
      return fail(bias_name + " is missing");
    }
    const std::vector<int64_t>& weight_shape = tensors.weight->shape;
    const std::vector<int64_t>& bias_shape = tensors.bias->shape;
    if (weight_shape.size() != 2) {
      return fail(
          absl::StrCat(weight_name, " has rank ", weight_shape.size(), "; expected 2 ([out, in])"));
    }
    if (weight_shape[0] == 0 || weight_shape[1] == 0) {
      return fail(absl::StrCat(weight_name, " has shape ", shapeText(weight_shape),
                               "; both dimensions must be positive"));
    }
    if (bias_shape.size() != 1) {
      return fail(absl::StrCat(bias_name, " has rank ", bias_shape.size(), "; expected 1 ([out])"));
    }
    if (bias_shape[0] != weight_shape[0]) {
      return fail(absl::StrCat(bias_name, " has ", bias_shape[0], " elements but ", weight_name,
                               " has ", weight_shape[0], " outputs"));
    }
    if (previous != nullptr && weight_shape[1] != previous->out) {
      return fail(absl::StrCat(weight_name, " has ", weight_shape[1], " inputs but layers.",
                               index - 1, " has ", previous->out, " outputs"));
    }

    DenseLayer layer;
    layer.out = weight_shape[0];
    layer.in = weight_shape[1];
    // floats() applies the dtype and finiteness rules and names the tensor itself.
    StatusOr<std::vector<float>> weight = file_.floats(weight_name);
    if (!weight.ok()) {
      return weight.status();
    }
    StatusOr<std::vector<float>> bias = file_.floats(bias_name);
    if (!bias.ok()) {
      return bias.status();
    }
    layer.weight = *std::move(weight);
    layer.bias = *std::move(bias);
    return layer;
  }

  Status loadMetadata(MlpWeights& weights) const {
    const std::map<std::string, std::string>& metadata = file_.metadata();
    if (auto it = metadata.find("output_activation"); it != metadata.end()) {
      if (it->second == "softmax") {
        weights.softmax = true;
      } else if (it->second == "none") {
        weights.softmax = false;
      } else {
        return fail(absl::StrCat("__metadata__ output_activation '", it->second,
                                 "' is not supported (expected softmax or none)"));
      }
    }
    for (auto [key, target] : {std::pair{"input_name", &weights.input_name},
                               std::pair{"output_name", &weights.output_name}}) {
      if (auto it = metadata.find(key); it != metadata.end()) {
        if (it->second.empty()) {
          return fail(absl::StrCat("__metadata__ ", key, " must not be empty"));
        }
        *target = it->second;
      }
    }
    return absl::OkStatus();
  }

  const SafetensorsFile& file_;
};

}  // namespace

StatusOr<MlpWeights> loadMlpWeights(const SafetensorsFile& file) { return Loader(file).load(); }

}  // namespace serve
