#include "replica/frontend/http_frontend.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/names.h"
#include "common/uuid.h"
#include "common/version.h"
#include "replica/frontend/kserve_json.h"
#include "replica/frontend/wire_status.h"

namespace serve {
namespace {

// The prefix itself or a path below it ("/" covers every path).
bool underRoutePrefix(std::string_view path, std::string_view prefix) {
  if (prefix == "/") {
    return path.starts_with('/');
  }
  return path == prefix || (path.starts_with(prefix) && path[prefix.size()] == '/');
}

using Clock = std::chrono::steady_clock;

constexpr const char* kJson = "application/json";
// A response whose binary output data follows the JSON (binary tensor data extension).
constexpr const char* kOctetStream = "application/octet-stream";
constexpr const char* kText = "text/plain";
constexpr std::string_view kModelsPrefix = "/v2/models/";

// A request id from the client is echoed only when it is a sane token; anything else (too
// long, control characters) is replaced so logs and headers stay clean.
bool acceptableRequestId(const std::string& id) {
  if (id.empty() || id.size() > 128) {
    return false;
  }
  for (char c : id) {
    if (c < 0x21 || c > 0x7e) {
      return false;
    }
  }
  return true;
}

// x-request-timeout-seconds: a positive number sets the deadline, zero or negative disables
// it (as Ray Serve does); anything else is a client error.
StatusOr<std::optional<std::chrono::nanoseconds>> parseTimeoutHeader(const std::string& text) {
  double seconds = 0;
  const char* begin = text.data();
  const char* end = begin + text.size();
  auto [ptr, ec] = std::from_chars(begin, end, seconds);
  if (ec != std::errc() || ptr != end || !std::isfinite(seconds) || seconds > 86400 * 365) {
    return absl::InvalidArgumentError("x-request-timeout-seconds: '" + text +
                                      "' is not a number of seconds");
  }
  if (seconds <= 0) {
    return std::optional<std::chrono::nanoseconds>();
  }
  return std::optional<std::chrono::nanoseconds>(
      std::chrono::nanoseconds(static_cast<int64_t>(seconds * 1e9)));
}

std::string formatSeconds(std::chrono::nanoseconds d) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof(buf), static_cast<double>(d.count()) / 1e9);
  return std::string(buf, r.ptr);
}

}  // namespace

struct HttpFrontend::Exchange {
  const httplib::Request& req;
  httplib::Response& res;
  std::string& body;  // the request's body, read by the handler
  Clock::time_point start;
  std::string route;  // bounded label: the matched route pattern, or "other"
  std::string request_id;
};

HttpFrontend::HttpFrontend(HttpFrontendOptions options, InferenceService& service,
                           HealthMonitor& health, ReplicaMetrics& metrics, RequestLog& request_log)
    : options_(std::move(options)),
      service_(service),
      health_(health),
      metrics_(metrics),
      request_log_(request_log) {
  routes_json_ = nlohmann::json{{options_.route_prefix, options_.application}}.dump();
}

void HttpFrontend::install(HttpServer& server) {
  server_ = &server;
  // Every method goes to one dispatcher that matches paths exactly: it can tell a wrong
  // method (405) from an unknown path (404), which per-method regex routes cannot.
  // Methods with a body read it here, not in the library: the library would count a chunked
  // body against no limit as it arrives, answer its overflow 400, and refuse a form-encoded
  // body over 8 KB (curl -d's default content type) before any handler ran.
  auto handler = [this](const httplib::Request& req, httplib::Response& res) {
    HttpServer::markHeadRead();
    if (!acceptFraming(req, res, /*reads_body=*/false)) {
      return;
    }
    std::string body = req.body;
    HttpServer::markRequestComplete();
    dispatch(req, res, body);
  };
  auto with_body = [this](const httplib::Request& req, httplib::Response& res,
                          const httplib::ContentReader& reader) {
    HttpServer::markHeadRead();
    if (!acceptFraming(req, res, /*reads_body=*/true)) {
      return;
    }
    std::optional<std::string> body = readBody(req, res, reader);
    if (!body) {
      return;
    }
    HttpServer::markRequestComplete();
    dispatch(req, res, *body);
  };
  server.Get(".*", handler);
  server.Post(".*", with_body);
  server.Put(".*", with_body);
  server.Patch(".*", with_body);
  server.Delete(".*", with_body);
  server.Options(".*", handler);
  // Reached for answers the library gives itself before any handler runs, such as 413 for a
  // body over the limit.
  server.set_error_handler(httplib::Server::HandlerWithResponse(
      [this](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) {
          return httplib::Server::HandlerResponse::Unhandled;
        }
        std::string message;
        if (res.status == 413) {
          metrics_.recordBadRequest("body_too_large");
          message = "Request body is larger than the limit.";
        } else {
          metrics_.recordBadRequest("malformed_http");
          message = "Bad request.";
        }
        res.set_content(errorJson(message), kJson);
        metrics_.recordRequest("other", req.method, res.status, 0.0);
        return httplib::Server::HandlerResponse::Handled;
      }));
}

