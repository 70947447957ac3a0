#pragma once

// Hands out replica ports from a half-open range [min, max): the lowest free port first, so
// port sets are deterministic and equal across nodes. A port that failed to bind is blocked for
// good; a released port is quarantined for a while before it is handed out again, so that a
// soft-stopping HAProxy worker with a frozen server list cannot reach a new replica on an old
// port. Pure: the caller passes the time.
#include <chrono>
#include <map>
#include <set>
#include <string>

#include "common/status.h"

namespace serve::manager {

class PortAllocator {
 public:
  using Clock = std::chrono::steady_clock;

  // `what` names the range in errors ("HTTP"); `min_var`/`max_var` name the variables that set it.
  PortAllocator(std::string what, int min, int max, std::chrono::milliseconds quarantine);

  // The lowest port that is neither in use, blocked nor quarantined at `now`.
  StatusOr<int> allocate(Clock::time_point now);
  // Marks a port in use that was not allocated here (a replica adopted after a restart).
  void markInUse(int port);
  // Gives a port back; it is quarantined until now + quarantine.
  void release(int port, Clock::time_point now);
  // A port that failed to bind: never handed out again (released if it was in use).
  void block(int port);

  bool inUse(int port) const { return in_use_.count(port) > 0; }
  int min() const { return min_; }
  int max() const { return max_; }

 private:
  std::string what_;
  int min_;
  int max_;
  std::chrono::milliseconds quarantine_;
  std::set<int> in_use_;
  std::set<int> blocked_;
  std::map<int, Clock::time_point> quarantined_until_;
};

}  // namespace serve::manager
