// The parsers of HAProxy's answers on the admin socket and the master CLI. The manager trusts
// HAProxy, but an HAProxy version with a changed format, a truncated read or a socket shared by
// mistake must end in an error, never in a crash. The first byte picks the parser.
#include "fuzz/fuzz_target.h"
#include "haproxy-manager/haproxy/show_parsers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const auto text = serve::fuzz::asText(data + 1, size - 1);
  namespace m = serve::manager;
  switch (data[0] % 6) {
    case 0:
      (void)m::parseShowStat(text);
      break;
    case 1:
      (void)m::parseServersState(text);
      break;
    case 2:
      (void)m::parseShowMap(text);
      break;
    case 3:
      (void)m::parseShowProc(text);
      break;
    case 4:
      (void)m::parseShowInfo(text);
      break;
    default:
      (void)m::parseReloadReply(text);
      break;
  }
  return 0;
}
