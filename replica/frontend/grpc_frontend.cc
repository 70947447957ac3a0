#include "replica/frontend/grpc_frontend.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

#include "common/names.h"
#include "common/uuid.h"
#include "common/version.h"
#include "replica/frontend/kserve_grpc.h"
#include "replica/frontend/wire_status.h"

namespace serve {
namespace {

using Clock = std::chrono::steady_clock;

// gRPC's deadline timer and our steady-clock copy of the deadline may disagree by a little; a
// cancellation this close to the deadline is the deadline's.
constexpr auto kDeadlineSlack = std::chrono::milliseconds(10);

// As on the HTTP side: a client's request id is kept only when it is a sane token.
bool acceptableRequestId(std::string_view id) {
  if (id.empty() || id.size() > 128) {
    return false;
  }
  return std::all_of(id.begin(), id.end(), [](char c) { return c >= 0x21 && c <= 0x7e; });
}

std::string formatSeconds(std::chrono::nanoseconds d) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof(buf), static_cast<double>(d.count()) / 1e9);
  return std::string(buf, r.ptr);
}

// The call's gRPC deadline on the steady clock; max() when the client set none.
Clock::time_point grpcDeadline(const grpc::ServerContext& ctx) {
  auto deadline = ctx.deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) {
    return Clock::time_point::max();
  }
  auto left = deadline - std::chrono::system_clock::now();
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(left);
}

}  // namespace

struct GrpcFrontend::Exchange {
  Exchange(grpc::ServerContext& c, const char* m, bool logged = false)
      : ctx(c), method(m), log(logged) {}

  grpc::ServerContext& ctx;
  const char* method;  // the RPC's name, a metrics label
  bool log;            // probes (live/ready) stay out of the access log
  Clock::time_point start = Clock::now();
  std::string request_id;
};

GrpcFrontend::GrpcFrontend(GrpcFrontendOptions options, InferenceService& service,
                           HealthMonitor& health, ReplicaMetrics& metrics, RequestLog& request_log)
    : options_(options),
      service_(service),
      health_(health),
      metrics_(metrics),
      request_log_(request_log) {}

grpc::Status GrpcFrontend::finish(Exchange& ex, grpc::Status status) {
  double ms =
      static_cast<double>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - ex.start).count()) /
      1e6;
  std::string code = grpcCodeName(status.error_code());
  metrics_.recordGrpcRequest(ex.method, code, ms);
  if (ex.log) {
    // The id may be the client's (the message's `id`): escaped like any client bytes.
    std::string line = fmt::format("GRPC {} {} {:.3f}ms id={}", ex.method, code, ms,
                                   ex.request_id.empty() ? "-" : escapeForLog(ex.request_id, true));
    // Logged at ERROR where HTTP would have answered 5xx.
    switch (status.error_code()) {
      case grpc::StatusCode::OK:
      case grpc::StatusCode::INVALID_ARGUMENT:
      case grpc::StatusCode::NOT_FOUND:
      case grpc::StatusCode::DEADLINE_EXCEEDED:
      case grpc::StatusCode::CANCELLED:
        request_log_.info(line);
        break;
      default:
        request_log_.error(line);
        break;
    }
  }
  return status;
}

Status GrpcFrontend::checkModel(const std::string& name, const std::string& version) const {
  // Qualified: inside this class, ModelMetadata names the RPC.
  const serve::ModelMetadata& meta = service_.model().metadata();
  if (name != meta.name) {
    return absl::NotFoundError("Unknown model '" + name + "'; this replica serves '" + meta.name +
                               "'");
  }
  if (!version.empty() &&
      std::find(meta.versions.begin(), meta.versions.end(), version) == meta.versions.end()) {
    return absl::NotFoundError("Model '" + name + "' has no version '" + version + "'");
  }
  return absl::OkStatus();
}

grpc::Status GrpcFrontend::ServerLive(grpc::ServerContext* ctx, const inference::ServerLiveRequest*,
                                      inference::ServerLiveResponse* resp) {
  Exchange ex{*ctx, "ServerLive"};
  resp->set_live(true);
  return finish(ex, grpc::Status::OK);
}

grpc::Status GrpcFrontend::ServerReady(grpc::ServerContext* ctx,
                                       const inference::ServerReadyRequest*,
                                       inference::ServerReadyResponse* resp) {
  Exchange ex{*ctx, "ServerReady"};
  resp->set_ready(health_.state() == HealthState::kHealthy);
  return finish(ex, grpc::Status::OK);
}

