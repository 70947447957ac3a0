#include "haproxy-manager/control/control_client.h"

#include <curl/curl.h>

#include "absl/strings/str_cat.h"

namespace serve::manager {

namespace {

size_t collect(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

}  // namespace

ControlClient::ControlClient(int port, std::string token, double timeout_s)
    : port_(port), token_(std::move(token)), timeout_s_(timeout_s) {}

StatusOr<ControlReply> ControlClient::get(const std::string& path) const {
  return send("GET", path, "");
}

StatusOr<ControlReply> ControlClient::send(const std::string& method, const std::string& path,
                                           const std::string& body, const std::string& content_type,
                                           const std::string& extra_header) const {
  CURL* curl = curl_easy_init();
  if (curl == nullptr) {
    return absl::InternalError("curl_easy_init failed");
  }
  const std::string url = absl::StrCat("http://127.0.0.1:", port_, path);
  ControlReply reply;
  curl_slist* headers = nullptr;
  if (!token_.empty()) {
    headers = curl_slist_append(headers, ("Authorization: Bearer " + token_).c_str());
  }
  if (!extra_header.empty()) {
    headers = curl_slist_append(headers, extra_header.c_str());
  }
  if (method != "GET") {
    headers = curl_slist_append(headers, ("Content-Type: " + content_type).c_str());
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply.body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_s_ * 1000));
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  const CURLcode rc = curl_easy_perform(curl);
  long code = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK) {
    return absl::UnavailableError(absl::StrCat("cannot reach the manager at ", url, ": ",
                                               curl_easy_strerror(rc),
                                               " (is `haproxy-manager start` running?)"));
  }
  reply.status = static_cast<int>(code);
  return reply;
}

}  // namespace serve::manager