bool HttpFrontend::acceptFraming(const httplib::Request& req, httplib::Response& res,
                                 bool reads_body) {
  // RFC 9112 6.1 and 6.3: a request with both, with a coding other than chunked, or with
  // conflicting lengths has no length a proxy and this server agree on. Refused, and the
  // connection closed, since its remaining bytes cannot be trusted to be a request.
  auto refuse = [&](int status, const std::string& message) {
    metrics_.recordBadRequest("malformed_http");
    res.status = status;
    res.set_content(errorJson(message), kJson);
    metrics_.recordRequest("other", req.method, status, 0.0);
    HttpServer::closeAfterResponse();
    return false;
  };
  const std::size_t lengths = req.get_header_value_count("Content-Length");
  const std::size_t codings = req.get_header_value_count("Transfer-Encoding");
  if (lengths > 0 && codings > 0) {
    return refuse(400, "Content-Length and Transfer-Encoding in one request are not allowed.");
  }
  if (codings > 1 ||
      (codings == 1 &&
       !absl::EqualsIgnoreCase(
           absl::StripAsciiWhitespace(req.get_header_value("Transfer-Encoding")), "chunked"))) {
    return refuse(501, "Transfer-Encoding other than chunked is not supported.");
  }
  if (lengths > 1) {
    const std::string first = req.get_header_value("Content-Length", 0);
    for (std::size_t i = 1; i < lengths; ++i) {
      if (req.get_header_value("Content-Length", i) != first) {
        return refuse(400, "Content-Length headers with different values.");
      }
    }
  }
  if (lengths > 0) {
    const std::string value = req.get_header_value("Content-Length");
    if (value.empty() || !std::all_of(value.begin(), value.end(), absl::ascii_isdigit)) {
      return refuse(400, "Content-Length must be a decimal number.");
    }
  }
  // The library never reads the body of a GET or OPTIONS request, so its bytes would be taken
  // for the next request on the connection: a request HAProxy never saw, whose answer would go
  // to the next client. Such a body is refused, and the connection closed.
  if (!reads_body &&
      (codings > 0 ||
       (lengths > 0 &&
        req.get_header_value("Content-Length").find_first_not_of('0') != std::string::npos))) {
    return refuse(400, req.method + " requests must not carry a body.");
  }
  return true;
}

std::optional<std::string> HttpFrontend::readBody(const httplib::Request& req,
                                                  httplib::Response& res,
                                                  const httplib::ContentReader& reader) {
  auto refuse = [&](int status, const std::string& reason, const std::string& message) {
    metrics_.recordBadRequest(reason);
    res.status = status;
    res.set_content(errorJson(message), kJson);
    metrics_.recordRequest("other", req.method, status, 0.0);
    HttpServer::closeAfterResponse();  // the rest of the body is still on the connection
    return std::nullopt;
  };
  if (req.is_multipart_form_data()) {
    return refuse(415, "unsupported_media_type",
                  "multipart/form-data bodies are not supported; send the file as the body.");
  }
  // A declared length over the limit is refused before the body is read (acceptFraming checked
  // that it is a number).
  if (req.has_header("Content-Length")) {
    const std::string declared = req.get_header_value("Content-Length");
    std::uint64_t length = 0;
    const auto [end, ec] =
        std::from_chars(declared.data(), declared.data() + declared.size(), length);
    if (ec != std::errc() || length > options_.max_body_bytes) {
      return refuse(413, "body_too_large", "Request body is larger than the limit.");
    }
  }
  std::string body;
  bool too_large = false;
  const bool read = reader([&](const char* data, std::size_t n) {
    if (n > options_.max_body_bytes - body.size()) {
      too_large = true;
      return false;
    }
    body.append(data, n);
    HttpServer::markBodyProgress();
    return true;
  });
  if (read) {
    return body;
  }
  if (too_large || res.status == 413) {
    return refuse(413, "body_too_large", "Request body is larger than the limit.");
  }
  if (HttpServer::currentRequestTimedOut()) {
    // A stalled body: the server answers 408 itself and counts it as a read timeout, once. A
    // body here keeps the error handler from counting it again; the server drops it.
    res.status = 408;
    res.set_content("Request not received in time.\n", "text/plain");
    HttpServer::closeAfterResponse();
    return std::nullopt;
  }
  // A body that is not well formed (a bad chunk size, a connection closed early).
  return refuse(400, "malformed_http", "Bad request: the body could not be read.");
}

