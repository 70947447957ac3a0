#pragma once

// The replica's KServe v2 gRPC API (inference.GRPCInferenceService). The gRPC counterpart of
// HttpFrontend: it owns the gRPC codec (kserve_grpc) and the mapping of results to gRPC codes
// (wire_status), and runs inference through the same InferenceService, so HTTP and gRPC share
// one admission pool, one batcher and one model.
//
// Served by grpc++'s synchronous API: InferenceService::infer() blocks its caller until the
// result, the deadline or the client's departure (and, with an idle model, runs the forward
// pass on the caller's thread), which is exactly the shape of a sync handler. grpc++'s sync
// server grows its thread pool on demand, so a health or readiness call never waits behind
// inference. The callback API would only add a hand-off to another pool and back.
#include <chrono>
#include <string>

#include "common/logging.h"
#include "proto/grpc_service.grpc.pb.h"
#include "replica/core/inference_service.h"
#include "replica/health/health_monitor.h"
#include "replica/metrics/replica_metrics.h"

namespace serve {

struct GrpcFrontendOptions {
  std::chrono::milliseconds default_timeout{0};  // request_timeout_s; 0 = none
};

class GrpcFrontend final : public inference::GRPCInferenceService::Service {
 public:
  GrpcFrontend(GrpcFrontendOptions options, InferenceService& service, HealthMonitor& health,
               ReplicaMetrics& metrics, RequestLog& request_log);

  // Each runs on one of grpc++'s sync-server threads.
  grpc::Status ServerLive(grpc::ServerContext* ctx, const inference::ServerLiveRequest* req,
                          inference::ServerLiveResponse* resp) override;
  grpc::Status ServerReady(grpc::ServerContext* ctx, const inference::ServerReadyRequest* req,
                           inference::ServerReadyResponse* resp) override;
  grpc::Status ModelReady(grpc::ServerContext* ctx, const inference::ModelReadyRequest* req,
                          inference::ModelReadyResponse* resp) override;
  grpc::Status ServerMetadata(grpc::ServerContext* ctx, const inference::ServerMetadataRequest* req,
                              inference::ServerMetadataResponse* resp) override;
  grpc::Status ModelMetadata(grpc::ServerContext* ctx, const inference::ModelMetadataRequest* req,
                             inference::ModelMetadataResponse* resp) override;
  grpc::Status ModelInfer(grpc::ServerContext* ctx, const inference::ModelInferRequest* req,
                          inference::ModelInferResponse* resp) override;
  grpc::Status ModelStreamInfer(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<inference::ModelStreamInferResponse, inference::ModelInferRequest>*
          stream) override;

 private:
  struct Exchange;
  // NotFound unless `name` (and `version`, when given) name the served model.
  Status checkModel(const std::string& name, const std::string& version) const;
  // Runs one request; `resp` is the model's answer (which may stream) when the status is OK.
  grpc::Status infer(Exchange& ex, const inference::ModelInferRequest& req, InferResponse& resp);
  grpc::Status finish(Exchange& ex, grpc::Status status);

  GrpcFrontendOptions options_;
  InferenceService& service_;
  HealthMonitor& health_;
  ReplicaMetrics& metrics_;
  RequestLog& request_log_;
};

}  // namespace serve
