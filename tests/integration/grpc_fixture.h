#pragma once

// A grpc++ client for the KServe v2 service, built from the project's .proto files (the
// generated stubs, not a hand-made client): requests in typed and raw form, and one call with
// a deadline and optional request metadata. Shared by the replica and the HAProxy gRPC tests.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "proto/grpc_service.grpc.pb.h"

namespace serve::testing {

using inference::GRPCInferenceService;
using inference::ModelInferRequest;
using inference::ModelInferResponse;

// Request metadata, e.g. {{"application", "digits"}}.
using Metadata = std::map<std::string, std::string>;

inline std::unique_ptr<GRPCInferenceService::Stub> inferenceStub(int port) {
  return GRPCInferenceService::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
}

// Every call in the tests has a deadline, so a broken server fails a test instead of hanging.
inline void withDeadline(grpc::ClientContext& ctx,
                         std::chrono::milliseconds d = std::chrono::seconds(10)) {
  ctx.set_deadline(std::chrono::system_clock::now() + d);
}

inline void addMetadata(grpc::ClientContext& ctx, const Metadata& metadata) {
  for (const auto& [key, value] : metadata) {
    ctx.AddMetadata(key, value);
  }
}

// The replica's gRPC request counter for one method and status code name.
inline std::string grpcRequestsSeries(const std::string& method, const std::string& code,
                                      const std::string& app = "app",
                                      const std::string& deployment = "d") {
  return "serve_replica_grpc_requests_total{application=\"" + app + "\",deployment=\"" +
         deployment + "\",method=\"" + method + "\",code=\"" + code + "\"}";
}

inline ModelInferRequest typedRequest(const std::string& model, const std::vector<float>& data,
                                      std::vector<int64_t> shape, const std::string& input = "x") {
  ModelInferRequest req;
  req.set_model_name(model);
  auto* in = req.add_inputs();
  in->set_name(input);
  in->set_datatype("FP32");
  for (int64_t d : shape) {
    in->add_shape(d);
  }
  for (float f : data) {
    in->mutable_contents()->add_fp32_contents(f);
  }
  return req;
}

inline ModelInferRequest rawRequest(const std::string& model, const std::vector<float>& data,
                                    std::vector<int64_t> shape, const std::string& input = "x") {
  ModelInferRequest req = typedRequest(model, {}, std::move(shape), input);
  req.add_raw_input_contents(
      std::string(reinterpret_cast<const char*>(data.data()), data.size() * sizeof(float)));
  return req;
}

inline std::vector<float> rawFloats(const std::string& bytes) {
  std::vector<float> out(bytes.size() / sizeof(float));
  std::memcpy(out.data(), bytes.data(), out.size() * sizeof(float));
  return out;
}

// The typed FP32 contents of output `i`.
inline std::vector<float> typedOutput(const ModelInferResponse& response, int i = 0) {
  const auto& values = response.outputs(i).contents().fp32_contents();
  return {values.begin(), values.end()};
}

struct InferResult {
  grpc::Status status;
  ModelInferResponse response;
  double seconds = 0;
};

inline InferResult infer(GRPCInferenceService::Stub& stub, const ModelInferRequest& req,
                         std::chrono::milliseconds deadline = std::chrono::seconds(10),
                         const Metadata& metadata = {}) {
  grpc::ClientContext ctx;
  withDeadline(ctx, deadline);
  addMetadata(ctx, metadata);
  InferResult out;
  auto start = std::chrono::steady_clock::now();
  out.status = stub.ModelInfer(&ctx, req, &out.response);
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

}  // namespace serve::testing