void HttpFrontend::dispatch(const httplib::Request& req, httplib::Response& res,
                            std::string& body) {
  Exchange ex{req, res, body, Clock::now(), "other", {}};
  res.status = 200;
  std::string incoming_id = req.get_header_value("x-request-id");
  ex.request_id = acceptableRequestId(incoming_id) ? incoming_id : uuidV4();
  res.set_header("x-request-id", ex.request_id);

  const std::string& path = req.path;
  const bool get = req.method == "GET" || req.method == "HEAD";
  auto methodNotAllowed = [&](const char* allow) {
    metrics_.recordBadRequest("method_not_allowed");
    res.status = 405;
    res.set_header("Allow", allow);
    res.set_content(
        errorJson("Method " + req.method + " is not allowed on " + path + "; allowed: " + allow),
        kJson);
  };
  auto getOnly = [&](const char* route, auto&& body) {
    ex.route = route;
    if (!get) {
      methodNotAllowed("GET");
    } else {
      body();
    }
  };

  // The replica's own pages answer only requests that did not come through the node's public
  // port: HAProxy marks those, and for them these paths belong to the application (a Python
  // class under route prefix "/" may have its own /metrics) or are not found.
  const bool via_ingress = req.has_header(kIngressHeader);
  if (path == "/-/healthz" && !via_ingress) {
    getOnly("/-/healthz", [&] { handleHealthz(ex); });
  } else if (path == "/-/routes" && !via_ingress) {
    getOnly("/-/routes", [&] { res.set_content(routes_json_, kJson); });
  } else if (path == "/metrics" && !via_ingress) {
    getOnly("/metrics", [&] { handleMetrics(ex); });
  } else if (path == "/v2/health/live") {
    getOnly("/v2/health/live", [&] { res.set_content(R"({"live":true})", kJson); });
  } else if (path == "/v2/health/ready") {
    getOnly("/v2/health/ready", [&] {
      bool ready = health_.state() == HealthState::kHealthy;
      res.status = ready ? 200 : 503;
      res.set_content(ready ? R"({"ready":true})" : R"({"ready":false})", kJson);
    });
  } else if (path == "/v2") {
    getOnly("/v2", [&] {
      // The HTTP API speaks the binary tensor data extension (kserve_json.h).
      res.set_content(R"({"name":"serve-replica","version":")" + std::string(kServeVersion) +
                          R"(","extensions":["binary_tensor_data"]})",
                      kJson);
    });
  } else if (path.starts_with(kModelsPrefix)) {
    std::string_view rest = std::string_view(path).substr(kModelsPrefix.size());
    std::string_view name = rest.substr(0, rest.find('/'));
    std::string_view tail = rest.substr(name.size());
    const ModelMetadata& meta = service_.model().metadata();
    if (tail.empty() || tail == "/ready" || tail == "/infer") {
      ex.route = "/v2/models" + std::string(tail.empty() ? "" : tail);
      if (name != meta.name) {
        metrics_.recordBadRequest("unknown_model");
        res.status = 404;
        res.set_content(errorJson("Unknown model '" + std::string(name) +
                                  "'; this replica serves '" + meta.name + "'"),
                        kJson);
      } else if (tail == "/infer") {
        if (req.method != "POST") {
          methodNotAllowed("POST");
        } else {
          handleInfer(ex, meta.name);
        }
      } else if (!get) {
        methodNotAllowed("GET");
      } else if (tail.empty()) {
        res.set_content(modelMetadataJson(meta), kJson);
      } else {
        bool ready = health_.state() == HealthState::kHealthy;
        res.status = ready ? 200 : 503;
        res.set_content(ready ? R"({"ready":true})" : R"({"ready":false})", kJson);
      }
    }
  } else if (service_.model().servesHttp() && underRoutePrefix(path, options_.route_prefix)) {
    ex.route = options_.route_prefix;
    handleModelHttp(ex);
  } else if (path == options_.route_prefix) {
    ex.route = options_.route_prefix;
    if (req.method != "POST") {
      methodNotAllowed("POST");
    } else {
      handleInfer(ex, service_.model().metadata().name);
    }
  }

  if (ex.route == "other") {
    metrics_.recordBadRequest("not_found");
    res.status = 404;
    std::string host = req.get_header_value("Host");
    res.set_content("Path '" + path + "' not found. Ping http://" +
                        (host.empty() ? "<replica>" : host) + "/-/routes for available routes.",
                    kText);
  }
  finish(ex);
}