grpc::Status GrpcFrontend::ModelReady(grpc::ServerContext* ctx,
                                      const inference::ModelReadyRequest* req,
                                      inference::ModelReadyResponse* resp) {
  Exchange ex{*ctx, "ModelReady"};
  if (Status st = checkModel(req->name(), req->version()); !st.ok()) {
    metrics_.recordBadRequest("unknown_model");
    return finish(ex, grpcStatusFor(st));
  }
  resp->set_ready(health_.state() == HealthState::kHealthy);
  return finish(ex, grpc::Status::OK);
}

grpc::Status GrpcFrontend::ServerMetadata(grpc::ServerContext* ctx,
                                          const inference::ServerMetadataRequest*,
                                          inference::ServerMetadataResponse* resp) {
  Exchange ex{*ctx, "ServerMetadata"};
  // The same answer as GET /v2.
  resp->set_name("serve-replica");
  resp->set_version(std::string(kServeVersion));
  return finish(ex, grpc::Status::OK);
}

grpc::Status GrpcFrontend::ModelMetadata(grpc::ServerContext* ctx,
                                         const inference::ModelMetadataRequest* req,
                                         inference::ModelMetadataResponse* resp) {
  Exchange ex(*ctx, "ModelMetadata", true);
  if (Status st = checkModel(req->name(), req->version()); !st.ok()) {
    metrics_.recordBadRequest("unknown_model");
    return finish(ex, grpcStatusFor(st));
  }
  *resp = encodeModelMetadata(service_.model().metadata());
  return finish(ex, grpc::Status::OK);
}

namespace {

// The request id: the message's `id`, else an `x-request-id` metadata entry, else a new UUID.
std::string requestIdOf(const grpc::ServerContext& ctx, const inference::ModelInferRequest& req) {
  if (!req.id().empty()) {
    return req.id();
  }
  auto it = ctx.client_metadata().find("x-request-id");
  if (it != ctx.client_metadata().end() &&
      acceptableRequestId(std::string_view(it->second.data(), it->second.size()))) {
    return std::string(it->second.data(), it->second.size());
  }
  return uuidV4();
}

// Triton's decoupled-model convention: a client that sets the request parameter
// `triton_enable_empty_final_response` gets, after a request's last response, an empty one whose
// `triton_final_response` parameter is true (the others carry false).
bool wantsFinalFlag(const inference::ModelInferRequest& req) {
  auto it = req.parameters().find("triton_enable_empty_final_response");
  return it != req.parameters().end() && it->second.bool_param();
}

void setFinalFlag(inference::ModelInferResponse& response, bool final) {
  (*response.mutable_parameters())["triton_final_response"].set_bool_param(final);
}

}  // namespace

grpc::Status GrpcFrontend::ModelInfer(grpc::ServerContext* ctx,
                                      const inference::ModelInferRequest* req,
                                      inference::ModelInferResponse* resp) {
  Exchange ex(*ctx, "ModelInfer", true);
  ex.request_id = requestIdOf(*ctx, *req);
  InferResponse result;
  grpc::Status status = infer(ex, *req, result);
  if (status.ok() && result.stream != nullptr) {
    result.stream->cancel();
    status = grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "model '" + service_.model().metadata().name +
                              "' streams its outputs; use the ModelStreamInfer RPC");
  }
  if (status.ok()) {
    *resp = encodeModelInferResponse(result, requestEncoding(*req));
  }
  // The id goes back as `x-request-id` metadata like the HTTP header. On an error it goes in the
  // trailers instead: gRPC answers "trailers-only" (one HEADERS frame with grpc-status) only
  // when there is no custom initial metadata, and that frame is what HAProxy can log (it logs
  // no trailers), so that the ingress metrics see the error.
  if (status.ok()) {
    ctx->AddInitialMetadata("x-request-id", ex.request_id);
  } else {
    ctx->AddTrailingMetadata("x-request-id", ex.request_id);
  }
  return finish(ex, status);
}

