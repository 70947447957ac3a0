// HAProxy's access log datagrams as the manager's ingress log listener receives them. The path and
// method inside come from clients, so this parser sees hostile bytes by design.
#include "fuzz/fuzz_target.h"
#include "haproxy-manager/ingress/ingress_log_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)serve::manager::parseIngressLog(serve::fuzz::asText(data, size));
  return 0;
}
