#pragma once

// The example digits model (models/digits.safetensors) as the replica tests deploy it: the
// config, the path and a one-sample request body. Shared by the CPU integration tests and the
// GPU tests, which run the same checks on the other back end.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/http_client.h"

namespace serve::testing {

// The index of the largest value of a JSON array of numbers (the predicted class).
inline int argmax(const nlohmann::json& values) {
  int best = 0;
  for (int i = 1; i < static_cast<int>(values.size()); ++i) {
    if (values[i].get<double>() > values[best].get<double>()) {
      best = i;
    }
  }
  return best;
}

// One application `app` at /digits with one deployment `d` serving the model at `path`.
inline std::string digitsConfig(const std::string& path, int max_batch, int num_gpus = 0) {
  return "applications:\n"
         "  - name: app\n"
         "    route_prefix: /digits\n"
         "    deployments:\n"
         "      - name: d\n"
         "        max_ongoing_requests: 32\n"
         "        ray_actor_options: {num_gpus: " +
         std::to_string(num_gpus) +
         "}\n"
         "        model: {kind: mlp, name: digits, path: " +
         path +
         "}\n"
         "        batching: {max_batch_size: " +
         std::to_string(max_batch) + ", batch_wait_timeout_s: 0.01}\n";
}

inline std::string digitsPath() {
  return std::string(SERVE_SOURCE_DIR) + "/models/digits.safetensors";
}

// KServe v2 JSON for one [1, 64] FP32 sample.
inline std::string inferBodyFor(const nlohmann::json& pixels) {
  return nlohmann::json{
      {"inputs", {{{"name", "input"}, {"shape", {1, 64}}, {"datatype", "FP32"}, {"data", pixels}}}}}
      .dump();
}

// POSTs every body at once, one thread each, so that the replica can batch them; the results
// are in the order of `bodies`.
inline std::vector<HttpResult> postConcurrently(const std::string& url,
                                                const std::vector<std::string>& bodies) {
  std::vector<HttpResult> results(bodies.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < bodies.size(); ++i) {
    threads.emplace_back([&, i] { results[i] = httpPost(url, bodies[i]); });
  }
  for (auto& t : threads) {
    t.join();
  }
  return results;
}

// Sends models/digits.json's held-out samples concurrently to `url`, checks that every answer
// is a 200 with 10 probabilities whose largest is the training script's predicted class, and
// returns the largest difference from the script's probabilities (each back end has its bound).
inline double checkHeldOut(const std::string& url, const nlohmann::json& heldout) {
  std::vector<std::string> bodies;
  for (const auto& sample : heldout) {
    bodies.push_back(inferBodyFor(sample["inputs"]));
  }
  std::vector<HttpResult> results = postConcurrently(url, bodies);
  double worst = 0;
  for (size_t i = 0; i < heldout.size(); ++i) {
    CAPTURE(i);
    REQUIRE(results[i].status == 200);
    auto out = nlohmann::json::parse(results[i].body)["outputs"][0];
    CHECK(out["name"] == "probabilities");
    auto probs = out["data"].get<std::vector<double>>();
    REQUIRE(probs.size() == 10);
    auto predicted = std::max_element(probs.begin(), probs.end()) - probs.begin();
    CHECK(predicted == heldout[i]["predicted"].get<int>());
    auto want = heldout[i]["probabilities"].get<std::vector<double>>();
    REQUIRE(want.size() == 10);
    for (size_t c = 0; c < 10; ++c) {
      worst = std::max(worst, std::abs(probs[c] - want[c]));
    }
  }
  return worst;
}

// Eight concurrent requests of which number 3 is `bad`: only that one fails, with a 400 and
// `want_error` as its body; the other seven get 200s.
inline void checkOneBadFailsAlone(const std::string& url, const std::string& bad,
                                  const std::string& want_error) {
  nlohmann::json zeros = std::vector<double>(64, 0.0);
  std::vector<std::string> bodies(8, inferBodyFor(zeros));
  bodies[3] = bad;
  std::vector<HttpResult> results = postConcurrently(url, bodies);
  for (size_t i = 0; i < results.size(); ++i) {
    CAPTURE(i);
    if (i == 3) {
      CHECK(results[i].status == 400);
      CHECK(results[i].body == want_error);
    } else {
      CHECK(results[i].status == 200);
    }
  }
}

}  // namespace serve::testing