grpc::Status GrpcFrontend::ModelStreamInfer(
    grpc::ServerContext* ctx,
    grpc::ServerReaderWriter<inference::ModelStreamInferResponse, inference::ModelInferRequest>*
        stream) {
  // Requests are answered in the order they arrive, one at a time: a client that wants them to
  // overlap opens more streams, as with Triton.
  inference::ModelInferRequest req;
  while (stream->Read(&req)) {
    Exchange ex(*ctx, "ModelStreamInfer", true);
    ex.request_id = requestIdOf(*ctx, req);
    InferResponse result;
    const grpc::Status status = infer(ex, req, result);
    const TensorEncoding encoding = requestEncoding(req);
    const bool final_flag = wantsFinalFlag(req);
    inference::ModelStreamInferResponse message;
    if (!status.ok()) {
      message.set_error_message(status.error_message());
      stream->Write(message);
      finish(ex, status);
      continue;
    }
    bool delivered = true;
    if (result.stream == nullptr) {
      *message.mutable_infer_response() = encodeModelInferResponse(result, encoding);
      if (final_flag) {
        setFinalFlag(*message.mutable_infer_response(), true);
      }
      delivered = stream->Write(message);
    } else {
      while (std::optional<std::vector<Tensor>> part = result.stream->next()) {
        InferResponse piece;
        piece.id = result.id;
        piece.model = result.model;
        piece.outputs = *std::move(part);
        message.Clear();
        *message.mutable_infer_response() = encodeModelInferResponse(piece, encoding);
        if (final_flag) {
          setFinalFlag(*message.mutable_infer_response(), false);
        }
        if (!stream->Write(message)) {
          delivered = false;
          result.stream->cancel();  // the client left: stop the model's generator
          break;
        }
      }
      if (delivered && !result.stream->error().empty()) {
        message.Clear();
        message.set_error_message(result.stream->error());
        delivered = stream->Write(message);
      } else if (delivered && final_flag) {
        message.Clear();
        message.mutable_infer_response()->set_model_name(result.model);
        message.mutable_infer_response()->set_id(result.id);
        setFinalFlag(*message.mutable_infer_response(), true);
        delivered = stream->Write(message);
      }
    }
    finish(ex, delivered ? grpc::Status::OK
                         : grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
    if (!delivered) {
      break;
    }
  }
  return grpc::Status::OK;
}

grpc::Status GrpcFrontend::infer(Exchange& ex, const inference::ModelInferRequest& req,
                                 InferResponse& resp) {
  if (Status st = checkModel(req.model_name(), req.model_version()); !st.ok()) {
    metrics_.recordBadRequest("unknown_model");
    return grpcStatusFor(st);
  }
  StatusOr<InferRequest> request = decodeModelInferRequest(req);
  if (!request.ok()) {
    metrics_.recordBadRequest("invalid_input");
    return grpcStatusFor(request.status());
  }
  request->id = ex.request_id;

  // Both deadlines count: the client's (grpc-timeout) and the deployment's request_timeout_s,
  // whichever comes first.
  const Clock::time_point client_deadline = grpcDeadline(ex.ctx);
  Clock::time_point deadline = client_deadline;
  if (options_.default_timeout.count() > 0) {
    deadline = std::min(deadline, ex.start + options_.default_timeout);
  }
  // gRPC cancels a call whose deadline passed; that is the deadline, not a client that left,
  // so it is left to infer()'s own deadline check.
  grpc::ServerContext& ctx = ex.ctx;
  auto client_gone = [&ctx, client_deadline] {
    return ctx.IsCancelled() && Clock::now() + kDeadlineSlack < client_deadline;
  };

  StatusOr<InferResponse> result = service_.infer(*std::move(request), deadline, client_gone);
  if (result.ok()) {
    resp = *std::move(result);
    return grpc::Status::OK;
  }
  Status st = result.status();
  if (absl::IsCancelled(st) && Clock::now() + kDeadlineSlack >= client_deadline) {
    st = absl::DeadlineExceededError(st.message());  // cancelled by gRPC at the deadline
  }
  switch (st.code()) {
    case absl::StatusCode::kInvalidArgument:
      metrics_.recordBadRequest("invalid_input");
      break;
    case absl::StatusCode::kDeadlineExceeded: {
      auto timeout = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - ex.start);
      st = absl::DeadlineExceededError("Request " + ex.request_id + " timed out after " +
                                       formatSeconds(timeout) + "s.");
      break;
    }
    default:
      break;
  }
  return grpcStatusFor(st);
}

}  // namespace serve