void HttpFrontend::handleHealthz(Exchange& ex) {
  switch (health_.state()) {
    case HealthState::kHealthy:
      ex.res.set_content("success", kText);
      break;
    case HealthState::kUnhealthy:
      ex.res.status = 503;
      ex.res.set_content("UNHEALTHY", kText);
      break;
    case HealthState::kDraining:
      ex.res.status = 503;
      ex.res.set_content("DRAINING", kText);
      break;
  }
}

void HttpFrontend::handleMetrics(Exchange& ex) {
  HealthState state = health_.state();
  metrics_.ongoing.set(service_.ongoing());
  metrics_.queued.set(service_.queued());
  metrics_.healthy.set(state == HealthState::kHealthy ? 1 : 0);
  metrics_.draining.set(state == HealthState::kDraining ? 1 : 0);
  if (server_ != nullptr) {
    metrics_.connections.set(static_cast<double>(server_->openConnections()));
  }
  ex.res.set_content(metrics_.registry().serialize(), "text/plain; version=0.0.4");
}

void HttpFrontend::handleInfer(Exchange& ex, const std::string& model_name) {
  std::optional<std::chrono::nanoseconds> timeout = requestTimeout(ex);
  if (!timeout) {
    return;
  }
  auto deadline = timeout->count() > 0 ? ex.start + *timeout : Clock::time_point::max();

  std::optional<size_t> json_length;
  if (ex.req.has_header(kInferHeaderLengthHeader.data())) {
    const std::string text = ex.req.get_header_value(kInferHeaderLengthHeader.data());
    size_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
      metrics_.recordBadRequest("invalid_input");
      ex.res.status = 400;
      ex.res.set_content(
          errorJson(std::string(kInferHeaderLengthHeader) +
                    ": expected the size of the body's JSON part in bytes, got '" + text + "'"),
          kJson);
      return;
    }
    json_length = value;
  }
  StatusOr<ParsedInferBody> parsed = parseInferBody(ex.body, json_length);
  if (!parsed.ok()) {
    metrics_.recordBadRequest(parsed.status().message() == "malformed JSON body" ? "malformed_json"
                                                                                 : "invalid_input");
    ex.res.status = 400;
    ex.res.set_content(errorJson(messageOf(parsed.status())), kJson);
    return;
  }
  InferRequest& request = parsed->request;
  if (request.id.empty()) {
    request.id = ex.request_id;
  }
  request.model = model_name;

  StatusOr<InferResponse> result =
      service_.infer(std::move(request), deadline, [] { return HttpServer::currentClientGone(); });
  if (result.ok() && result->stream != nullptr) {
    result->stream->cancel();
    result = absl::InvalidArgumentError(
        absl::StrCat("model '", service_.model().metadata().name,
                     "' streams its outputs; use the gRPC ModelStreamInfer RPC"));
  }
  if (result.ok()) {
    EncodedResponse encoded = encodeInferResponse(*result, parsed->encoding);
    if (encoded.json_length) {
      ex.res.set_header(kInferHeaderLengthHeader.data(), std::to_string(*encoded.json_length));
      ex.res.set_content(std::move(encoded.body), kOctetStream);
    } else {
      ex.res.set_content(std::move(encoded.body), kJson);
    }
    return;
  }
  writeError(ex, result.status(), *timeout);
}

std::optional<std::chrono::nanoseconds> HttpFrontend::requestTimeout(Exchange& ex) {
  if (!ex.req.has_header("x-request-timeout-seconds")) {
    return options_.default_timeout;
  }
  auto parsed = parseTimeoutHeader(ex.req.get_header_value("x-request-timeout-seconds"));
  if (!parsed.ok()) {
    metrics_.recordBadRequest("bad_timeout_header");
    ex.res.status = 400;
    ex.res.set_content(errorJson(messageOf(parsed.status())), kJson);
    return std::nullopt;
  }
  return parsed->value_or(std::chrono::nanoseconds(0));
}

