#include "replica/runtime/mlp_weights.h"

#include <doctest/doctest.h>

#include <limits>
#include <map>
#include <string>
#include <vector>

#include "tests/support/safetensors_writer.h"

namespace serve {
namespace {

using testing::f32Tensor;
using testing::makeSafetensors;
using testing::TestTensor;

constexpr const char* kSource = "mlp.safetensors";

// A layer of the given size whose values are all `fill`.
std::vector<TestTensor> layer(int index, int64_t out, int64_t in, float fill = 0.5f) {
  const std::string prefix = "layers." + std::to_string(index);
  return {f32Tensor(prefix + ".weight", {out, in}, std::vector<float>(out * in, fill)),
          f32Tensor(prefix + ".bias", {out}, std::vector<float>(out, fill))};
}

std::vector<TestTensor> concat(std::vector<std::vector<TestTensor>> parts) {
  std::vector<TestTensor> out;
  for (auto& part : parts) {
    out.insert(out.end(), part.begin(), part.end());
  }
  return out;
}

StatusOr<MlpWeights> load(const std::vector<TestTensor>& tensors,
                          const std::map<std::string, std::string>& metadata = {}) {
  StatusOr<SafetensorsFile> file =
      SafetensorsFile::parse(makeSafetensors(tensors, metadata), kSource);
  REQUIRE_MESSAGE(file.ok(), file.status().message());
  return loadMlpWeights(*file);
}

TEST_CASE("loadMlpWeights builds a 2-layer MLP with exact values and default metadata") {
  const std::vector<TestTensor> tensors = {
      // Written out of order: layers are found by name, not by position in the file.
      f32Tensor("layers.1.bias", {2}, {-1.0f, 1.0f}),
      f32Tensor("layers.0.weight", {3, 2}, {1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f}),
      f32Tensor("layers.1.weight", {2, 3}, {0.5f, -0.5f, 0.25f, -0.25f, 0.125f, -0.125f}),
      f32Tensor("layers.0.bias", {3}, {0.1f, -0.2f, 0.3f}),
  };
  StatusOr<MlpWeights> mlp = load(tensors);
  REQUIRE_MESSAGE(mlp.ok(), mlp.status().message());
  REQUIRE(mlp->layers.size() == 2);
  CHECK(mlp->inputs() == 2);
  CHECK(mlp->outputs() == 2);
  CHECK(mlp->softmax);
  CHECK(mlp->input_name == "input");
  CHECK(mlp->output_name == "output");

  const DenseLayer& first = mlp->layers[0];
  CHECK(first.in == 2);
  CHECK(first.out == 3);
  CHECK(first.weight == std::vector<float>{1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f});
  CHECK(first.bias == std::vector<float>{0.1f, -0.2f, 0.3f});
  const DenseLayer& second = mlp->layers[1];
  CHECK(second.in == 3);
  CHECK(second.out == 2);
  CHECK(second.weight == std::vector<float>{0.5f, -0.5f, 0.25f, -0.25f, 0.125f, -0.125f});
  CHECK(second.bias == std::vector<float>{-1.0f, 1.0f});
}

TEST_CASE("loadMlpWeights reads output_activation and tensor names from metadata") {
  StatusOr<MlpWeights> mlp =
      load(layer(0, 4, 3), {{"output_activation", "none"},
                            {"input_name", "features"},
                            {"output_name", "logits"},
                            {"format", "pt"}});  // keys it does not know are left alone
  REQUIRE_MESSAGE(mlp.ok(), mlp.status().message());
  CHECK_FALSE(mlp->softmax);
  CHECK(mlp->input_name == "features");
  CHECK(mlp->output_name == "logits");
  CHECK(mlp->inputs() == 3);
  CHECK(mlp->outputs() == 4);

  StatusOr<MlpWeights> softmax = load(layer(0, 4, 3), {{"output_activation", "softmax"}});
  REQUIRE_MESSAGE(softmax.ok(), softmax.status().message());
  CHECK(softmax->softmax);
}

TEST_CASE("loadMlpWeights orders layers numerically, not by name") {
  // "layers.10" sorts before "layers.2" as text; the layer list must not.
  std::vector<TestTensor> tensors;
  for (int i = 0; i < 12; ++i) {
    auto l = layer(i, 1, 1, static_cast<float>(i));
    tensors.insert(tensors.end(), l.begin(), l.end());
  }
  StatusOr<MlpWeights> mlp = load(tensors);
  REQUIRE_MESSAGE(mlp.ok(), mlp.status().message());
  REQUIRE(mlp->layers.size() == 12);
  for (int i = 0; i < 12; ++i) {
    CAPTURE(i);
    CHECK(mlp->layers[i].weight == std::vector<float>{static_cast<float>(i)});
  }
}

TEST_CASE("loadMlpWeights refuses files that do not describe an MLP, naming the tensor") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const std::string not_mlp =
      "' is not part of an MLP (expected layers.<i>.weight / layers.<i>.bias)";
  struct Case {
    std::string name;
    std::vector<TestTensor> tensors;
    std::map<std::string, std::string> metadata;
    std::string message;  // after "mlp.safetensors: "
  };
  const std::vector<Case> cases = {
      {"no tensors", {}, {}, "no layers: expected tensors layers.0.weight and layers.0.bias"},
      {"metadata only",
       {},
       {{"output_activation", "none"}},
       "no layers: expected tensors layers.0.weight and layers.0.bias"},
      {"stray tensor",
       concat({layer(0, 2, 2), {f32Tensor("foo", {1}, {1.0f})}}),
       {},
       "tensor 'foo" + not_mlp},
      {"unknown part",
       concat({layer(0, 2, 2), {f32Tensor("layers.0.gamma", {2}, {1.0f, 1.0f})}}),
       {},
       "tensor 'layers.0.gamma" + not_mlp},
      {"index not a number",
       {f32Tensor("layers.x.weight", {1, 1}, {1.0f})},
       {},
       "tensor 'layers.x.weight" + not_mlp},
      {"index with leading zero",
       {f32Tensor("layers.01.weight", {1, 1}, {1.0f})},
       {},
       "tensor 'layers.01.weight" + not_mlp},
      {"negative index",
       {f32Tensor("layers.-1.bias", {1}, {1.0f})},
       {},
       "tensor 'layers.-1.bias" + not_mlp},
      {"no index",
       {f32Tensor("layers..weight", {1, 1}, {1.0f})},
       {},
       "tensor 'layers..weight" + not_mlp},
      {"no part", {f32Tensor("layers.0", {1}, {1.0f})}, {}, "tensor 'layers.0" + not_mlp},
      {"trailing part",
       {f32Tensor("layers.0.weight.t", {1, 1}, {1.0f})},
       {},
       "tensor 'layers.0.weight.t" + not_mlp},
      {"gap",
       concat({layer(0, 2, 2), layer(1, 2, 2), layer(3, 2, 2)}),
       {},
       "layer 2 is missing: found layers 0, 1, 3"},
      {"starts at 1", layer(1, 2, 2), {}, "layer 0 is missing: found layers 1"},
      {"bias missing",
       {f32Tensor("layers.0.weight", {1, 1}, {1.0f})},
       {},
       "layers.0.bias is missing"},
      {"weight missing",
       concat({layer(0, 2, 2), {f32Tensor("layers.1.bias", {2}, {1.0f, 1.0f})}}),
       {},
       "layers.1.weight is missing"},
      {"weight rank 1",
       {f32Tensor("layers.0.weight", {2}, {1.0f, 1.0f}),
        f32Tensor("layers.0.bias", {2}, {1.0f, 1.0f})},
       {},
       "layers.0.weight has rank 1; expected 2 ([out, in])"},
      {"weight rank 3",
       {f32Tensor("layers.0.weight", {1, 2, 1}, {1.0f, 1.0f}),
        f32Tensor("layers.0.bias", {1}, {1.0f})},
       {},
       "layers.0.weight has rank 3; expected 2 ([out, in])"},
      {"weight without outputs",
       {f32Tensor("layers.0.weight", {0, 4}, {}), f32Tensor("layers.0.bias", {0}, {})},
       {},
       "layers.0.weight has shape [0, 4]; both dimensions must be positive"},
      {"weight without inputs",
       {f32Tensor("layers.0.weight", {2, 0}, {}), f32Tensor("layers.0.bias", {2}, {1.0f, 1.0f})},
       {},
       "layers.0.weight has shape [2, 0]; both dimensions must be positive"},
      {"bias rank 2",
       {f32Tensor("layers.0.weight", {2, 1}, {1.0f, 1.0f}),
        f32Tensor("layers.0.bias", {2, 1}, {1.0f, 1.0f})},
       {},
       "layers.0.bias has rank 2; expected 1 ([out])"},
      {"bias size",
       {f32Tensor("layers.0.weight", {32, 1}, std::vector<float>(32, 1.0f)),
        f32Tensor("layers.0.bias", {31}, std::vector<float>(31, 1.0f))},
       {},
       "layers.0.bias has 31 elements but layers.0.weight has 32 outputs"},
      {"shapes do not chain",
       concat({layer(0, 32, 4), layer(1, 2, 20)}),
       {},
       "layers.1.weight has 20 inputs but layers.0 has 32 outputs"},
      {"third layer does not chain",
       concat({layer(0, 8, 4), layer(1, 6, 8), layer(2, 2, 5)}),
       {},
       "layers.2.weight has 5 inputs but layers.1 has 6 outputs"},
      {"weight is F16",
       {TestTensor{"layers.0.weight", "F16", {1, 2}, std::string(4, '\0')},
        f32Tensor("layers.0.bias", {1}, {1.0f})},
       {},
       "tensor 'layers.0.weight' has dtype F16; expected F32"},
      {"bias is F64",
       {f32Tensor("layers.0.weight", {1, 2}, {1.0f, 1.0f}),
        TestTensor{"layers.0.bias", "F64", {1}, std::string(8, '\0')}},
       {},
       "tensor 'layers.0.bias' has dtype F64; expected F32"},
      {"NaN bias",
       concat({layer(0, 2, 2),
               {f32Tensor("layers.1.weight", {3, 2}, std::vector<float>(6, 1.0f)),
                f32Tensor("layers.1.bias", {3}, {0.0f, 1.0f, nan})}}),
       {},
       "tensor 'layers.1.bias': element 2 is NaN"},
      {"infinite weight",
       {f32Tensor("layers.0.weight", {2, 2}, {0.0f, -inf, 0.0f, 0.0f}),
        f32Tensor("layers.0.bias", {2}, {1.0f, 1.0f})},
       {},
       "tensor 'layers.0.weight': element 1 is infinite"},
      {"unknown activation",
       layer(0, 2, 2),
       {{"output_activation", "relu"}},
       "__metadata__ output_activation 'relu' is not supported (expected softmax or none)"},
      {"empty activation",
       layer(0, 2, 2),
       {{"output_activation", ""}},
       "__metadata__ output_activation '' is not supported (expected softmax or none)"},
      {"empty input name",
       layer(0, 2, 2),
       {{"input_name", ""}},
       "__metadata__ input_name must not be empty"},
      {"empty output name",
       layer(0, 2, 2),
       {{"output_name", ""}},
       "__metadata__ output_name must not be empty"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    StatusOr<MlpWeights> mlp = load(c.tensors, c.metadata);
    REQUIRE_FALSE(mlp.ok());
    CHECK(mlp.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(messageOf(mlp.status()) == std::string(kSource) + ": " + c.message);
  }
}

}  // namespace
}  // namespace serve