void HttpFrontend::writeError(Exchange& ex, const Status& st, std::chrono::nanoseconds timeout) {
  ex.res.status = httpStatusFor(st);
  switch (st.code()) {
    case absl::StatusCode::kInvalidArgument:
      metrics_.recordBadRequest("invalid_input");
      ex.res.set_content(errorJson(messageOf(st)), kJson);
      break;
    case absl::StatusCode::kResourceExhausted:
      ex.res.set_header("Retry-After", "1");
      ex.res.set_content("Request dropped due to backpressure", kText);
      break;
    case absl::StatusCode::kDeadlineExceeded:
      ex.res.set_content(
          "Request " + ex.request_id + " timed out after " + formatSeconds(timeout) + "s.", kText);
      break;
    case absl::StatusCode::kCancelled:
      // Nobody is listening; the status is for metrics and the log.
      break;
    default:
      ex.res.set_content(errorJson(messageOf(st)), kJson);
      break;
  }
}

void HttpFrontend::handleModelHttp(Exchange& ex) {
  std::optional<std::chrono::nanoseconds> timeout = requestTimeout(ex);
  if (!timeout) {
    return;
  }
  auto deadline = timeout->count() > 0 ? ex.start + *timeout : Clock::time_point::max();

  auto payload = std::make_shared<HttpPayload>();
  payload->method = ex.req.method;
  payload->path = ex.req.path;
  if (std::size_t q = ex.req.target.find('?'); q != std::string::npos) {
    payload->query = ex.req.target.substr(q + 1);
  }
  for (const auto& [name, value] : ex.req.headers) {
    // cpp-httplib adds these for its own bookkeeping, and HAProxy adds the ingress mark; none
    // came from the client.
    if (name == "REMOTE_ADDR" || name == "REMOTE_PORT" || name == "LOCAL_ADDR" ||
        name == "LOCAL_PORT" || absl::EqualsIgnoreCase(name, kIngressHeader)) {
      continue;
    }
    payload->headers.emplace_back(absl::AsciiStrToLower(name), value);
  }
  payload->body = std::move(ex.body);
  InferRequest request;
  request.id = ex.request_id;
  request.model = service_.model().metadata().name;
  request.http = std::move(payload);

  StatusOr<InferResponse> result =
      service_.infer(std::move(request), deadline, [] { return HttpServer::currentClientGone(); });
  if (result.ok() && result->http != nullptr) {
    std::shared_ptr<HttpReply> reply = result->http;
    ex.res.status = reply->status;
    std::string content_type = "text/plain; charset=utf-8";
    for (const auto& [name, value] : reply->headers) {
      if (absl::EqualsIgnoreCase(name, "content-type")) {
        content_type = value;
      } else if (!absl::EqualsIgnoreCase(name, "content-length") &&
                 !absl::EqualsIgnoreCase(name, "transfer-encoding") &&
                 !absl::EqualsIgnoreCase(name, "connection")) {
        ex.res.set_header(name.c_str(), value);
      }
    }
    if (reply->stream == nullptr) {
      ex.res.set_content(std::move(reply->body), content_type.c_str());
      return;
    }
    // Each chunk goes to the client as the class yields it (HAProxy passes chunks on unbuffered).
    std::shared_ptr<ChunkStream> stream = reply->stream;
    ex.res.set_chunked_content_provider(
        content_type,
        [stream](size_t, httplib::DataSink& sink) {
          std::optional<std::string> chunk = stream->next();
          if (!chunk) {
            if (!stream->error().empty()) {
              spdlog::error("stream broke off: {}", escapeForLog(stream->error()));
              return false;  // the connection closes without the last chunk: the client sees it
            }
            sink.done();
            return true;
          }
          return sink.write(chunk->data(), chunk->size());
        },
        // A client that left (a failed write) stops the class's generator; no-op after the end.
        [stream](bool success) {
          if (!success) {
            stream->cancel();
          }
        });
    return;
  }
  writeError(ex,
             result.ok() ? absl::InternalError("the model gave no HTTP answer") : result.status(),
             *timeout);
}

void HttpFrontend::finish(Exchange& ex) {
  auto elapsed = Clock::now() - ex.start;
  double ms =
      static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count()) /
      1e6;
  metrics_.recordRequest(ex.route, ex.req.method, ex.res.status, ms);
  if (ex.route == "/metrics" || ex.route == "/-/healthz") {
    return;  // probes would drown the access log
  }
  // Method and path are the client's bytes (the path %-decoded): escaped, so neither can forge
  // a line or a field.
  std::string line = fmt::format("{} {} {} {:.3f}ms id={}", escapeForLog(ex.req.method, true),
                                 escapeForLog(ex.req.path, true), ex.res.status, ms, ex.request_id);
  if (ex.res.status >= 500) {
    request_log_.error(line);
  } else {
    request_log_.info(line);
  }
}

}  // namespace serve
